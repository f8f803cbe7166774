package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."     // aufs bookkeeping; never content
	whiteoutOpaque = ".wh..wh..opq" // the directory hides its lower contents
	xattrPAXPrefix = "SCHILY.xattr."
	overlayXattr   = "trusted.overlay."
	userOverlay    = "user.overlay."
	opaqueXattr    = "trusted.overlay.opaque"
	capsXattr      = "security.capability"
	maxCachedDirs  = 256
)

// minHole is the shortest run of zeros written as a hole.
const minHole = 64 << 10

// zeros is compared against, never written.
var zeros = make([]byte, 1<<20)

// Apply extracts the uncompressed tar stream r into the directory root and
// returns the number of tar bytes read.
//
// Each entry's parent is resolved inside root (symlinks laid by this or an
// earlier layer are followed as if root were "/", never out of it) and its
// last component is created relative to that directory without following
// symlinks. Names are taken relative to root even when absolute; a name
// that climbs above root with ".." is refused. Nothing is synced: the
// caller syncs the finished tree once. On error root holds a partial layer
// that the caller removes; nothing outside root has been touched.
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("layer root %s: %w", root, osErr(err))
	}
	// File contents go through a buffer from iobuf, recycled between
	// layers and backed by huge pages.
	buf := iobuf.Get()
	a := &applier{
		rootfd: rootfd,
		opts:   opts,
		lim:    opts.Limits.withDefaults(),
		dirs:   make(map[string]cachedDir),
		euid:   os.Geteuid(),
		egid:   os.Getegid(),
		umask:  processUmask(),
		buf:    buf,
	}
	if opts.Whiteouts == WhiteoutDelete {
		a.written = make(map[string]struct{})
	}
	if opts.ImplicitDirs != nil {
		a.implicit = make(map[string]struct{})
	}
	var rst unix.Stat_t
	if err := unix.Fstat(rootfd, &rst); err != nil {
		unix.Close(rootfd)
		return 0, fmt.Errorf("layer root %s: %w", root, err)
	}
	a.rootSgid = rst.Mode&unix.S_ISGID != 0
	defer func() {
		a.invalidate()
		a.closeStale()
		if a.rootFile != nil {
			a.rootFile.Close()
		}
		unix.Close(rootfd)
		iobuf.Put(buf)
	}()

	switch r.(type) {
	case *readAhead, *bytes.Reader, *bufio.Reader:
	default:
		// archive/tar reads headers 512 bytes at a time; contents larger
		// than the buffer still go straight through.
		r = bufio.NewReaderSize(r, 64<<10)
	}
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	for entries := 0; ; entries++ {
		if entries&63 == 0 {
			if err := ctx.Err(); err != nil {
				return cr.n, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cr.n, fmt.Errorf("layer: reading tar after %d entries: %w", entries, err)
		}
		if entries >= a.lim.MaxEntries {
			return cr.n, refuse(hdr.Name, fmt.Sprintf("layer has more than %d entries", a.lim.MaxEntries))
		}
		a.closeStale()
		if err := a.entry(ctx, hdr, tr); err != nil {
			return cr.n, err
		}
		if opts.Progress != nil {
			opts.Progress(cr.n)
		}
	}
	if opts.Progress != nil {
		opts.Progress(cr.n)
	}
	// Directory times last: creating children moved them.
	for _, d := range a.dirTimes {
		if d.rel == "" {
			if err := futimens(rootfd, &d.ts); err != nil && !ignorableTimeErr(err) {
				return cr.n, &EntryError{Name: "/", Rule: "set times", Err: err}
			}
			continue
		}
		fd, base, err := a.parentOf(d.rel, false)
		if err != nil {
			continue // replaced or removed by a later entry
		}
		err = unix.UtimesNanoAt(fd, base, d.ts[:], unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && err != unix.ENOENT && !ignorableTimeErr(err) {
			return cr.n, &EntryError{Name: d.rel, Rule: "set times", Err: osErr(err)}
		}
	}
	if opts.ImplicitDirs != nil {
		dirs := make([]string, 0, len(a.implicit))
		for rel := range a.implicit {
			dirs = append(dirs, rel)
		}
		slices.Sort(dirs)
		*opts.ImplicitDirs = dirs
	}
	return cr.n, nil
}

type applier struct {
	rootfd   int
	opts     ApplyOptions
	lim      Limits
	dirs     map[string]cachedDir // resolved directories by relative path
	written  map[string]struct{}  // WhiteoutDelete: paths this layer wrote, and their parents
	implicit map[string]struct{}  // ImplicitDirs: directories made without an entry of their own
	dirTimes []dirTime
	// closeLater holds descriptors dropped from dirs during an entry.
	closeLater []int
	buf        []byte
	total      int64
	// parentSgid is set by dirFor: whether the directory it returned has
	// the setgid bit, so files made in it may not belong to egid.
	parentSgid bool
	euid, egid int
	rootSgid   bool
	umask      int      // -1 when unknown
	rootFile   *os.File // a copy of rootfd for filepath-securejoin, made on demand
}

type cachedDir struct {
	fd   int
	sgid bool // new files take the directory's group
}

type dirTime struct {
	rel string
	ts  [2]unix.Timespec
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// cleanName maps an entry name to a path relative to root ("" is root
// itself), refusing names that climb out of it.
func cleanName(name string) (string, bool) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", false
	}
	if p == "." || p == "/" {
		return "", true
	}
	return p, true
}

