package dock

import (
	"context"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/dockkit/dock/internal/caps"
	"github.com/dockkit/dock/internal/mountopt"
	"github.com/dockkit/dock/internal/runtime"
	"github.com/dockkit/dock/internal/snapshots"
	"golang.org/x/sys/unix"
)

// securityDefaults applies Docker's defaults, or --privileged, to spec:
// capabilities, seccomp, no_new_privs, masked and read-only paths, each
// as the caller's options change it.
func securityDefaults(c *createConfig, spec *runtime.Spec) error {
	if c.privileged {
		// Every capability this process could grant: a host that is itself
		// confined may lack some the kernel knows.
		spec.Process.Caps = caps.Available().Names()
		spec.Process.Privileged = true
		return nil
	}
	var err error
	spec.Process.Caps, err = caps.Merge(caps.Default(), c.capAdd, c.capDrop)
	if err != nil {
		return err
	}
	if !c.noSeccomp {
		spec.Process.Seccomp = true
		spec.Process.SeccompProfile = c.seccompProfile
	}
	if len(c.seccompProfile) > 0 {
		// Refused now rather than at each start.
		if _, err := runtime.CompileSeccomp(c.seccompProfile, spec.Process.Caps); err != nil {
			return fmt.Errorf("WithSeccompProfile: %w", err)
		}
	}
	spec.Process.NoNewPrivs = !c.newPrivileges
	if !c.unmaskedPaths {
		spec.MaskedPaths = runtime.DefaultMaskedPaths
		spec.ReadonlyPaths = runtime.DefaultReadonlyPaths
	}
	return nil
}

// hasOpaqueAncestor reports whether a directory above rel in the layer
// directory root is an overlay opaque directory, hiding the layers below.
func hasOpaqueAncestor(root *os.Root, dir, rel string) bool {
	buf := make([]byte, 2)
	for p := path.Dir(rel); p != "." && p != "/"; p = path.Dir(p) {
		fi, err := root.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		d, err := root.Open(p) // stays inside the layer, unlike a joined path
		if err != nil {
			continue
		}
		n, err := unix.Fgetxattr(int(d.Fd()), "trusted.overlay.opaque", buf)
		d.Close()
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// fillVolume makes dir a copy of the tree at target in the container's
// root filesystem, or an empty directory when the image has no directory
// there, which it reports.
func (h *Host) fillVolume(ctx context.Context, dir string, rootfs []Mount, target string) (found bool, err error) {
	mnt, done, err := h.mountTemp(rootfs)
	if err != nil {
		return false, err
	}
	defer done()
	// The image's own symlinks resolve inside its tree.
	src, err := securejoin.SecureJoin(mnt, target)
	if err != nil {
		return false, err
	}
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return false, os.Mkdir(dir, 0o755)
	}
	return true, snapshots.CopyTree(ctx, dir, src)
}

// moveEntries moves what from holds into to, an existing directory, and
// gives to the owner and mode of from, as Docker does when it fills an
// empty volume. A name to has meanwhile is kept: what a running container
// wrote there wins. When a move fails, what was moved in is removed again.
func moveEntries(from, to string) (err error) {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	var moved []string
	defer func() {
		if err != nil {
			for _, n := range moved {
				os.RemoveAll(filepath.Join(to, n))
			}
		}
	}()
	for _, n := range names {
		src, dst := filepath.Join(from, n), filepath.Join(to, n)
		err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
		if err == unix.EINVAL {
			// A file system without RENAME_NOREPLACE.
			if _, lerr := os.Lstat(dst); lerr == nil {
				err = unix.EEXIST
			} else {
				err = unix.Rename(src, dst)
			}
		}
		switch {
		case err == unix.EEXIST:
		case err != nil:
			return &os.PathError{Op: "rename", Path: dst, Err: err}
		default:
			moved = append(moved, n)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(from, &st); err != nil {
		return err
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(to, st.Mode&07777)
}

func checkTmpfs(options []string) error { return mountopt.CheckTmpfs(options) }

// statDevice fills in d's type and numbers from the host's node, or says
// that there is none.
func statDevice(d *runtime.Device) error {
	var st unix.Stat_t
	if err := unix.Stat(d.HostPath, &st); err != nil {
		return fmt.Errorf("device %s: %w: %w", d.HostPath, err, ErrInvalidArgument)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		d.Type = "c"
	case unix.S_IFBLK:
		d.Type = "b"
	default:
		return fmt.Errorf("device %s: not a device node: %w", d.HostPath, ErrInvalidArgument)
	}
	d.Major, d.Minor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	return nil
}

// reaperRuns tells whether this program can be WithInit's init: that
// runs in the container's root, which holds no dynamic loader of the
// host's, so the program must be linked statically.
var reaperRuns = sync.OnceValue(func() error {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("WithInit: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("WithInit: the init is this program, run in the container, which has no dynamic loader for it: build it statically (CGO_ENABLED=0): %w", ErrNotSupported)
		}
	}
	return nil
})

// hostDevices returns the device d names, its type and numbers read: the
// node itself, or each node below it when it is a directory, as docker
// reads --device.
func hostDevices(d runtime.Device) ([]runtime.Device, error) {
	fi, err := os.Stat(d.HostPath)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w: %w", d.HostPath, err, ErrInvalidArgument)
	}
	if !fi.IsDir() {
		if err := statDevice(&d); err != nil {
			return nil, err
		}
		return []runtime.Device{d}, nil
	}
	var out []runtime.Device
	err = filepath.WalkDir(d.HostPath, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeDevice == 0 {
			return err
		}
		rel, err := filepath.Rel(d.HostPath, p)
		if err != nil {
			return err
		}
		n := runtime.Device{Path: path.Join(d.Path, rel), HostPath: p, Access: d.Access}
		if err := statDevice(&n); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.HostPath, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("device %s: no device node in it: %w", d.HostPath, ErrInvalidArgument)
	}
	return out, nil
}
