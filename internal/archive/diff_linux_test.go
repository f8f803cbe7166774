package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/archive/archivetest"
	"github.com/dockkit/dock/internal/testutil"
	"golang.org/x/sys/unix"
)

var (
	tA = time.Unix(1600000000, 0)
	tB = time.Unix(1650000000, 0)
)

// buildA lays the base tree of the round-trip tests. Device nodes and
// foreign owners need root; the rest does not.
func buildA(t *testing.T, dir string) {
	t.Helper()
	root := os.Geteuid() == 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "usr/bin", "var/log", "opt/sub/deeper", "tmp", "dev", "keep/me"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o1777|os.ModeSticky))
	must(unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(unix.Chmod(filepath.Join(dir, "var/log"), 0o750))
	files := map[string]string{
		"etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/hosts": "127.0.0.1 a\n", "etc/motd": "hi\n",
		"usr/bin/tool": "#!/bin/sh\n", "usr/bin/a": "aaaa", "var/log/app.log": "log\n",
		"opt/sub/deeper/f": "deep", "keep/me/file": "same",
	}
	for p, b := range files {
		must(os.WriteFile(filepath.Join(dir, p), []byte(b), 0o644))
	}
	must(unix.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o4755))
	must(os.Link(filepath.Join(dir, "usr/bin/a"), filepath.Join(dir, "usr/bin/a-link")))
	must(os.Symlink("/usr/bin/tool", filepath.Join(dir, "etc/alt")))
	must(os.Symlink("passwd", filepath.Join(dir, "etc/link")))
	must(unix.Mkfifo(filepath.Join(dir, "var/fifo"), 0o600))
	must(unix.Setxattr(filepath.Join(dir, "etc/motd"), "user.test", []byte("1"), 0))
	must(unix.Setxattr(filepath.Join(dir, "keep/me"), "user.dir", []byte("d"), 0))
	if root {
		must(os.Lchown(filepath.Join(dir, "var/log/app.log"), 1000, 1000))
		must(os.Lchown(filepath.Join(dir, "etc/alt"), 7, 7))
		must(unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Setxattr(filepath.Join(dir, "usr/bin/tool"), "trusted.t", []byte("x"), 0))
	}
	setAllTimes(t, dir, tA)
}

// setAllTimes gives every path under dir the time ts, directories last.
func setAllTimes(t *testing.T, dir string, ts time.Time) {
	t.Helper()
	var dirs []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return lutimes(p, ts)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := lutimes(dirs[i], ts); err != nil {
			t.Fatal(err)
		}
	}
}

