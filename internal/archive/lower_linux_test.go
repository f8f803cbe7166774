package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/archive/archivetest"
	"github.com/dockkit/dock/internal/testutil"
	"golang.org/x/sys/unix"
)

// ImplicitDirs lists the directories a layer made without naming them, and
// only those still unnamed at its end.
func TestApplyImplicitDirs(t *testing.T) {
	reg, dir := archivetest.Reg, archivetest.Dir
	tests := []struct {
		name  string
		files []archivetest.File
		want  []string
	}{
		{"none", []archivetest.File{dir("a/"), reg("a/f", "x")}, []string{}},
		{"nested", []archivetest.File{reg("a/b/c", "x")}, []string{"a", "a/b"}},
		{"named later", []archivetest.File{reg("a/b/c", "x"), dir("a/")}, []string{"a/b"}},
		{"replaced by a file", []archivetest.File{reg("a/b", "x"), reg("a", "file now")}, []string{}},
		{"under a whiteout", []archivetest.File{reg("w/.wh.gone", "")}, []string{"w"}},
		{"opaque", []archivetest.File{reg("o/.wh..wh..opq", "")}, []string{"o"}},
		{"under a named directory", []archivetest.File{dir("d/"), reg("d/e/f", "x")}, []string{"d/e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if os.Geteuid() != 0 && (tt.name == "under a whiteout" || tt.name == "opaque") {
				t.Skip("needs root: 0/0 device nodes and trusted.* xattrs")
			}
			var got []string
			root := t.TempDir()
			_, err := Apply(context.Background(), root, bytes.NewReader(archivetest.Tar(t, tt.files...)),
				ApplyOptions{Whiteouts: WhiteoutOverlay, NoSameOwner: os.Geteuid() != 0, ImplicitDirs: &got})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ImplicitDirs = %q, want %q", got, tt.want)
			}
		})
	}
}

// lowerTree makes one overlay lower directory: dirs with mode, owner and
// mtime, whiteouts (0/0 devices), opaque directories and files.
type lowerNode struct {
	kind     string // "dir", "opaque", "whiteout", "file", "symlink"
	mode     os.FileMode
	uid, gid int
	mtime    time.Time
}

