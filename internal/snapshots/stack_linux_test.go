//go:build linux

package snapshots

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
)

// prepareBase prepares key without a parent and writes file into it.
func prepareBase(t *testing.T, o *Overlay, key, parent, file string) string {
	t.Helper()
	ms, err := o.Prepare(context.Background(), key, parent)
	if err != nil {
		t.Fatal(err)
	}
	dir := ""
	for _, opt := range ms[0].Options {
		if v, ok := strings.CutPrefix(opt, "upperdir="); ok {
			dir = v
		}
	}
	if ms[0].Type == "bind" {
		dir = ms[0].Source
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A snapshot prepared without a parent is committed onto a parent named
// then: it records that parent, stacks over it, and keeps it from removal.
func TestOverlayCommitOnto(t *testing.T) {
	ctx := context.Background()
	o, err := NewOverlay(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	prepareBase(t, o, "k-base", "", "base")
	if err := o.Commit(ctx, "base", "k-base"); err != nil {
		t.Fatal(err)
	}
	topDir := prepareBase(t, o, "k-top", "", "top")
	if err := o.CommitOnto(ctx, "top", "k-top", "base"); err != nil {
		t.Fatal(err)
	}
	info, err := o.Stat(ctx, "top")
	if err != nil || info.Kind != KindCommitted || info.Parent != "base" {
		t.Fatalf("top: %+v, %v; want committed over base", info, err)
	}
	if _, err := o.Stat(ctx, "k-top"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("the active snapshot stays: %v", err)
	}
	lowers, err := o.LowerDirs(ctx, "top")
	if err != nil {
		t.Fatal(err)
	}
	if len(lowers) != 2 || lowers[0] != topDir {
		t.Fatalf("LowerDirs(top) = %q, want top's directory %s first", lowers, topDir)
	}
	for i, f := range []string{"top", "base"} {
		if _, err := os.Stat(filepath.Join(lowers[i], f)); err != nil {
			t.Errorf("lower %d: %v", i, err)
		}
	}
	if err := o.Remove(ctx, "base"); !errors.Is(err, errdefs.ErrWrongState) {
		t.Errorf("Remove(base) with a child: %v, want ErrWrongState", err)
	}

	tests := []struct {
		name, parent, onto string
		want               error
	}{
		{"onto an active snapshot", "", "k-active", errdefs.ErrInvalidArgument},
		{"onto a missing one", "", "missing", errdefs.ErrNotFound},
		{"prepared over another parent", "base", "top", errdefs.ErrInvalidArgument},
		{"prepared over the same parent", "base", "base", nil},
		{"onto nothing", "", "", nil},
	}
	prepareBase(t, o, "k-active", "", "active")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, name := "k-case-"+string(rune('a'+i)), "case-"+string(rune('a'+i))
			prepareBase(t, o, key, tt.parent, "f")
			err := o.CommitOnto(ctx, name, key, tt.onto)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if info, err := o.Stat(ctx, name); err != nil || info.Parent != tt.onto {
					t.Errorf("%s: %+v, %v; want parent %q", name, info, err, tt.onto)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// Refused: the snapshot stays active, nothing is committed.
			if info, err := o.Stat(ctx, key); err != nil || info.Kind != KindActive {
				t.Errorf("%s after a refused commit: %+v, %v", key, info, err)
			}
			if _, err := o.Stat(ctx, name); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("%s exists after a refused commit: %v", name, err)
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

// LowerDirs names committed snapshots only.
func TestOverlayLowerDirsRefusesActive(t *testing.T) {
	o, err := NewOverlay(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	prepareBase(t, o, "k", "", "f")
	if _, err := o.LowerDirs(context.Background(), "k"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("LowerDirs of an active snapshot: %v, want ErrInvalidArgument", err)
	}
	if _, err := o.LowerDirs(context.Background(), "nothing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LowerDirs of a missing snapshot: %v, want ErrNotFound", err)
	}
}
