//go:build linux

package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/cgroups"
)

func TestStdin(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "tr a-z A-Z; echo done >&2")
	var stdout, stderr syncBuffer
	h, err := start(t, spec, &Stdio{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	es, err := h.Wait(context.Background())
	if err != nil || es.ExitCode != 0 {
		t.Fatalf("%+v %v", es, err)
	}
	if stdout.String() != "HELLO\nWORLD\n" || stderr.String() != "done\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func TestTerminal(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty=yes; tty; read line; stty size; echo got=$line")
	spec.Process.Terminal = true
	pr, pw, _ := os.Pipe()
	defer pw.Close()
	defer pr.Close()
	var stdout syncBuffer
	h, err := start(t, spec, &Stdio{Stdin: pr, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Resize(30, 100); err != nil {
		t.Fatal(err)
	}
	// The shell reads the line before it runs stty, so the resize is
	// done by then.
	pw.Write([]byte("typed\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	es, err := h.Wait(ctx)
	if err != nil || es.ExitCode != 0 {
		t.Fatalf("%+v %v: %q", es, err, stdout.String())
	}
	out := strings.ReplaceAll(stdout.String(), "\r", "")
	for _, want := range []string{"tty=yes", "/dev/console", "30 100", "got=typed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %q", want, out)
		}
	}
}

func TestOOMKilled(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done")
	g, err := cgroups.Load(spec.Cgroup.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Update(&cgroups.Resources{MemoryMax: 16 << 20, MemorySwapMax: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	es, err := h.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !es.OOMKilled || es.ExitCode != 137 {
		t.Fatalf("exit %+v, want an OOM kill", es)
	}
}

func TestJoinNetworkNamespace(t *testing.T) {
	checkLeaks(t)
	first := testSpec(t, "sleep", "100")
	h1, err := start(t, first, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first container's lo gets an address the second one must see.
	second := testSpec(t, "sh", "-c", "cat /sys/class/net/lo/ifindex; readlink /proc/self/ns/net")
	second.Namespaces.New = []string{"pid", "mnt", "uts", "ipc"}
	second.Namespaces.Join = map[string]string{
		"net":    "/proc/" + itoa(h1.State().Pid) + "/ns/net",
		"cgroup": "/proc/" + itoa(h1.State().Pid) + "/ns/cgroup",
	}
	es, stdout, stderr := run(t, second)
	if es.ExitCode != 0 {
		t.Fatalf("%+v %s", es, stderr)
	}
	want, _ := os.Readlink("/proc/" + itoa(h1.State().Pid) + "/ns/net")
	if !strings.Contains(stdout, want) {
		t.Fatalf("second container in %q, first in %q", stdout, want)
	}
	h1.Kill(syscall.SIGKILL)
	h1.Wait(context.Background())
}

func TestUserNamespace(t *testing.T) {
	checkLeaks(t)
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		t.Skip("no user namespaces")
	}
	// The rootfs must be readable by the mapped ids: the shared tree is
	// owned by host root, which maps to nobody inside; reading works.
	spec := testSpec(t, "sh", "-c", "echo uid=$(id -u); cat /proc/self/uid_map | tr -s ' '; echo ok=yes")
	spec.Namespaces.New = append(spec.Namespaces.New, "user")
	spec.Namespaces.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Namespaces.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("%+v %s", es, stderr)
	}
	if !strings.Contains(stdout, "uid=0") || !strings.Contains(stdout, "0 100000 65536") {
		t.Fatalf("output %q", stdout)
	}
}

// TestUserNamespaceRlimits checks that a container in a user namespace,
// and a process exec'd into it, may have a hard limit above the host's:
// raising one needs CAP_SYS_RESOURCE in the host's namespace, which no
// process in the container's has.
func TestUserNamespaceRlimits(t *testing.T) {
	checkLeaks(t)
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		t.Skip("no user namespaces")
	}
	if !hasCapability(t, unix.CAP_SYS_RESOURCE) {
		t.Skip("raising a hard limit needs CAP_SYS_RESOURCE, which this process lacks")
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MSGQUEUE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max >= 1<<40 {
		t.Skipf("the message queue limit is already %d", lim.Max)
	}
	want := lim.Max*2 + 4096
	spec := testSpec(t, "sh", "-c", "grep 'Max msgqueue size' /proc/self/limits; exec sleep 100")
	spec.Namespaces.New = append(spec.Namespaces.New, "user")
	spec.Namespaces.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Namespaces.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Process.Rlimits = []Rlimit{{Type: "RLIMIT_MSGQUEUE", Soft: want - 1, Hard: want}}
	re := regexp.MustCompile(fmt.Sprintf(`Max msgqueue size +%d +%d `, want-1, want))
	var stdout syncBuffer
	h, err := start(t, spec, &Stdio{Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Delete(true)
	for deadline := time.Now().Add(10 * time.Second); !re.MatchString(stdout.String()); {
		if time.Now().After(deadline) {
			t.Fatalf("the init's limits: %q, want %s", stdout.String(), re)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := spec.Process
	p.Args = []string{"grep", "Max msgqueue size", "/proc/self/limits"}
	p.Rlimits = []Rlimit{{Type: "RLIMIT_MSGQUEUE", Soft: want - 1, Hard: want}}
	if out := execOutput(t, h, &p); !re.MatchString(out) {
		t.Errorf("the exec'd process's limits: %q, want %s", out, re)
	}
}

// hasCapability reports whether this process has capability c in effect.
func hasCapability(t *testing.T, c int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no CapEff in /proc/self/status")
	}
	eff, err := strconv.ParseUint(string(m[1]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return eff&(1<<c) != 0
}

// TestRestartAndLoadedWait starts a stopped container again and checks that
// a Handle from Load waits for the output of a foreground start.
func TestRestartAndLoadedWait(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done")
	for round := 0; round < 2; round++ {
		if round > 0 {
			// The monitor removed the group when the container stopped;
			// a caller makes it again for each start.
			spec.Cgroup = testCgroup(t, spec.Cgroup.Name)
		}
		var stdout syncBuffer
		if _, err := start(t, spec, &Stdio{Stdout: &stdout}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		h, err := Load(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		es, err := h.Wait(context.Background())
		if err != nil || es.ExitCode != 0 {
			t.Fatalf("round %d: %+v %v", round, es, err)
		}
		if n := strings.Count(stdout.String(), "\n"); n != 2000 {
			t.Fatalf("round %d: %d lines reached the caller", round, n)
		}
	}
	r, err := Logs(context.Background(), spec.StateDir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		n++
	}
	if n != 4000 {
		t.Fatalf("log has %d entries over two runs", n)
	}
}

// TestParallelStarts starts several containers at once, which share the
// sealed binary and the compiled seccomp filter.
func TestParallelStarts(t *testing.T) {
	checkLeaks(t)
	const n = 6
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		spec := testSpec(t, "sh", "-c", "echo hi; exit 5")
		go func() {
			h, err := start(t, spec, nil)
			if err == nil {
				var es ExitStatus
				es, err = h.Wait(context.Background())
				if err == nil && es.ExitCode != 5 {
					err = fmt.Errorf("exit %+v", es)
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A process exec'd into a container with a user namespace joins it as its
// root, or as the user asked for; the host sees the mapped ids.
func TestUserNamespaceExec(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	spec.Namespaces.New = append(spec.Namespaces.New, "user")
	spec.Namespaces.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Namespaces.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want, err := os.Readlink("/proc/" + itoa(h.State().Pid) + "/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user     User
		want     string
		hostUIDs string
	}{
		{User{}, "0 0 " + want, "100000\t100000\t100000\t100000"},
		{User{UID: 1000, GID: 1000}, "1000 1000 " + want, "101000\t101000\t101000\t101000"},
	} {
		p := spec.Process
		p.Args = []string{"sh", "-c", "echo $(id -u) $(id -g) $(readlink /proc/self/ns/user); read x"}
		p.User = tt.user
		var out syncBuffer
		pr, pw := io.Pipe()
		ep, err := h.Exec(ctx, &p, &Stdio{Stdin: pr, Stdout: &out})
		if err != nil {
			t.Fatalf("exec as %+v: %v", tt.user, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "\n") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		status, err := os.ReadFile("/proc/" + itoa(ep.Pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		pw.Write([]byte("go\n"))
		pw.Close()
		if es, err := ep.Wait(ctx); err != nil || es.ExitCode != 0 {
			t.Fatalf("exec as %+v: %+v %v", tt.user, es, err)
		}
		if got := strings.TrimSpace(out.String()); got != tt.want {
			t.Errorf("exec as %+v: %q, want %q", tt.user, got, tt.want)
		}
		if !strings.Contains(string(status), "Uid:\t"+tt.hostUIDs+"\n") {
			t.Errorf("exec as %+v: the host sees\n%s", tt.user, status)
		}
	}
}

// The container's command and an exec'd one see the environment their
// spec gives and nothing of the init's or the helper's own.
func TestEnvironment(t *testing.T) {
	checkLeaks(t)
	sorted := func(s string) string {
		lines := strings.Fields(s)
		slices.Sort(lines)
		return strings.Join(lines, " ")
	}
	spec := testSpec(t, "env")
	spec.Process.Env = []string{"PATH=/bin", "A=1"}
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("%+v %s", es, stderr)
	}
	if got, want := sorted(stdout), "A=1 PATH=/bin"; got != want {
		t.Errorf("container's environment %q, want %q", got, want)
	}

	spec = testSpec(t, "sleep", "100")
	h := running(t, spec)
	p := spec.Process
	p.Args = []string{"env"}
	p.Env = []string{"PATH=/bin", "B=2"}
	if got, want := sorted(execOutput(t, h, &p)), "B=2 PATH=/bin"; got != want {
		t.Errorf("exec'd process's environment %q, want %q", got, want)
	}
}

// TestReadonlyRootfsWorkdir runs in a working directory the rootfs lacks,
// the rootfs read-only: it is made before the rootfs turns read-only.
func TestReadonlyRootfsWorkdir(t *testing.T) {
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			checkLeaks(t)
			spec := testSpec(t, "pwd")
			spec.ReadonlyRootfs = true
			spec.Process.Cwd = "/wd-" + kind.name + "/dir"
			t.Cleanup(func() { os.RemoveAll(filepath.Join(baseRootfs, "wd-"+kind.name)) })
			useInit(t, spec, kind.reexec)
			es, stdout, stderr := run(t, spec)
			if es.ExitCode != 0 || stdout != spec.Process.Cwd+"\n" {
				t.Fatalf("exit %d: %s%s", es.ExitCode, stdout, stderr)
			}
		})
	}
}
