package snapshots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CopyTree copies the tree at src to dst, which must not exist, keeping
// what a container would notice: owners, modes (setuid and sticky bits
// too), extended attributes (file capabilities among them), hardlinks,
// symlinks, device nodes, fifos and sockets, and access and modification
// times. File contents are cloned (FICLONE) where the filesystem shares
// extents, else copied in the kernel with copy_file_range. Symlinks are
// never followed. Ownership that an unprivileged caller cannot give is
// left to the caller.
func CopyTree(ctx context.Context, dst, src string) error {
	c := copier{ctx: ctx, links: map[inodeKey]string{}, root: os.Geteuid() == 0}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("copy %s: not a directory", src)
	}
	return c.copy(dst, src, &st)
}

type inodeKey struct{ dev, ino uint64 }

type copier struct {
	ctx   context.Context
	links map[inodeKey]string // first copy of each multiply linked inode
	root  bool
}

func (c *copier) copy(dst, src string, st *unix.Stat_t) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	mode := st.Mode & unix.S_IFMT
	if mode != unix.S_IFDIR && st.Nlink > 1 {
		key := inodeKey{uint64(st.Dev), st.Ino}
		if first, ok := c.links[key]; ok {
			if err := os.Link(first, dst); err != nil {
				return err
			}
			return nil
		}
		c.links[key] = dst
	}
	switch mode {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, ent := range ents {
			s, d := filepath.Join(src, ent.Name()), filepath.Join(dst, ent.Name())
			var cst unix.Stat_t
			if err := unix.Lstat(s, &cst); err != nil {
				return &fs.PathError{Op: "lstat", Path: s, Err: err}
			}
			if err := c.copy(d, s, &cst); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if err := copyFile(dst, src); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &fs.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", src, mode)
	}
	return c.attrs(dst, src, st)
}

// attrs gives dst the owner, mode, extended attributes and times of src,
// in the order that keeps each: chown clears setuid bits and capabilities.
func (c *copier) attrs(dst, src string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil && (c.root || !errors.Is(err, unix.EPERM)) {
		return &fs.PathError{Op: "lchown", Path: dst, Err: err}
	}
	isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
	if !isLink {
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return &fs.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	if err := copyXattrs(dst, src); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

func copyXattrs(dst, src string) error {
	size, err := unix.Llistxattr(src, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(src, buf)
	if err != nil {
		return &fs.PathError{Op: "llistxattr", Path: src, Err: err}
	}
	for _, name := range splitNul(buf[:size]) {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return &fs.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, val); err != nil {
			return &fs.PathError{Op: "lgetxattr " + name, Path: src, Err: err}
		}
		if err := unix.Lsetxattr(dst, name, val[:n], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &fs.PathError{Op: "lsetxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func copyFile(dst, src string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: src, Err: err}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if err := copyData(out, in, st.Size); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// copyData clones in's extents into out where the filesystem can. Else it
// copies the data regions alone, in the kernel where it can, so that holes
// stay holes: a sparse file of terabytes (a lastlog) costs what it holds.
func copyData(out, in *os.File, size int64) error {
	ifd, ofd := int(in.Fd()), int(out.Fd())
	if unix.IoctlFileClone(ofd, ifd) == nil {
		return nil
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		end := size
		if err != nil {
			data = off // no SEEK_DATA here: all of it is data
		} else if hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE); err == nil && hole < size {
			end = hole
		}
		if data >= end {
			break
		}
		if err := copyRange(ofd, ifd, data, end-data); err != nil {
			return err
		}
		off = end
	}
	return unix.Ftruncate(ofd, size)
}

// copyRange copies n bytes at off from ifd to the same offset of ofd.
func copyRange(ofd, ifd int, off, n int64) error {
	roff, woff := off, off
	for n > 0 {
		c, err := unix.CopyFileRange(ifd, &roff, ofd, &woff, int(min(n, 1<<30)), 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// Not across these filesystems (EXDEV, EINVAL, ENOSYS,
			// EOPNOTSUPP): through user space for the rest.
			return copyRangeUser(ofd, ifd, roff, n)
		}
		if c == 0 {
			return fmt.Errorf("copy_file_range: source shorter than it said: %w", io.ErrUnexpectedEOF)
		}
		n -= int64(c)
	}
	return nil
}

func copyRangeUser(ofd, ifd int, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		r, err := unix.Pread(ifd, buf[:min(n, int64(len(buf)))], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if r == 0 {
			return io.ErrUnexpectedEOF
		}
		for w := 0; w < r; {
			k, err := unix.Pwrite(ofd, buf[w:r], off+int64(w))
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			w += k
		}
		off += int64(r)
		n -= int64(r)
	}
	return nil
}
