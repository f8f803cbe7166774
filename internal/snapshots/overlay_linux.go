package snapshots

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// Overlay is a snapshotter on overlayfs: each snapshot's own directory holds
// only what changed from its parent, and its mounts stack the ancestors'
// directories as lower layers.
type Overlay struct {
	*engine
}

var _ Snapshotter = (*Overlay)(nil)

// NewOverlay opens, or makes, an overlay snapshotter at root and removes what
// a crash left there. It does not check that overlayfs works: see
// [SupportsOverlay].
func NewOverlay(root string) (*Overlay, error) {
	if strings.ContainsAny(root, ":,") {
		return nil, fmt.Errorf("overlay snapshotter %q: a root with ':' or ',' cannot be named in overlay options: %w", root, errdefs.ErrInvalidArgument)
	}
	e, err := newEngine("overlay", root, overlayDriver{})
	if err != nil {
		return nil, err
	}
	return &Overlay{e}, nil
}

// StageDir makes an empty directory, on the snapshotter's filesystem, for a
// layer to be written into before it becomes a snapshot through
// [Overlay.CommitDir]. It stays the caller's until release, which removes
// whatever CommitDir did not take; a directory whose program died is
// removed by the next to open the root. Unlike Prepare it writes no record
// and syncs nothing.
func (o *Overlay) StageDir(ctx context.Context) (dir string, release func(), err error) {
	if o.closed.Load() {
		return "", nil, fmt.Errorf("%s snapshotter: closed: %w", o.name, errdefs.ErrWrongState)
	}
	// The snapshot's own directory to be, with the layer in fs/ as
	// populate would make it, so that CommitDir moves it in whole.
	stage := filepath.Join(o.stagingDir(), randomName())
	unlock, err := lockPath(ctx, stage+".lock", unix.LOCK_EX)
	if err != nil {
		return "", nil, fmt.Errorf("stage: %w", err)
	}
	err = os.Mkdir(stage, 0o700)
	if err == nil {
		err = os.Mkdir(filepath.Join(stage, "fs"), 0o755)
	}
	if err != nil {
		os.RemoveAll(stage)
		os.Remove(stage + ".lock")
		unlock()
		return "", nil, fmt.Errorf("stage: %w", err)
	}
	return filepath.Join(stage, "fs"), func() {
		os.RemoveAll(stage)
		os.Remove(stage + ".lock")
		unlock()
	}, nil
}

// CommitDir commits dir, made by [Overlay.StageDir], as the snapshot name
// over the committed snapshot parent ("" for none), moving it in as the
// snapshot's own directory. Only overlay can: a snapshot's own directory
// holds its changes alone, written as overlayfs reads them (whiteouts as
// 0/0 character devices, opaque directories by xattr), whatever lies
// below. So a layer can be written while the layer under it is still
// being written, and stacked on it once that one is committed. The caller
// makes sure the content fits over parent: see [Overlay.LowerDirs] for the
// directories a layer made without naming them. What dir holds reaches the
// disk before the snapshot's record.
func (o *Overlay) CommitDir(ctx context.Context, name, parent, dir string, opts ...Opt) error {
	if name == "" {
		return fmt.Errorf("commit %s: empty name: %w", dir, errdefs.ErrInvalidArgument)
	}
	stage := filepath.Dir(dir)
	if filepath.Base(dir) != "fs" || filepath.Dir(stage) != o.stagingDir() {
		return fmt.Errorf("commit %q: %s is not a staged directory: %w", name, dir, errdefs.ErrInvalidArgument)
	}
	if err := syncFS(dir); err != nil {
		return fmt.Errorf("commit %q: %w", name, err)
	}
	unlock, err := o.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := o.get(name); err == nil {
		return fmt.Errorf("commit %q: %w", name, errdefs.ErrAlreadyExists)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if parent != "" {
		if _, _, err := o.chain(parent); err != nil {
			return fmt.Errorf("commit %q: %w", name, err)
		}
	}
	info := Info{Kind: KindCommitted, Name: name, Parent: parent}
	for _, opt := range opts {
		opt(&info)
	}
	id, err := o.nextID()
	if err != nil {
		return fmt.Errorf("commit %q: %w", name, err)
	}
	// A crash before the record leaves a directory without one, which
	// reconcile removes.
	sd := o.dir(id)
	if err := os.Rename(stage, sd); err != nil {
		return fmt.Errorf("commit %q: %w", name, err)
	}
	for _, d := range []string{o.stagingDir(), o.snapDir()} {
		if err := syncDir(d); err != nil {
			os.RemoveAll(sd)
			return fmt.Errorf("commit %q: %w", name, err)
		}
	}
	now := time.Now().UTC()
	r := record{ID: id, Kind: KindCommitted.String(), Name: name, Parent: parent, Labels: info.Labels, Created: now, Updated: now}
	if err := o.put(r); err != nil {
		os.RemoveAll(sd)
		return err
	}
	return nil
}

// LowerDirs returns the directories that a snapshot over the committed
// snapshot name stacks as overlayfs lower layers: name's own and its
// ancestors', newest first. They are read-only while name exists.
func (o *Overlay) LowerDirs(ctx context.Context, name string) ([]string, error) {
	unlock, err := o.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dirs, _, err := o.chain(name)
	if err != nil {
		return nil, err
	}
	for i, d := range dirs {
		dirs[i] = filepath.Join(d, "fs")
	}
	return dirs, nil
}

type overlayDriver struct{}

func (overlayDriver) populate(ctx context.Context, dir string, kind Kind, parents []string) error {
	if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
		return err
	}
	if kind == KindActive && len(parents) > 0 {
		return os.Mkdir(filepath.Join(dir, "work"), 0o711)
	}
	return nil
}

