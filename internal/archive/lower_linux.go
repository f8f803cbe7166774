package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OverlayLowerDir returns a lookup of a directory in the tree that overlayfs
// shows for the lower directories lowers (newest first), read from those
// directories without a mount. As overlayfs does, the newest layer holding
// a name decides what it is: a whiteout or any non-directory there hides
// the name, and an opaque directory hides what older layers hold under it.
// The lookup reports false when rel is no directory in that tree.
func OverlayLowerDir(lowers []string) func(rel string) (DirAttrs, bool) {
	return func(rel string) (DirAttrs, bool) {
		rel, ok := cleanName(rel)
		if !ok || rel == "" || len(lowers) == 0 {
			return DirAttrs{}, false
		}
		// The layers that hold the directory walked so far, newest first.
		layers := lowers
		var top unix.Stat_t
		prefix := ""
		for _, comp := range strings.Split(rel, "/") {
			prefix = filepath.Join(prefix, comp)
			var next []string
			for _, l := range layers {
				var st unix.Stat_t
				p := filepath.Join(l, prefix)
				if err := unix.Lstat(p, &st); err != nil {
					continue // absent here (or unreadable): older layers decide
				}
				if st.Mode&unix.S_IFMT != unix.S_IFDIR {
					// A whiteout or a file: it hides the name when it is
					// the newest, and what lies below a directory above
					// it otherwise.
					break
				}
				if len(next) == 0 {
					top = st
				}
				next = append(next, l)
				if isOpaquePath(p) {
					break
				}
			}
			if len(next) == 0 {
				return DirAttrs{}, false
			}
			layers = next
		}
		return DirAttrs{
			UID:   int(top.Uid),
			GID:   int(top.Gid),
			Mode:  fileMode(top.Mode),
			Atime: time.Unix(top.Atim.Unix()),
			Mtime: time.Unix(top.Mtim.Unix()),
		}, true
	}
}

// isOpaquePath tells whether the directory at p hides what older layers
// hold under it.
func isOpaquePath(p string) bool {
	var b [1]byte
	n, err := unix.Lgetxattr(p, opaqueXattr, b[:])
	return err == nil && n == 1 && b[0] == 'y'
}

// fileMode converts a kernel mode's permission and special bits.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

// SetDirAttrs gives each directory of dirs (relative to root, as
// ApplyOptions.ImplicitDirs lists them) the owner, mode and times that
// attrs finds for it; one attrs does not know keeps what Apply gave it. A
// name that is no longer a directory reached without a symlink is left
// alone: a later entry of the layer replaced it. With noSameOwner the
// owner is not changed.
func SetDirAttrs(ctx context.Context, root string, dirs []string, attrs func(rel string) (DirAttrs, bool), noSameOwner bool) error {
	if len(dirs) == 0 {
		return nil
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("layer root %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	for _, rel := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		at, ok := attrs(rel)
		if !ok {
			continue
		}
		fd, err := openDirNoFollow(rootfd, rel)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return &EntryError{Name: rel, Rule: "open directory", Err: err}
		}
		err = setDirAttrs(fd, at, noSameOwner)
		unix.Close(fd)
		if err != nil {
			return &EntryError{Name: rel, Rule: "lower attributes", Err: err}
		}
	}
	return nil
}

func setDirAttrs(fd int, at DirAttrs, noSameOwner bool) error {
	if !noSameOwner {
		if err := unix.Fchown(fd, at.UID, at.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmod(fd, uint32(at.Mode.Perm())|modeBits(at.Mode)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	ts := [2]unix.Timespec{toTimespec(at.Atime), toTimespec(at.Mtime)}
	if err := futimens(fd, &ts); err != nil && !ignorableTimeErr(err) {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// openDirNoFollow opens the directory rel below dirfd one component at a
// time, following no symlink and never leaving dirfd.
func openDirNoFollow(dirfd int, rel string) (int, error) {
	rel, ok := cleanName(rel)
	if !ok {
		return -1, unix.ENOENT
	}
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil || rel == "" {
		return fd, err
	}
	for _, comp := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}
