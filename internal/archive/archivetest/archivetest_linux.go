package archivetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// File is one tar entry to write; Body is the content of a regular file.
type File struct {
	tar.Header
	Body string
}

// Reg returns a regular file entry owned by root with mode 0644.
func Reg(name, body string) File {
	return File{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}, Body: body}
}

// Dir returns a directory entry with mode 0755.
func Dir(name string) File {
	return File{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: time.Unix(1700000000, 0)}}
}

// Symlink returns a symlink entry name -> target.
func Symlink(name, target string) File {
	return File{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(1700000000, 0)}}
}

// Link returns a hardlink entry name -> target.
func Link(name, target string) File {
	return File{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: time.Unix(1700000000, 0)}}
}

// Tar returns the tar stream of files, in order, as given (names are not
// cleaned: hostile names stay hostile).
func Tar(t testing.TB, files ...File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.Header
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if f.Body != "" {
			if _, err := io.WriteString(tw, f.Body); err != nil {
				t.Fatalf("tar body %q: %v", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Node is what Snapshot records of one path.
type Node struct {
	Type   string // reg, dir, symlink, char, block, fifo, socket
	Mode   uint32 // permission bits with setuid, setgid, sticky
	UID    uint32
	GID    uint32
	Size   int64
	Mtime  int64 // whole seconds: layers carry no more
	Target string
	Rdev   uint64
	Xattrs map[string]string
	Digest string // sha256 of a regular file's content
	Link   string // for a file with several links: the first of its paths in the tree
}

func (n Node) String() string {
	s := fmt.Sprintf("%s %04o %d:%d mtime=%d", n.Type, n.Mode, n.UID, n.GID, n.Mtime)
	switch n.Type {
	case "reg":
		s += fmt.Sprintf(" size=%d %s", n.Size, n.Digest[:12])
	case "symlink":
		s += " -> " + n.Target
	case "char", "block":
		s += fmt.Sprintf(" %d:%d", unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	if n.Link != "" {
		s += " link=" + n.Link
	}
	if len(n.Xattrs) > 0 {
		keys := make([]string, 0, len(n.Xattrs))
		for k := range n.Xattrs {
			keys = append(keys, k+"="+n.Xattrs[k])
		}
		slices.Sort(keys)
		s += " xattrs=" + strings.Join(keys, ",")
	}
	return s
}

// Snapshot records every path under root (root itself excluded), with
// slash-separated relative names. overlayfs' own xattrs and SELinux labels
// are left out: they are not part of a layer.
func Snapshot(t testing.TB, root string) map[string]Node {
	t.Helper()
	m := make(map[string]Node)
	firsts := make(map[[2]uint64]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := Node{
			Mode:  st.Mode & 0o7777,
			UID:   st.Uid,
			GID:   st.Gid,
			Mtime: st.Mtim.Sec,
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type, n.Size = "reg", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Digest = hex.EncodeToString(sum[:])
			if st.Nlink > 1 {
				k := [2]uint64{uint64(st.Dev), st.Ino}
				if f, ok := firsts[k]; ok {
					n.Link = f
				} else {
					firsts[k] = rel
					n.Link = rel
				}
			}
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFLNK:
			n.Type = "symlink"
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", uint64(st.Rdev)
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", uint64(st.Rdev)
		case unix.S_IFIFO:
			n.Type = "fifo"
		case unix.S_IFSOCK:
			n.Type = "socket"
		}
		n.Xattrs = xattrs(p)
		m[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	// A lone remaining link (others outside root) is not a group.
	counts := make(map[string]int)
	for _, n := range m {
		if n.Link != "" {
			counts[n.Link]++
		}
	}
	for p, n := range m {
		if n.Link != "" && counts[n.Link] == 1 {
			n.Link = ""
			m[p] = n
		}
	}
	return m
}

func xattrs(p string) map[string]string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil
	}
	list := make([]byte, sz)
	sz, err = unix.Llistxattr(p, list)
	if err != nil {
		return nil
	}
	var m map[string]string
	for _, k := range strings.Split(string(list[:sz]), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") || k == "security.selinux" {
			continue
		}
		v := make([]byte, 64<<10)
		n, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			continue
		}
		if m == nil {
			m = make(map[string]string)
		}
		m[k] = string(v[:n])
	}
	return m
}

// CompareOptions relaxes Compare.
type CompareOptions struct {
	IgnoreDirTimes bool // directory mtimes (changed by deletions in a tree)
	IgnorePaths    func(rel string) bool
}

// Compare lists the differences between two snapshots, empty when equal.
func Compare(want, got map[string]Node, opts CompareOptions) []string {
	var diffs []string
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if opts.IgnorePaths != nil && opts.IgnorePaths(k) {
			continue
		}
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %v)", k, w))
			continue
		case !wok:
			diffs = append(diffs, fmt.Sprintf("%s: unexpected (%v)", k, g))
			continue
		}
		if opts.IgnoreDirTimes && w.Type == "dir" && g.Type == "dir" {
			w.Mtime, g.Mtime = 0, 0
		}
		if w.String() != g.String() {
			diffs = append(diffs, fmt.Sprintf("%s:\n\twant %v\n\tgot  %v", k, w, g))
		}
	}
	return diffs
}

// RequireSame fails t unless the trees at want and got are equal.
func RequireSame(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	if d := Compare(Snapshot(t, want), Snapshot(t, got), opts); len(d) > 0 {
		t.Fatalf("trees %s and %s differ:\n%s", want, got, strings.Join(d, "\n"))
	}
}
