//go:build linux

package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/runtime/standby"
)

// execOutput runs p in h and returns its standard output, failing the
// test unless it exits 0.
func execOutput(t *testing.T, h *Handle, p *Process) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out syncBuffer
	ep, err := h.Exec(ctx, p, &Stdio{Stdout: &out})
	if err != nil {
		t.Fatalf("exec %q: %v", p.Args, err)
	}
	if es, err := ep.Wait(ctx); err != nil || es.ExitCode != 0 {
		t.Fatalf("exec %q: %+v %v: %q", p.Args, es, err, out.String())
	}
	return out.String()
}

func TestExec(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.Kill(syscall.SIGKILL)
		h.Wait(context.Background())
	}()
	proc := func(args ...string) *Process {
		p := spec.Process
		p.Args = args
		return &p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("namespaces", func(t *testing.T) {
		var out, errb syncBuffer
		p, err := h.Exec(ctx, proc("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; echo cg=$(grep -cv ':/$' /proc/self/cgroup); grep -E '^(Seccomp|CapEff):' /proc/self/status | tr -d '\\t'; echo err >&2; exit 4"), &Stdio{Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		es, err := p.Wait(ctx)
		if err != nil || es.ExitCode != 4 {
			t.Fatalf("%+v %v", es, err)
		}
		for _, want := range []string{"sleep 100", spec.Hostname, "cg=0", "Seccomp:2", "CapEff:" + capMask(t, spec.Process.Caps)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q: %q", want, out.String())
			}
		}
		if errb.String() != "err\n" {
			t.Errorf("stderr %q", errb.String())
		}
	})
	t.Run("stdin-and-user", func(t *testing.T) {
		var out syncBuffer
		pr := proc("sh", "-c", "read x; echo $x $(id -u)")
		pr.User = User{UID: 1000, GID: 1000}
		p, err := h.Exec(ctx, pr, &Stdio{Stdin: strings.NewReader("hello\n"), Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 || out.String() != "hello 1000\n" {
			t.Fatalf("%+v %v %q", es, err, out.String())
		}
	})
	t.Run("not-found", func(t *testing.T) {
		_, err := h.Exec(ctx, proc("nosuch"), nil)
		var se *StartError
		if !errors.As(err, &se) || se.ExitCode != 127 {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		var out syncBuffer
		pr := proc("sh", "-c", "[ -t 1 ] && echo tty")
		pr.Terminal = true
		p, err := h.Exec(ctx, pr, &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 || !strings.Contains(out.String(), "tty") {
			t.Fatalf("%+v %v %q", es, err, out.String())
		}
	})
	t.Run("kill", func(t *testing.T) {
		p, err := h.Exec(ctx, proc("sleep", "100"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 137 {
			t.Fatalf("%+v %v", es, err)
		}
	})
	t.Run("root-is-the-container's", func(t *testing.T) {
		// /work exists on the host only; /bin/busybox in the container.
		var out syncBuffer
		p, err := h.Exec(ctx, proc("sh", "-c", "[ -e /work ] && echo host-root; [ -e /bin/busybox ] && echo container-root; readlink /proc/self/ns/mnt"), &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		p.Wait(ctx)
		want, _ := os.Readlink("/proc/" + itoa(h.State().Pid) + "/ns/mnt")
		if strings.Contains(out.String(), "host-root") || !strings.Contains(out.String(), "container-root") || !strings.Contains(out.String(), want) {
			t.Fatalf("%q (container's mount namespace %s)", out.String(), want)
		}
	})
}

// An exec that cannot run its command fails as Docker's does: 127 for a
// command not found, 126 for one that cannot be run or a working directory
// the user may not enter, with the reason.
func TestExecErrors(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proc := func(args ...string) *Process {
		p := spec.Process
		p.Args = args
		return &p
	}
	p, err := h.Exec(ctx, proc("mkdir", "-m", "700", "/tmp/private"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 {
		t.Fatalf("mkdir: %+v %v", es, err)
	}
	p, err = h.Exec(ctx, proc("sh", "-c", "printf '#!/no/interpreter\\n' > /tmp/script && chmod +x /tmp/script"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 {
		t.Fatalf("script: %+v %v", es, err)
	}
	noPath := proc("sh")
	noPath.Env = []string{"PATH="}
	private := proc("true")
	private.User = User{UID: 1000, GID: 1000}
	private.Cwd = "/tmp/private"
	private.Caps = nil // CAP_DAC_OVERRIDE would let it in
	for _, tt := range []struct {
		name string
		proc *Process
		code int
		msg  string
	}{
		{"not in PATH", proc("nosuch"), 127, `exec: "nosuch": executable file not found in $PATH`},
		{"empty PATH", noPath, 127, `exec: "sh": executable file not found in $PATH`},
		{"no such path", proc("/no/such"), 127, `exec: "/no/such": stat /no/such: no such file or directory`},
		{"a directory", proc("/etc"), 126, `exec: "/etc": permission denied`},
		{"not executable", proc("/etc/passwd"), 126, `exec: "/etc/passwd": permission denied`},
		{"working directory closed to the user", private, 126, "exec: working directory /tmp/private: permission denied"},
		{"missing interpreter", proc("/tmp/script"), 127, `exec: "/tmp/script": /tmp/script: no such file or directory (its interpreter is missing)`},
	} {
		_, err := h.Exec(ctx, tt.proc, nil)
		var se *StartError
		if !errors.As(err, &se) || se.ExitCode != tt.code || se.Msg != tt.msg {
			t.Errorf("%s: %v, want exit %d and %q", tt.name, err, tt.code, tt.msg)
		}
	}
}

// An exec'd process has the container's limits: those its spec gives, and
// otherwise the open-file limit the container started with rather than
// the monitor's.
func TestExecLimits(t *testing.T) {
	checkLeaks(t)
	t.Run("oom score under a small open-file limit", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100")
		h := running(t, spec)
		p := spec.Process
		p.Args = []string{"cat", "/proc/self/oom_score_adj"}
		adj := 500
		p.OOMScoreAdj = &adj
		p.Rlimits = []Rlimit{{Type: "RLIMIT_NOFILE", Soft: 4, Hard: 4}}
		if out := execOutput(t, h, &p); out != "500\n" {
			t.Fatalf("oom_score_adj %q, want 500", out)
		}
	})
	for _, rl := range [][]Rlimit{nil, {{Type: "RLIMIT_NOFILE", Soft: 1000, Hard: 2000}}} {
		spec := testSpec(t, "sleep", "100")
		spec.Process.Rlimits = rl
		var h *Handle
		if rl == nil {
			// A soft limit unlike the monitor's own, which its Go runtime
			// raises to the hard one: the container starts with this.
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
			low := lim
			low.Cur = 513
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
				t.Fatal(err)
			}
			h = running(t, spec)
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
			// What the container does with its own later is its own.
			if err := unix.Prlimit(h.State().Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 100, Max: lim.Max}, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			h = running(t, spec)
		}
		p := spec.Process
		p.Args = []string{"sh", "-c", "echo $(ulimit -n) $(ulimit -Hn)"}
		out := execOutput(t, h, &p)
		want := "513"
		if rl != nil {
			want = "1000 2000"
		}
		if !strings.HasPrefix(out, want) {
			t.Errorf("rlimits %v: exec'd process has %q open files, want %s", rl, out, want)
		}
	}
}

// Where clone3 is missing (old kernels, Docker's default seccomp profile),
// an exec'd process comes from clone and joins the container's cgroups
// before it goes on; it is in the same namespaces and cgroups as with
// clone3.
func TestExecWithoutClone3(t *testing.T) {
	checkLeaks(t)
	noClone3.Store(true)
	defer noClone3.Store(false)
	for _, userns := range []bool{false, true} {
		spec := testSpec(t, "sleep", "100")
		if userns {
			spec.Namespaces.New = append(spec.Namespaces.New, "user")
			spec.Namespaces.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
			spec.Namespaces.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}
		h := running(t, spec)
		p := spec.Process
		p.Args = []string{"sh", "-c", "for n in user mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup"}
		out := execOutput(t, h, &p)
		init := itoa(h.State().Pid)
		var want strings.Builder
		for _, n := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"} {
			l, err := os.Readlink("/proc/" + init + "/ns/" + n)
			if err != nil {
				t.Fatal(err)
			}
			want.WriteString(l + "\n")
		}
		// The init's cgroups, as its own cgroup namespace shows them.
		cg, err := h.Exec(context.Background(), &Process{Args: []string{"cat", "/proc/1/cgroup"}, Env: p.Env, User: p.User, Caps: p.Caps, NoNewPrivs: p.NoNewPrivs}, &Stdio{Stdout: &want})
		if err != nil {
			t.Fatal(err)
		}
		cg.Wait(context.Background())
		if out != want.String() {
			t.Errorf("user namespace %v: exec'd process in\n%s\ncontainer in\n%s", userns, out, want.String())
		}
	}
}

// A container whose processes may ptrace and stop each other
// (CAP_SYS_PTRACE) never sees an exec'd process before it is in the
// container's mount namespace, so it cannot reach the host through its
// /proc entries; stopping the exec'd process on its way in does not lock
// up the monitor; and an exec into a paused container is refused.
func TestExecHostileContainer(t *testing.T) {
	checkLeaks(t)
	marker := filepath.Join(t.TempDir(), "host-only")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "sh", "-c", `while :; do
		kill -STOP -1 2>/dev/null
		for r in /proc/[0-9]*/root; do [ -e "$r`+marker+`" ] && echo "escape through $r"; done
		for f in /proc/[0-9]*/fd/*; do
			case $(readlink $f) in *monitor.sock*|*container.log*|*/sys/fs/cgroup*) echo "escape through $f";; esac
		done
		kill -CONT -1 2>/dev/null
	done`)
	spec.Process.Caps = append(spec.Process.Caps, "CAP_SYS_PTRACE", "CAP_KILL")
	var out syncBuffer
	h, err := start(t, spec, &Stdio{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	proc := func(args ...string) *Process {
		p := spec.Process
		p.Args = args
		return &p
	}
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p, err := h.Exec(ctx, proc("true"), nil)
		if err == nil {
			_, err = p.Wait(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
	}
	if strings.Contains(out.String(), "escape") {
		t.Fatalf("the container reached the host:\n%s", out.String())
	}
	h.Kill(syscall.SIGKILL)
	h.Wait(context.Background())

	// Stopped for good on its way in: the monitor still answers.
	spec = testSpec(t, "sh", "-c", "while :; do kill -STOP -1 2>/dev/null; done")
	spec.Process.Caps = append(spec.Process.Caps, "CAP_KILL")
	h = running(t, spec)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if p, err := h.Exec(ctx, proc("true"), nil); err == nil {
			p.Wait(ctx)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := h.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Wait(ctx); err != nil {
		t.Fatalf("the monitor did not report the container's end: %v", err)
	}

	spec = testSpec(t, "sleep", "100")
	h = running(t, spec)
	if err := h.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(ctx, proc("true"), nil); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Errorf("exec into a paused container: %v", err)
	}
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
}

// A container with a user namespace of its own that joins another's
// network namespace, which its user namespace does not own, takes exec'd
// processes there too.
func TestExecUserNamespaceJoined(t *testing.T) {
	checkLeaks(t)
	first := running(t, testSpec(t, "sleep", "100"))
	netns := "/proc/" + itoa(first.State().Pid) + "/ns/net"
	spec := testSpec(t, "sleep", "100")
	spec.Namespaces.New = []string{"pid", "mnt", "uts", "ipc", "user"}
	spec.Namespaces.Join = map[string]string{"net": netns}
	spec.Namespaces.UIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Namespaces.GIDMap = []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	h := running(t, spec)
	p := spec.Process
	p.Args = []string{"readlink", "/proc/self/ns/net"}
	want, err := os.Readlink(netns)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(execOutput(t, h, &p)); got != want {
		t.Errorf("exec'd process in %s, the container in %s", got, want)
	}
}

// A working directory an exec makes is 0755 whatever the umask of the
// program that started the container.
func TestExecWorkdirMode(t *testing.T) {
	checkLeaks(t)
	old := syscall.Umask(0o077)
	h := running(t, testSpec(t, "sleep", "100"))
	syscall.Umask(old)
	p := Process{Args: []string{"stat", "-c", "%a", "/tmp/made/here"}, Cwd: "/tmp/made/here", Env: []string{"PATH=/bin"}, Caps: testDefaultCaps}
	if got := strings.TrimSpace(execOutput(t, h, &p)); got != "755" {
		t.Errorf("working directory made with mode %s, want 755", got)
	}
}

// openFDs returns how many descriptors process pid ("self" for this one)
// has open.
func openFDs(t *testing.T, pid string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A terminal exec that fails to start leaves no descriptor behind in the
// caller.
func TestExecTerminalFailureClosesPTY(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec := func() {
		t.Helper()
		p := spec.Process
		p.Args = []string{"nosuch"}
		p.Terminal = true
		var out syncBuffer
		_, err := h.Exec(ctx, &p, &Stdio{Stdin: strings.NewReader("x\n"), Stdout: &out})
		var se *StartError
		if !errors.As(err, &se) || se.ExitCode != 127 {
			t.Fatalf("got %v", err)
		}
	}
	exec() // whatever the first exec opens for good
	before := openFDs(t, "self")
	for i := 0; i < 20; i++ {
		exec()
	}
	if after := openFDs(t, "self"); after > before+2 {
		t.Errorf("20 failed terminal execs took this process from %d to %d descriptors", before, after)
	}
}

// A terminal exec whose output nobody asked for is not stopped by a full
// terminal.
func TestExecTerminalWithoutOutput(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := spec.Process
	p.Args = []string{"sh", "-c", "seq 1 50000; exit 3"}
	p.Terminal = true
	ep, err := h.Exec(ctx, &p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := ep.Wait(ctx); err != nil || es.ExitCode != 3 {
		t.Fatalf("%+v %v", es, err)
	}
}

// A terminal has its first size before the command runs, from the
// process or, over it, from the caller's Stdio.
func TestConsoleSize(t *testing.T) {
	checkLeaks(t)
	want := ConsoleSize{Rows: 40, Cols: 120}
	ctr := testSpec(t, "sleep", "100")
	h := running(t, ctr)
	for _, tt := range []struct {
		name        string
		exec        bool
		proc, stdio ConsoleSize
	}{
		{"container", false, want, ConsoleSize{}},
		{"container-stdio", false, ConsoleSize{Rows: 1, Cols: 1}, want},
		{"exec", true, want, ConsoleSize{}},
		{"exec-stdio", true, ConsoleSize{Rows: 1, Cols: 1}, want},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out syncBuffer
			stdio := &Stdio{Stdout: &out, ConsoleSize: tt.stdio}
			var es ExitStatus
			var err error
			if tt.exec {
				p := ctr.Process
				p.Args, p.Terminal, p.ConsoleSize = []string{"stty", "size"}, true, tt.proc
				var ep *ExecProcess
				if ep, err = h.Exec(ctx, &p, stdio); err != nil {
					t.Fatal(err)
				}
				es, err = ep.Wait(ctx)
			} else {
				spec := testSpec(t, "stty", "size")
				spec.Process.Terminal, spec.Process.ConsoleSize = true, tt.proc
				var ch *Handle
				if ch, err = start(t, spec, stdio); err != nil {
					t.Fatal(err)
				}
				es, err = ch.Wait(ctx)
			}
			if err != nil || es.ExitCode != 0 || strings.TrimSpace(out.String()) != "40 120" {
				t.Errorf("%+v %v: stty size printed %q, want \"40 120\"", es, err, out.String())
			}
		})
	}
}

// A monitor with DOCK_TEST_EXEC_PAUSE in its environment pauses that long
// before it reports an exec'd process's pid. Variables are set before the
// package's init, which runs the monitor.
var _ = func() bool {
	if d, err := time.ParseDuration(os.Getenv("DOCK_TEST_EXEC_PAUSE")); err == nil {
		execStarted = func() { time.Sleep(d) }
	}
	return true
}()

// An exec whose ctx ends while its process starts leaves no process behind,
// and nothing reaches the caller's writers once Exec has failed.
func TestExecCancelledDuringStart(t *testing.T) {
	checkLeaks(t)
	old := standby.MonitorEnv
	standby.MonitorEnv = append(slices.Clip(old), "DOCK_TEST_EXEC_PAUSE=2s")
	spec := testSpec(t, "sleep", "100")
	h := running(t, spec)
	standby.MonitorEnv = old
	g := spec.Cgroup
	before, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := spec.Process
	// Ignoring SIGPIPE, it outlives the caller's ends of its pipes.
	p.Args = []string{"sh", "-c", "trap '' PIPE; while :; do echo out; echo err >&2; sleep 0.1; done"}
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := h.Exec(ctx, &p, &Stdio{Stdout: &out, Stderr: &errb})
		done <- err
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if procs, _ := g.Procs(); len(procs) > len(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exec'd process in the container's group")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Exec returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec did not return once cancelled")
	}
	// What the process wrote while it started may have come (on a slow
	// machine it writes before the cancel lands); nothing may come after.
	o, e := out.String(), errb.String()
	time.Sleep(500 * time.Millisecond) // the process writes every 100ms
	if out.String() != o || errb.String() != e {
		t.Errorf("output after Exec failed: %q, %q", strings.TrimPrefix(out.String(), o), strings.TrimPrefix(errb.String(), e))
	}
	var procs []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if procs, _ = g.Procs(); len(procs) == len(before) || time.Now().After(deadline) {
			break
		}
	}
	if len(procs) != len(before) {
		t.Errorf("processes %v in the container's group, want only %v", procs, before)
	}
}
