//go:build linux

package runtime

import (
	"bytes"
	"context"
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

	"github.com/dockkit/dock/internal/runtime/standby"
)

// TestStandby starts containers on monitors started ahead: the standby is
// the container's monitor, output and exit code arrive as from a monitor
// started for it, and a standby that is gone, or was made for another
// container, leaves the start to a monitor of its own.
func TestStandby(t *testing.T) {
	checkLeaks(t)

	used := func(t *testing.T) {
		spec := testSpec(t, echoArgs...)
		sb, err := NewStandby(spec.StateDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		e := newEcho()
		h, err := startWith(t, sb.Start, spec, e.stdio)
		if err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(spec.StateDir)
		if err != nil || st.MonitorPid != sb.proc.Pid {
			t.Errorf("state %+v, %v; want the standby's pid %d as the monitor's", st, err, sb.proc.Pid)
		}
		e.check(t, h)
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
		sb, err := NewStandby(spec.StateDir, nil)
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
		sb, err := NewStandby(path.Join(path.Dir(spec.StateDir), "someone-else"), nil)
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
		closed, err := NewStandby(spec.StateDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		idle, err := NewStandby(spec.StateDir, nil)
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

// TestEarlyInit starts containers on monitors that started their init
// ahead: the init started on standby becomes the container, with its
// stdio, terminal and cgroup, unless the container wants other namespaces,
// when it is discarded for one that has them.
func TestEarlyInit(t *testing.T) {
	checkLeaks(t)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("taken", func(t *testing.T) {
		spec := testSpec(t, echoArgs...)
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		early := earlyInitOf(t, sb.proc.Pid)
		e := newEcho()
		h, err := startWith(t, sb.Start, spec, e.stdio)
		if err != nil {
			t.Fatal(err)
		}
		st := h.State()
		if st.Pid != early {
			t.Errorf("the container runs as %d, not as the init started ahead, %d", st.Pid, early)
		}
		if net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", st.Pid)); net == hostNet || net == "" {
			t.Errorf("network namespace %q; want a new one", net)
		}
		if !inGroup(t, st.Pid, spec) {
			t.Errorf("the container is not in its cgroup")
		}
		e.check(t, h)
	})

	// Without a mount namespace in its spec a container still gets one
	// of its own, as from an init started for it: its root is made there,
	// not in its monitor's.
	t.Run("no new mount namespace asked", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100")
		spec.Namespaces.New = slices.DeleteFunc(slices.Clone(spec.Namespaces.New), func(ns string) bool { return ns == "mnt" })
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		early := earlyInitOf(t, sb.proc.Pid)
		monitorNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", sb.proc.Pid))
		if err != nil {
			t.Fatal(err)
		}
		h, err := startWith(t, sb.Start, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		pid := h.State().Pid
		if pid != early {
			t.Errorf("the container runs as %d, not as the init started ahead, %d", pid, early)
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); ns == monitorNS || ns == "" {
			t.Errorf("the container's mount namespace %q is its monitor's", ns)
		}
		if err := h.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.Wait(ctxT(t, 30*time.Second))
	})

	// Signals the caller ignores stay ignored across its exec of the
	// monitor; the container's command must start with every default.
	t.Run("signals ignored by the caller", func(t *testing.T) {
		signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
		defer signal.Reset(syscall.SIGINT, syscall.SIGHUP)
		spec := testSpec(t, "grep", "SigIgn", "/proc/self/status")
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		earlyInitOf(t, sb.proc.Pid)
		var out syncBuffer
		h, err := startWith(t, sb.Start, spec, &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := h.Wait(ctxT(t, 30*time.Second)); err != nil || es.ExitCode != 0 {
			t.Fatalf("wait = %+v, %v", es, err)
		}
		if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		var ign uint64
		if _, err := fmt.Sscanf(out.String(), "SigIgn: %x", &ign); err != nil {
			t.Fatalf("%q: %v", out.String(), err)
		}
		if ign&(1<<(syscall.SIGINT-1)|1<<(syscall.SIGHUP-1)) != 0 {
			t.Errorf("the command ignores signals: SigIgn %016x", ign)
		}
	})

	t.Run("terminal", func(t *testing.T) {
		// A terminal on stdin and stdout, and the controlling one.
		spec := testSpec(t, "sh", "-c", "[ -t 0 ] && [ -t 1 ] && : </dev/tty && echo tty")
		spec.Process.Terminal = true
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		early := earlyInitOf(t, sb.proc.Pid)
		var out syncBuffer
		h, err := startWith(t, sb.Start, spec, &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if pid := h.State().Pid; pid != early {
			t.Errorf("the container runs as %d, not as the init started ahead, %d", pid, early)
		}
		es, err := h.Wait(ctxT(t, 30*time.Second))
		if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err != nil || es.ExitCode != 0 || !strings.Contains(out.String(), "tty") {
			t.Fatalf("wait = %+v, %v, output %q; want a terminal", es, err, out.String())
		}
	})

	t.Run("other namespaces", func(t *testing.T) {
		spec := testSpec(t, "sleep", "100")
		var others []string
		for _, ns := range spec.Namespaces.New {
			if ns != "net" {
				others = append(others, ns)
			}
		}
		sb, err := NewStandby(spec.StateDir, others)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		early := earlyInitOf(t, sb.proc.Pid)
		h, err := startWith(t, sb.Start, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		pid := h.State().Pid
		if pid == early {
			t.Fatalf("the container runs as the init started without its network namespace")
		}
		if net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); net == hostNet || net == "" {
			t.Errorf("network namespace %q; want a new one", net)
		}
		if err := syscall.Kill(early, 0); err != syscall.ESRCH {
			t.Errorf("the init started ahead is still there: %v", err)
		}
		if err := h.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.Wait(ctxT(t, 30*time.Second))
	})

	t.Run("unused", func(t *testing.T) {
		spec := testSpec(t, "true")
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
		if err != nil {
			t.Fatal(err)
		}
		early := earlyInitOf(t, sb.proc.Pid)
		select {
		case <-sb.done:
		case <-time.After(standby.IdleMillis*time.Millisecond + 10*time.Second):
			t.Fatalf("a standby left alone is still there after %v", standby.IdleMillis*time.Millisecond+10*time.Second)
		}
		// The monitor ends it before its own end.
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(early, 0) != syscall.ESRCH {
			if time.Now().After(deadline) {
				t.Fatalf("the init started ahead outlived its monitor")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// TestPrestart starts a monitor as a program's package initialisation
// may (standby.Prestart), before the container's ID is known: a create that
// takes that ID runs on it, with its init started ahead; one for another
// container spawns its own, and the monitor started ahead ends.
func TestPrestart(t *testing.T) {
	checkLeaks(t)
	if _, err := sealedExe(path.Join(testRoot, exeDirName)); err != nil {
		t.Fatal(err)
	}
	prestarted := func(t *testing.T) (int, *Spec) {
		t.Helper()
		standby.Prestart(testRoot, strings.Join(DefaultNamespaces, ","))
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
		early := earlyInitOf(t, pid)
		sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
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
		if st := h.State(); st.MonitorPid != pid || st.Pid != early {
			t.Errorf("state %+v; want monitor %d and init %d, started ahead", st, pid, early)
		}
		e.check(t, h)
	})

	// Its program may take longer to get to the create than a standby
	// waits (pulling the image, or many starting at once).
	t.Run("taken late", func(t *testing.T) {
		pid, spec := prestarted(t)
		time.Sleep(standby.IdleMillis*time.Millisecond + 500*time.Millisecond)
		if st := runOnStandby(t, spec); st.MonitorPid != pid {
			t.Errorf("monitor %d, want the one started ahead, %d", st.MonitorPid, pid)
		}
	})

	t.Run("other container", func(t *testing.T) {
		pid, _ := prestarted(t)
		spec := testSpec(t, echoArgs...)
		if st := runOnStandby(t, spec); st.MonitorPid == pid {
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
// output and returns its state while it ran.
func runOnStandby(t *testing.T, spec *Spec) State {
	t.Helper()
	sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
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
	return st
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

// TestProcessNames checks the names the monitor and the init give
// themselves, which ps and top show.
func TestProcessNames(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	sb, err := NewStandby(spec.StateDir, spec.Namespaces.New)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	comm := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(b))
	}
	// The name comes from the init's package initialisation, a little
	// after its cmdline.
	early := earlyInitOf(t, sb.proc.Pid)
	for deadline := time.Now().Add(10 * time.Second); comm(early) != initArg0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := comm(early); got != initArg0 {
		t.Errorf("the init is named %q, want %q", got, initArg0)
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

// earlyInitOf waits for the init the monitor on standby starts ahead, and
// returns its pid.
func earlyInitOf(t *testing.T, monitor int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !bytes.HasPrefix(cmd, []byte(initArg0+"\x00")) {
				continue
			}
			if ppid(pid) == monitor {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("monitor %d started no init ahead", monitor)
	return 0
}

// ppid returns the parent of pid, or 0.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
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
