package snapshots

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/mountopt"
)

// MountAll applies mounts in order at target, each over the one before. If
// one fails, those already made are undone. Options are mount(8)'s: "ro",
// "bind", "rbind", "nosuid", propagation such as "rprivate", and the
// filesystem's own ("lowerdir=..."). An overlay whose options exceed the
// page size that mount(2) takes is made with fsopen(2) and one "lowerdir+"
// per layer (Linux 6.8 and later).
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := mountOne(m, target); err != nil {
			for j := 0; j < i; j++ {
				unix.Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	p := mountopt.Parse(m.Options)
	if m.Type == "bind" || m.Type == "rbind" {
		p.Flags |= unix.MS_BIND
		if m.Type == "rbind" {
			p.Flags |= unix.MS_REC
		}
	}
	typ := m.Type
	if p.Flags&unix.MS_BIND != 0 {
		typ = ""
	}
	data := strings.Join(p.Data, ",")
	switch {
	case typ == "overlay" && len(data) >= os.Getpagesize():
		// First, name the layers through a descriptor of the directory
		// they share, which any kernel takes; failing that, one layer per
		// parameter with the new mount API.
		short, closeDir, err := shortenOverlayPaths(p.Data)
		if err == nil {
			if len(strings.Join(short, ",")) < os.Getpagesize() {
				err = unix.Mount(m.Source, target, typ, p.Flags, strings.Join(short, ","))
			} else {
				err = unix.E2BIG
			}
			closeDir()
		}
		if err != nil {
			if err := fsmountOverlay(m, p, target); err != nil {
				return err
			}
		}
	default:
		if len(data) >= os.Getpagesize() {
			return fmt.Errorf("mount %s on %s: options of %d bytes exceed the page size: %w", m.Type, target, len(data), errdefs.ErrInvalidArgument)
		}
		if err := unix.Mount(m.Source, target, typ, p.Flags, data); err != nil {
			return fmt.Errorf("mount %s %s on %s: %w", m.Type, m.Source, target, err)
		}
		// A bind mount ignores all flags but MS_REC on the first call;
		// they take effect on a remount.
		const bindOnly = unix.MS_BIND | unix.MS_REC
		if p.Flags&unix.MS_BIND != 0 && p.Flags&^bindOnly != 0 {
			if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|(p.Flags&^bindOnly), ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount %s on %s: %w", m.Source, target, err)
			}
		}
	}
	if p.Propagation != 0 {
		if err := unix.Mount("", target, "", p.Propagation, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("propagation of %s: %w", target, err)
		}
	}
	return nil
}

// fsmountOverlay makes an overlay with the new mount API, where each lower
// layer is its own parameter, so no single string is bound by the page size.
func fsmountOverlay(m Mount, p mountopt.Parsed, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("mount overlay on %s: options too long for mount(2), fsopen: %w: %w", target, err, errdefs.ErrNotSupported)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		return fmt.Errorf("mount overlay on %s: options too long for mount(2), %s: %w", target, what, err)
	}
	if err := unix.FsconfigSetString(fd, "source", m.Source); err != nil {
		return fail("source", err)
	}
	for _, o := range p.Data {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			if err := unix.FsconfigSetFlag(fd, k); err != nil {
				return fail(k, err)
			}
			continue
		}
		if k != "lowerdir" {
			if err := unix.FsconfigSetString(fd, k, v); err != nil {
				return fail(k, err)
			}
			continue
		}
		for _, l := range splitLowerdir(v) {
			if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
				if errors.Is(err, unix.EINVAL) {
					return fmt.Errorf("mount overlay on %s: %d bytes of options exceed the page size and this kernel has no lowerdir+ (Linux 6.8): %w", target, len(strings.Join(p.Data, ",")), errdefs.ErrNotSupported)
				}
				return fail("lowerdir+ "+l, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	var attrs int
	if p.Flags&unix.MS_RDONLY != 0 {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	if p.Flags&unix.MS_NOSUID != 0 {
		attrs |= unix.MOUNT_ATTR_NOSUID
	}
	if p.Flags&unix.MS_NODEV != 0 {
		attrs |= unix.MOUNT_ATTR_NODEV
	}
	if p.Flags&unix.MS_NOEXEC != 0 {
		attrs |= unix.MOUNT_ATTR_NOEXEC
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fail("move_mount", err)
	}
	return nil
}

// shortenOverlayPaths rewrites the lowerdir, upperdir and workdir options
// so that the directory all their paths share is named by an open
// descriptor, /proc/self/fd/N, which stays valid until closeDir runs.
func shortenOverlayPaths(data []string) (short []string, closeDir func(), err error) {
	var paths []string
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, splitLowerdir(v)...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	common := commonDir(paths)
	if len(common) < 2 {
		return nil, nil, fmt.Errorf("overlay layers share no directory")
	}
	fd, err := unix.Open(common, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: common, Err: err}
	}
	prefix := fmt.Sprintf("/proc/self/fd/%d", fd)
	rel := func(p string) string { return prefix + strings.TrimPrefix(p, common) }
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			ls := splitLowerdir(v)
			for i, l := range ls {
				ls[i] = strings.ReplaceAll(rel(l), ":", `\:`)
			}
			o = k + "=" + strings.Join(ls, ":")
		case "upperdir", "workdir":
			o = k + "=" + rel(v)
		}
		short = append(short, o)
	}
	return short, func() { unix.Close(fd) }, nil
}

// commonDir returns the longest directory that holds every one of the
// absolute, clean paths, without a trailing slash; "" if there is none.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	if common == "/" || !filepath.IsAbs(common) {
		return ""
	}
	return common
}

// splitLowerdir splits overlay's colon separated list, where "\:" is a
// colon inside a path.
func splitLowerdir(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(out, cur.String())
}

// UnmountAll unmounts everything mounted at target, topmost first, until
// target is no mount point. A missing target is not an error.
func UnmountAll(target string) error {
	busy := 0
	for i := 0; i < 1024; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			busy = 0
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EBUSY) && busy < 50:
			busy++
			time.Sleep(10 * time.Millisecond)
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after many unmounts: %w", target, errdefs.ErrWrongState)
}
