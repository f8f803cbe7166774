package dock

import (
	"context"
	"os"
	"path"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/dockkit/dock/internal/caps"
	"github.com/dockkit/dock/internal/mountopt"
	"github.com/dockkit/dock/internal/runtime"
	"github.com/dockkit/dock/internal/snapshots"
	"golang.org/x/sys/unix"
)

// securityDefaults applies Docker's defaults, or --privileged, to spec:
// capabilities, seccomp, no_new_privs, masked and read-only paths.
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
	spec.Process.Seccomp = true
	spec.Process.NoNewPrivs = true
	spec.MaskedPaths = runtime.DefaultMaskedPaths
	spec.ReadonlyPaths = runtime.DefaultReadonlyPaths
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
// root filesystem, or an empty directory when the image has nothing there.
func (h *Host) fillVolume(ctx context.Context, dir string, rootfs []Mount, target string) error {
	mnt, done, err := h.mountTemp(rootfs)
	if err != nil {
		return err
	}
	defer done()
	// The image's own symlinks resolve inside its tree.
	src, err := securejoin.SecureJoin(mnt, target)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
		return os.Mkdir(dir, 0o755)
	}
	return snapshots.CopyTree(ctx, dir, src)
}

func checkTmpfs(options []string) error { return mountopt.CheckTmpfs(options) }
