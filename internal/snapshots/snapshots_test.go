//go:build linux

package snapshots

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
)

func TestSplitLowerdir(t *testing.T) {
	got := splitLowerdir(`/a:/b\:c:/d`)
	if want := []string{"/a", "/b:c", "/d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("splitLowerdir = %q, want %q", got, want)
	}
}

func TestOverlayMounts(t *testing.T) {
	d := overlayDriver{}
	tests := []struct {
		name    string
		kind    Kind
		parents []string
		want    Mount
	}{
		{"active base", KindActive, nil, Mount{"bind", "/s/1/fs", []string{"rbind", "rw"}}},
		{"view base", KindView, nil, Mount{"bind", "/s/1/fs", []string{"rbind", "ro"}}},
		{"view of one", KindView, []string{"/s/2"}, Mount{"bind", "/s/2/fs", []string{"rbind", "ro"}}},
		{"view of two", KindView, []string{"/s/3", "/s/2"}, Mount{"overlay", "overlay", []string{"index=off", "ro", "lowerdir=/s/3/fs:/s/2/fs"}}},
		{"active over two", KindActive, []string{"/s/3", "/s/2"}, Mount{"overlay", "overlay",
			[]string{"index=off", "workdir=/s/1/work", "upperdir=/s/1/fs", "lowerdir=/s/3/fs:/s/2/fs"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.mounts("/s/1", tt.kind, tt.parents)
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("mounts = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func mountT(t *testing.T, ms []Mount, target string) {
	t.Helper()
	if err := MountAll(ms, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := UnmountAll(target); err != nil {
			t.Error(err)
		}
	})
}

// TestMountAllLongOverlay stacks more lower layers than fit in the page
// mount(2) takes its options in, so MountAll must use fsopen.
func TestMountAllLongOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	if err := SupportsOverlay(t.TempDir()); err != nil {
		t.Skipf("overlay: %v", err)
	}
	base := t.TempDir()
	long := strings.Repeat("l", 100)
	const layers = 60
	var lowers []string
	for i := layers - 1; i >= 0; i-- {
		dir := filepath.Join(base, fmt.Sprintf("%s-%02d", long, i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "top"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, dir)
	}
	upper, work, target := t.TempDir(), t.TempDir(), t.TempDir()
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"index=off", "workdir=" + work, "upperdir=" + upper, "lowerdir=" + strings.Join(lowers, ":"),
	}}
	if n := len(strings.Join(m.Options, ",")); n < os.Getpagesize() {
		t.Fatalf("options of %d bytes fit a page; the case needs more", n)
	}
	mountT(t, []Mount{m}, target)
	for i := range layers {
		if _, err := os.Stat(filepath.Join(target, fmt.Sprintf("f%02d", i))); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(target, "top")); err != nil || string(b) != fmt.Sprint(layers-1) {
		t.Errorf("top = %q, %v; want the newest layer's", b, err)
	}
	if err := os.WriteFile(filepath.Join(target, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("write did not land in the upper layer: %v", err)
	}

	ro := Mount{Type: "overlay", Source: "overlay", Options: []string{"index=off", "ro", "lowerdir=" + strings.Join(lowers, ":")}}
	roTarget := t.TempDir()
	mountT(t, []Mount{ro}, roTarget)
	if err := os.WriteFile(filepath.Join(roTarget, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write in a read-only long overlay: %v, want EROFS", err)
	}
}

func TestCommonDir(t *testing.T) {
	tests := []struct {
		paths []string
		want  string
	}{
		{[]string{"/a/b/1/fs", "/a/b/2/fs", "/a/b/3/work"}, "/a/b"},
		{[]string{"/a/b/1/fs"}, "/a/b/1"},
		{[]string{"/a/bc/1", "/a/b/2"}, "/a"},
		{[]string{"/x/1", "/y/2"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := commonDir(tt.paths); got != tt.want {
			t.Errorf("commonDir(%q) = %q, want %q", tt.paths, got, tt.want)
		}
	}
}

// TestMountAllShortened stacks layers whose paths are long only for the
// directory they share: MountAll names that through a descriptor and mounts
// with mount(2), as kernels without lowerdir+ need.
func TestMountAllShortened(t *testing.T) {
	testutil.RequireRoot(t)
	if err := SupportsOverlay(t.TempDir()); err != nil {
		t.Skipf("overlay: %v", err)
	}
	base := t.TempDir()
	for range 6 {
		base = filepath.Join(base, strings.Repeat("d", 200))
	}
	var lowers []string
	for i := range 8 {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, dir)
	}
	upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	data := []string{"index=off", "workdir=" + work, "upperdir=" + upper, "lowerdir=" + strings.Join(lowers, ":")}
	if n := len(strings.Join(data, ",")); n < os.Getpagesize() {
		t.Fatalf("options of %d bytes fit a page; the case needs more", n)
	}
	short, closeDir, err := shortenOverlayPaths(data)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Join(short, ",")); n >= os.Getpagesize() {
		closeDir()
		t.Fatalf("shortened options still %d bytes: %q", n, short)
	}
	// mount(2) takes the shortened options itself.
	direct := t.TempDir()
	err = unix.Mount("overlay", direct, "overlay", 0, strings.Join(short, ","))
	closeDir()
	if err != nil {
		t.Fatalf("mount with %q: %v", short, err)
	}
	if err := UnmountAll(direct); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	mountT(t, []Mount{{Type: "overlay", Source: "overlay", Options: data}}, target)
	for i := range lowers {
		if _, err := os.Stat(filepath.Join(target, fmt.Sprintf("f%d", i))); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("write did not land in the upper layer: %v", err)
	}
}

func TestMountAllBind(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		options []string
		wantErr error
	}{
		{"rw", []string{"rbind", "rw"}, nil},
		{"ro", []string{"rbind", "ro"}, unix.EROFS},
		{"ro nosuid private", []string{"bind", "ro", "nosuid", "private"}, unix.EROFS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := t.TempDir()
			mountT(t, []Mount{{Type: "bind", Source: src, Options: tt.options}}, target)
			err := os.WriteFile(filepath.Join(target, tt.name), []byte("y"), 0o644)
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Errorf("write: %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				os.Remove(filepath.Join(src, tt.name))
			}
		})
	}
	// Stacked mounts come off together, topmost first.
	target := t.TempDir()
	other := t.TempDir()
	if err := MountAll([]Mount{{Type: "bind", Source: src, Options: []string{"bind"}}, {Type: "bind", Source: other, Options: []string{"bind"}}}, target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second mount does not hide the first: %v", err)
	}
	if err := UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(target, 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("after UnmountAll, target still a mount point: %v", err)
	}
	if err := UnmountAll(filepath.Join(target, "missing")); err != nil {
		t.Errorf("UnmountAll of a missing path: %v", err)
	}
}

func TestProbe(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	err := SupportsOverlay(root)
	got := Probe(root)
	if want := map[bool]string{true: "overlay", false: "native"}[err == nil]; got != want {
		t.Errorf("Probe = %q with SupportsOverlay = %v", got, err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 0 {
		t.Errorf("probe left %d entries behind", len(ents))
	}
	if err != nil {
		t.Logf("overlay not supported here: %v", err)
	}
}

func TestProbeOnOverlay(t *testing.T) {
	testutil.RequireRoot(t)
	if err := SupportsOverlay(t.TempDir()); err != nil {
		t.Skipf("overlay: %v", err)
	}
	// An overlay mount's own tree as root: overlayfs refuses an upper layer
	// on overlayfs without extra features, which the probe must find.
	lower, upper, work, target := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(lower, "x"), 0o755)
	mountT(t, []Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"workdir=" + work, "upperdir=" + upper, "lowerdir=" + lower,
	}}}, target)
	err := SupportsOverlay(filepath.Join(target, "root"))
	t.Logf("overlay on overlay: %v", err)
	if err != nil && !errors.Is(err, errdefs.ErrNotSupported) {
		t.Errorf("probe error %v does not match ErrNotSupported", err)
	}
	if got := Probe(filepath.Join(target, "root2")); (err == nil) != (got == "overlay") {
		t.Errorf("Probe = %q, SupportsOverlay = %v", got, err)
	}
}