func makeLower(t *testing.T, nodes map[string]lowerNode, order []string) string {
	t.Helper()
	root := t.TempDir()
	for _, rel := range order {
		n := nodes[rel]
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch n.kind {
		case "dir", "opaque":
			err = os.Mkdir(p, 0o700)
			if err == nil && n.kind == "opaque" {
				err = unix.Setxattr(p, opaqueXattr, []byte("y"), 0)
			}
		case "whiteout":
			err = unix.Mknod(p, unix.S_IFCHR, 0)
		case "file":
			err = os.WriteFile(p, nil, 0o644)
		case "symlink":
			err = os.Symlink("/", p)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.kind == "dir" || n.kind == "opaque" {
			if err := os.Chown(p, n.uid, n.gid); err != nil {
				t.Fatal(err)
			}
			if err := unix.Chmod(p, uint32(n.mode.Perm())|modeBits(n.mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Times last: making children moved them.
	for _, rel := range order {
		if n := nodes[rel]; n.kind == "dir" || n.kind == "opaque" {
			if err := os.Chtimes(filepath.Join(root, rel), n.mtime, n.mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// OverlayLowerDir finds a directory as overlayfs shows the lower layers:
// the newest holding it decides, whiteouts and files hide, opaque
// directories hide what older layers hold under them.
func TestOverlayLowerDir(t *testing.T) {
	testutil.RequireRoot(t) // 0/0 device nodes, trusted.* xattrs, chown
	t1, t2, t3 := time.Unix(1500000000, 0), time.Unix(1600000000, 0), time.Unix(1700000000, 0)
	// Oldest first.
	l3 := makeLower(t, map[string]lowerNode{
		"a":     {kind: "dir", mode: 0o750, uid: 1, gid: 2, mtime: t1},
		"a/b":   {kind: "dir", mode: 0o700, uid: 3, gid: 4, mtime: t1},
		"w":     {kind: "dir", mode: 0o755, mtime: t1},
		"w/x":   {kind: "dir", mode: 0o755, mtime: t1},
		"o":     {kind: "dir", mode: 0o755, mtime: t1},
		"o/old": {kind: "dir", mode: 0o755, mtime: t1},
		"f":     {kind: "dir", mode: 0o755, mtime: t1},
		"s":     {kind: "dir", mode: 0o755, mtime: t1},
		"deep":  {kind: "dir", mode: 0o711, uid: 9, gid: 9, mtime: t1},
	}, []string{"a", "a/b", "w", "w/x", "o", "o/old", "f", "s", "deep"})
	l2 := makeLower(t, map[string]lowerNode{
		"a":   {kind: "dir", mode: os.ModeSticky | 0o777, uid: 5, gid: 6, mtime: t2},
		"w":   {kind: "whiteout"},
		"f":   {kind: "file"},
		"o":   {kind: "opaque", mode: os.ModeSetgid | 0o775, uid: 7, gid: 8, mtime: t2},
		"o/n": {kind: "dir", mode: 0o755, mtime: t2},
	}, []string{"a", "w", "f", "o", "o/n"})
	l1 := makeLower(t, map[string]lowerNode{
		"s": {kind: "symlink"},
		"w": {kind: "dir", mode: 0o705, uid: 11, gid: 12, mtime: t3},
	}, []string{"s", "w"})
	lookup := OverlayLowerDir([]string{l1, l2, l3})
	tests := []struct {
		rel  string
		want *DirAttrs
	}{
		{"a", &DirAttrs{UID: 5, GID: 6, Mode: os.ModeSticky | 0o777, Mtime: t2}},
		{"a/b", &DirAttrs{UID: 3, GID: 4, Mode: 0o700, Mtime: t1}},
		{"deep", &DirAttrs{UID: 9, GID: 9, Mode: 0o711, Mtime: t1}},
		{"w", &DirAttrs{UID: 11, GID: 12, Mode: 0o705, Mtime: t3}}, // made again above the whiteout
		{"w/x", nil}, // whited out below the new w
		{"f", nil},   // a file hides the older directory
		{"s", nil},   // a symlink too
		{"o", &DirAttrs{UID: 7, GID: 8, Mode: os.ModeSetgid | 0o775, Mtime: t2}},
		{"o/n", &DirAttrs{Mode: 0o755, Mtime: t2}},
		{"o/old", nil}, // under an opaque directory
		{"missing", nil},
		{"a/missing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			got, ok := lookup(tt.rel)
			if tt.want == nil {
				if ok {
					t.Errorf("found %+v, want nothing", got)
				}
				return
			}
			got.Atime = time.Time{}
			if !ok || got.UID != tt.want.UID || got.GID != tt.want.GID || got.Mode != tt.want.Mode || !got.Mtime.Equal(tt.want.Mtime) {
				t.Errorf("got %+v (found %v), want %+v", got, ok, *tt.want)
			}
		})
	}
}

// SetDirAttrs sets what it finds, leaves what it does not, and never
// follows a symlink that replaced a directory.
func TestSetDirAttrs(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "keep", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "c", "link")); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1600000000, 0)
	attrs := map[string]DirAttrs{
		"a":      {UID: 1, GID: 2, Mode: os.ModeSetgid | 0o750, Mtime: mt, Atime: mt},
		"a/b":    {UID: 3, GID: 4, Mode: 0o700, Mtime: mt, Atime: mt},
		"c/link": {UID: 5, GID: 6, Mode: 0o700, Mtime: mt, Atime: mt},
	}
	err := SetDirAttrs(context.Background(), root, []string{"a", "a/b", "c/link", "keep", "gone"}, func(rel string) (DirAttrs, bool) {
		a, ok := attrs[rel]
		return a, ok
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range attrs {
		var st unix.Stat_t
		p := filepath.Join(root, rel)
		if rel == "c/link" {
			p = outside
		}
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		got := DirAttrs{UID: int(st.Uid), GID: int(st.Gid), Mode: fileMode(st.Mode), Mtime: time.Unix(st.Mtim.Unix())}
		if rel == "c/link" {
			if got.UID == want.UID || got.Mode == want.Mode {
				t.Errorf("the directory behind the symlink was changed: %+v", got)
			}
			continue
		}
		if got.UID != want.UID || got.GID != want.GID || got.Mode != want.Mode || !got.Mtime.Equal(want.Mtime) {
			t.Errorf("%s: got %+v, want %+v", rel, got, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "keep"), &st); err != nil || st.Mode&0o7777 != 0o755 {
		t.Errorf("keep: mode %o, %v; want 0755 untouched", st.Mode&0o7777, err)
	}
}
