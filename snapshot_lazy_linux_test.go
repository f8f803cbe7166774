package dock

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dockkit/dock/internal/testutil/imagetest"
)

// A new root chooses its snapshotter only when a snapshot is first needed:
// loading an image without unpacking it does not probe, creating a
// container does, and records the choice that the next Open then reads.
func TestSnapshotterOpenedOnFirstUse(t *testing.T) {
	imagetest.RequireBusybox(t)
	h := newHost(t)
	ctx := context.Background()
	record := filepath.Join(h.root, "snapshots", "driver")
	dir := t.TempDir()
	imagetest.Busybox(t, dir, imagetest.Name("test.local/busybox:lazy"))
	imgs, err := h.Load(ctx, dir, WithoutUnpack())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("driver recorded before any snapshot was needed: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(h.root, "snapshots"))
	if len(ents) != 0 {
		t.Fatalf("snapshots directory not empty before any snapshot was needed: %v", ents)
	}

	c, err := h.Create(ctx, imgs[0], WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(ctx, true)
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("no driver recorded once a container was created: %v", err)
	}
	name := h.snapshotterName()
	if string(b) != name+"\n" || (name != "overlay" && name != "native") {
		t.Fatalf("recorded %q, host uses %q", b, name)
	}

	h2, err := Open(ctx, WithRoot(h.root))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, lazy := h2.snap.(*lazySnapshotter); lazy || h2.snapName != name {
		t.Fatalf("reopened root: lazy %v, snapshotter %q; want %q opened at once", lazy, h2.snapName, name)
	}
	if _, err := h2.Snapshotter().Stat(ctx, "container-"+c.ID); err != nil {
		t.Fatalf("reopened root does not see the container's layer: %v", err)
	}
}