func (overlayDriver) mounts(dir string, kind Kind, parents []string) ([]Mount, error) {
	if len(parents) == 0 {
		mode := "rw"
		if kind == KindView {
			mode = "ro"
		}
		return []Mount{{Type: "bind", Source: filepath.Join(dir, "fs"), Options: []string{"rbind", mode}}}, nil
	}
	if kind == KindView && len(parents) == 1 {
		return []Mount{{Type: "bind", Source: filepath.Join(parents[0], "fs"), Options: []string{"rbind", "ro"}}}, nil
	}
	lower := make([]string, len(parents))
	for i, p := range parents {
		lower[i] = filepath.Join(p, "fs")
	}
	opts := []string{"index=off"}
	if kind == KindView {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "workdir="+filepath.Join(dir, "work"), "upperdir="+filepath.Join(dir, "fs"))
	}
	opts = append(opts, "lowerdir="+strings.Join(lower, ":"))
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}, nil
}

// SupportsOverlay tells whether overlay snapshots work under root: it needs
// d_type from root's filesystem and mounts a small overlay there, with two
// lower layers, an upper one and index=off, then unmounts it. A nil error
// means yes; it needs the privilege to mount.
func SupportsOverlay(root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	tmp, err := os.MkdirTemp(root, "overlay-probe-")
	if err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := checkDType(tmp); err != nil {
		return err
	}
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("overlay probe: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "l2", "f"), []byte("lower"), 0o644); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	merged := filepath.Join(tmp, "merged")
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"index=off",
		"workdir=" + filepath.Join(tmp, "work"),
		"upperdir=" + filepath.Join(tmp, "upper"),
		"lowerdir=" + filepath.Join(tmp, "l1") + ":" + filepath.Join(tmp, "l2"),
	}}
	if err := MountAll([]Mount{m}, merged); err != nil {
		return fmt.Errorf("overlay probe: %w: %w", err, errdefs.ErrNotSupported)
	}
	werr := os.WriteFile(filepath.Join(merged, "f"), []byte("upper"), 0o644)
	if err := UnmountAll(merged); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("overlay probe: write through overlay: %w: %w", werr, errdefs.ErrNotSupported)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "upper", "f")); err != nil || string(b) != "upper" {
		return fmt.Errorf("overlay probe: write did not reach the upper layer: %w", errdefs.ErrNotSupported)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "l2", "f")); err != nil || string(b) != "lower" {
		return fmt.Errorf("overlay probe: write changed a lower layer: %w", errdefs.ErrNotSupported)
	}
	return nil
}

// checkDType fails when dir's filesystem does not report file types in
// directory entries: overlayfs needs them to find whiteouts.
func checkDType(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "dtype"), nil, 0o644); err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("overlay probe: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(int(f.Fd()), buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("overlay probe: getdents %s: %w", dir, err)
		}
		if n <= 0 {
			return fmt.Errorf("overlay probe: %s: entry not listed", dir)
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 < n; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			if reclen == 0 {
				break
			}
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == "dtype" {
				if typ == unix.DT_UNKNOWN {
					return fmt.Errorf("overlay probe: filesystem of %s does not report d_type: %w", dir, errdefs.ErrNotSupported)
				}
				return nil
			}
			off += reclen
		}
	}
}

// Probe names the snapshotter to use under root: "overlay" when
// [SupportsOverlay] says it works, else "native".
func Probe(root string) string {
	if SupportsOverlay(root) == nil {
		return "overlay"
	}
	return "native"
}
