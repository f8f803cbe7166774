//go:build linux

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/procstat"
	"github.com/dockkit/dock/internal/runtime/standby"
)

// TestStandby starts containers on monitors started ahead: the standby is
// the container's monitor, output and exit code arrive as from a monitor
// started for it, and a standby that is gone, or was made for another
// container, leaves the start to a monitor of its own.
func TestStandby(t *testing.T) {
	checkLeaks(t)

	used := func(t *testing.T) {
		if st, pid := runOnStandby(t, testSpec(t, echoArgs...)); st.MonitorPid != pid {
			t.Errorf("state %+v; want the standby's pid %d as the monitor's", st, pid)
		}
	}
	t.Run("used", used)
	// A monitor whose runtime opens no cgroup file has its own poller's
	// descriptors at 4 and up, where the container's pipes go.
	t.Run("used, runtime descriptors low", func(t *testing.T) {
		old := standby.MonitorEnv
		standby.MonitorEnv = append(append([]string(nil), old...), "GODEBUG=containermaxprocs=0")
		defer func() { standby.MonitorEnv = old }()
		used(t)
	})

	t.Run("gone", func(t *testing.T) {
		spec := testSpec(t, "true")
		sb, err := NewStandby(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		sb.proc.Signal(syscall.SIGKILL)
		<-sb.done
		h, err := startWith(t, sb.Start, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pid := h.State().MonitorPid; pid == sb.proc.Pid {
			t.Errorf("started on the dead standby %d", pid)
		}
		if es, err := h.Wait(ctxT(t, 30*time.Second)); err != nil || es.ExitCode != 0 {
			t.Fatalf("wait = %+v, %v", es, err)
		}
	})

	t.Run("other container", func(t *testing.T) {
		spec := testSpec(t, "true")
		sb, err := NewStandby(path.Join(path.Dir(spec.StateDir), "someone-else"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := startWith(t, sb.Start, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pid := h.State().MonitorPid; pid == sb.proc.Pid {
			t.Errorf("started on the standby of another container")
		}
		select {
		case <-sb.done:
		case <-time.After(10 * time.Second):
			t.Errorf("the standby it did not take is still there")
		}
		if es, err := h.Wait(ctxT(t, 30*time.Second)); err != nil || es.ExitCode != 0 {
			t.Fatalf("wait = %+v, %v", es, err)
		}
	})

	t.Run("unused", func(t *testing.T) {
		spec := testSpec(t, "true")
		closed, err := NewStandby(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		idle, err := NewStandby(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		select {
		case <-closed.done:
		default:
			t.Errorf("Close returned before the standby ended")
		}
		select {
		case <-idle.done:
		case <-time.After(standby.IdleMillis*time.Millisecond + 10*time.Second):
			t.Errorf("a standby left alone is still there after %v", standby.IdleMillis*time.Millisecond+10*time.Second)
		}
		idle.Close()
	})
}

// TestInitProcess checks, on monitors started ahead, what the container's
// first process gets whichever way its monitor makes it: a clone of its
// own (initOnThread) or the binary executed again, for a container with a
// mount of its own in /proc.
func TestInitProcess(t *testing.T) {
	checkLeaks(t)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range initKinds {
		name, reexec := kind.name, kind.reexec
		newSpec := func(t *testing.T, args ...string) *Spec {
			spec := testSpec(t, args...)
			useInit(t, spec, reexec)
			return spec
		}
		t.Run(name+"/namespaces and cgroup", func(t *testing.T) {
			spec := newSpec(t, "sleep", "100")
			sb, err := NewStandby(spec.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			monitorNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", sb.proc.Pid))
			if err != nil {
				t.Fatal(err)
			}
			h, err := startWith(t, sb.Start, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			st := h.State()
			if p := ppid(st.Pid); p != st.MonitorPid {
				t.Errorf("the container's parent is %d, not its monitor %d", p, st.MonitorPid)
			}
			if net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", st.Pid)); net == hostNet || net == "" {
				t.Errorf("network namespace %q; want a new one", net)
			}
			if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid)); ns == monitorNS || ns == "" {
				t.Errorf("the container's mount namespace %q is its monitor's", ns)
			}
			if !inGroup(t, st.Pid, spec) {
				t.Errorf("the container is not in its cgroup")
			}
			if reexec {
				p := spec.Process
				p.Args = []string{"sh", "-c", "grep -c ' /proc/driver tmpfs' /proc/self/mounts; cat /proc/timer_list | wc -c"}
				out := execOutput(t, h, &p)
				if out != "1\n0\n" {
					t.Errorf("mount in /proc, masked timer_list: %q, want 1 and 0", out)
				}
			}
			if err := h.Kill(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			h.Wait(ctxT(t, 30*time.Second))
		})

		// Signals the caller ignores stay ignored across its exec of the
		// monitor; the container's command must start with every default.
		t.Run(name+"/signals ignored by the caller", func(t *testing.T) {
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
			defer signal.Reset(syscall.SIGINT, syscall.SIGHUP)
			out := outputOnStandby(t, newSpec(t, "grep", "SigIgn", "/proc/self/status"))
			var ign uint64
			if _, err := fmt.Sscanf(out, "SigIgn: %x", &ign); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
			if ign != 0 {
				t.Errorf("the command ignores signals: SigIgn %016x", ign)
			}
		})

		t.Run(name+"/terminal", func(t *testing.T) {
			// A terminal on stdin and stdout, and the controlling one.
			spec := newSpec(t, "sh", "-c", "[ -t 0 ] && [ -t 1 ] && : </dev/tty && [ -e /dev/console ] && echo tty")
			spec.Process.Terminal = true
			if out := outputOnStandby(t, spec); !strings.Contains(out, "tty") {
				t.Fatalf("output %q; want a terminal", out)
			}
		})
	}
}

// outputOnStandby runs spec on a new standby and returns its output once it
// has exited 0.
func outputOnStandby(t *testing.T, spec *Spec) string {
	t.Helper()
	sb, err := NewStandby(spec.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var out syncBuffer
	h, err := startWith(t, sb.Start, spec, &Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	es, err := h.Wait(ctxT(t, 30*time.Second))
	if err != nil || es.ExitCode != 0 {
		t.Fatalf("wait = %+v, %v", es, err)
	}
	if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestInitOnThread checks which containers get a cloned init.
func TestInitOnThread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   bool
	}{
		{"default", func(*Spec) {}, true},
		{"bind mount", func(s *Spec) {
			s.Mounts = append(s.Mounts, MountSpec{Destination: "/data", Type: "bind", Source: "/tmp"})
		}, true},
		{"mount in /proc", func(s *Spec) {
			s.Mounts = append(s.Mounts, MountSpec{Destination: "/proc/meminfo", Type: "bind", Source: "/proc/meminfo"})
		}, false},
		{"mount on /sys", func(s *Spec) {
			s.Mounts = append(s.Mounts, MountSpec{Destination: "/sys/", Type: "bind", Source: "/sys"})
		}, false},
		{"mount in cgroup2's place", func(s *Spec) {
			s.Mounts = append(s.Mounts, MountSpec{Destination: "/sys/fs/cgroup/x", Type: "tmpfs", Source: "tmpfs"})
		}, false},
		{"user namespace", func(s *Spec) { s.Namespaces.New = append(s.Namespaces.New, "user") }, false},
		{"mask in cgroup2's place", func(s *Spec) { s.MaskedPaths = append(s.MaskedPaths, "/sys/fs/cgroup/cpu.stat") }, false},
		{"mask in /proc", func(s *Spec) { s.MaskedPaths = append(s.MaskedPaths, "/proc/kcore") }, true},
	} {
		spec := &Spec{Namespaces: Namespaces{New: slices.Clone(DefaultNamespaces)}}
		tc.change(spec)
		if got := initOnThread(spec); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPrestart starts a monitor as a program's package initialisation
// may (standby.Prestart), before the container's ID is known: a create that
// takes that ID runs on it; one for another container spawns its own, and
// the monitor started ahead ends.
func TestPrestart(t *testing.T) {
	checkLeaks(t)
	if _, err := sealedExe(path.Join(testRoot, exeDirName)); err != nil {
		t.Fatal(err)
	}
	prestarted := func(t *testing.T) (int, *Spec) {
		t.Helper()
		standby.Prestart(testRoot)
		id := PrestartedID(testRoot)
		if id == "" {
			t.Fatal("no monitor started ahead")
		}
		spec := testSpec(t, echoArgs...)
		spec.ID, spec.StateDir = id, path.Join(testRoot, "containers", id)
		pid := 0
		for deadline := time.Now().Add(10 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			pid = monitorOf(spec.StateDir)
		}
		if pid == 0 {
			t.Fatal("the monitor started ahead is not running")
		}
		return pid, spec
	}

	t.Run("taken", func(t *testing.T) {
		pid, spec := prestarted(t)
		sb, err := NewStandby(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		if sb.proc.Pid != pid {
			t.Fatalf("the standby is %d, not the monitor started ahead, %d", sb.proc.Pid, pid)
		}
		if PrestartedID(testRoot) != "" {
			t.Errorf("the monitor started ahead can be taken twice")
		}
		e := newEcho()
		h, err := startWith(t, sb.Start, spec, e.stdio)
		if err != nil {
			t.Fatal(err)
		}
		if st := h.State(); st.MonitorPid != pid {
			t.Errorf("state %+v; want monitor %d, started ahead", st, pid)
		}
		e.check(t, h)
	})

	// Its program may take longer to get to the create than a standby
	// waits (pulling the image, or many starting at once).
	t.Run("taken late", func(t *testing.T) {
		pid, spec := prestarted(t)
		time.Sleep(standby.IdleMillis*time.Millisecond + 500*time.Millisecond)
		if st, _ := runOnStandby(t, spec); st.MonitorPid != pid {
			t.Errorf("monitor %d, want the one started ahead, %d", st.MonitorPid, pid)
		}
	})

	t.Run("other container", func(t *testing.T) {
		pid, _ := prestarted(t)
		spec := testSpec(t, echoArgs...)
		if st, _ := runOnStandby(t, spec); st.MonitorPid == pid {
			t.Fatalf("%s ran on the monitor started for another container", spec.ID)
		}
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the monitor started ahead, not taken, still runs")
			}
		}
	})
}

// runOnStandby runs spec, an echo, on a standby from NewStandby, checks its
// output and returns its state while it ran and the standby's pid.
func runOnStandby(t *testing.T, spec *Spec) (State, int) {
	t.Helper()
	sb, err := NewStandby(spec.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	e := newEcho()
	h, err := startWith(t, sb.Start, spec, e.stdio)
	if err != nil {
		t.Fatal(err)
	}
	st := h.State()
	e.check(t, h)
	return st, sb.proc.Pid
}

// monitorOf returns the pid of the monitor whose state directory is
// stateDir, or 0.
func monitorOf(stateDir string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if monitorAlive(pid, stateDir) {
			return pid
		}
	}
	return 0
}

// TestProcessNames checks the name the monitor gives itself, which ps and
// top show.
func TestProcessNames(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	sb, err := NewStandby(spec.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	comm := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(b))
	}
	h, err := startWith(t, sb.Start, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := comm(h.State().MonitorPid); got != monitorArg0 {
		t.Errorf("the monitor is named %q, want %q", got, monitorArg0)
	}
	if err := h.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Wait(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// ppid returns the parent of pid, or 0.
func ppid(pid int) int {
	f, err := procstat.Fields(pid)
	if err != nil || len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// inGroup reports whether pid is in the cgroup of spec.
func inGroup(t *testing.T, pid int, spec *Spec) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), spec.Cgroup.Name)
}

// echoArgs is a container's command that waits for a line on its stdin,
// so that it still runs when the test looks at it, then echoes it on
// stdout, writes to stderr and exits 3.
var echoArgs = []string{"sh", "-c", "read x; echo out $x; echo err >&2; exit 3"}

// echo is the stdio of an echoArgs container.
type echo struct {
	stdio     *Stdio
	feed      *io.PipeWriter
	out, errw syncBuffer
}

func newEcho() *echo {
	e := new(echo)
	in, feed := io.Pipe()
	e.stdio, e.feed = &Stdio{Stdin: in, Stdout: &e.out, Stderr: &e.errw}, feed
	return e
}

// check feeds the container its line, waits for its exit and checks what
// it wrote.
func (e *echo) check(t *testing.T, h *Handle) {
	t.Helper()
	io.WriteString(e.feed, "in\n")
	e.feed.Close()
	es, err := h.Wait(ctxT(t, 30*time.Second))
	if err != nil || es.ExitCode != 3 {
		t.Fatalf("wait = %+v, %v; want exit code 3", es, err)
	}
	if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if e.out.String() != "out in\n" || e.errw.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q", e.out.String(), e.errw.String())
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestStartContext checks that a start whose init never runs ends with the
// caller's context, and takes the monitor with it: here the container's
// cgroup is frozen before the start, so its init stops there, cloned or
// executed, before it can report.
func TestStartContext(t *testing.T) {
	checkLeaks(t)
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			spec := testSpec(t, "true")
			useInit(t, spec, kind.reexec)
			if err := spec.Cgroup.Freeze(); err != nil {
				t.Skipf("no freezer: %v", err)
			}
			// Before the group's own cleanup, which cannot kill what
			// stays frozen.
			t.Cleanup(func() { spec.Cgroup.Thaw() })
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := startWith(t, func(_ context.Context, spec *Spec, stdio *Stdio) (*Handle, error) {
					return Start(ctx, spec, stdio)
				}, spec, nil)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				spec.Cgroup.Thaw()
				<-done
				t.Fatal("the start went on 30 s after its context ended")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("start: %v, want context.DeadlineExceeded", err)
			}
			st, err := ReadState(spec.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if st.MonitorPid != 0 && monitorAlive(st.MonitorPid, spec.StateDir) {
				t.Errorf("monitor %d is still there", st.MonitorPid)
			}
			// What a caller does next: remove the container at once.
			h, err := Load(spec.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Delete(true); err != nil {
				t.Errorf("delete after the start was given up: %v", err)
			}
		})
	}
}