func TestCheckDType(t *testing.T) {
	if err := checkDType(t.TempDir()); err != nil {
		t.Errorf("checkDType on the temporary directory: %v", err)
	}
}

// TestReconcile fakes what a crash leaves behind and checks that opening
// the root clears it while keeping real snapshots and live staging work.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sn, err := NewNative(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "live", "c"); err != nil {
		t.Fatal(err)
	}
	info, _ := sn.Stat(ctx, "c")
	sn.Close()

	e := sn.engine
	recs, err := e.all()
	if err != nil {
		t.Fatal(err)
	}
	var committed record
	for _, r := range recs {
		if r.Name == "c" {
			committed = r
		}
	}
	// A commit that crashed after writing its record but before removing
	// the active one.
	stale := committed
	stale.Name, stale.Kind = "a", "active"
	if err := e.put(stale); err != nil {
		t.Fatal(err)
	}
	// A snapshot directory whose record was never written.
	orphan := filepath.Join(root, "snapshots", "999")
	if err := os.MkdirAll(filepath.Join(orphan, "fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A half-written record.
	tmp := filepath.Join(root, "metadata", "deadbeef.json.tmp")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Staging work of a dead process, and of a live one (we hold its lock).
	dead := filepath.Join(root, "staging", "dead")
	os.MkdirAll(filepath.Join(dead, "fs"), 0o755)
	os.WriteFile(dead+".lock", nil, 0o600)
	live := filepath.Join(root, "staging", "live")
	os.MkdirAll(live, 0o755)
	unlock, err := lockPath(ctx, live+".lock", unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	sn, err = NewNative(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	for _, p := range []string{orphan, tmp, dead, dead + ".lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after reconcile: %v", p, err)
		}
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("live staging directory removed: %v", err)
	}
	if _, err := sn.Stat(ctx, "a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("active record of a finished commit: %v, want ErrNotFound", err)
	}
	if got, err := sn.Stat(ctx, "c"); err != nil || got.Kind != KindCommitted || !got.Created.Equal(info.Created) {
		t.Errorf("committed after reconcile: %+v, %v", got, err)
	}
	if got, err := sn.Stat(ctx, "live"); err != nil || got.Kind != KindActive {
		t.Errorf("active after reconcile: %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, "snapshots", committed.ID, "fs")); err != nil {
		t.Errorf("committed snapshot's directory: %v", err)
	}
	// Ids are not reused, even for the orphan's.
	if _, err := sn.Prepare(ctx, "next", ""); err != nil {
		t.Fatal(err)
	}
	checkDistinctIDs(t, sn.engine)
}

func TestLockHonoursContext(t *testing.T) {
	root := t.TempDir()
	sn, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	unlock, err := lockPath(context.Background(), filepath.Join(root, "lock"), unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := sn.Stat(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat under another's lock: %v, want the context's deadline", err)
	}
}

func TestClosed(t *testing.T) {
	sn, err := NewNative(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if _, err := sn.Prepare(context.Background(), "a", ""); !errors.Is(err, errdefs.ErrWrongState) {
		t.Errorf("Prepare after Close: %v, want ErrWrongState", err)
	}
}

func TestNewOverlayBadRoot(t *testing.T) {
	for _, root := range []string{"", filepath.Join(t.TempDir(), "a:b"), filepath.Join(t.TempDir(), "a,b")} {
		if _, err := NewOverlay(root); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("NewOverlay(%q): %v, want ErrInvalidArgument", root, err)
		}
	}
}

// TestCopyTree checks the native copy on the kinds of files an image holds.
func TestCopyTree(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	p := func(name string) string { return filepath.Join(src, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(p("dir/sub"), 0o755))
	must(os.WriteFile(p("dir/sub/file"), []byte("content"), 0o640))
	must(os.WriteFile(p("empty"), nil, 0o600))
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(os.WriteFile(p("big"), big, 0o644))
	must(os.Link(p("big"), p("dir/big-link")))
	must(os.Symlink("../big", p("dir/link")))
	must(os.Symlink("/nowhere", p("dangling")))
	must(unix.Mkfifo(p("fifo"), 0o620))
	must(unix.Mknod(p("zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	must(unix.Mknod(p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	must(os.WriteFile(p("suid"), []byte("x"), 0o755))
	must(os.Chown(p("suid"), 123, 456))
	must(unix.Chmod(p("suid"), 0o6755))
	must(unix.Lsetxattr(p("suid"), "security.capability", capNetBind(), 0))
	must(unix.Lsetxattr(p("dir"), "user.note", []byte("kept"), 0))
	must(unix.Lsetxattr(p("dir/link"), "trusted.note", []byte("link"), 0))
	must(os.Lchown(p("dir/link"), 11, 12))
	must(unix.Chmod(p("dir/sub"), 0o500))
	must(os.Chown(p("dir"), 1, 2))
	old := time.Date(1999, 12, 31, 23, 59, 58, 123456789, time.UTC)
	must(unix.UtimesNanoAt(unix.AT_FDCWD, p("dir/link"), []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))
	must(os.Chtimes(p("dir/sub"), old, old))
	must(os.Chtimes(p("dir"), old, old))

	dst := filepath.Join(t.TempDir(), "dst")
	if err := CopyTree(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	want, got := describeTree(t, src), describeTree(t, dst)
	if len(want) != len(got) {
		t.Errorf("copy has %d entries, source %d", len(got), len(want))
	}
	for name, w := range want {
		if g := got[name]; g != w {
			t.Errorf("%s:\n copy   %s\n source %s", name, g, w)
		}
	}
	b, err := os.ReadFile(filepath.Join(dst, "big"))
	if err != nil || !reflect.DeepEqual(b, big) {
		t.Errorf("big file differs after copy (%d bytes, %v)", len(b), err)
	}
	var s1, s2 unix.Stat_t
	unix.Lstat(filepath.Join(dst, "big"), &s1)
	unix.Lstat(filepath.Join(dst, "dir/big-link"), &s2)
	if s1.Ino != s2.Ino {
		t.Errorf("hardlink not kept: inodes %d and %d", s1.Ino, s2.Ino)
	}

	if err := CopyTree(context.Background(), dst, src); !errors.Is(err, os.ErrExist) {
		t.Errorf("CopyTree onto an existing directory: %v, want ErrExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CopyTree(ctx, filepath.Join(t.TempDir(), "x"), src); !errors.Is(err, context.Canceled) {
		t.Errorf("CopyTree with a cancelled context: %v", err)
	}
}

// TestCopySparse checks that holes stay holes and data lands where it was.
func TestCopySparse(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 2 << 30 // 2 GiB, nearly all hole: small enough should holes be lost
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	marks := map[int64]string{0: "start", 1 << 30: "middle", size - 3: "end"}
	for off, s := range marks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	dst := filepath.Join(t.TempDir(), "dst")
	start := time.Now()
	if err := CopyTree(context.Background(), dst, src); err != nil {
		t.Fatal(err)
	}
	out, err := os.Open(filepath.Join(dst, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(out.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("copy allocates %d bytes for a file of three words", st.Blocks*512)
	}
	for off, s := range marks {
		b := make([]byte, len(s))
		if _, err := out.ReadAt(b, off); err != nil || string(b) != s {
			t.Errorf("at %d: %q, %v; want %q", off, b, err, s)
		}
	}
	t.Logf("copied in %v", time.Since(start))
}

// capNetBind is a security.capability value (v2) granting
// cap_net_bind_service, permitted and effective.
func capNetBind() []byte {
	return []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
}

// describeTree renders each entry's type, mode, owner, size, device, link
// target, link count, mtime and extended attributes.
func describeTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		size := st.Size
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			size = 0
		}
		target, _ := os.Readlink(path)
		var xattrs []string
		if n, err := unix.Llistxattr(path, nil); err == nil && n > 0 {
			buf := make([]byte, n)
			n, _ = unix.Llistxattr(path, buf)
			for _, name := range splitNul(buf[:n]) {
				v := make([]byte, 256)
				m, _ := unix.Lgetxattr(path, name, v)
				xattrs = append(xattrs, fmt.Sprintf("%s=%x", name, v[:max(m, 0)]))
			}
		}
		out[rel] = fmt.Sprintf("mode=%#o uid=%d gid=%d size=%d rdev=%#x nlink=%d link=%q mtime=%d.%09d xattrs=%v",
			st.Mode, st.Uid, st.Gid, size, st.Rdev, st.Nlink, target, st.Mtim.Sec, st.Mtim.Nsec, xattrs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProcesses runs several processes on one root at once: each prepares
// and commits its own chain, and all race for one key, which exactly one
// gets.
func TestProcesses(t *testing.T) {
	if os.Getenv("DOCK_SNAPSHOTS_CHILD") != "" {
		t.Skip("child")
	}
	root := t.TempDir()
	sn, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	const procs = 4
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestProcessChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "DOCK_SNAPSHOTS_CHILD="+root, fmt.Sprintf("DOCK_SNAPSHOTS_N=%d", i))
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	won := 0
	for i := range procs {
		if errs[i] != nil {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
		if strings.Contains(outs[i], "WON") {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d processes got the shared key, want 1", won)
	}
	n := 0
	sn.Walk(context.Background(), func(_ context.Context, info Info) error {
		n++
		return nil
	})
	if want := procs*10 + 1; n != want {
		t.Errorf("%d snapshots after the processes, want %d", n, want)
	}
}

// TestProcessChild is TestProcesses' child process.
func TestProcessChild(t *testing.T) {
	root := os.Getenv("DOCK_SNAPSHOTS_CHILD")
	if root == "" || os.Getenv("DOCK_SNAPSHOTS_N") == "" {
		t.Skip("run by TestProcesses")
	}
	ctx := context.Background()
	sn, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	me := os.Getenv("DOCK_SNAPSHOTS_N")
	parent := ""
	for i := range 10 {
		key, name := fmt.Sprintf("p%s-%d-active", me, i), fmt.Sprintf("p%s-%d", me, i)
		if _, err := sn.Prepare(ctx, key, parent); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, name, key); err != nil {
			t.Fatal(err)
		}
		parent = name
	}
	_, err = sn.Prepare(ctx, "shared", "")
	switch {
	case err == nil:
		fmt.Println("WON")
	case !errors.Is(err, errdefs.ErrAlreadyExists):
		t.Fatal(err)
	}
}

// TestKillDuringPrepare kills a process while its native Prepare copies a
// tree, at several moments: afterwards the snapshot either exists whole or
// not at all, and reopening the root leaves no staging work behind.
func TestKillDuringPrepare(t *testing.T) {
	if os.Getenv("DOCK_SNAPSHOTS_CHILD") != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	root := t.TempDir()
	sn, err := NewNative(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "base-active", ""); err != nil {
		t.Fatal(err)
	}
	r, err := sn.get("base-active")
	if err != nil {
		t.Fatal(err)
	}
	const files = 1000
	fsDir := filepath.Join(root, "snapshots", r.ID, "fs")
	for i := range files {
		p := filepath.Join(fsDir, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := sn.Commit(ctx, "base", "base-active"); err != nil {
		t.Fatal(err)
	}
	sn.Close()

	child := func(key string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPrepareChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "DOCK_SNAPSHOTS_CHILD="+root, "DOCK_SNAPSHOTS_KEY="+key)
		return cmd
	}
	// How long one Prepare takes here, start to end, sets when to kill.
	start := time.Now()
	if out, err := child("timing").CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	full := time.Since(start)
	for i, frac := range []float64{0, 0.3, 0.6, 0.9, 3} {
		delay := time.Duration(frac * float64(full))
		key := fmt.Sprintf("copy-%d", i)
		cmd := child(key)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		finished := cmd.Wait() == nil

		sn, err := NewNative(root)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sn.get(key)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			t.Logf("killed after %v: no snapshot", delay)
			if finished {
				t.Errorf("Prepare(%s) returned but its snapshot is gone", key)
			}
		case err != nil:
			t.Fatal(err)
		default:
			n := 0
			filepath.WalkDir(filepath.Join(root, "snapshots", r.ID, "fs"), func(_ string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					n++
				}
				return nil
			})
			t.Logf("killed after %v: snapshot with %d files", delay, n)
			if n != files {
				t.Errorf("snapshot %s visible with %d of %d files", key, n, files)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(root, "staging")); len(ents) != 0 {
			t.Errorf("staging after reopen: %d entries", len(ents))
		}
		sn.Close()
	}
}

// TestPrepareChild is TestKillDuringPrepare's child process.
func TestPrepareChild(t *testing.T) {
	root, key := os.Getenv("DOCK_SNAPSHOTS_CHILD"), os.Getenv("DOCK_SNAPSHOTS_KEY")
	if root == "" || key == "" {
		t.Skip("run by TestKillDuringPrepare")
	}
	sn, err := NewNative(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(context.Background(), key, "base"); err != nil {
		t.Fatal(err)
	}
}
