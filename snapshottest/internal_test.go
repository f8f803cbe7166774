package snapshottest_test

import (
	"context"
	"os"
	"testing"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/internal/snapshots"
	"github.com/dockkit/dock/snapshottest"
)

// TestSnapshotters runs the suite against dock's own snapshotters, wrapped
// as dock wraps them.
func TestSnapshotters(t *testing.T) {
	snapshottest.Run(t, "native", func(ctx context.Context, root string) (dock.Snapshotter, func() error, error) {
		s, err := snapshots.NewNative(root)
		if err != nil {
			return nil, nil, err
		}
		return wrap(s), s.Close, nil
	})
	// Without the privilege to mount, the probe fails but the cases that
	// do not mount still run; as root, a failing probe means no overlay.
	if err := snapshots.SupportsOverlay(t.TempDir()); err != nil && os.Geteuid() == 0 {
		t.Run("overlay", func(t *testing.T) { t.Skipf("overlay: %v", err) })
		return
	}
	snapshottest.Run(t, "overlay", func(ctx context.Context, root string) (dock.Snapshotter, func() error, error) {
		s, err := snapshots.NewOverlay(root)
		if err != nil {
			return nil, nil, err
		}
		return wrap(s), s.Close, nil
	})
}

// The adapter below is the one in internal/snapshots/adapter.go.txt.

func wrap(s snapshots.Snapshotter) dock.Snapshotter { return adapter{s} }

type adapter struct{ s snapshots.Snapshotter }

func toMounts(ms []snapshots.Mount) []dock.Mount {
	if ms == nil {
		return nil
	}
	out := make([]dock.Mount, len(ms))
	for i, m := range ms {
		out[i] = dock.Mount(m)
	}
	return out
}

func toInfo(i snapshots.Info) dock.SnapshotInfo {
	return dock.SnapshotInfo{Kind: dock.SnapshotKind(i.Kind), Name: i.Name, Parent: i.Parent, Labels: i.Labels, Created: i.Created, Updated: i.Updated}
}

func fromInfo(i dock.SnapshotInfo) snapshots.Info {
	return snapshots.Info{Kind: snapshots.Kind(i.Kind), Name: i.Name, Parent: i.Parent, Labels: i.Labels, Created: i.Created, Updated: i.Updated}
}

func toOpts(opts []dock.SnapshotOpt) []snapshots.Opt {
	if len(opts) == 0 {
		return nil
	}
	return []snapshots.Opt{func(in *snapshots.Info) {
		info := toInfo(*in)
		for _, o := range opts {
			o(&info)
		}
		*in = fromInfo(info)
	}}
}

func (a adapter) Stat(ctx context.Context, key string) (dock.SnapshotInfo, error) {
	info, err := a.s.Stat(ctx, key)
	return toInfo(info), err
}

func (a adapter) Prepare(ctx context.Context, key, parent string, opts ...dock.SnapshotOpt) ([]dock.Mount, error) {
	ms, err := a.s.Prepare(ctx, key, parent, toOpts(opts)...)
	return toMounts(ms), err
}

func (a adapter) View(ctx context.Context, key, parent string, opts ...dock.SnapshotOpt) ([]dock.Mount, error) {
	ms, err := a.s.View(ctx, key, parent, toOpts(opts)...)
	return toMounts(ms), err
}

func (a adapter) Mounts(ctx context.Context, key string) ([]dock.Mount, error) {
	ms, err := a.s.Mounts(ctx, key)
	return toMounts(ms), err
}

func (a adapter) Commit(ctx context.Context, name, key string, opts ...dock.SnapshotOpt) error {
	return a.s.Commit(ctx, name, key, toOpts(opts)...)
}

func (a adapter) Remove(ctx context.Context, key string) error { return a.s.Remove(ctx, key) }

func (a adapter) Usage(ctx context.Context, key string) (dock.SnapshotUsage, error) {
	u, err := a.s.Usage(ctx, key)
	return dock.SnapshotUsage(u), err
}

func (a adapter) Walk(ctx context.Context, fn func(context.Context, dock.SnapshotInfo) error) error {
	return a.s.Walk(ctx, func(ctx context.Context, info snapshots.Info) error { return fn(ctx, toInfo(info)) })
}

func (a adapter) Close() error { return a.s.Close() }
