package dock_test

import (
	"context"
	"testing"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/snapshottest"
)

// TestHostSnapshotters runs the conformance suite against the snapshotters a
// Host builds, through the same adapter the Host uses.
func TestHostSnapshotters(t *testing.T) {
	for _, name := range []string{"overlay", "native"} {
		snapshottest.Run(t, name, func(ctx context.Context, root string) (dock.Snapshotter, func() error, error) {
			h, err := dock.Open(ctx, dock.WithRoot(root), dock.WithSnapshotterName(name))
			if err != nil {
				return nil, nil, err
			}
			return h.Snapshotter(), h.Close, nil
		})
	}
}
