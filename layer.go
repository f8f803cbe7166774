package dock

import (
	"context"
	"time"

	"github.com/dockkit/dock/internal/snapshots"
)

// Mount is one mount that, applied in order with others, makes a snapshot's
// filesystem: the type, source and options of mount(2).
type Mount struct {
	Type    string   // "overlay", "bind", "tmpfs", ...
	Source  string   // a path, or the filesystem's name ("overlay")
	Options []string // mount(8) style options: "ro", "rbind", "lowerdir=...", ...
}

// SnapshotKind tells the three states a snapshot can be in.
type SnapshotKind int

// Snapshot kinds.
const (
	KindUnknown   SnapshotKind = iota
	KindView                   // read-only, active; cannot be committed
	KindActive                 // writable, active; may be committed
	KindCommitted              // immutable; may be a parent
)

func (k SnapshotKind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Kind    SnapshotKind
	Name    string // the key of an active snapshot, the name of a committed one
	Parent  string // name of the committed parent; "" for a base
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// SnapshotUsage is the disk a snapshot uses on its own, parents excluded.
type SnapshotUsage struct {
	Size   int64 // bytes
	Inodes int64
}

// SnapshotOpt sets labels or other properties when a snapshot is made.
type SnapshotOpt func(*SnapshotInfo)

// SnapshotLabelVolatile, set to "true" on a snapshot being prepared, says it
// need not outlive a crash of the host: Create sets it on the writable layer
// of an auto-remove container. A Snapshotter may then write the snapshot
// without waiting for the disk; one that ignores the label keeps it durable,
// which is slower but as correct. After a crash, Open removes the
// auto-remove containers left, with their layers; dock's own snapshotters
// also drop, when opened, the records of such snapshots that the crash cut
// short.
const SnapshotLabelVolatile = snapshots.LabelVolatile

// WithSnapshotLabels attaches labels to the snapshot being prepared or
// committed; they are kept with it and returned by Stat and Walk.
func WithSnapshotLabels(labels map[string]string) SnapshotOpt {
	return func(info *SnapshotInfo) {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
	}
}

// Snapshotter stacks filesystem trees, one layer on another.
//
// A snapshot is either active or committed. Active snapshots are named by
// keys: Prepare makes a writable one, View a read-only one, over an optional
// committed parent. Only an active snapshot made by Prepare can be committed,
// which turns it, under a new name, into an immutable snapshot that may be the
// parent of others. Keys and names share one namespace: a key or name in use
// cannot be reused until removed. A committed snapshot with children cannot
// be removed.
//
// The mounts returned by Prepare, View and Mounts, applied in order at a
// target, give the snapshot's tree; for an active snapshot, writes land in
// the snapshot alone. Implementations are safe for concurrent use by several
// goroutines and by several processes sharing one root; a crash leaves no
// snapshot that looks complete but is not.
//
// The package snapshottest holds a conformance suite for implementations.
type Snapshotter interface {
	// Stat returns the snapshot named by key or name.
	Stat(ctx context.Context, key string) (SnapshotInfo, error)
	// Prepare makes a writable active snapshot named key over parent ("" for
	// none) and returns the mounts that show it.
	Prepare(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error)
	// View makes a read-only active snapshot named key over parent.
	View(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error)
	// Mounts returns the mounts of the active snapshot key.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot name.
	// The key is no longer usable afterwards. Commit of a view or of a
	// committed snapshot fails with ErrWrongState.
	Commit(ctx context.Context, name, key string, opts ...SnapshotOpt) error
	// Remove deletes a snapshot. It fails with ErrWrongState for a committed
	// snapshot that has children.
	Remove(ctx context.Context, key string) error
	// Usage returns the disk used by the snapshot alone.
	Usage(ctx context.Context, key string) (SnapshotUsage, error)
	// Walk calls fn for every snapshot, in no particular order.
	Walk(ctx context.Context, fn func(context.Context, SnapshotInfo) error) error
	// Close releases what the snapshotter holds open. Snapshots stay.
	Close() error
}
