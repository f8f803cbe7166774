package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Both diffs read the trees through directory descriptors and never follow
// a symlink, so a tree changed under them (a running container) cannot make
// them read files from elsewhere on the host. Times are written in whole
// seconds, as Docker does: layers stay reproducible and need no PAX record
// per entry.

// DiffOverlay writes to w a tar of the changes recorded in an overlayfs
// upper directory: its files as they are, 0/0 character devices as .wh.NAME
// whiteouts, and directories marked opaque followed by .wh..wh..opq.
// overlayfs' own xattrs are not copied. Take it from an unmounted or frozen
// upper directory; w is not closed.
func DiffOverlay(ctx context.Context, upper string, w io.Writer, opts DiffOptions) error {
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	defer unix.Close(fd)
	e := newEmitter(w, opts)
	if err := e.overlayDir(ctx, fd, ""); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	return e.close()
}

func (e *emitter) overlayDir(ctx context.Context, dfd int, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(dfd, ".")
	if err != nil {
		return fmt.Errorf("%s: %w", displayRel(rel), err)
	}
	slices.Sort(names)
	for _, n := range names {
		crel := path.Join(rel, n)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", crel, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev == 0 {
				if err := e.whiteout(path.Join(rel, whiteoutPrefix+n), &st); err != nil {
					return err
				}
				continue
			}
		case unix.S_IFDIR:
			if err := e.entry(dfd, n, crel, &st); err != nil {
				return err
			}
			if isOpaque(dfd, n) {
				if err := e.whiteout(path.Join(crel, whiteoutOpaque), &st); err != nil {
					return err
				}
			}
			cfd, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", crel, err)
			}
			err = e.overlayDir(ctx, cfd, crel)
			unix.Close(cfd)
			if err != nil {
				return err
			}
			continue
		}
		if err := e.entry(dfd, n, crel, &st); err != nil {
			return err
		}
	}
	return nil
}

func isOpaque(dfd int, name string) bool {
	p := procPath(dfd, name)
	var b [4]byte
	for _, k := range []string{opaqueXattr, "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, k, b[:]); err == nil && n == 1 && b[0] == 'y' {
			return true
		}
	}
	return false
}

func procPath(dfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
}

func displayRel(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

// DiffTrees writes to w a tar that turns the tree lower into the tree upper
// when applied onto it: entries added or changed in upper (content, type,
// mode, owner, mtime, xattrs, link target, device number), their parent
// directories, and a .wh.NAME whiteout for each path upper lacks. Files are
// compared by metadata, and by their bytes when the mtimes agree to the
// second and one has no nanoseconds (a tree unpacked from a layer, whose
// whole-second times could hide a rewrite). A file hardlinked in
// upper is written with all its links. w is not closed.
func DiffTrees(ctx context.Context, lower, upper string, w io.Writer, opts DiffOptions) error {
	lfd, err := unix.Open(lower, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("diff %s: %w", lower, err)
	}
	defer unix.Close(lfd)
	ufd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	defer unix.Close(ufd)
	d := &treeDiff{
		changes: make(map[string]bool),
		inodes:  make(map[devIno][]string),
		buf:     make([]byte, 2*64<<10),
	}
	if err := d.walk(ctx, lfd, ufd, ""); err != nil {
		return fmt.Errorf("diff %s %s: %w", lower, upper, err)
	}
	// All links of a changed file go along, or the link would break.
	for _, paths := range d.inodes {
		changed := false
		for _, p := range paths {
			if w, ok := d.changes[p]; ok && !w {
				changed = true
			}
		}
		if changed {
			for _, p := range paths {
				d.changes[p] = false
			}
		}
	}
	// Parents first, so that an overlay upper gets them with their metadata.
	for p, wh := range d.changes {
		if wh {
			continue
		}
		for q := parentDir(p); q != ""; q = parentDir(q) {
			if _, ok := d.changes[q]; ok {
				break
			}
			d.changes[q] = false
		}
	}
	for p, wh := range d.changes {
		if wh {
			for q := parentDir(p); q != ""; q = parentDir(q) {
				if _, ok := d.changes[q]; ok {
					break
				}
				d.changes[q] = false
			}
		}
	}
	order := make([]string, 0, len(d.changes))
	for p := range d.changes {
		order = append(order, p)
	}
	slices.SortFunc(order, comparePaths)

	e := newEmitter(w, opts)
	var (
		pdir = "\x00"
		pfd  = -1
	)
	defer func() {
		if pfd >= 0 {
			unix.Close(pfd)
		}
	}()
	for i, p := range order {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.changes[p] {
			wh := path.Join(parentDir(p), whiteoutPrefix+path.Base(p))
			if err := e.whiteout(wh, &unix.Stat_t{}); err != nil {
				return err
			}
			continue
		}
		if dir := parentDir(p); dir != pdir {
			if pfd >= 0 {
				unix.Close(pfd)
				pfd = -1
			}
			fd, err := openBeneath(ufd, dir)
			if err != nil {
				return fmt.Errorf("diff %s: %s: %w", upper, p, err)
			}
			pdir, pfd = dir, fd
		}
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, path.Base(p), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("diff %s: %s: %w", upper, p, err)
		}
		if err := e.entry(pfd, path.Base(p), p, &st); err != nil {
			return fmt.Errorf("diff %s: %w", upper, err)
		}
	}
	return e.close()
}

