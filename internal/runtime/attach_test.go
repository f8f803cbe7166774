//go:build linux

package runtime

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// A client that closes its attachment is let go by the monitor at once,
// silent container or not, and one whose input ended still gets output.
func TestAttachClose(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "while read l; do echo got $l; done")
	spec.Process.OpenStdin = true
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var out syncBuffer
	a, err := h.Attach(ctx, &Stdio{Stdin: strings.NewReader("ping\n"), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); out.String() != "got ping\n"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("output after the end of the input: %q", out.String())
		}
	}
	a.Close()

	monitor := itoa(h.State().MonitorPid)
	before := openFDs(t, monitor)
	for i := 0; i < 50; i++ {
		stdio := &Stdio{Stdout: &out}
		if i%2 == 0 {
			stdio.Stdin = strings.NewReader("")
		}
		a, err := h.Attach(ctx, stdio)
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
	// The monitor lets go of a connection just after the client has.
	var after int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if after = openFDs(t, monitor); after <= before+2 || time.Now().After(deadline) {
			break
		}
	}
	if after > before+2 {
		t.Errorf("50 attachments opened and closed took the monitor from %d to %d descriptors", before, after)
	}
}

// slowWriter takes nothing until release is closed.
type slowWriter struct{ release chan struct{} }

func (w slowWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

// A client that falls behind the output is told it lost some.
func TestAttachSlowClient(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; seq 1 2000000; touch /tmp/printed; exec sleep 100")
	h := running(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := slowWriter{release: make(chan struct{})}
	a, err := h.Attach(ctx, &Stdio{Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	root := "/proc/" + itoa(h.State().Pid) + "/root"
	if err := os.WriteFile(root+"/tmp/go", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(root + "/tmp/printed"); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the container did not print")
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(w.release)
	err = a.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), "fell behind") {
		t.Fatalf("Wait after a dropped attachment: %v", err)
	}
}
