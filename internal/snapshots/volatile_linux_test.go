package snapshots

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
)

var volatile = WithLabels(map[string]string{LabelVolatile: "true"})

// countSyncs counts the engine's fsyncs until the test ends.
func countSyncs(t *testing.T) *int {
	n := new(int)
	dir, file := syncDir, syncFile
	syncDir = func(d string) error { *n++; return dir(d) }
	syncFile = func(f *os.File) error { *n++; return file(f) }
	t.Cleanup(func() { syncDir, syncFile = dir, file })
	return n
}

func TestVolatileSyncsNothing(t *testing.T) {
	ctx := context.Background()
	sn, err := NewNative(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	syncs := countSyncs(t)
	if _, err := sn.Prepare(ctx, "durable", ""); err != nil {
		t.Fatal(err)
	}
	if *syncs == 0 {
		t.Fatal("a durable snapshot was made without a sync")
	}
	*syncs = 0
	if _, err := sn.Prepare(ctx, "v", "", volatile); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if *syncs != 0 {
		t.Errorf("making and removing a volatile snapshot synced %d times", *syncs)
	}
}

// TestVolatileAfterCrash fakes what a crash may leave of volatile snapshots
// and checks that opening the root removes it, and only it.
func TestVolatileAfterCrash(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sn := withLayer(t, root)
	if _, err := sn.Prepare(ctx, "b", ""); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"torn", "zeroed", "nodir", "whole"} {
		if _, err := sn.Prepare(ctx, key, "layer", volatile); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := sn.all()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, r := range recs {
		ids[r.Name] = r.ID
	}
	sn.Close()
	// The record of one reached the disk empty; the directory of another
	// kept its staging name, swept as any dead staging work.
	if err := os.Truncate(filepath.Join(root, "metadata", metaFile("torn")), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "metadata", metaFile("zeroed")), make([]byte, 300), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "snapshots", ids["nodir"]), filepath.Join(root, "staging", "lost")); err != nil {
		t.Fatal(err)
	}

	sn, err = NewNative(root)
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	defer sn.Close()
	for _, key := range []string{"torn", "zeroed", "nodir"} {
		if _, err := sn.Stat(ctx, key); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s after reopening: %v, want ErrNotFound", key, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "snapshots", ids["torn"])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of the torn record is left: %v", err)
	}
	for _, key := range []string{"layer", "b", "whole"} {
		if _, err := sn.Stat(ctx, key); err != nil {
			t.Errorf("%s after reopening: %v", key, err)
		}
	}
	// The lost directory's id is not given twice.
	if _, err := sn.Prepare(ctx, "next", "layer"); err != nil {
		t.Fatal(err)
	}
	checkDistinctIDs(t, sn.engine)
}

func TestCommitVolatile(t *testing.T) {
	ctx := context.Background()
	sn, err := NewNative(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if _, err := sn.Prepare(ctx, "a", "", volatile, WithLabels(map[string]string{"keep": "1"})); err != nil {
		t.Fatal(err)
	}
	syncs := countSyncs(t)
	if err := sn.Commit(ctx, "layer", "a"); err != nil {
		t.Fatal(err)
	}
	info, err := sn.Stat(ctx, "layer")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.Labels[LabelVolatile]; ok || info.Labels["keep"] != "1" {
		t.Errorf("labels of the layer committed from a volatile snapshot: %v", info.Labels)
	}
	// The directory's name, the record, and the record's directory entry.
	if *syncs < 3 {
		t.Errorf("the commit synced %d times, want at least 3", *syncs)
	}
}

// TestDamagedRecordRefused checks that a record damaged otherwise than a
// crash damages unsynced files is reported, not removed.
func TestDamagedRecordRefused(t *testing.T) {
	root := t.TempDir()
	withLayer(t, root).Close()
	record := filepath.Join(root, "metadata", metaFile("layer"))
	if err := os.WriteFile(record, []byte(`{"id": "1", "kind": "comm`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNative(root); err == nil || !strings.Contains(err.Error(), metaFile("layer")) {
		t.Errorf("open with a damaged record: %v, want an error naming it", err)
	}
	if _, err := os.Stat(record); err != nil {
		t.Errorf("the damaged record is gone: %v", err)
	}
}

// withLayer opens a native snapshotter at root holding the committed
// snapshot "layer".
func withLayer(t *testing.T, root string) *Native {
	t.Helper()
	ctx := context.Background()
	sn, err := NewNative(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "layer", "a"); err != nil {
		t.Fatal(err)
	}
	return sn
}

// checkDistinctIDs fails the test if two records of e name one directory.
func checkDistinctIDs(t *testing.T, e *engine) {
	t.Helper()
	recs, err := e.all()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, r := range recs {
		if other, dup := seen[r.ID]; dup {
			t.Errorf("%q and %q share id %s", r.Name, other, r.ID)
		}
		seen[r.ID] = r.Name
	}
}