func (a *applier) entry(ctx context.Context, hdr *tar.Header, tr *tar.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return refuse(hdr.Name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
	if len(hdr.Name) > a.lim.MaxNameLen {
		return refuse(truncName(hdr.Name), fmt.Sprintf("name longer than %d bytes", a.lim.MaxNameLen))
	}
	if len(hdr.Linkname) > a.lim.MaxNameLen {
		return refuse(hdr.Name, fmt.Sprintf("link target longer than %d bytes", a.lim.MaxNameLen))
	}
	if strings.IndexByte(hdr.Name, 0) >= 0 || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return refuse(hdr.Name, "name contains a NUL byte")
	}
	rel, ok := cleanName(hdr.Name)
	if !ok {
		return refuse(hdr.Name, "path escapes the root")
	}
	base := path.Base(rel)
	if rel != "" && strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr, rel)
	}
	if hdr.Typeflag == tar.TypeReg { // the reader turns TypeRegA into TypeReg
		if hdr.Size < 0 || hdr.Size > a.lim.MaxFileSize {
			return refuse(hdr.Name, fmt.Sprintf("file size %d exceeds the limit of %d bytes", hdr.Size, a.lim.MaxFileSize))
		}
		a.total += hdr.Size
		if a.total > a.lim.MaxTotalSize {
			return refuse(hdr.Name, fmt.Sprintf("layer content exceeds the limit of %d bytes", a.lim.MaxTotalSize))
		}
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return refuse(hdr.Name, "the root can only be a directory")
		}
		return a.dirMeta(hdr, rel, a.rootfd)
	}
	pfd, base, err := a.parentOf(rel, true)
	if err != nil {
		return &EntryError{Name: hdr.Name, Rule: "resolve parent", Err: err}
	}
	a.markWritten(rel)
	if a.implicit != nil {
		delete(a.implicit, rel) // named now: its own entry decides
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		err = a.regular(ctx, hdr, tr, pfd, base)
	case tar.TypeDir:
		err = a.dir(hdr, rel, pfd, base)
	case tar.TypeSymlink:
		err = a.symlink(hdr, pfd, base)
	case tar.TypeLink:
		err = a.hardlink(hdr, pfd, base)
	default:
		err = a.node(hdr, pfd, base)
	}
	if err != nil {
		var ee *EntryError
		if errors.As(err, &ee) {
			return err
		}
		return &EntryError{Name: hdr.Name, Err: err}
	}
	return nil
}

