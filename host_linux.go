package dock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dockkit/dock/internal/snapshots"
	"golang.org/x/sys/unix"
)

// openPlatform picks the snapshotter and cgroup manager. The snapshotter
// chosen for a root is recorded there on first use, so that later opens
// skip the probe (a test mount) and never switch under existing snapshots.
// A new root, with no snapshotter chosen by option, probes only once a
// snapshot is needed: pulling without unpacking, loading or pushing never
// pays for the probe's mount and unmount (about 20 ms on some hosts).
func (h *Host) openPlatform(ctx context.Context) error {
	if h.cgroups == nil {
		h.cgroups = defaultCgroups{}
	}
	if h.snap != nil {
		return nil
	}
	base := filepath.Join(h.root, "snapshots")
	if err := os.MkdirAll(base, 0o711); err != nil {
		return err
	}
	record := filepath.Join(base, "driver")
	if _, err := os.Stat(record); os.IsNotExist(err) && h.snapName == "" {
		h.snap = &lazySnapshotter{record: record, open: func() (Snapshotter, error) {
			return h.openSnapshotter(base, record)
		}}
		return nil
	}
	s, err := h.openSnapshotter(base, record)
	if err != nil {
		return err
	}
	h.snap = s
	return nil
}

// openSnapshotter opens the built-in snapshotter h.snapName, probing for
// one when it is empty, and records the choice in record if it is not
// there yet.
func (h *Host) openSnapshotter(base, record string) (Snapshotter, error) {
	name, recorded := h.snapName, false
	if b, err := os.ReadFile(record); err == nil {
		// Recorded by an earlier open, or by another program meanwhile.
		got := strings.TrimSpace(string(b))
		if name != "" && got != name {
			return nil, fmt.Errorf("root %s holds %s snapshots, not %s: %w", h.root, got, name, ErrInvalidArgument)
		}
		name, recorded = got, true
	} else if name == "" {
		name = snapshots.Probe(base)
	}
	var (
		s   builtinSnapshotter
		err error
	)
	switch name {
	case "overlay":
		s, err = snapshots.NewOverlay(filepath.Join(base, "overlay"))
	case "native":
		s, err = snapshots.NewNative(filepath.Join(base, "native"))
	default:
		return nil, fmt.Errorf("root %s: snapshotter %q recorded in %s: %w", h.root, name, record, ErrNotSupported)
	}
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", h.root, err)
	}
	h.snapName = name
	if recorded {
		return snapshotAdapter{s}, nil
	}
	// Two programs opening a new root at once agree on one driver: the
	// first record wins.
	if err := writeFileExclusive(record, []byte(name+"\n")); errors.Is(err, os.ErrExist) {
		b, _ := os.ReadFile(record)
		if got := strings.TrimSpace(string(b)); got != name {
			s.Close()
			return nil, fmt.Errorf("root %s holds %s snapshots, not %s: %w", h.root, got, name, ErrInvalidArgument)
		}
	} else if err != nil {
		s.Close()
		return nil, err
	}
	return snapshotAdapter{s}, nil
}

// mountTemp mounts a snapshot of some other snapshotter under the root's
// scratch directory, for reading or writing its tree.
func (h *Host) mountTemp(mounts []Mount) (string, func() error, error) {
	key := "mnt-" + randomHex(8)
	release, err := h.lockScratch(key)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(h.root, "tmp", key)
	if err := os.Mkdir(dir, 0o700); err != nil {
		release()
		return "", nil, err
	}
	if err := snapshots.MountAll(mountsTo(mounts), dir); err != nil {
		os.Remove(dir)
		release()
		return "", nil, err
	}
	return dir, func() error {
		defer release()
		if err := snapshots.UnmountAll(dir); err != nil {
			return err
		}
		return os.Remove(dir)
	}, nil
}

// unmountScratch detaches whatever a dead program left mounted at dir.
func unmountScratch(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }

// syncDir flushes the filesystem holding dir, so that what was written
// there survives a power loss before it is committed.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// writeTemp writes data to a synced temporary file beside path and returns
// its name.
func writeTemp(path string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// writeFileExclusive writes data to path whole, or fails with an error
// matching os.ErrExist when path exists.
func writeFileExclusive(path string, data []byte) error {
	tmp, err := writeTemp(path, data, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

func (h *Host) emptyDir() (string, error) {
	return os.MkdirTemp(filepath.Join(h.root, "tmp"), "empty-")
}

func removeAll(dir string) { os.RemoveAll(dir) }

// flockCtx takes a flock of kind how (LOCK_SH or LOCK_EX) on f, waiting
// until ctx is done.
func flockCtx(ctx context.Context, f *os.File, how int) error {
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK {
			return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// lockPath takes an exclusive flock on the file at path, creating it; with
// wait false it fails with errLocked at once when another holds it. Lock
// files are never unlinked by their holder; reconcile sweeps them.
func lockPath(ctx context.Context, path string, wait bool) (func(), error) {
	return lockFile(ctx, path, os.O_CREATE, wait)
}

// lockExisting is lockPath for a lock file made with what it guards (a
// container's): it fails with an error matching os.ErrNotExist when the
// file is gone, rather than make it again in a directory being removed.
func lockExisting(ctx context.Context, path string, wait bool) (func(), error) {
	return lockFile(ctx, path, 0, wait)
}

func lockFile(ctx context.Context, path string, flags int, wait bool) (func(), error) {
	for {
		f, err := os.OpenFile(path, flags|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		if wait {
			err = flockCtx(ctx, f, unix.LOCK_EX)
		} else if err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
			err = errLocked
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		// Reconcile may have swept the file between our open and our
		// lock: a lock on an unlinked file guards nothing, so take the
		// one now at path.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

// lockRoot takes the root's lease lock: shared by whatever may add content
// or snapshots that nothing references yet (pull, load, import, create,
// commit), exclusive by Prune, which must see every reference before it
// removes anything. A shared lease also holds the store's own.
func (h *Host) lockRoot(ctx context.Context, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(h.root, "lease.lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := flockCtx(ctx, f, how); err != nil {
		f.Close()
		return nil, err
	}
	if exclusive {
		return func() { f.Close() }, nil
	}
	release, err := h.store.Lease(ctx)
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { release(); f.Close() }, nil
}