// comparePaths orders paths as a depth-first walk meets them: a directory
// right before its contents.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ac, bc := a, b
		if ai >= 0 {
			ac = a[:ai]
		}
		if bi >= 0 {
			bc = b[:bi]
		}
		if c := strings.Compare(ac, bc); c != 0 {
			return c
		}
		a, b = a[len(ac):], b[len(bc):]
		a, b = strings.TrimPrefix(a, "/"), strings.TrimPrefix(b, "/")
	}
	return strings.Compare(a, b)
}

// openBeneath opens the directory rel under dfd refusing any symlink.
func openBeneath(dfd int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(dfd, rel, &how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

type devIno struct{ dev, ino uint64 }

type treeDiff struct {
	changes map[string]bool     // path -> is a whiteout
	inodes  map[devIno][]string // upper files with several links
	buf     []byte              // two halves for content comparison
}

func (d *treeDiff) walk(ctx context.Context, lfd, ufd int, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	unames, err := readDirNames(ufd, ".")
	if err != nil {
		return fmt.Errorf("%s: %w", displayRel(rel), err)
	}
	slices.Sort(unames)
	var lnames []string
	if lfd >= 0 {
		if lnames, err = readDirNames(lfd, "."); err != nil {
			return fmt.Errorf("%s: %w", displayRel(rel), err)
		}
		slices.Sort(lnames)
	}
	for _, n := range lnames {
		if _, found := slices.BinarySearch(unames, n); !found {
			d.changes[path.Join(rel, n)] = true
		}
	}
	for _, n := range unames {
		crel := path.Join(rel, n)
		var ust, lst unix.Stat_t
		if err := unix.Fstatat(ufd, n, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", crel, err)
		}
		inLower := false
		if lfd >= 0 {
			if _, found := slices.BinarySearch(lnames, n); found {
				if err := unix.Fstatat(lfd, n, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return fmt.Errorf("%s: %w", crel, err)
				}
				inLower = true
			}
		}
		if ust.Mode&unix.S_IFMT == unix.S_IFSOCK {
			continue // sockets do not travel in layers
		}
		if !inLower {
			d.changes[crel] = false
		} else {
			same, err := d.same(lfd, ufd, n, &lst, &ust)
			if err != nil {
				return fmt.Errorf("%s: %w", crel, err)
			}
			if !same {
				d.changes[crel] = false
			}
		}
		if ust.Mode&unix.S_IFMT != unix.S_IFDIR {
			if ust.Nlink > 1 {
				k := devIno{uint64(ust.Dev), ust.Ino}
				d.inodes[k] = append(d.inodes[k], crel)
			}
			continue
		}
		cufd, err := unix.Openat(ufd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", crel, err)
		}
		clfd := -1
		if inLower && lst.Mode&unix.S_IFMT == unix.S_IFDIR {
			if clfd, err = unix.Openat(lfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
				unix.Close(cufd)
				return fmt.Errorf("%s: %w", crel, err)
			}
		}
		err = d.walk(ctx, clfd, cufd, crel)
		unix.Close(cufd)
		if clfd >= 0 {
			unix.Close(clfd)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// same reports whether name is unchanged between the two trees.
func (d *treeDiff) same(lfd, ufd int, name string, l, u *unix.Stat_t) (bool, error) {
	if l.Mode != u.Mode || l.Uid != u.Uid || l.Gid != u.Gid {
		return false, nil
	}
	if l.Dev == u.Dev && l.Ino == u.Ino {
		return true, nil
	}
	// Layers carry whole seconds: a time with no nanoseconds may be a
	// truncated copy of the other, and then only the bytes can tell.
	truncated := l.Mtim.Nsec == 0 || u.Mtim.Nsec == 0
	if l.Mtim.Sec != u.Mtim.Sec || !truncated && l.Mtim.Nsec != u.Mtim.Nsec {
		return false, nil
	}
	switch u.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if l.Size != u.Size {
			return false, nil
		}
	case unix.S_IFLNK:
		lt, err := readlinkat(lfd, name)
		if err != nil {
			return false, err
		}
		ut, err := readlinkat(ufd, name)
		if err != nil || lt != ut {
			return false, err
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if l.Rdev != u.Rdev {
			return false, nil
		}
	}
	lx, err := readXattrs(procPath(lfd, name))
	if err != nil {
		return false, err
	}
	ux, err := readXattrs(procPath(ufd, name))
	if err != nil {
		return false, err
	}
	if len(lx) != len(ux) {
		return false, nil
	}
	for k, v := range lx {
		if uv, ok := ux[k]; !ok || uv != v {
			return false, nil
		}
	}
	if u.Mode&unix.S_IFMT == unix.S_IFREG && truncated {
		return d.sameContent(lfd, ufd, name)
	}
	return true, nil
}

func (d *treeDiff) sameContent(lfd, ufd int, name string) (bool, error) {
	open := func(dfd int) (*os.File, error) {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	lf, err := open(lfd)
	if err != nil {
		return false, err
	}
	defer lf.Close()
	uf, err := open(ufd)
	if err != nil {
		return false, err
	}
	defer uf.Close()
	half := len(d.buf) / 2
	lb, ub := d.buf[:half], d.buf[half:]
	for {
		ln, lerr := io.ReadFull(lf, lb)
		un, uerr := io.ReadFull(uf, ub)
		if ln != un || !bytes.Equal(lb[:ln], ub[:un]) {
			return false, nil
		}
		if lerr == io.EOF || lerr == io.ErrUnexpectedEOF {
			return uerr == lerr, nil
		}
		if lerr != nil {
			return false, lerr
		}
		if uerr != nil {
			return false, uerr
		}
	}
}

func readlinkat(dfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// readXattrs returns the xattrs of the node at p (not followed), without
// overlayfs' own.
func readXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	if sz == 0 {
		return nil, nil
	}
	list := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, list); err != nil {
		return nil, err
	}
	var m map[string]string
	for _, k := range strings.Split(string(list[:sz]), "\x00") {
		if k == "" || isOverlayXattr(k) || k == "security.selinux" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			if err == unix.ENODATA {
				continue
			}
			return nil, err
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, err
		}
		if m == nil {
			m = make(map[string]string)
		}
		m[k] = string(v[:vsz])
	}
	return m, nil
}

// emitter writes tar entries for files found on disk.
type emitter struct {
	tw    *tar.Writer
	links map[devIno]string
	buf   []byte
	opts  DiffOptions
}

func newEmitter(w io.Writer, opts DiffOptions) *emitter {
	return &emitter{tw: tar.NewWriter(w), links: make(map[devIno]string), buf: make([]byte, 1<<20), opts: opts}
}

func (e *emitter) close() error { return e.tw.Close() }

func (e *emitter) whiteout(name string, st *unix.Stat_t) error {
	return e.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		ModTime:  time.Unix(st.Mtim.Sec, 0),
	})
}

// entry writes the node name under dfd as rel.
func (e *emitter) entry(dfd int, name, rel string, st *unix.Stat_t) error {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     toContainer(e.opts.UIDMap, st.Uid),
		Gid:     toContainer(e.opts.GIDMap, st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if st.Nlink > 1 {
			k := devIno{uint64(st.Dev), st.Ino}
			if first, ok := e.links[k]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				e.links[k] = rel
			}
		}
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name = rel + "/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		t, err := readlinkat(dfd, name)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		hdr.Linkname = t
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets
	}
	if hdr.Typeflag != tar.TypeLink {
		xs, err := readXattrs(procPath(dfd, name))
		if err != nil {
			return fmt.Errorf("%s: xattrs: %w", rel, err)
		}
		for k, v := range xs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = make(map[string]string)
			}
			hdr.PAXRecords[xattrPAXPrefix+k] = v
		}
	}
	if hdr.Typeflag != tar.TypeReg {
		if err := e.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if err := e.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	// Exactly the size in the header, even if the file changed meanwhile.
	n, err := io.CopyBuffer(e.tw, io.LimitReader(f, hdr.Size), e.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n < hdr.Size {
		return fmt.Errorf("%s: file shrank while being read", rel)
	}
	return nil
}
