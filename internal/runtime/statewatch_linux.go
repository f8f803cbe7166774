package runtime

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// stateWatch wakes a waiter when a file is renamed into a container's state
// directory, as writeState does, or when the directory goes. A monitor
// removes its socket before it records the exit (finish), so a waiter that
// comes in between has nobody to ask and must look at state.json again: the
// watch tells it when, instead of a sleep that most often overshoots.
type stateWatch struct {
	f *os.File // nil where inotify is unavailable: the waiter polls
}

func watchState(stateDir string) *stateWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return &stateWatch{}
	}
	const mask = unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, stateDir, mask); err != nil {
		unix.Close(fd)
		return &stateWatch{}
	}
	// Non-blocking, so that the runtime's poller waits for it and a read
	// deadline interrupts the wait.
	return &stateWatch{f: os.NewFile(uintptr(fd), "inotify")}
}

// wait returns after an event, after d, or with ctx's error once it is done.
func (w *stateWatch) wait(ctx context.Context, d time.Duration) error {
	if w.f == nil {
		return sleepCtx(ctx, d)
	}
	if err := w.f.SetReadDeadline(time.Now().Add(d)); err != nil {
		// Not in the runtime's poller: a read could block for good.
		w.f.Close()
		w.f = nil
		return sleepCtx(ctx, d)
	}
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Now()) })
	defer stop()
	var buf [4096]byte // whole events only: one holds a name of up to 255 bytes
	_, err := w.f.Read(buf[:])
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// The watch is broken: fall back to sleeping from now on.
		w.f.Close()
		w.f = nil
		return sleepCtx(ctx, d)
	}
	return nil
}

func (w *stateWatch) close() {
	if w.f != nil {
		w.f.Close()
	}
}
