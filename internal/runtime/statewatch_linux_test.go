package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStateWatch checks that a waiter on a state directory wakes when a
// state is renamed into it, which is how the monitor records an exit, and
// not on the temporary file written first.
func TestStateWatch(t *testing.T) {
	dir := t.TempDir()
	w := watchState(dir)
	defer w.close()
	if w.f == nil {
		t.Fatal("no inotify watch on a temporary directory")
	}

	// A file created, not renamed in: no wake-up, the wait times out.
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Bounded, so that a waiter never woken fails the test rather than
	// hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- w.wait(ctx, time.Hour) }()
	select {
	case err := <-woke:
		t.Fatalf("woke on a file created, not renamed in: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	// The rename wakes the waiter that has waited all along; with an hour
	// to go, nothing else could.
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("wait: %v", err)
	}

	// The directory removed, as by a remove of the container.
	go func() { woke <- w.wait(ctx, time.Hour) }()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("wait: %v", err)
	}
}

func TestStateWatchCancel(t *testing.T) {
	w := watchState(t.TempDir())
	defer w.close()
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan error, 1)
	go func() { woke <- w.wait(ctx, time.Hour) }()
	cancel()
	if err := <-woke; !errors.Is(err, context.Canceled) {
		t.Fatalf("wait after cancel: %v, want context.Canceled", err)
	}
	// With nothing to watch, the wait sleeps, and cancelling still ends it.
	none := watchState(filepath.Join(t.TempDir(), "missing"))
	defer none.close()
	if none.f != nil {
		t.Fatal("a watch on a directory that does not exist")
	}
	if err := none.wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait without a watch after cancel: %v, want context.Canceled", err)
	}
	// And a wait with nothing happening ends after its time.
	if err := w.wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("wait: %v", err)
	}
}