func truncName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// regular writes a file's content through a fresh O_EXCL|O_NOFOLLOW fd.
// writebackMin is the size from which ApplyOptions.StartWriteback starts
// a file's writeback as soon as it is written.
const writebackMin = 256 << 10

func (a *applier) regular(ctx context.Context, hdr *tar.Header, tr *tar.Reader, pfd int, base string) error {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	// Owner and mode are set only when creation did not already get them
	// right: two syscalls fewer for the usual root-owned 0644/0755 file.
	sgid := a.parentSgid
	perm := uint32(hdr.Mode) & 0o777
	needChmod := hdr.Mode&0o7000 != 0 || a.umask < 0 || perm&uint32(a.umask) != 0
	needChown := !a.opts.NoSameOwner && (hdr.Uid != a.euid || hdr.Gid != a.egid || sgid)
	fd, err := unix.Openat(pfd, base, flags, perm)
	if err == unix.EEXIST {
		if _, err = a.makeRoom(pfd, base, false); err != nil {
			return err
		}
		fd, err = unix.Openat(pfd, base, flags, perm)
	}
	if err != nil {
		return fmt.Errorf("create: %w", osErr(err))
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	// Runs of zeros become holes: a sparse (or zero-filled) file costs no
	// disk for them, and a layer of huge all-zero files cannot fill it.
	remaining, hole := hdr.Size, false
	for n := int64(0); remaining > 0; n++ {
		if n&63 == 63 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		want := a.buf
		if int64(len(want)) > remaining {
			want = want[:remaining]
		}
		m, rerr := io.ReadFull(tr, want)
		if m >= minHole && bytes.Equal(want[:m], zeros[:m]) {
			if _, err := unix.Seek(fd, int64(m), io.SeekCurrent); err != nil {
				return fmt.Errorf("seek: %w", err)
			}
			remaining -= int64(m)
			hole = true
		} else if m > 0 {
			if err := writeAll(fd, want[:m]); err != nil {
				return fmt.Errorf("write: %w", osErr(err))
			}
			remaining -= int64(m)
			hole = false
		}
		if rerr != nil {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read content: %w", rerr)
		}
	}
	if hole {
		if err := unix.Ftruncate(fd, hdr.Size); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	if a.opts.StartWriteback && hdr.Size >= writebackMin {
		// Best effort: the caller's sync is what counts.
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if needChown {
		if err := a.owner(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr); err != nil {
			return err
		}
	}
	// After chown, which clears setuid and setgid.
	if needChmod || needChown {
		if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", osErr(err))
		}
	}
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	ts := times(hdr)
	if err := futimens(fd, &ts); err != nil && !ignorableTimeErr(err) {
		return fmt.Errorf("set times: %w", osErr(err))
	}
	err = unix.Close(fd)
	fd = -1
	if err != nil {
		return fmt.Errorf("close: %w", osErr(err))
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		b = b[n:]
	}
	return nil
}

// dir creates a directory or keeps the one already there, then sets its
// owner, mode and xattrs; its times wait for the end of the layer.
func (a *applier) dir(hdr *tar.Header, rel string, pfd int, base string) error {
	err := unix.Mkdirat(pfd, base, 0o700)
	if err == unix.EEXIST {
		var keep bool
		if keep, err = a.makeRoom(pfd, base, true); err == nil && !keep {
			err = unix.Mkdirat(pfd, base, 0o700)
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", osErr(err))
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", osErr(err))
	}
	if err := a.dirMeta(hdr, rel, fd); err != nil {
		unix.Close(fd)
		return err
	}
	a.cacheDir(rel, fd, hdr.Mode&0o2000 != 0) // its children usually follow
	return nil
}

func (a *applier) dirMeta(hdr *tar.Header, rel string, fd int) error {
	if err := a.owner(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", osErr(err))
	}
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	a.dirTimes = append(a.dirTimes, dirTime{rel: rel, ts: times(hdr)})
	return nil
}

func (a *applier) symlink(hdr *tar.Header, pfd int, base string) error {
	err := unix.Symlinkat(hdr.Linkname, pfd, base)
	if err == unix.EEXIST {
		if _, err = a.makeRoom(pfd, base, false); err == nil {
			err = unix.Symlinkat(hdr.Linkname, pfd, base)
		}
	}
	if err != nil {
		return fmt.Errorf("symlink: %w", osErr(err))
	}
	return a.pathMeta(hdr, pfd, base, false)
}

// pathMeta sets the metadata of a node that has no fd of its own (symlink,
// device, fifo), never following a symlink at the last component.
func (a *applier) pathMeta(hdr *tar.Header, pfd int, base string, chmod bool) error {
	if err := a.owner(func(uid, gid int) error {
		return unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}, hdr); err != nil {
		return err
	}
	if chmod {
		if err := fchmodatNoFollow(pfd, base, uint32(hdr.Mode)&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", osErr(err))
		}
	}
	procPath := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	if err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(procPath, k, v, 0) }); err != nil {
		return err
	}
	ts := times(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil && !ignorableTimeErr(err) {
		return fmt.Errorf("set times: %w", osErr(err))
	}
	return nil
}

// fchmodatNoFollow changes a mode without following a symlink that may
// have been swapped in: fchmodat2 where the kernel has it, else through an
// O_PATH descriptor of the node itself.
func fchmodatNoFollow(pfd int, base string, mode uint32) error {
	err := unix.Fchmodat(pfd, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// hardlink links to an entry already in root. The target is resolved inside
// root like any name and its last component is not followed, so a link can
// neither reach outside root nor through a symlink at its end.
func (a *applier) hardlink(hdr *tar.Header, pfd int, base string) error {
	trel, ok := cleanName(hdr.Linkname)
	if !ok {
		return refuse(hdr.Name, fmt.Sprintf("hardlink target %q escapes the root", hdr.Linkname))
	}
	if trel == "" {
		return refuse(hdr.Name, "hardlink to the root directory")
	}
	notFound := func(err error) error {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return refuse(hdr.Name, fmt.Sprintf("hardlink target %q is not in the root", hdr.Linkname))
		}
		return &EntryError{Name: hdr.Name, Rule: fmt.Sprintf("hardlink to %q", hdr.Linkname), Err: osErr(err)}
	}
	tfd, tbase, err := a.parentOf(trel, false)
	if err != nil {
		return notFound(err)
	}
	err = unix.Linkat(tfd, tbase, pfd, base, 0)
	if err == unix.EEXIST {
		if _, err = a.makeRoom(pfd, base, false); err == nil {
			// The target's directory may have been cached under a path now gone.
			if tfd, tbase, err = a.parentOf(trel, false); err == nil {
				err = unix.Linkat(tfd, tbase, pfd, base, 0)
			}
		}
	}
	if err != nil {
		return notFound(err)
	}
	return nil
}

// node makes a character or block device or a fifo. Device nodes are real
// nodes here, as Docker makes them; they are neutered by the nodev mount
// option that the runtime puts on every container rootfs.
func (a *applier) node(hdr *tar.Header, pfd int, base string) error {
	mode := uint32(hdr.Mode) & 0o777
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := unix.Mknodat(pfd, base, mode, dev)
	if err == unix.EEXIST {
		if _, err = a.makeRoom(pfd, base, false); err == nil {
			err = unix.Mknodat(pfd, base, mode, dev)
		}
	}
	if err == unix.EPERM && a.opts.NoSameOwner && hdr.Typeflag != tar.TypeFifo {
		return nil // an unprivileged caller cannot make devices; Docker skips them too
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", osErr(err))
	}
	return a.pathMeta(hdr, pfd, base, true)
}

// whiteout records or carries out a deletion.
func (a *applier) whiteout(hdr *tar.Header, rel string) error {
	dirRel, base := path.Split(rel)
	dirRel = strings.TrimSuffix(dirRel, "/")
	if base == whiteoutOpaque {
		return a.opaque(hdr, dirRel)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // aufs hardlink and plink bookkeeping: not content
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return refuse(hdr.Name, "whiteout names no entry or escapes its directory")
	}
	trel := path.Join(dirRel, target)
	if a.opts.Whiteouts == WhiteoutOverlay {
		pfd, _, err := a.parentOf(trel, true)
		if err != nil {
			return &EntryError{Name: hdr.Name, Rule: "resolve parent", Err: err}
		}
		err = unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
		if err == unix.EEXIST {
			// The upper directory is fresh: what is there, this layer wrote,
			// and a whiteout only hides what lower layers hold.
			return nil
		}
		if err != nil {
			return &EntryError{Name: hdr.Name, Rule: "whiteout", Err: osErr(err)}
		}
		err = a.owner(func(uid, gid int) error {
			return unix.Fchownat(pfd, target, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		}, hdr)
		if err != nil {
			return &EntryError{Name: hdr.Name, Err: err}
		}
		return nil
	}
	if _, ok := a.written[trel]; ok {
		return nil // the whiteout hides lower layers only
	}
	pfd, _, err := a.parentOf(trel, false)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing to delete
		}
		return &EntryError{Name: hdr.Name, Rule: "resolve parent", Err: err}
	}
	a.invalidate()
	if err := removeAllAt(pfd, target); err != nil {
		return &EntryError{Name: hdr.Name, Rule: "whiteout", Err: osErr(err)}
	}
	return nil
}

func (a *applier) opaque(hdr *tar.Header, dirRel string) error {
	if a.opts.Whiteouts == WhiteoutOverlay {
		fd, err := a.dirFor(dirRel, true)
		if err != nil {
			return &EntryError{Name: hdr.Name, Rule: "resolve directory", Err: err}
		}
		// Set through a real fd: O_PATH descriptors take no xattrs.
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &EntryError{Name: hdr.Name, Rule: "open directory", Err: osErr(err)}
		}
		defer unix.Close(dfd)
		if err := unix.Fsetxattr(dfd, opaqueXattr, []byte("y"), 0); err != nil {
			return &EntryError{Name: hdr.Name, Rule: "opaque whiteout", Err: osErr(err)}
		}
		a.markWritten(dirRel)
		return nil
	}
	fd, err := a.dirFor(dirRel, false)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return &EntryError{Name: hdr.Name, Rule: "resolve directory", Err: err}
	}
	a.invalidate()
	if err := a.clearLower(fd, dirRel); err != nil {
		return &EntryError{Name: hdr.Name, Rule: "opaque whiteout", Err: osErr(err)}
	}
	return nil
}

