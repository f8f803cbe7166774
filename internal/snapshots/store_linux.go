package snapshots

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/atomicfile"
	"github.com/dockkit/dock/internal/errdefs"
)

// A driver is what overlay and native do differently; the engine does the
// rest: metadata, locking, crash recovery and the rules of the contract.
type driver interface {
	// populate fills dir, a new empty directory that becomes the snapshot's
	// own directory, for a snapshot of kind over the parents' directories
	// (newest first). It runs without the root lock held.
	populate(ctx context.Context, dir string, kind Kind, parents []string) error
	// mounts returns the mounts of an active or view snapshot whose own
	// directory is dir, over the parents' directories (newest first).
	mounts(dir string, kind Kind, parents []string) ([]Mount, error)
}

// engine is a Snapshotter over a driver. Its root holds:
//
//	lock           flock'd: shared to read, exclusive to change
//	next-id        the next snapshot id, never reused
//	metadata/      one JSON record per key or name, named by its hash
//	snapshots/<id> each snapshot's own directory (fs/, work/)
//	staging/       directories being populated, each guarded by a flock'd <x>.lock
type engine struct {
	name   string
	root   string
	drv    driver
	closed atomic.Bool
}

// record is what metadata/<hash>.json holds.
type record struct {
	ID      string            `json:"id"`
	Kind    string            `json:"kind"`
	Name    string            `json:"name"`
	Parent  string            `json:"parent,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	Updated time.Time         `json:"updated"`
}

// volatile reports whether the record was written without syncs (see
// LabelVolatile).
func (r record) volatile() bool { return r.Labels[LabelVolatile] == "true" }

func (r record) info() Info {
	var labels map[string]string
	if len(r.Labels) > 0 {
		labels = make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			labels[k] = v
		}
	}
	return Info{Kind: parseKind(r.Kind), Name: r.Name, Parent: r.Parent, Labels: labels, Created: r.Created, Updated: r.Updated}
}

func newEngine(name, root string, drv driver) (*engine, error) {
	if root == "" {
		return nil, fmt.Errorf("%s snapshotter: empty root: %w", name, errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("%s snapshotter: %w", name, err)
	}
	e := &engine{name: name, root: abs, drv: drv}
	for _, d := range []string{e.root, e.metaDir(), e.snapDir(), e.stagingDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("%s snapshotter: %w", name, err)
		}
	}
	if err := e.reconcile(context.Background()); err != nil {
		return nil, fmt.Errorf("%s snapshotter %s: reconcile: %w", name, abs, err)
	}
	return e, nil
}

func (e *engine) metaDir() string    { return filepath.Join(e.root, "metadata") }
func (e *engine) snapDir() string    { return filepath.Join(e.root, "snapshots") }
func (e *engine) stagingDir() string { return filepath.Join(e.root, "staging") }
func (e *engine) dir(id string) string {
	return filepath.Join(e.snapDir(), id)
}

func metaFile(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + ".json"
}

// lock takes the root lock, shared or exclusive, waiting until ctx is done.
// Each call opens its own descriptor, so goroutines of one process exclude
// each other as other processes do.
func lockPath(ctx context.Context, path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 10*time.Millisecond {
			wait *= 2
		}
	}
}

func (e *engine) lock(ctx context.Context, exclusive bool) (func(), error) {
	if e.closed.Load() {
		return nil, fmt.Errorf("%s snapshotter: closed: %w", e.name, errdefs.ErrWrongState)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return lockPath(ctx, filepath.Join(e.root, "lock"), how)
}

// get reads the record of key; the caller holds the lock.
func (e *engine) get(key string) (record, error) {
	var r record
	b, err := os.ReadFile(filepath.Join(e.metaDir(), metaFile(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("snapshot %q: metadata: %w", key, err)
	}
	if r.Name != key {
		// A hash collision is not going to happen; a damaged file might.
		return r, fmt.Errorf("snapshot %q: metadata names %q: %w", key, r.Name, errdefs.ErrInvalidArgument)
	}
	return r, nil
}

// put writes the record: temp file, fsync, rename, fsync of the directory;
// a volatile record without the fsyncs. The caller holds the exclusive lock.
func (e *engine) put(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	final := filepath.Join(e.metaDir(), metaFile(r.Name))
	if err := writeRecordFile(final, b, !r.volatile()); err != nil {
		return fmt.Errorf("snapshot %q: metadata: %w", r.Name, err)
	}
	return nil
}

func writeRecordFile(path string, b []byte, durable bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if durable {
		if err := syncFile(f); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

// The syncs, as variables for the tests to count.
var (
	syncDir  = atomicfile.SyncDir
	syncFile = (*os.File).Sync
)

// del removes r's record, durably unless r is volatile; the caller holds the
// exclusive lock.
func (e *engine) del(r record) error {
	if err := os.Remove(filepath.Join(e.metaDir(), metaFile(r.Name))); err != nil {
		return err
	}
	if r.volatile() {
		return nil
	}
	return syncDir(e.metaDir())
}

// all reads every record; the caller holds the lock.
func (e *engine) all() ([]record, error) {
	ents, err := os.ReadDir(e.metaDir())
	if err != nil {
		return nil, err
	}
	recs := make([]record, 0, len(ents))
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.metaDir(), ent.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", ent.Name(), err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// chain returns the directories of the committed snapshot name and its
// ancestors, newest first, with name's record. The caller holds the lock.
func (e *engine) chain(name string) ([]string, record, error) {
	var dirs []string
	first, err := e.get(name)
	if err != nil {
		return nil, first, fmt.Errorf("parent: %w", err)
	}
	if parseKind(first.Kind) != KindCommitted {
		return nil, first, fmt.Errorf("parent %q is %s, not committed: %w", name, first.Kind, errdefs.ErrInvalidArgument)
	}
	r := first
	for {
		dirs = append(dirs, e.dir(r.ID))
		if r.Parent == "" {
			return dirs, first, nil
		}
		if len(dirs) > 4096 {
			return nil, first, fmt.Errorf("parent %q: chain too deep or looping: %w", name, errdefs.ErrInvalidArgument)
		}
		if r, err = e.get(r.Parent); err != nil {
			return nil, first, fmt.Errorf("ancestor of %q: %w", name, err)
		}
	}
}

// nextID allocates an id that no snapshot of this root had before, as long
// as the machine runs. The caller holds the exclusive lock.
//
// The counter is not synced: ids must not be reused while a process may
// still hold a removed snapshot's directory, and no process outlives a
// crash. A counter a crash lost or tore counts from 1 again, past the ids
// whose directories exist. Two fsyncs fewer under the lock matter while an
// unpack's writes keep the disk busy.
func (e *engine) nextID() (string, error) {
	path := filepath.Join(e.root, "next-id")
	n := uint64(1)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); perr == nil && v > 0 {
			n = v
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	// Skip ids whose directory a crash left behind, should the counter have
	// been lost; reconcile removes those directories anyway.
	for {
		if _, err := os.Lstat(e.dir(strconv.FormatUint(n, 10))); errors.Is(err, fs.ErrNotExist) {
			break
		}
		n++
	}
	if err := writeFileNoSync(path, []byte(strconv.FormatUint(n+1, 10)+"\n")); err != nil {
		return "", err
	}
	return strconv.FormatUint(n, 10), nil
}

// writeFileNoSync replaces path whole (temp file, rename) without syncing.
func writeFileNoSync(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// zeros reports whether b is empty or all zero bytes.
func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// reconcile removes what a crash left behind: temporary metadata files,
// what reached the disk of volatile snapshots, active records whose commit
// had already been written, snapshot directories without a record, and
// staging directories no process works on.
func (e *engine) reconcile(ctx context.Context) error {
	unlock, err := e.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()

	ents, err := os.ReadDir(e.metaDir())
	if err != nil {
		return err
	}
	var recs []record
	for _, ent := range ents {
		name := ent.Name()
		p := filepath.Join(e.metaDir(), name)
		switch {
		case strings.HasSuffix(name, ".tmp"):
		case strings.HasSuffix(name, ".json"):
			b, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			var r record
			err = json.Unmarshal(b, &r)
			if err == nil {
				recs = append(recs, r)
				continue
			}
			// Written whole and renamed into place, a record is empty, or
			// zeros, only when a crash cut it short, and then it is a
			// volatile one: the others are synced before they take their
			// name. Other damage is reported, as all does.
			if !zeros(b) {
				return fmt.Errorf("metadata %s: %w", name, err)
			}
		default:
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// A volatile record may have reached the disk without its directory's
	// new name. Dropped before ids are counted again, so that it never
	// names another snapshot's directory.
	kept := recs[:0]
	for _, r := range recs {
		if r.volatile() {
			if _, err := os.Lstat(e.dir(r.ID)); errors.Is(err, fs.ErrNotExist) {
				if err := e.del(r); err != nil {
					return err
				}
				continue
			}
		}
		kept = append(kept, r)
	}
	recs = kept
	committed := map[string]bool{}
	for _, r := range recs {
		if parseKind(r.Kind) == KindCommitted {
			committed[r.ID] = true
		}
	}
	ids := map[string]bool{}
	for _, r := range recs {
		if parseKind(r.Kind) != KindCommitted && committed[r.ID] {
			// Commit wrote the committed record, then crashed before
			// removing the active one.
			if err := e.del(r); err != nil {
				return err
			}
			continue
		}
		ids[r.ID] = true
	}
	dirs, err := os.ReadDir(e.snapDir())
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !ids[d.Name()] {
			if err := os.RemoveAll(e.dir(d.Name())); err != nil {
				return err
			}
		}
	}
	staged, err := os.ReadDir(e.stagingDir())
	if err != nil {
		return err
	}
	for _, s := range staged {
		name := s.Name()
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		lockFile := filepath.Join(e.stagingDir(), name+".lock")
		f, err := os.OpenFile(lockFile, os.O_RDWR, 0)
		if err == nil {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err != nil {
				f.Close()
				continue // in use by a live process
			}
		}
		if err := os.RemoveAll(filepath.Join(e.stagingDir(), name)); err != nil {
			if f != nil {
				f.Close()
			}
			return err
		}
		os.Remove(lockFile)
		if f != nil {
			f.Close()
		}
	}
	// Lock files whose directory is gone.
	for _, s := range staged {
		name := s.Name()
		if !strings.HasSuffix(name, ".lock") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(e.stagingDir(), strings.TrimSuffix(name, ".lock"))); errors.Is(err, fs.ErrNotExist) {
			f, err := os.OpenFile(filepath.Join(e.stagingDir(), name), os.O_RDWR, 0)
			if err != nil {
				continue
			}
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				os.Remove(filepath.Join(e.stagingDir(), name))
			}
			f.Close()
		}
	}
	return nil
}

func randomName() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stat returns the snapshot named by key.
func (e *engine) Stat(ctx context.Context, key string) (Info, error) {
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return Info{}, err
	}
	defer unlock()
	r, err := e.get(key)
	if err != nil {
		return Info{}, err
	}
	return r.info(), nil
}

// Prepare makes a writable snapshot key over parent.
func (e *engine) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	return e.create(ctx, KindActive, key, parent, opts)
}

// View makes a read-only snapshot key over parent.
func (e *engine) View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error) {
	return e.create(ctx, KindView, key, parent, opts)
}

func (e *engine) create(ctx context.Context, kind Kind, key, parent string, opts []Opt) (_ []Mount, retErr error) {
	if key == "" {
		return nil, fmt.Errorf("%s snapshot: empty key: %w", kind, errdefs.ErrInvalidArgument)
	}
	info := Info{Kind: kind, Name: key, Parent: parent}
	for _, o := range opts {
		o(&info)
	}

	// Phase one, under the shared lock: check the key and the parent, and
	// claim a staging directory that reconcile leaves alone while we hold
	// its lock.
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	var parents []string
	var parentID string
	err = func() error {
		if _, err := e.get(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if parent != "" {
			var pr record
			if parents, pr, err = e.chain(parent); err != nil {
				return fmt.Errorf("snapshot %q: %w", key, err)
			}
			parentID = pr.ID
		}
		return nil
	}()
	if err != nil {
		unlock()
		return nil, err
	}
	stage := filepath.Join(e.stagingDir(), randomName())
	stageUnlock, err := lockPath(ctx, stage+".lock", unix.LOCK_EX)
	if err == nil {
		err = os.Mkdir(stage, 0o700)
		if err != nil {
			stageUnlock()
		}
	}
	unlock()
	if err != nil {
		os.Remove(stage + ".lock")
		return nil, fmt.Errorf("snapshot %q: staging: %w", key, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(stage)
		}
		os.Remove(stage + ".lock")
		stageUnlock()
	}()

	// Phase two, unlocked: fill the directory (native copies the parent).
	if err := e.drv.populate(ctx, stage, kind, parents); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}

	// Phase three, under the exclusive lock: check again, move the
	// directory in place, then write the record that makes it visible.
	unlock, err = e.lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := e.get(key); err == nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if parent != "" {
		pr, err := e.get(parent)
		if err != nil || pr.ID != parentID {
			return nil, fmt.Errorf("snapshot %q: parent %q removed meanwhile: %w", key, parent, errdefs.ErrNotFound)
		}
	}
	id, err := e.nextID()
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	dir := e.dir(id)
	if err := os.Rename(stage, dir); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	now := time.Now().UTC()
	r := record{ID: id, Kind: kind.String(), Name: key, Parent: parent, Labels: info.Labels, Created: now, Updated: now}
	// The directory's name durable before the record that names it.
	if !r.volatile() {
		if err := syncDir(e.snapDir()); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("snapshot %q: %w", key, err)
		}
	}
	if err := e.put(r); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e.drv.mounts(dir, kind, parents)
}

// Mounts returns the mounts of the active or view snapshot key.
func (e *engine) Mounts(ctx context.Context, key string) ([]Mount, error) {
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := e.get(key)
	if err != nil {
		return nil, err
	}
	kind := parseKind(r.Kind)
	if kind != KindActive && kind != KindView {
		return nil, fmt.Errorf("snapshot %q is %s, not active: %w", key, r.Kind, errdefs.ErrWrongState)
	}
	var parents []string
	if r.Parent != "" {
		if parents, _, err = e.chain(r.Parent); err != nil {
			return nil, fmt.Errorf("snapshot %q: %w", key, err)
		}
	}
	return e.drv.mounts(e.dir(r.ID), kind, parents)
}

// Commit turns the active snapshot key into the committed snapshot name.
func (e *engine) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	if name == "" {
		return fmt.Errorf("commit %q: empty name: %w", key, errdefs.ErrInvalidArgument)
	}
	// What was written into the snapshot reaches the disk before the
	// record that calls it committed; a crash must not leave a committed
	// snapshot with lost files.
	if err := e.syncSnapshot(ctx, key); err != nil {
		return fmt.Errorf("commit %q: %w", key, err)
	}
	unlock, err := e.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := e.get(key)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if kind := parseKind(r.Kind); kind != KindActive {
		return fmt.Errorf("commit %q: snapshot is %s, not active: %w", key, kind, errdefs.ErrWrongState)
	}
	if _, err := e.get(name); err == nil {
		return fmt.Errorf("commit %q: snapshot %q: %w", key, name, errdefs.ErrAlreadyExists)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	info := r.info()
	info.Kind, info.Name = KindCommitted, name
	for _, o := range opts {
		o(&info)
	}
	// A layer made from a volatile snapshot is an image's: durable, and its
	// directory's name made durable before its record.
	delete(info.Labels, LabelVolatile)
	if r.volatile() {
		if err := syncDir(e.snapDir()); err != nil {
			return fmt.Errorf("commit %q: %w", key, err)
		}
	}
	now := time.Now().UTC()
	c := record{ID: r.ID, Kind: KindCommitted.String(), Name: name, Parent: r.Parent, Labels: info.Labels, Created: now, Updated: now}
	// The committed record first: should we crash before the active one is
	// gone, reconcile drops the active one.
	if err := e.put(c); err != nil {
		return err
	}
	if err := e.del(r); err != nil {
		return fmt.Errorf("commit %q: %w", key, err)
	}
	return nil
}

// syncSnapshot flushes the filesystem holding the active snapshot key. A
// missing key is left for the caller's checks under the lock to report.
func (e *engine) syncSnapshot(ctx context.Context, key string) error {
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return err
	}
	r, err := e.get(key)
	unlock()
	if err != nil {
		return nil
	}
	return syncFS(e.dir(r.ID))
}

// syncFS flushes the whole filesystem that holds path (syncfs(2)): cheaper
// than an fsync of every file of a tree, and the same guarantee.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &fs.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// Remove deletes the snapshot key; a committed snapshot with children stays.
func (e *engine) Remove(ctx context.Context, key string) error {
	unlock, err := e.lock(ctx, true)
	if err != nil {
		return err
	}
	r, err := e.get(key)
	if err != nil {
		unlock()
		return fmt.Errorf("remove: %w", err)
	}
	if parseKind(r.Kind) == KindCommitted {
		recs, err := e.all()
		if err != nil {
			unlock()
			return err
		}
		for _, c := range recs {
			if c.Parent == key {
				unlock()
				return fmt.Errorf("remove %q: snapshot %q is its child: %w", key, c.Name, errdefs.ErrWrongState)
			}
		}
	}
	if err := e.del(r); err != nil {
		unlock()
		return fmt.Errorf("remove %q: %w", key, err)
	}
	unlock()
	// Ids are never reused, so the directory can go without the lock; should
	// this fail or crash, reconcile removes it.
	if err := os.RemoveAll(e.dir(r.ID)); err != nil {
		return fmt.Errorf("remove %q: %w", key, err)
	}
	return nil
}

// Usage returns the disk the snapshot's own directory uses.
func (e *engine) Usage(ctx context.Context, key string) (Usage, error) {
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return Usage{}, err
	}
	r, err := e.get(key)
	unlock()
	if err != nil {
		return Usage{}, err
	}
	u, err := diskUsage(ctx, filepath.Join(e.dir(r.ID), "fs"))
	if err != nil {
		return Usage{}, fmt.Errorf("usage of %q: %w", key, err)
	}
	return u, nil
}

// Walk calls fn for every snapshot. The lock is not held while fn runs, so
// fn may call the snapshotter.
func (e *engine) Walk(ctx context.Context, fn func(context.Context, Info) error) error {
	unlock, err := e.lock(ctx, false)
	if err != nil {
		return err
	}
	recs, err := e.all()
	unlock()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, r.info()); err != nil {
			return err
		}
	}
	return nil
}

// Close makes further calls fail; snapshots stay on disk.
func (e *engine) Close() error {
	e.closed.Store(true)
	return nil
}

// diskUsage adds up the blocks and inodes under dir, counting a hardlinked
// inode once.
func diskUsage(ctx context.Context, dir string) (Usage, error) {
	var u Usage
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: path, Err: err}
		}
		in := inode{uint64(st.Dev), st.Ino}
		if seen[in] {
			return nil
		}
		seen[in] = true
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) && u.Inodes == 0 {
		return Usage{}, nil
	}
	return u, err
}
