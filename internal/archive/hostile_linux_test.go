package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/archive/archivetest"
	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
	"golang.org/x/sys/unix"
)

// host is a layer root next to a sentinel directory that no layer may touch.
type host struct {
	base, root, sentinel string
	before               map[string]archivetest.Node
}

func newHost(t testing.TB) *host {
	t.Helper()
	base := t.TempDir()
	h := &host{base: base, root: filepath.Join(base, "root"), sentinel: filepath.Join(base, "sentinel")}
	for _, d := range []string{h.root, h.sentinel, filepath.Join(h.sentinel, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(h.sentinel, "keep"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.sentinel, "sub", "deep"), []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.before = h.outside(t)
	return h
}

// outside snapshots everything under base except root.
func (h *host) outside(t testing.TB) map[string]archivetest.Node {
	t.Helper()
	m := archivetest.Snapshot(t, h.base)
	for k := range m {
		if k == "root" || strings.HasPrefix(k, "root/") {
			delete(m, k)
		}
	}
	return m
}

// check fails t if anything outside root changed.
func (h *host) check(t testing.TB) {
	t.Helper()
	if d := archivetest.Compare(h.before, h.outside(t), archivetest.CompareOptions{}); len(d) > 0 {
		t.Fatalf("layer changed the host outside its root:\n%s", strings.Join(d, "\n"))
	}
}

func withMode(f archivetest.File, mode int64) archivetest.File { f.Mode = mode; return f }

func withXattr(f archivetest.File, k, v string) archivetest.File {
	f.PAXRecords = map[string]string{xattrPAXPrefix + k: v}
	f.Format = tar.FormatPAX
	return f
}

// rawHeader returns a tar holding one header and no content, for sizes a
// real writer would not produce.
func rawHeader(t testing.TB, hdr tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&hdr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type hostileCase struct {
	name  string
	mode  WhiteoutMode
	lim   Limits
	root  bool                        // needs root (device nodes, chown)
	prep  func(t *testing.T, h *host) // lays an "earlier layer" in root
	layer func(t testing.TB, h *host) []byte
	// want: "" contained (Apply may fail or not), or a substring the error
	// must hold (refused).
	want  string
	after func(t *testing.T, h *host, err error) // checks on root
}

func hostileCases() []hostileCase {
	long := strings.Repeat(strings.Repeat("x", 100)+"/", 50) + "f"
	many := func(n int) []archivetest.File {
		var fs []archivetest.File
		for i := range n {
			fs = append(fs, archivetest.Reg(fmt.Sprintf("f%d", i), ""))
		}
		return fs
	}
	return []hostileCase{
		{name: "dotdot file", want: `layer entry "../escape": path escapes the root`,
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg("../escape", "x")) }},
		{name: "dotdot deep", want: "path escapes the root",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Reg("a/../../sentinel/keep", "pwned"))
			}},
		{name: "dotdot directory", want: "path escapes the root",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Dir("../../")) }},
		{name: "absolute name is relative to root",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Reg(h.sentinel+"/keep", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustContent(t, filepath.Join(h.root, h.sentinel, "keep"), "pwned")
			}},
		{name: "relative symlink out then write through it",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("link", "../sentinel"), archivetest.Reg("link/keep", "pwned"))
			}},
		{name: "absolute symlink to sentinel then write through it",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("link", h.sentinel), archivetest.Reg("link/keep", "pwned"))
			}},
		{name: "symlink to slash then write etc/passwd",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("rootlink", "/"), archivetest.Reg("rootlink/etc/passwd", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustContent(t, filepath.Join(h.root, "etc/passwd"), "pwned")
			}},
		{name: "absolute symlink target then a file under it",
			prep: func(t *testing.T, h *host) { mustMkdir(t, filepath.Join(h.root, "etc")) },
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("hostetc", "/etc"), archivetest.Reg("hostetc/dock-archive-test-evil", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustNotExist(t, "/etc/dock-archive-test-evil")
				mustContent(t, filepath.Join(h.root, "etc/dock-archive-test-evil"), "pwned")
			}},
		{name: "symlink chain climbing out",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t,
					archivetest.Dir("x/"), archivetest.Dir("x/y/"),
					archivetest.Symlink("a", "x/y/b"), archivetest.Symlink("x/y/b", "../c"),
					archivetest.Symlink("x/c", "../../../../sentinel"), archivetest.Reg("a/keep", "pwned"))
			}},
		{name: "symlink to dotdot then write",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("up", ".."), archivetest.Reg("up/escaped", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustContent(t, filepath.Join(h.root, "escaped"), "pwned")
			}},
		{name: "hardlink to etc shadow", want: `hardlink target "/etc/shadow" is not in the root`,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Link("shadow", "/etc/shadow"))
			},
			after: func(t *testing.T, h *host, err error) { mustNotExist(t, filepath.Join(h.root, "shadow")) }},
		{name: "hardlink dotdot", want: `hardlink target "../sentinel/keep" escapes the root`,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Link("h", "../sentinel/keep"))
			}},
		{name: "hardlink through symlink", want: "hardlink",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("s", h.sentinel), archivetest.Link("h", "s/keep"), archivetest.Reg("h", "pwned"))
			}},
		{name: "hardlink to a symlink, then overwrite",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("s", h.sentinel+"/keep"), archivetest.Link("h", "s"), archivetest.Reg("h", "pwned"), archivetest.Reg("s", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustContent(t, filepath.Join(h.root, "h"), "pwned")
			}},
		{name: "whiteout dotdot", mode: WhiteoutDelete, want: "path escapes the root",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg("../.wh.sentinel", "")) }},
		{name: "whiteout of dot", mode: WhiteoutDelete, want: "whiteout names no entry",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg("a/.wh..", "")) }},
		{name: "whiteout of dotdot name", mode: WhiteoutDelete, want: "whiteout names no entry",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg(".wh...", "")) }},
		{name: "whiteout of dotdot overlay", mode: WhiteoutOverlay, want: "whiteout names no entry",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg("d/.wh...", "")) }},
		{name: "whiteout through symlink", mode: WhiteoutDelete,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("s", h.sentinel), archivetest.Reg("s/.wh.keep", ""),
					archivetest.Symlink("r", "../sentinel"), archivetest.Reg("r/.wh.sub", ""))
			}},
		{name: "opaque through symlink", mode: WhiteoutDelete,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("s", "../../sentinel"), archivetest.Reg("s/.wh..wh..opq", ""))
			}},
		{name: "whiteout of the root's parent through slash symlink", mode: WhiteoutDelete,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("s", "/.."), archivetest.Reg("s/.wh.sentinel", ""), archivetest.Reg("s/.wh.root", ""))
			}},
		{name: "opaque root overlay is contained", mode: WhiteoutOverlay,
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg(".wh..wh..opq", "")) }},
		{name: "dir replaced by symlink then written through",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Dir("d/"), archivetest.Reg("d/f", "ok"),
					archivetest.Symlink("d", h.sentinel), archivetest.Reg("d/keep", "pwned"),
					archivetest.Symlink("d", "../sentinel"), archivetest.Reg("d/sub/deep", "pwned"))
			}},
		{name: "earlier layer symlink absolute",
			prep: func(t *testing.T, h *host) { mustSymlink(t, h.sentinel, filepath.Join(h.root, "evil")) },
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Reg("evil/keep", "pwned"), archivetest.Reg("evil/sub/new", "pwned"))
			}},
		{name: "earlier layer symlink relative",
			prep: func(t *testing.T, h *host) { mustSymlink(t, "../sentinel", filepath.Join(h.root, "evil")) },
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Reg("evil/keep", "pwned"), archivetest.Dir("evil/sub/"), archivetest.Link("evil/l", "evil/keep"))
			}},
		{name: "file over a symlink replaces the symlink",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("f", h.sentinel+"/keep"), archivetest.Reg("f", "pwned"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				mustContent(t, filepath.Join(h.root, "f"), "pwned")
			}},
		{name: "dir over a symlink does not chmod the target",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("d", h.sentinel), withMode(archivetest.Dir("d/"), 0o777))
			}},
		{name: "xattr on a symlink stays on the symlink", root: true,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, withXattr(archivetest.Symlink("s", h.sentinel+"/keep"), "trusted.pwn", "1"))
			},
			after: func(t *testing.T, h *host, err error) { mustNil(t, err) }},
		{name: "device node is created inside root", root: true,
			layer: func(t testing.TB, h *host) []byte {
				f := archivetest.File{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
				b := archivetest.File{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "../dev/sda", Mode: 0o666, Devmajor: 8}}
				return archivetest.Tar(t, f, b)
			},
			want: `layer entry "../dev/sda": path escapes the root`,
			after: func(t *testing.T, h *host, err error) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(h.root, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
					t.Fatalf("dev/null in root: %v %o", err, st.Mode)
				}
			}},
		{name: "overlay xattrs from the layer are dropped", root: true,
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, withXattr(archivetest.Dir("d/"), "trusted.overlay.opaque", "y"))
			},
			after: func(t *testing.T, h *host, err error) {
				mustNil(t, err)
				if _, err := unix.Getxattr(filepath.Join(h.root, "d"), "trusted.overlay.opaque", make([]byte, 8)); err == nil {
					t.Fatal("layer set trusted.overlay.opaque")
				}
			}},
		{name: "huge size header", lim: Limits{MaxFileSize: 1 << 20}, want: "exceeds the limit",
			layer: func(t testing.TB, h *host) []byte {
				return rawHeader(t, tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 1 << 40, Mode: 0o644})
			},
			after: func(t *testing.T, h *host, err error) { mustNotExist(t, filepath.Join(h.root, "big")) }},
		{name: "huge size header default limits", want: "exceeds the limit",
			layer: func(t testing.TB, h *host) []byte {
				return rawHeader(t, tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 1 << 50, Mode: 0o644})
			}},
		{name: "total size bomb", lim: Limits{MaxTotalSize: 10 << 10}, want: "layer content exceeds the limit",
			layer: func(t testing.TB, h *host) []byte {
				var fs []archivetest.File
				for i := range 20 {
					fs = append(fs, archivetest.Reg(fmt.Sprintf("f%d", i), strings.Repeat("z", 1024)))
				}
				return archivetest.Tar(t, fs...)
			}},
		{name: "name longer than PATH_MAX", want: "name longer than 4096 bytes",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Reg(long, "x")) }},
		{name: "symlink target longer than PATH_MAX", want: "link target longer than",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Symlink("s", long)) }},
		{name: "entry count bomb", lim: Limits{MaxEntries: 100}, want: "more than 100 entries",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, many(1000)...) }},
		{name: "unsupported entry type", want: "unsupported entry type",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.File{Header: tar.Header{Typeflag: tar.TypeCont, Name: "c", Mode: 0o644}})
			}},
		{name: "root replaced by a symlink", want: "the root can only be a directory",
			layer: func(t testing.TB, h *host) []byte { return archivetest.Tar(t, archivetest.Symlink("./", h.sentinel)) }},
		{name: "symlink to itself absolute",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("etc", "/etc"), archivetest.Reg("etc/passwd", "pwned"))
			}},
		{name: "directory moved away under its own times",
			prep: func(t *testing.T, h *host) { mustMkdir(t, filepath.Join(h.root, "empty")) },
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Dir("a/"), archivetest.Dir("a/b/"), archivetest.Symlink("a", "empty"))
			},
			after: func(t *testing.T, h *host, err error) { mustNil(t, err) }},
		{name: "symlink loop",
			layer: func(t testing.TB, h *host) []byte {
				return archivetest.Tar(t, archivetest.Symlink("a", "b"), archivetest.Symlink("b", "a"), archivetest.Reg("a/x", "x"))
			}},
	}
}

