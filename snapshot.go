package dock

import (
	"context"

	"github.com/dockkit/dock/internal/snapshots"
)

// builtinSnapshotter is the method set of the snapshotters in
// internal/snapshots, which speak that package's types.
type builtinSnapshotter interface {
	Stat(ctx context.Context, key string) (snapshots.Info, error)
	Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]snapshots.Mount, error)
	View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]snapshots.Mount, error)
	Mounts(ctx context.Context, key string) ([]snapshots.Mount, error)
	Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error
	Remove(ctx context.Context, key string) error
	Usage(ctx context.Context, key string) (snapshots.Usage, error)
	Walk(ctx context.Context, fn func(context.Context, snapshots.Info) error) error
	Close() error
}

// snapshotAdapter shows a built-in snapshotter as a Snapshotter.
type snapshotAdapter struct{ s builtinSnapshotter }

var _ Snapshotter = snapshotAdapter{}

func infoFrom(i snapshots.Info) SnapshotInfo {
	return SnapshotInfo{Kind: SnapshotKind(i.Kind), Name: i.Name, Parent: i.Parent, Labels: i.Labels, Created: i.Created, Updated: i.Updated}
}

func mountsFrom(ms []snapshots.Mount) []Mount {
	out := make([]Mount, len(ms))
	for i, m := range ms {
		out[i] = Mount{Type: m.Type, Source: m.Source, Options: m.Options}
	}
	return out
}

func mountsTo(ms []Mount) []snapshots.Mount {
	out := make([]snapshots.Mount, len(ms))
	for i, m := range ms {
		out[i] = snapshots.Mount{Type: m.Type, Source: m.Source, Options: m.Options}
	}
	return out
}

func optsTo(opts []SnapshotOpt) []snapshots.Opt {
	if len(opts) == 0 {
		return nil
	}
	var info SnapshotInfo
	for _, o := range opts {
		o(&info)
	}
	return []snapshots.Opt{snapshots.WithLabels(info.Labels)}
}

func (a snapshotAdapter) Stat(ctx context.Context, key string) (SnapshotInfo, error) {
	i, err := a.s.Stat(ctx, key)
	return infoFrom(i), err
}

func (a snapshotAdapter) Prepare(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error) {
	ms, err := a.s.Prepare(ctx, key, parent, optsTo(opts)...)
	return mountsFrom(ms), err
}

func (a snapshotAdapter) View(ctx context.Context, key, parent string, opts ...SnapshotOpt) ([]Mount, error) {
	ms, err := a.s.View(ctx, key, parent, optsTo(opts)...)
	return mountsFrom(ms), err
}

func (a snapshotAdapter) Mounts(ctx context.Context, key string) ([]Mount, error) {
	ms, err := a.s.Mounts(ctx, key)
	return mountsFrom(ms), err
}

func (a snapshotAdapter) Commit(ctx context.Context, name, key string, opts ...SnapshotOpt) error {
	return a.s.Commit(ctx, name, key, optsTo(opts)...)
}

func (a snapshotAdapter) Remove(ctx context.Context, key string) error { return a.s.Remove(ctx, key) }

func (a snapshotAdapter) Usage(ctx context.Context, key string) (SnapshotUsage, error) {
	u, err := a.s.Usage(ctx, key)
	return SnapshotUsage{Size: u.Size, Inodes: u.Inodes}, err
}

func (a snapshotAdapter) Walk(ctx context.Context, fn func(context.Context, SnapshotInfo) error) error {
	return a.s.Walk(ctx, func(ctx context.Context, i snapshots.Info) error { return fn(ctx, infoFrom(i)) })
}

func (a snapshotAdapter) Close() error { return a.s.Close() }

// stacker is what the built-in overlay snapshotter can do beyond
// Snapshotter: take a directory a layer was written into, whatever lies
// below it, as a snapshot over a parent named only then, and name the
// directories a snapshot over a parent stacks. Unpacking uses it to write
// a layer while the one below is still being written.
type stacker interface {
	StageDir(ctx context.Context) (dir string, release func(), err error)
	CommitDir(ctx context.Context, name, parent, dir string, opts ...snapshots.Opt) error
	LowerDirs(ctx context.Context, name string) ([]string, error)
}

// stackerOf returns s's stacker, when s is a built-in snapshotter that has
// one (overlay; not native, nor one a caller brought).
func stackerOf(s Snapshotter) (stacker, bool) {
	if l, ok := s.(*lazySnapshotter); ok {
		var err error
		if s, err = l.get(); err != nil {
			return nil, false
		}
	}
	a, ok := s.(snapshotAdapter)
	if !ok {
		return nil, false
	}
	st, ok := a.s.(stacker)
	return st, ok
}