func lutimes(p string, ts time.Time) error {
	tv := []unix.Timespec{unix.NsecToTimespec(ts.UnixNano()), unix.NsecToTimespec(ts.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, tv, unix.AT_SYMLINK_NOFOLLOW)
}

// mutate turns a copy of A (a plain directory or an overlay mount) into B.
func mutate(t *testing.T, dir string) {
	t.Helper()
	root := os.Geteuid() == 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	// Same size, same whole-second mtime: only the bytes differ.
	must(os.WriteFile(j("etc/hosts"), []byte("127.0.0.1 b\n"), 0o644))
	must(lutimes(j("etc/hosts"), tA))
	must(unix.Chmod(j("etc/passwd"), 0o600))
	must(unix.Setxattr(j("etc/passwd"), "user.new", []byte("2"), 0))
	must(unix.Removexattr(j("etc/motd"), "user.test"))
	must(lutimes(j("etc/motd"), tB))
	must(os.RemoveAll(j("opt")))
	must(os.Remove(j("etc/alt")))
	must(os.Symlink("../usr", j("etc/alt2")))
	must(os.Remove(j("etc/link")))
	must(os.Symlink("hosts", j("etc/link")))
	must(os.Remove(j("usr/bin/tool")))
	must(os.MkdirAll(j("usr/bin/tool/inner"), 0o700))
	must(os.WriteFile(j("usr/bin/tool/inner/x"), []byte("x"), 0o640))
	must(os.RemoveAll(j("var/log")))
	must(os.WriteFile(j("var/log"), []byte("now a file"), 0o600))
	must(os.Link(j("usr/bin/a"), j("usr/bin/b-link")))
	must(os.MkdirAll(j("new"), 0o711))
	must(os.WriteFile(j("new/one"), []byte("one"), 0o644))
	must(os.Link(j("new/one"), j("new/two")))
	must(os.Remove(j("var/fifo")))
	must(unix.Chmod(j("keep"), 0o700))
	if root {
		must(os.Lchown(j("etc/hosts"), 2000, 2000))
		must(unix.Mknod(j("dev/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
		must(unix.Mknod(j("dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
		must(os.Lchown(j("etc/link"), 3, 4))
	}
}

func cpA(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", "--preserve=all", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
}

func TestDiffTreesRoundTrip(t *testing.T) {
	base := t.TempDir()
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	mustMkdir(t, a)
	buildA(t, a)
	cpA(t, a, b)
	archivetest.RequireSame(t, a, b, archivetest.CompareOptions{})
	mutate(t, b)

	var layer bytes.Buffer
	if err := DiffTrees(context.Background(), a, b, &layer, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	cpA(t, a, c)
	opts := ApplyOptions{Whiteouts: WhiteoutDelete, NoSameOwner: os.Geteuid() != 0}
	if _, err := Apply(context.Background(), c, bytes.NewReader(layer.Bytes()), opts); err != nil {
		t.Fatal(err)
	}
	archivetest.RequireSame(t, b, c, archivetest.CompareOptions{})

	// Unchanged paths stay out of the layer.
	for _, name := range tarNames(t, layer.Bytes()) {
		if name == "keep/me/file" || name == "keep/me/" || name == "etc/motd-" {
			t.Errorf("layer holds unchanged %s", name)
		}
	}
	// An empty change set is an empty tar.
	var none bytes.Buffer
	if err := DiffTrees(context.Background(), b, c, &none, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := tarNames(t, none.Bytes()); len(n) != 0 {
		t.Errorf("diff of equal trees holds %v", n)
	}

	// The same layer applied as an overlay upper gives B too.
	if os.Geteuid() == 0 {
		upper, merged := filepath.Join(base, "upper"), filepath.Join(base, "merged")
		mustMkdir(t, upper)
		mustMkdir(t, merged)
		if _, err := Apply(context.Background(), upper, bytes.NewReader(layer.Bytes()), ApplyOptions{Whiteouts: WhiteoutOverlay}); err != nil {
			t.Fatal(err)
		}
		mountOverlay(t, merged, "lowerdir="+upper+":"+a)
		archivetest.RequireSame(t, b, merged, archivetest.CompareOptions{})
	}
}

func TestDiffOverlayRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	a, upper, work, merged, c := filepath.Join(base, "a"), filepath.Join(base, "upper"), filepath.Join(base, "work"),
		filepath.Join(base, "merged"), filepath.Join(base, "c")
	for _, d := range []string{a, upper, work, merged} {
		mustMkdir(t, d)
	}
	buildA(t, a)
	mountOverlay(t, merged, "lowerdir="+a+",upperdir="+upper+",workdir="+work)
	mutate(t, merged)
	// An opaque directory: removed and made again in the container.
	if err := os.RemoveAll(filepath.Join(merged, "keep")); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, filepath.Join(merged, "keep"))
	if err := os.WriteFile(filepath.Join(merged, "keep/fresh"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := archivetest.Snapshot(t, merged)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}

	var layer bytes.Buffer
	if err := DiffOverlay(context.Background(), upper, &layer, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, layer.Bytes())
	for _, w := range []string{"opt/", ".wh.opt", "etc/.wh.alt", "keep/.wh..wh..opq", "var/.wh.fifo"} {
		found := false
		for _, n := range names {
			found = found || n == w || n == w[:len(w)-1] && w[len(w)-1] == '/'
		}
		if w == "opt/" {
			if found {
				t.Errorf("layer holds %s", w)
			}
			continue
		}
		if !found {
			t.Errorf("layer lacks %s; has %v", w, names)
		}
	}
	cpA(t, a, c)
	if _, err := Apply(context.Background(), c, bytes.NewReader(layer.Bytes()), ApplyOptions{Whiteouts: WhiteoutDelete}); err != nil {
		t.Fatal(err)
	}
	if d := archivetest.Compare(want, archivetest.Snapshot(t, c), archivetest.CompareOptions{}); len(d) > 0 {
		t.Fatalf("applied overlay diff differs from the container's view:\n%v", d)
	}
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := newTarReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return names
}

func newTarReader(r *bytes.Reader) *tar.Reader { return tar.NewReader(r) }

// TestDiffDoesNotFollowSymlinks: a container may leave symlinks to host
// paths in its upper directory; the diff carries the links, never what they
// point at.
func TestDiffDoesNotFollowSymlinks(t *testing.T) {
	h := newHost(t)
	upper := h.root
	mustSymlink(t, h.sentinel, filepath.Join(upper, "abs"))
	mustSymlink(t, "../sentinel", filepath.Join(upper, "rel"))
	mustSymlink(t, "/etc/passwd", filepath.Join(upper, "passwd"))
	lower := t.TempDir()
	for name, diff := range map[string]func(w *bytes.Buffer) error{
		"overlay": func(w *bytes.Buffer) error { return DiffOverlay(context.Background(), upper, w, DiffOptions{}) },
		"trees":   func(w *bytes.Buffer) error { return DiffTrees(context.Background(), lower, upper, w, DiffOptions{}) },
	} {
		var buf bytes.Buffer
		if err := diff(&buf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tr := tar.NewReader(&buf)
		var got []string
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if hdr.Typeflag != tar.TypeSymlink {
				t.Errorf("%s: entry %s of type %c, want only symlinks", name, hdr.Name, hdr.Typeflag)
			}
			got = append(got, hdr.Name+"->"+hdr.Linkname)
		}
		if len(got) != 3 {
			t.Errorf("%s: entries %v, want the 3 symlinks", name, got)
		}
	}
	h.check(t)
}

func TestToContainer(t *testing.T) {
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 1000}, {ContainerID: 5000, HostID: 300000, Size: 10}}
	for _, tc := range []struct {
		maps []IDMap
		id   uint32
		want int
	}{
		{nil, 100000, 100000},
		{maps, 100000, 0},
		{maps, 100999, 999},
		{maps, 101000, 65534},
		{maps, 300009, 5009},
		{maps, 0, 65534},
	} {
		if got := toContainer(tc.maps, tc.id); got != tc.want {
			t.Errorf("toContainer(%v, %d) = %d, want %d", tc.maps, tc.id, got, tc.want)
		}
	}
}
