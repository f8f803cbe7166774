// Package snapshots holds dock's snapshotters: overlay, which stacks layers
// with overlayfs, and native, which copies the parent's tree for each new
// snapshot where overlayfs cannot be used. Both keep their metadata in one
// small file per snapshot under their root and take a file lock for changes,
// so several processes may share a root.
//
// The types mirror dock's Snapshotter, SnapshotInfo, Mount and friends field
// for field (dock imports this package, so it cannot be imported here); dock
// wraps a snapshotter from here into its own interface with trivial
// conversions.
package snapshots

import (
	"context"
	"time"
)

// Mount is one mount(2) call: type, source and mount(8) style options.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Kind is the state a snapshot is in.
type Kind int

// Kinds, numbered as dock.SnapshotKind.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

// String names the kind as dock.SnapshotKind does; records store the name.
func (k Kind) String() string {
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

func parseKind(s string) Kind {
	switch s {
	case "view":
		return KindView
	case "active":
		return KindActive
	case "committed":
		return KindCommitted
	}
	return KindUnknown
}

// Info describes one snapshot.
type Info struct {
	Kind    Kind
	Name    string
	Parent  string
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk a snapshot uses on its own.
type Usage struct {
	Size   int64
	Inodes int64
}

// LabelVolatile, set to "true" on a snapshot being made, says it need not
// outlive a crash of the machine: an auto-remove container's writable layer.
// Its directory and record are written without waiting for the disk, which
// saves a container's start and removal several fsyncs. After a crash, the
// next open drops its record if the crash cut it short or lost the
// directory's name; a snapshot that survived whole goes with its container,
// which dock's reconcile removes.
const LabelVolatile = "dock.volatile"

// Opt sets properties of a snapshot being made or committed.
type Opt func(*Info)

// WithLabels adds labels to the snapshot being made or committed.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
	}
}

// Snapshotter has the method set of dock.Snapshotter over this package's
// types; see there for the contract.
type Snapshotter interface {
	Stat(ctx context.Context, key string) (Info, error)
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	Mounts(ctx context.Context, key string) ([]Mount, error)
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	Remove(ctx context.Context, key string) error
	Usage(ctx context.Context, key string) (Usage, error)
	Walk(ctx context.Context, fn func(context.Context, Info) error) error
	Close() error
}
