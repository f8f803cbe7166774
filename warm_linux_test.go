package dock

import (
	"bufio"
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWarmMonitor checks that with WithWarmMonitor each Create takes the
// monitor started ahead, whose container then runs as any other, and that
// Close ends the one waiting.
func TestWarmMonitor(t *testing.T) {
	h := newHost(t, WithWarmMonitor())
	img := busyboxImage(t, h)
	ctx := context.Background()
	warm := func() (string, int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			h.warmMu.Lock()
			id, sb := h.warmID, h.warmSB
			h.warmMu.Unlock()
			if sb != nil {
				return id, sb.Pid()
			}
		}
		t.Fatal("no warm monitor")
		return "", 0
	}
	for i := range 3 {
		id, pid := warm()
		mark := strings.Repeat("!", i+1)
		c, err := h.Create(ctx, img, WithCmd("sh", "-c", "echo run "+mark+"; exec sleep 100"))
		if err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		if err := c.Start(ctx, WithOutput(pw, pw)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(pr).ReadString('\n')
		if want := "run " + mark + "\n"; err != nil || line != want {
			t.Errorf("container %d: output %q, %v; want %q", i, line, err, want)
		}
		go io.Copy(io.Discard, pr)
		if c.ID != id {
			t.Errorf("container %d: ID %s, want the warm monitor's %s", i, c.ID, id)
		}
		hd, err := c.handle()
		if err != nil {
			t.Fatal(err)
		}
		if st := hd.State(); st.Status != "running" || st.MonitorPid != pid {
			t.Errorf("container %d: %s under monitor %d, want running under the warm one, %d", i, st.Status, st.MonitorPid, pid)
		}
		if err := c.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if st, err := c.Wait(ctx); err != nil || st.ExitCode != 137 {
			t.Fatalf("container %d: %+v, %v", i, st, err)
		}
		if err := c.Remove(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	_, pid := warm()
	h.Close()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the warm monitor %d runs on after Close", pid)
		}
	}
}
