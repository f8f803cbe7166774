package dock

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// standbyPid returns the pid of the monitor on standby for the container
// whose state directory is dir, or 0.
func standbyPid(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		// The fourth argument, when there is one, names the namespaces
		// the init started ahead is in.
		if args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"); len(args) >= 3 && args[0] == "dock-monitor" && args[1] == dir && args[2] == "-standby" {
			return pid
		}
	}
	return 0
}

// TestMonitorStartedAtCreate checks that Create starts the container's
// monitor, which Start then gives the container, and that a container
// removed without a start leaves no monitor behind.
func TestMonitorStartedAtCreate(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)

	c, err := h.Create(ctx, img, WithCmd("sleep", "100"))
	if err != nil {
		t.Fatal(err)
	}
	pid := standbyPid(t, c.stateDir())
	if pid == 0 {
		t.Fatal("no monitor on standby after Create")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hd, err := c.handle()
	if err != nil {
		t.Fatal(err)
	}
	if got := hd.State().MonitorPid; got != pid {
		t.Errorf("monitor %d, want the one started at create, %d", got, pid)
	}
	if err := c.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", st.ExitCode)
	}
	if err := c.Remove(ctx, false); err != nil {
		t.Fatal(err)
	}

	unused, err := h.Create(ctx, img, WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	if standbyPid(t, unused.stateDir()) == 0 {
		t.Fatal("no monitor on standby after Create")
	}
	if err := unused.Remove(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if pid := standbyPid(t, unused.stateDir()); pid != 0 {
		t.Errorf("monitor %d on standby for a removed container", pid)
	}

	// Left alone, a standby ends by itself, and the host forgets it.
	idle, err := h.Create(ctx, img, WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Remove(context.Background(), false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, held := h.standbys.Load(idle.ID)
		if !held && standbyPid(t, idle.stateDir()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby of a container never started: held %v, process %d", held, standbyPid(t, idle.stateDir()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := idle.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, idle); st.ExitCode != 0 {
		t.Errorf("exit code %d after the standby went", st.ExitCode)
	}
}