// clearLower removes from a directory whatever this layer did not write,
// descending into the directories it did.
func (a *applier) clearLower(fd int, dirRel string) error {
	names, err := readDirNames(fd, ".")
	if err != nil {
		return err
	}
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	for _, n := range names {
		crel := path.Join(dirRel, n)
		if _, ok := a.written[crel]; !ok {
			if err := removeAllAt(dfd, n); err != nil {
				return err
			}
			continue
		}
		cfd, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return err
		}
		err = a.clearLower(cfd, crel)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// markWritten records rel and its parents as written by this layer.
func (a *applier) markWritten(rel string) {
	if a.written == nil {
		return
	}
	for rel != "" && rel != "." {
		if _, ok := a.written[rel]; ok {
			return
		}
		a.written[rel] = struct{}{}
		rel = path.Dir(rel)
	}
}

// makeRoom clears the way for a new entry at base: an existing directory
// stays when a directory is wanted, anything else goes with its subtree.
func (a *applier) makeRoom(pfd int, base string, wantDir bool) (keep bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	if wantDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true, nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		a.invalidate() // cached descriptors may point into the subtree
	}
	return false, removeAllAt(pfd, base)
}

// removeAllAt removes name under the directory pfd and, for a directory,
// everything below it, never following a symlink.
func removeAllAt(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, oerr := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return err
	}
	names, err := readDirNames(fd, ".")
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}

