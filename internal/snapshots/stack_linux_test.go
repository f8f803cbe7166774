//go:build linux

package snapshots

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
)

// stage stages a directory holding file.
func stage(t *testing.T, o *Overlay, file string) (string, func()) {
	t.Helper()
	dir, release, err := o.StageDir(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(file), 0o644); err != nil {
		release()
		t.Fatal(err)
	}
	return dir, release
}

// A staged directory is committed over a parent named then: the snapshot
// records that parent, stacks over it and keeps it from removal.
func TestOverlayCommitDir(t *testing.T) {
	ctx := context.Background()
	o, err := NewOverlay(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	dir, release := stage(t, o, "base")
	if err := o.CommitDir(ctx, "base", "", dir); err != nil {
		t.Fatal(err)
	}
	release()
	dir, release = stage(t, o, "top")
	if err := o.CommitDir(ctx, "top", "base", dir, WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	release()
	info, err := o.Stat(ctx, "top")
	if err != nil || info.Kind != KindCommitted || info.Parent != "base" || info.Labels["k"] != "v" {
		t.Fatalf("top: %+v, %v; want committed over base, labelled", info, err)
	}
	lowers, err := o.LowerDirs(ctx, "top")
	if err != nil {
		t.Fatal(err)
	}
	if len(lowers) != 2 {
		t.Fatalf("LowerDirs(top) = %q, want two", lowers)
	}
	for i, f := range []string{"top", "base"} {
		if _, err := os.Stat(filepath.Join(lowers[i], f)); err != nil {
			t.Errorf("lower %d: %v", i, err)
		}
	}
	if err := o.Remove(ctx, "base"); !errors.Is(err, errdefs.ErrWrongState) {
		t.Errorf("Remove(base) with a child: %v, want ErrWrongState", err)
	}
	if ents, _ := os.ReadDir(o.stagingDir()); len(ents) != 0 {
		t.Errorf("staging holds %d entries after the commits", len(ents))
	}

	if _, err := o.Prepare(ctx, "k-active", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, parent, commitAs string
		dir                    string // not staged, when set
		want                   error
	}{
		{name: "over an active snapshot", parent: "k-active", want: errdefs.ErrInvalidArgument},
		{name: "over a missing one", parent: "missing", want: errdefs.ErrNotFound},
		{name: "as a name taken", parent: "base", commitAs: "top", want: errdefs.ErrAlreadyExists},
		{name: "a directory not staged", dir: t.TempDir(), want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, release := stage(t, o, "f")
			defer release()
			if tt.dir != "" {
				dir = tt.dir
				if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			name := tt.commitAs
			if name == "" {
				name = "refused"
			}
			if err := o.CommitDir(ctx, name, tt.parent, dir); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
				t.Errorf("the refused directory lost its content: %v", err)
			}
			if _, err := o.Stat(ctx, "refused"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("a refused commit made a snapshot: %v", err)
			}
		})
	}

	t.Run("mounted", func(t *testing.T) {
		testutil.RequireRoot(t)
		ms, err := o.View(ctx, "v", "top")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Remove(ctx, "v") }) // after the unmount
		target := t.TempDir()
		mountT(t, ms, target)
		var got []string
		ents, _ := os.ReadDir(target)
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if want := []string{"base", "top"}; !reflect.DeepEqual(got, want) {
			t.Errorf("view of top holds %q, want %q", got, want)
		}
	})
}

// A staged directory is removed by its release, and by the next open of
// the root once the program that staged it is gone.
func TestOverlayStageDirCleanup(t *testing.T) {
	root := t.TempDir()
	o, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	dir, release := stage(t, o, "f")
	release()
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("released staged directory: %v", err)
	}
	// A program that dies holding one: its lock goes with it.
	dir, _ = stage(t, o, "f")
	o2, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); err != nil {
		t.Errorf("another open removed a staged directory still held: %v", err)
	}
	o2.Close()
	os.Remove(filepath.Dir(dir) + ".lock") // as if its holder died: no lock to take
	o3, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	defer o3.Close()
	if _, err := os.Lstat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Errorf("a staged directory nobody holds survived reopening: %v", err)
	}
	o.Close()
}

// LowerDirs names committed snapshots only.
func TestOverlayLowerDirsRefusesActive(t *testing.T) {
	o, err := NewOverlay(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := o.Prepare(context.Background(), "k", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := o.LowerDirs(context.Background(), "k"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("LowerDirs of an active snapshot: %v, want ErrInvalidArgument", err)
	}
	if _, err := o.LowerDirs(context.Background(), "nothing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LowerDirs of a missing snapshot: %v, want ErrNotFound", err)
	}
}
