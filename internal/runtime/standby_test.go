//go:build linux

package runtime

import (
	"context"
	"io"
	"path"
	"syscall"
	"testing"
	"time"
)

// TestStandby starts containers on monitors started ahead: the standby is
// the container's monitor, output and exit code arrive as from a monitor
// started for it, and a standby that is gone, or was made for another
// container, leaves the start to a monitor of its own.
func TestStandby(t *testing.T) {
	checkLeaks(t)

	used := func(t *testing.T) {
		// The command waits for its stdin, so that it still runs when
		// its monitor is looked at.
		spec := testSpec(t, "sh", "-c", "read x; echo out $x; echo err >&2; exit 3")
		sb, err := NewStandby(spec.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		var out, errw syncBuffer
		in, feed := io.Pipe()
		h, err := startWith(t, sb.Start, spec, &Stdio{Stdin: in, Stdout: &out, Stderr: &errw})
		if err != nil {
			t.Fatal(err)
		}
		st, err := ReadState(spec.StateDir)
		if err != nil || st.MonitorPid != sb.proc.Pid {
			t.Errorf("state %+v, %v; want the standby's pid %d as the monitor's", st, err, sb.proc.Pid)
		}
		io.WriteString(feed, "in\n")
		feed.Close()
		es, err := h.Wait(ctxT(t, 30*time.Second))
		if err != nil || es.ExitCode != 3 {
			t.Fatalf("wait = %+v, %v; want exit code 3", es, err)
		}
		if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		if out.String() != "out in\n" || errw.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q", out.String(), errw.String())
		}
	}
	t.Run("used", used)
	// A monitor whose runtime opens no cgroup file has its own poller's
	// descriptors at 4 and up, where the container's pipes go.
	t.Run("used, runtime descriptors low", func(t *testing.T) {
		old := monitorEnv
		monitorEnv = append(append([]string(nil), old...), "GODEBUG=containermaxprocs=0")
		defer func() { monitorEnv = old }()
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
		case <-time.After(standbyIdle + 10*time.Second):
			t.Errorf("a standby left alone is still there after %v", standbyIdle+10*time.Second)
		}
		idle.Close()
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