func readDirNames(pfd int, name string) ([]string, error) {
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return f.Readdirnames(-1)
}

// parentOf resolves the directory holding rel inside root, creating missing
// directories when create is set, and returns it with rel's last component.
func (a *applier) parentOf(rel string, create bool) (int, string, error) {
	fd, err := a.dirFor(parentDir(rel), create)
	return fd, path.Base(rel), err
}

// dirFor returns a descriptor of the directory rel, resolved with openat2
// RESOLVE_IN_ROOT: symlinks on the way are followed as if root were "/".
// Missing directories are made (0755, like Docker) when create is set.
func (a *applier) dirFor(rel string, create bool) (int, error) {
	if rel == "" {
		a.parentSgid = a.rootSgid
		return a.rootfd, nil
	}
	if d, ok := a.dirs[rel]; ok {
		a.parentSgid = d.sgid
		return d.fd, nil
	}
	fd, err := a.openInRoot(rel)
	if err == unix.ENOENT && create {
		pfd, perr := a.dirFor(parentDir(rel), true)
		if perr != nil {
			return -1, perr
		}
		base := path.Base(rel)
		if merr := unix.Mkdirat(pfd, base, 0o755); merr != nil && merr != unix.EEXIST {
			return -1, osErr(merr)
		} else if merr == nil {
			if a.implicit != nil {
				a.implicit[rel] = struct{}{}
			}
			if a.opts.ParentAttrs != nil {
				if uid, gid, mode, ok := a.opts.ParentAttrs(rel); ok {
					if !a.opts.NoSameOwner {
						unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
					}
					unix.Fchmodat(pfd, base, uint32(mode.Perm())|modeBits(mode), 0)
				}
			}
		}
		a.markWritten(rel)
		fd, err = a.openInRoot(rel)
	}
	if err != nil {
		return -1, osErr(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	a.parentSgid = st.Mode&unix.S_ISGID != 0
	a.cacheDir(rel, fd, a.parentSgid)
	return fd, nil
}

// parentDir returns the directory holding rel ("" for root).
func parentDir(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}

// noOpenat2 is set once openat2 turned out to be missing (before Linux
// 5.6) or filtered by a seccomp profile.
var noOpenat2 atomic.Bool

func (a *applier) openInRoot(rel string) (int, error) {
	if noOpenat2.Load() {
		return a.openInRootEmulated(rel)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(a.rootfd, rel, &how)
		switch err {
		case unix.EAGAIN, unix.EINTR:
			continue // a rename raced the lookup; try again
		case unix.ENOSYS, unix.EPERM:
			noOpenat2.Store(true)
			return a.openInRootEmulated(rel)
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// openInRootEmulated resolves rel inside root with filepath-securejoin,
// which walks the path one component at a time and checks each step
// against the root when the kernel cannot do it.
func (a *applier) openInRootEmulated(rel string) (int, error) {
	if a.rootFile == nil {
		fd, err := unix.Dup(a.rootfd)
		if err != nil {
			return -1, err
		}
		unix.CloseOnExec(fd)
		a.rootFile = os.NewFile(uintptr(fd), "root")
	}
	f, err := pathrs.OpenatInRoot(a.rootFile, rel)
	if err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return -1, errno
		}
		return -1, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, unix.ENOTDIR
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err == nil {
		unix.CloseOnExec(fd)
	}
	return fd, err
}

func (a *applier) cacheDir(rel string, fd int, sgid bool) {
	if old, ok := a.dirs[rel]; ok {
		a.closeLater = append(a.closeLater, old.fd)
	}
	if len(a.dirs) >= maxCachedDirs {
		a.invalidate()
	}
	a.dirs[rel] = cachedDir{fd: fd, sgid: sgid}
}

// invalidate forgets every resolved directory; called when anything is
// removed, since a cached descriptor could then name a deleted directory.
// The descriptors stay open until the next entry: the current one may
// still be using them.
func (a *applier) invalidate() {
	for k, d := range a.dirs {
		a.closeLater = append(a.closeLater, d.fd)
		delete(a.dirs, k)
	}
}

// closeStale closes descriptors that invalidate set aside.
func (a *applier) closeStale() {
	for _, fd := range a.closeLater {
		unix.Close(fd)
	}
	a.closeLater = a.closeLater[:0]
}

func (a *applier) owner(chown func(uid, gid int) error, hdr *tar.Header) error {
	if a.opts.NoSameOwner {
		return nil
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<32-2 || hdr.Gid > 1<<32-2 {
		return refuse(hdr.Name, fmt.Sprintf("owner %d:%d out of range", hdr.Uid, hdr.Gid))
	}
	if err := chown(hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, osErr(err))
	}
	return nil
}

// xattrs applies the extended attributes the entry carries. Overlay xattrs
// never comes from a layer (it would forge opaque directories or redirects
// for overlayfs). Attributes the filesystem refuses are dropped, except file
// capabilities, whose silent loss would break programs.
func (a *applier) xattrs(hdr *tar.Header, set func(k string, v []byte) error) error {
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, xattrPAXPrefix) {
			continue
		}
		name := k[len(xattrPAXPrefix):]
		if isOverlayXattr(name) {
			continue
		}
		err := set(name, []byte(v))
		if err == nil {
			continue
		}
		if name == capsXattr && !a.opts.NoSameOwner {
			return fmt.Errorf("xattr %s: %w", name, osErr(err))
		}
		switch err {
		case unix.ENOTSUP, unix.EPERM, unix.EACCES, unix.EINVAL, unix.ERANGE, unix.E2BIG, unix.ENOSPC:
			continue
		}
		return fmt.Errorf("xattr %s: %w", name, osErr(err))
	}
	return nil
}

// isOverlayXattr reports xattrs that overlayfs keeps for itself
// (trusted.overlay.*, or user.overlay.* on userxattr mounts).
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, overlayXattr) || strings.HasPrefix(name, userOverlay)
}

