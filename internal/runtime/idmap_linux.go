package runtime

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// premountArg tells the init that the monitor has mounted its root
// filesystem already, and that the init makes its mount namespace itself.
const premountArg = "premounted"

// idmapRootfs reports whether spec's root filesystem is mounted by the
// monitor over layers idmapped into the container's user namespace, rather
// than by the init: an overlay of image layers owned by the host's root.
// Inside a user namespace the init could mount the overlay only with
// user.* xattrs, which image layers do not carry, and the mapped root
// could not write files the host's root owns; the idmapped layers show
// the host's uid 0 as the container's.
func idmapRootfs(spec *Spec) bool {
	return spec.hasNew("user") && len(spec.Rootfs) == 1 && spec.Rootfs[0].Type == "overlay"
}

// mountIdmappedOverlay mounts m at target with its lower layers seen
// through the user namespace of the process pid, and its upper layer owned
// by uid and gid, the host's ids of the container's root. The idmapped
// layers are attached under dir, in the monitor's private mount namespace,
// and go with it.
func mountIdmappedOverlay(m Mount, target, dir string, pid, uid, gid int) error {
	userns, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	defer unix.Close(userns)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n := 0
	idmapped := func(src string) (string, error) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return "", fmt.Errorf("clone %s: %w", src, err)
		}
		defer unix.Close(fd)
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
			if err == unix.EINVAL || err == unix.ENOSYS || err == unix.EPERM {
				return "", fmt.Errorf("idmapped mount of %s (needs Linux 5.19 and a file system that supports it): %w: %w", src, err, errdefs.ErrNotSupported)
			}
			return "", fmt.Errorf("idmap %s: %w", src, err)
		}
		at := path.Join(dir, strconv.Itoa(n))
		n++
		if err := os.Mkdir(at, 0o700); err != nil && !os.IsExist(err) {
			return "", err
		}
		if err := unix.MoveMount(fd, "", unix.AT_FDCWD, at, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return "", fmt.Errorf("attach idmapped %s: %w", src, err)
		}
		return at, nil
	}
	var opts, lowers []string
	var upper, work string
	for _, o := range m.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			lowers = strings.Split(v, ":")
		case "upperdir":
			upper = v
		case "workdir":
			work = v
		default:
			opts = append(opts, o)
		}
	}
	for i, l := range lowers {
		if lowers[i], err = idmapped(l); err != nil {
			return err
		}
	}
	if len(lowers) > 0 {
		opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	}
	if upper != "" {
		// The upper layer is the container's alone: its root owns it on
		// the host, and what it writes keeps the host ids it has. (An
		// idmapped upper layer would need the mounter, the host's root,
		// to be mapped in the container's namespace.)
		if err := os.Chown(upper, uid, gid); err != nil {
			return err
		}
		opts = append(opts, "upperdir="+upper, "workdir="+work)
	}
	return mountRootfs(Mount{Type: "overlay", Source: m.Source, Options: opts}, target)
}

// rootIDs returns the host's uid and gid of the root of spec's user
// namespace.
func rootIDs(spec *Spec) (uid, gid int) {
	for _, m := range spec.Namespaces.UIDMap {
		if m.ContainerID == 0 {
			uid = int(m.HostID)
		}
	}
	for _, m := range spec.Namespaces.GIDMap {
		if m.ContainerID == 0 {
			gid = int(m.HostID)
		}
	}
	return uid, gid
}
