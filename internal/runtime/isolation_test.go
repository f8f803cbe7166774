//go:build linux

package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/caps"
)

// facts runs a shell script in the container and returns its "key=value"
// lines.
func facts(t *testing.T, spec *Spec) map[string]string {
	t.Helper()
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("exit %+v; stderr:\n%s", es, stderr)
	}
	m := map[string]string{}
	for _, l := range strings.Split(stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestIsolation(t *testing.T) {
	checkLeaks(t)
	script := `
echo pids=$(cd /proc && echo [0-9]* )
echo hostname=$(hostname)
echo ifaces=$(ls /sys/class/net)
echo loflags=$(cat /sys/class/net/lo/flags)
grep -E '^(CapBnd|CapEff|CapPrm|CapInh|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo timers=$(wc -c < /proc/timer_list)
echo keys=$(cat /proc/keys | wc -c)
echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)
if echo 1 > /proc/sysrq-trigger 2>/dev/null; then echo sysrq=writable; else echo sysrq=refused; fi
if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys=writable; else echo procsys=refused; fi
if touch /etc/newfile 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi
if touch /tmp/x; then echo tmp=writable; fi
echo mounts=$(wc -l < /proc/self/mountinfo)
echo hostroot=$(awk '{print $5}' /proc/self/mountinfo | grep -c dock-runtime-test)
echo uid=$(id -u) gid=$(id -g)
echo cwd=$(pwd)
echo fds=$(ls /proc/self/fd | tr '\n' ' ')
echo devs=$(ls /dev | tr '\n' ' ')
echo cgroupns=$(grep -cv ':/$' /proc/self/cgroup)
echo nofile=$(ulimit -n)/$(ulimit -Hn)
echo oomadj=$(cat /proc/self/oom_score_adj)
`
	spec := testSpec(t, "sh", "-c", script)
	spec.Process.Cwd = "/tmp"
	spec.Process.Rlimits = []Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1000, Hard: 2000}}
	adj := 500
	spec.Process.OOMScoreAdj = &adj
	f := facts(t, spec)
	checks := []struct{ key, want string }{
		{"hostname", spec.Hostname},
		{"ifaces", "lo"},
		{"loflags", "0x9"}, // IFF_UP|IFF_LOOPBACK
		{"Seccomp", "2"},
		{"NoNewPrivs", "1"},
		{"CapBnd", capMask(t, testDefaultCaps)},
		{"CapEff", capMask(t, testDefaultCaps)},
		{"CapPrm", capMask(t, testDefaultCaps)},
		{"CapInh", "0000000000000000"},
		{"timers", "0"},
		{"keys", "0"},
		{"sysrq", "refused"},
		{"procsys", "refused"},
		{"rootfs", "readonly"},
		{"tmp", "writable"},
		{"hostroot", "0"},
		{"cwd", "/tmp"},
		{"nofile", "1000/2000"},
		{"oomadj", "500"},
		{"cgroupns", "0"},  // every hierarchy shows the container's group as its root
		{"fds", "0 1 2 3"}, // 3 is ls's own directory
	}
	for _, c := range checks {
		if f[c.key] != c.want {
			t.Errorf("%s = %q, want %q", c.key, f[c.key], c.want)
		}
	}
	// Only the container's own processes: the shell (1) and the subshell
	// running echo.
	if p := strings.Fields(f["pids"]); len(p) != 2 || p[0] != "1" {
		t.Errorf("pids %q", f["pids"])
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"} {
		if !strings.Contains(" "+f["devs"]+" ", " "+d+" ") {
			t.Errorf("/dev lacks %s: %s", d, f["devs"])
		}
	}
}

// capMask is /proc/PID/status's hex form of a capability set.
func capMask(t *testing.T, names []string) string {
	set, err := caps.NewSet(names)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%016x", uint64(set))
}

func TestCapabilities(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name string
		caps []string
	}{
		{"default", caps.Default()},
		{"none", nil},
		{"sys-admin-added", append(caps.Default(), "CAP_SYS_ADMIN")},
		{"chown-only", []string{"CAP_CHOWN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, "sh", "-c", `grep -E '^Cap(Bnd|Eff|Prm|Inh|Amb):' /proc/self/status | tr -d '\t' | sed 's/:/=/'`)
			spec.Process.Caps = tc.caps
			f := facts(t, spec)
			want := capMask(t, tc.caps)
			for k, v := range map[string]string{"CapBnd": want, "CapEff": want, "CapPrm": want, "CapInh": "0000000000000000", "CapAmb": "0000000000000000"} {
				if f[k] != v {
					t.Errorf("%s = %s, want %s", k, f[k], v)
				}
			}
		})
	}
}

func TestUserAndGroups(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", `echo ids=$(id -u):$(id -g):$(id -G | tr ' ' ,); grep -E '^Cap(Eff|Prm)' /proc/self/status | tr -d '\t' | sed 's/:/=/'`)
	spec.Process.User = User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{5, 1000}}
	f := facts(t, spec)
	if f["ids"] != "1000:1000:1000,5" && f["ids"] != "1000:1000:5,1000" {
		t.Errorf("ids %q", f["ids"])
	}
	if f["CapEff"] != "0000000000000000" || f["CapPrm"] != "0000000000000000" {
		t.Errorf("a non-root user keeps capabilities: %v", f)
	}
}