func toTimespec(t0 interface {
	Unix() int64
	Nanosecond() int
}) unix.Timespec {
	return unix.Timespec{Sec: t0.Unix(), Nsec: int64(t0.Nanosecond())}
}

// times returns atime and mtime for an entry; atime defaults to mtime.
func times(hdr *tar.Header) [2]unix.Timespec {
	m := toTimespec(hdr.ModTime)
	if hdr.ModTime.IsZero() {
		m = unix.Timespec{}
	}
	at := m
	if !hdr.AccessTime.IsZero() {
		at = toTimespec(hdr.AccessTime)
	}
	return [2]unix.Timespec{at, m}
}

// futimens sets an open file's times in one utimensat(fd, NULL, ...).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// processUmask returns the process umask, or -1 when it cannot be read.
// It is read, not set: umask(2) would change it for the whole process. Read
// once per Apply, so a umask changed between layers is seen.
func processUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return int(m)
			}
		}
	}
	return -1
}

// ignorableTimeErr: a time the filesystem cannot store is not worth failing
// a layer for.
func ignorableTimeErr(err error) bool {
	return err == unix.EINVAL || err == unix.ERANGE || err == unix.EOVERFLOW
}

// osErr maps errno values onto the sentinels callers test for (ENOENT
// already matches os.ErrNotExist).
func osErr(err error) error {
	switch err {
	case unix.EXDEV:
		return fmt.Errorf("crosses a mount point: %w", errdefs.ErrInvalidArgument)
	}
	return err
}

// modeBits converts the setuid, setgid and sticky bits of mode to the
// kernel's.
func modeBits(mode os.FileMode) uint32 {
	var m uint32
	if mode&os.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if mode&os.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if mode&os.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}
