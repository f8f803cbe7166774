package dock

import (
	"context"
	"os"
	"sync"
)

// lazySnapshotter opens the built-in snapshotter of a new root on first
// use; see openPlatform.
type lazySnapshotter struct {
	record string // the root's driver record: while absent, no snapshot exists
	open   func() (Snapshotter, error)

	mu     sync.Mutex
	s      Snapshotter
	err    error
	opened bool
}

var _ Snapshotter = (*lazySnapshotter)(nil)

func (l *lazySnapshotter) get() (Snapshotter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.opened {
		l.s, l.err = l.open()
		l.opened = true
	}
	return l.s, l.err
}

// loaded returns the snapshotter if it was opened, without opening it.
func (l *lazySnapshotter) loaded() Snapshotter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s
}

func (l *lazySnapshotter) Stat(ctx context.Context, key string) (SnapshotInfo, error) {
	s, err := l.get()
	if err != nil {
		return SnapshotInfo{}, err
	}
	return s.Stat(ctx, key)
}

func (l *lazySnapshotter) Prepare(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Prepare(ctx, key, parent, opts...)
}

func (l *lazySnapshotter) View(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.View(ctx, key, parent, opts...)
}

func (l *lazySnapshotter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Mounts(ctx, key)
}

func (l *lazySnapshotter) Commit(ctx context.Context, name, key string, opts ...SnapshotOpt) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Commit(ctx, name, key, opts...)
}

func (l *lazySnapshotter) Remove(ctx context.Context, key string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Remove(ctx, key)
}

func (l *lazySnapshotter) Usage(ctx context.Context, key string) (SnapshotUsage, error) {
	s, err := l.get()
	if err != nil {
		return SnapshotUsage{}, err
	}
	return s.Usage(ctx, key)
}

// Walk visits nothing, and opens nothing, while the root has no driver
// recorded: no snapshot can exist before one is.
func (l *lazySnapshotter) Walk(ctx context.Context, fn func(context.Context, SnapshotInfo) error) error {
	if l.loaded() == nil {
		if _, err := os.Stat(l.record); os.IsNotExist(err) {
			return nil
		}
	}
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Walk(ctx, fn)
}

func (l *lazySnapshotter) Close() error {
	if s := l.loaded(); s != nil {
		return s.Close()
	}
	return nil
}

// snapshotterName names the host's built-in snapshotter ("overlay",
// "native"), opening it if it is still to be opened; "" for one a caller
// brought.
func (h *Host) snapshotterName() string {
	if l, ok := h.snap.(*lazySnapshotter); ok {
		l.get()
	}
	return h.snapName
}
