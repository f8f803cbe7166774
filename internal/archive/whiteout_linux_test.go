package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/archive/archivetest"
	"github.com/dockkit/dock/internal/testutil"
	"golang.org/x/sys/unix"
)

// whiteoutLayers: L1 lays a tree; L2 deletes a file, a directory, a file
// under a name later reused, empties c with an opaque whiteout and adds
// and whites out e/added in the same layer (which keeps it); L3 brings back
// names L2 deleted.
func whiteoutLayers(t testing.TB) [][]byte {
	A, D, R := archivetest.Reg, archivetest.Dir, archivetest.Reg
	return [][]byte{
		archivetest.Tar(t, D("a/"), A("a/f1", "1"), A("a/f2", "2"), D("b/"), A("b/x", "x"),
			D("c/"), A("c/y", "y"), D("c/sub/"), A("c/sub/z", "z"), A("d", "d"), D("e/"), A("e/keep", "k")),
		archivetest.Tar(t, D("a/"), R("a/.wh.f1", ""), R(".wh.b", ""), D("c/"), R("c/.wh..wh..opq", ""),
			A("c/new", "n"), R(".wh.d", ""), D("e/"), A("e/added", "+"), R("e/.wh.added", ""),
			R("e/.wh.missing", ""), R(".wh..wh.plnk", "")),
		archivetest.Tar(t, D("a/"), A("a/f1", "again"), D("b/"), A("b/z", "z"), D("d/")),
	}
}

var wantAfterWhiteouts = map[string]string{
	"a": "", "a/f1": "again", "a/f2": "2", "b": "", "b/z": "z", "c": "", "c/new": "n",
	"d": "", "e": "", "e/keep": "k", "e/added": "+",
}

func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := archivetest.Snapshot(t, root)
	for p, body := range want {
		n, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case body == "" && n.Type != "dir":
			t.Errorf("%s: %v, want a directory", p, n)
		case body != "":
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil || string(b) != body {
				t.Errorf("%s: %q %v, want %q", p, b, err, body)
			}
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %v", p, got[p])
		}
	}
}

func TestWhiteoutDelete(t *testing.T) {
	root := t.TempDir()
	for i, l := range whiteoutLayers(t) {
		if _, err := Apply(context.Background(), root, bytes.NewReader(l), ApplyOptions{Whiteouts: WhiteoutDelete, NoSameOwner: os.Geteuid() != 0}); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
	}
	checkTree(t, root, wantAfterWhiteouts)
}

func TestWhiteoutOverlay(t *testing.T) {
	testutil.RequireRoot(t) // 0/0 device nodes and trusted.* xattrs
	base := t.TempDir()
	var dirs []string
	for i, l := range whiteoutLayers(t) {
		d := filepath.Join(base, "l"+string(rune('1'+i)))
		mustMkdir(t, d)
		if _, err := Apply(context.Background(), d, bytes.NewReader(l), ApplyOptions{Whiteouts: WhiteoutOverlay}); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		dirs = append(dirs, d)
	}
	l2 := archivetest.Snapshot(t, dirs[1])
	for _, p := range []string{"a/f1", "b", "d"} {
		if n := l2[p]; n.Type != "char" || n.Rdev != 0 {
			t.Errorf("layer 2 %s: %v, want a 0/0 character device", p, n)
		}
	}
	for _, p := range []string{"e/missing", "e/.wh.missing", "a/.wh.f1", ".wh..wh.plnk", "c/.wh..wh..opq"} {
		if _, ok := l2[p]; ok && p != "e/missing" {
			t.Errorf("layer 2 holds %s", p)
		}
	}
	if n := l2["e/added"]; n.Type != "reg" {
		t.Errorf("layer 2 e/added: %v, want the file the same layer wrote", n)
	}
	v := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dirs[1], "c"), opaqueXattr, v); err != nil || string(v[:n]) != "y" {
		t.Errorf("layer 2 c: opaque xattr %q, %v", v[:n], err)
	}

	// The merged view must equal the layers applied with WhiteoutDelete.
	merged := filepath.Join(base, "merged")
	mustMkdir(t, merged)
	mountOverlay(t, merged, "lowerdir="+dirs[2]+":"+dirs[1]+":"+dirs[0])
	checkTree(t, merged, wantAfterWhiteouts)

	flat := filepath.Join(base, "flat")
	mustMkdir(t, flat)
	for i, l := range whiteoutLayers(t) {
		if _, err := Apply(context.Background(), flat, bytes.NewReader(l), ApplyOptions{Whiteouts: WhiteoutDelete}); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
	}
	// Implicit parents and whiteouts move directory times differently in
	// the two forms; everything else must match.
	archivetest.RequireSame(t, flat, merged, archivetest.CompareOptions{IgnoreDirTimes: true})
}

// mountOverlay mounts overlayfs on target and unmounts it when the test ends.
func mountOverlay(t testing.TB, target, opts string) {
	t.Helper()
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		if err == unix.ENODEV || err == unix.EPERM {
			t.Skipf("overlayfs unavailable: %v", err)
		}
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, 0); err != nil && !strings.Contains(err.Error(), "invalid argument") {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}
