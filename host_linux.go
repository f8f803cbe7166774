package dock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockkit/dock/internal/snapshots"
	"golang.org/x/sys/unix"
)

// openPlatform picks the snapshotter and cgroup manager. The snapshotter
// chosen for a root is recorded there on first use, so that later opens
// skip the probe (a test mount) and never switch under existing snapshots.
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
	if h.snapName == "" {
		if b, err := os.ReadFile(record); err == nil {
			h.snapName = strings.TrimSpace(string(b))
		} else {
			h.snapName = snapshots.Probe(base)
		}
	}
	var (
		s   builtinSnapshotter
		err error
	)
	switch h.snapName {
	case "overlay":
		s, err = snapshots.NewOverlay(filepath.Join(base, "overlay"))
	case "native":
		s, err = snapshots.NewNative(filepath.Join(base, "native"))
	default:
		return fmt.Errorf("root %s: snapshotter %q recorded in %s: %w", h.root, h.snapName, record, ErrNotSupported)
	}
	if err != nil {
		return fmt.Errorf("root %s: %w", h.root, err)
	}
	if _, err := os.Stat(record); os.IsNotExist(err) {
		if err := writeFileAtomic(record, []byte(h.snapName+"\n"), 0o644); err != nil {
			s.Close()
			return err
		}
	}
	h.snap = snapshotAdapter{s}
	if err := h.reconcile(ctx); err != nil {
		return err
	}
	return h.reconcileContainers(ctx)
}

// mountTemp mounts a snapshot of some other snapshotter under the root's
// scratch directory, for writing a layer into it.
func (h *Host) mountTemp(mounts []Mount) (string, func() error, error) {
	dir, err := os.MkdirTemp(filepath.Join(h.root, "tmp"), "mnt-")
	if err != nil {
		return "", nil, err
	}
	if err := snapshots.MountAll(mountsTo(mounts), dir); err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	return dir, func() error {
		err := snapshots.UnmountAll(dir)
		if err == nil {
			err = os.Remove(dir)
		}
		return err
	}, nil
}

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

// writeFileAtomic writes data to path through a temporary file in the same
// directory: a reader sees the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
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
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// lockExtract takes a lock file for the unpack snapshot key and returns its
// release, which also removes the file.
func (h *Host) lockExtract(key string) (func(), error) {
	path := filepath.Join(h.root, "tmp", key+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// reconcile removes what programs that died on this root left behind:
// unpack snapshots whose unpack is no longer alive.
func (h *Host) reconcile(ctx context.Context) error {
	var stale []string
	err := h.snap.Walk(ctx, func(_ context.Context, info SnapshotInfo) error {
		if info.Kind == KindActive && strings.HasPrefix(info.Name, "extract-") {
			stale = append(stale, info.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range stale {
		path := filepath.Join(h.root, "tmp", key+".lock")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if err := h.snap.Remove(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
				os.Remove(path)
			}
		}
		f.Close()
	}
	return nil
}

func (h *Host) emptyDir() (string, error) {
	return os.MkdirTemp(filepath.Join(h.root, "tmp"), "empty-")
}

func removeAll(dir string) { os.RemoveAll(dir) }

// lockFile takes an exclusive flock on f; with nonBlocking it fails at once
// when another holds it.
func lockFile(f *os.File, nonBlocking bool) error {
	how := unix.LOCK_EX
	if nonBlocking {
		how |= unix.LOCK_NB
	}
	return unix.Flock(int(f.Fd()), how)
}

// reconcileContainers finishes what programs that died left undone:
// auto-remove containers that exited with no owner alive, and writable
// layers whose container record is gone.
func (h *Host) reconcileContainers(ctx context.Context) error {
	cs, err := h.Containers(ctx, false)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, c := range cs {
		live["container-"+c.ID] = true
		if c.rec.AutoRemove && c.State().Status == StatusExited && c.tryOwner() {
			c.Remove(ctx, false)
		}
	}
	var orphans []string
	err = h.snap.Walk(ctx, func(_ context.Context, info SnapshotInfo) error {
		if info.Kind == KindActive && strings.HasPrefix(info.Name, "container-") && !live[info.Name] {
			orphans = append(orphans, info.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range orphans {
		id := strings.TrimPrefix(key, "container-")
		// A container being created has its directory before its layer.
		if _, err := os.Stat(filepath.Join(h.containersDir(), id)); err == nil {
			continue
		}
		h.snap.Remove(ctx, key)
	}
	return nil
}