func TestHostFilesAndMounts(t *testing.T) {
	checkLeaks(t)
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "data"), []byte("from-host\n"), 0o644)
	ro := t.TempDir()
	spec := testSpec(t, "sh", "-c", `cat /vol/data; echo new > /vol/out; cat /etc/hosts; cat /etc/hostname;
if echo x > /ro/x 2>/dev/null; then echo ro=writable; else echo ro=readonly; fi`)
	spec.Mounts = append(spec.Mounts,
		MountSpec{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind"}},
		MountSpec{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"rbind", "ro"}},
	)
	os.MkdirAll(spec.StateDir, 0o711)
	os.WriteFile(filepath.Join(spec.StateDir, "hosts"), []byte("127.0.0.1 localhost test-hosts\n"), 0o644)
	os.WriteFile(filepath.Join(spec.StateDir, "hostname"), []byte(spec.Hostname+"\n"), 0o644)
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("exit %+v: %s", es, stderr)
	}
	for _, want := range []string{"from-host", "test-hosts", spec.Hostname, "ro=readonly"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "out")); string(b) != "new\n" {
		t.Errorf("write through the bind: %q", b)
	}
}

func TestKillAndStop(t *testing.T) {
	checkLeaks(t)
	t.Run("kill", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100")
		h, err := start(t, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := h.State(); st.Status != Running || st.Pid == 0 {
			t.Fatalf("state %+v", st)
		}
		if err := h.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		es, err := h.Wait(context.Background())
		if err != nil || es.ExitCode != 137 || es.Signal != 9 || es.OOMKilled {
			t.Fatalf("wait: %+v %v", es, err)
		}
		if err := h.Kill(syscall.SIGKILL); err == nil {
			t.Fatal("kill of a stopped container succeeded")
		}
	})
	t.Run("stop-term", func(t *testing.T) {
		// sh as pid 1 ignores SIGTERM unless it traps it.
		spec := testSpec(t, "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done")
		h, err := start(t, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let the trap be set
		if err := h.Stop(context.Background(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if es, _ := h.Wait(context.Background()); es.ExitCode != 42 {
			t.Fatalf("exit %+v", es)
		}
	})
	t.Run("stop-timeout", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100") // pid 1: SIGTERM has no effect
		h, err := start(t, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := h.Stop(context.Background(), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d < 300*time.Millisecond || d > 10*time.Second {
			t.Fatalf("stop took %v", d)
		}
		if es, _ := h.Wait(context.Background()); es.ExitCode != 137 {
			t.Fatalf("exit %+v", es)
		}
	})
	t.Run("delete-running", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100")
		h, err := start(t, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Delete(false); err == nil {
			t.Fatal("delete of a running container succeeded")
		}
		if err := h.Delete(true); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(spec.StateDir); !os.IsNotExist(err) {
			t.Fatalf("state dir left: %v", err)
		}
	})
}

// TestSurvivesStarter starts a container from a separate program, kills that
// program with SIGKILL, and still gets the exit code and the full log.
func TestSurvivesStarter(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done; echo bye >&2; exit 7")
	b, _ := jsonMarshal(spec)
	specFile := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(specFile, b, 0o600)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "DOCK_RUNTIME_TEST_HELPER=start-and-hang", "DOCK_RUNTIME_TEST_SPEC="+specFile)
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h, err := Load(spec.StateDir); err == nil {
			h.Delete(true)
		}
	})
	buf := make([]byte, 8)
	n, _ := out.Read(buf)
	if string(buf[:n]) != "started\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", buf[:n])
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	h, err := Load(spec.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if st := h.State(); st.Status != Running {
		t.Fatalf("after the starter died: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	es, err := h.Wait(ctx)
	if err != nil || es.ExitCode != 7 {
		t.Fatalf("wait: %+v %v", es, err)
	}
	r, err := Logs(ctx, spec.StateDir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stdout, stderr strings.Builder
	if err := r.Copy(&stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "line1\nline2\nline3\nline4\nline5\n" || stderr.String() != "bye\n" {
		t.Fatalf("logs: %q %q", stdout.String(), stderr.String())
	}
}

func TestLogsFollowAndRotate(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done")
	spec.Log = LogConfig{MaxSize: 4096, MaxFiles: 3}
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := Logs(ctx, spec.StateDir, LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, string(e.Data))
	}
	if _, err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Rotation keeps about 3 files of 4 KiB: the newest lines, in order.
	if len(got) == 0 || got[len(got)-1] != "line-199-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n" {
		t.Fatalf("follow ended with %d entries, last %q", len(got), got[len(got)-1:])
	}
	prev := -1
	for _, g := range got {
		n, _ := strconv.Atoi(strings.Split(g, "-")[1])
		if n <= prev {
			t.Fatalf("out of order: %d after %d", n, prev)
		}
		prev = n
	}
	if _, err := os.Stat(spec.logPath() + ".3"); err == nil {
		t.Errorf("more than MaxFiles files kept")
	}
	if _, err := os.Stat(spec.logPath() + ".2"); err != nil {
		t.Errorf("no rotated file: %v", err)
	}
}