func TestHostileLayers(t *testing.T) {
	t.Run("openat2", func(t *testing.T) { testHostileLayers(t) })
	// Without openat2 (old kernels, seccomp filters) paths resolve in
	// user space; the same layers must be as harmless.
	t.Run("emulated", func(t *testing.T) {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
		testHostileLayers(t)
	})
}

func testHostileLayers(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testutil.RequireRoot(t)
			}
			h := newHost(t)
			if tc.prep != nil {
				tc.prep(t, h)
			}
			opts := ApplyOptions{Whiteouts: tc.mode, Limits: tc.lim, NoSameOwner: os.Geteuid() != 0}
			_, err := Apply(context.Background(), h.root, bytes.NewReader(tc.layer(t, h)), opts)
			h.check(t)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Apply: got error %v, want one containing %q", err, tc.want)
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("error %v does not match ErrInvalidArgument", err)
				}
			} else if err != nil {
				t.Logf("contained, refused: %v", err)
			}
			if tc.after != nil {
				tc.after(t, h, err)
			}
		})
	}
}

// TestSymlinkSwapRace swaps a directory for a symlink out of root while a
// layer writes into it (CVE-2018-15664, CVE-2021-30465): every write must
// still land inside root.
func TestSymlinkSwapRace(t *testing.T) {
	h := newHost(t)
	d := filepath.Join(h.root, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []archivetest.File{}
	for i := range 1000 {
		files = append(files, archivetest.Reg(fmt.Sprintf("d/f%d", i), "pwned"), archivetest.Reg(fmt.Sprintf("d/sub/g%d", i), "pwned"))
	}
	layer := archivetest.Tar(t, files...)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tmp := filepath.Join(h.root, "dtmp")
		for !stop.Load() {
			if os.Rename(d, tmp) == nil {
				_ = os.Symlink(h.sentinel, d)
				time.Sleep(20 * time.Microsecond)
				_ = os.Remove(d)
				_ = os.Rename(tmp, d)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	_, err := Apply(context.Background(), h.root, bytes.NewReader(layer), ApplyOptions{NoSameOwner: os.Geteuid() != 0})
	stop.Store(true)
	wg.Wait()
	t.Logf("Apply under swaps: %v", err)
	h.check(t)
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustContent(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != want {
		t.Fatalf("%s: %q, %v; want %q", p, b, err, want)
	}
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v)", p, err)
	}
}

func mustSymlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}
