package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/mountopt"
)

// parseOptions splits mount(8) options into flags and the data string.
// Propagation options are dropped: every container mount is private.
func parseOptions(opts []string) (flags uintptr, data string) {
	p := mountopt.Parse(opts)
	return p.Flags, strings.Join(p.Data, ",")
}

// attrOf turns per-mount flags into mount_setattr attributes.
func attrOf(flags uintptr) uint64 {
	var a uint64
	if flags&unix.MS_RDONLY != 0 {
		a |= unix.MOUNT_ATTR_RDONLY
	}
	if flags&unix.MS_NOSUID != 0 {
		a |= unix.MOUNT_ATTR_NOSUID
	}
	if flags&unix.MS_NODEV != 0 {
		a |= unix.MOUNT_ATTR_NODEV
	}
	if flags&unix.MS_NOEXEC != 0 {
		a |= unix.MOUNT_ATTR_NOEXEC
	}
	return a
}

// setAttr sets attributes on the mount at path (or the detached tree fd),
// on every mount below it too when recursive; other attributes are kept.
func setAttr(dirfd int, path string, attr uint64, recursive bool) error {
	if attr == 0 {
		return nil
	}
	var fl uint = unix.AT_SYMLINK_NOFOLLOW
	if path == "" {
		fl |= unix.AT_EMPTY_PATH
	}
	if recursive {
		fl |= unix.AT_RECURSIVE
	}
	return unix.MountSetattr(dirfd, path, fl, &unix.MountAttr{Attr_set: attr})
}

// hostMount is a mount source taken from the host before pivot_root: a
// detached copy of the source's mount tree, attached in the container later.
type hostMount struct {
	fd    int
	dest  string
	isDir bool
}

func cloneHost(src, dest string, recursive bool, attr uint64) (hostMount, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return hostMount{}, fmt.Errorf("mount %s: %w", dest, err)
	}
	var fl uint = unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if recursive {
		fl |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, fl)
	if err != nil {
		return hostMount{}, fmt.Errorf("mount %s on %s: open_tree: %w", src, dest, err)
	}
	if err := setAttr(fd, "", attr, recursive); err != nil {
		unix.Close(fd)
		return hostMount{}, fmt.Errorf("mount %s on %s: set attributes: %w", src, dest, err)
	}
	return hostMount{fd: fd, dest: dest, isDir: fi.IsDir()}, nil
}

func (h *hostMount) attach() error {
	dest, err := mountpoint(h.dest, h.isDir)
	if err != nil {
		return err
	}
	err = unix.MoveMount(h.fd, "", unix.AT_FDCWD, dest, unix.MOVE_MOUNT_F_EMPTY_PATH)
	unix.Close(h.fd)
	h.fd = -1
	if err != nil {
		return fmt.Errorf("mount on %s: %w", h.dest, err)
	}
	return nil
}

// mountpoint makes dest exist as a directory or a file, and returns where
// to mount: dest with the symlinks on its way resolved inside the root, as
// Docker mounts on what a symlink in the image names. It runs after
// pivot_root; the resolution is by name, never through a link, so that a
// magic link of /proc (another process's root, with the host's pid
// namespace) leads nowhere outside.
func mountpoint(dest string, isDir bool) (string, error) {
	dest, err := resolveInRoot(dest)
	if err != nil {
		return "", fmt.Errorf("mount point: %w", err)
	}
	if isDir {
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return "", fmt.Errorf("mount point %s: %w", dest, err)
		}
		return dest, nil
	}
	if err := os.MkdirAll(path.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("mount point %s: %w", dest, err)
	}
	// What the image has there is mounted over as it is, never opened: a
	// FIFO in place of /etc/hosts would hold the start for good. A file
	// made now is opened non-blocking all the same, should a FIFO take
	// its place first.
	if _, err := os.Lstat(dest); err == nil {
		return dest, nil
	}
	fd, err := unix.Open(dest, unix.O_RDONLY|unix.O_CREAT|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %w", dest, err)
	}
	return dest, unix.Close(fd)
}

// resolveInRoot returns p, absolute, with every symlink on its way
// replaced by what it names, read as a path inside "/"; the components
// that do not exist yet are kept as they are.
func resolveInRoot(p string) (string, error) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	done := "/"
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			// Missing (made later, as a directory) or not a link.
			done = next
			continue
		}
		if hops++; hops > 40 {
			return "", &os.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return done, nil
}

// noSymlink refuses a path any of whose components is a symlink, for the
// mounts dock itself places (/proc, /sys, /dev).
func noSymlink(p string) error {
	for cur := p; cur != "/"; cur = path.Dir(cur) {
		fi, err := os.Lstat(cur)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("mount point %s: %s is a symlink", p, cur)
		}
	}
	return nil
}

// dirMountpoint checks and makes a directory mount point: dest, which is p
// in the container, must not pass through a symlink. A lateMount's is made
// here too, for the init to mount on as it finds it.
func dirMountpoint(p, dest string) error {
	if err := noSymlink(dest); err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("mount point %s: %w", p, err)
	}
	return nil
}

func mountAt(src, dest, fstype string, flags uintptr, data string) error {
	if err := dirMountpoint(dest, dest); err != nil {
		return err
	}
	if err := unix.Mount(src, dest, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dest, err)
	}
	return nil
}

// lateMount is a mount that a container's init cloned from a monitor's
// thread (initOnThread) makes itself, once it is in the container's pid
// and cgroup namespaces, as the mounts of proc and cgroup2 take their view
// from their mounter's; setupRootfs leaves those, and the masks and
// read-only paths in proc, to it.
type lateMount struct {
	name                         string // for errors: "mount proc on /proc"
	source, target, fstype, data string
	flags                        uintptr
	attr                         uint64 // set on the mount and those below it, after
	optional                     bool   // skipped when the target is missing
	orBind                       string // bound on the target instead where that is no directory
}

// rootfsSetup is where setupRootfs runs: in a container's init, or on a
// monitor's thread that the init is cloned from.
type rootfsSetup struct {
	console    string // the terminal's path on the host; "" without one
	premounted bool   // the monitor mounted the root (idmapped layers)
	// onThread: the thread is in the container's new namespaces but its
	// pid and cgroup ones; late collects what the init mounts itself.
	onThread bool
	late     []lateMount
}

// inProc reports whether p is /proc or below it.
func inProc(p string) bool { return p == "/proc" || strings.HasPrefix(p, "/proc/") }

// setupRootfs builds the container's filesystem and pivots into it.
func setupRootfs(spec *Spec, rs *rootfsSetup) error {
	userns := spec.hasNew("user")
	premounted := rs.premounted
	if premounted {
		// This thread only: the init runs on it to its exec.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("mount namespace: %w", err)
		}
	}
	if rs.onThread {
		// The init enters its cgroup namespace itself.
	} else if spec.hasNew("cgroup") {
		// Now that the monitor put us into our cgroup, it becomes the
		// root of the new cgroup namespace.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("cgroup namespace: %w", err)
		}
	} else if spec.Namespaces.Join["cgroup"] != "" {
		if err := unix.Setns(initCgroupFD, unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("join cgroup namespace: %w", err)
		}
		unix.Close(initCgroupFD)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / rprivate: %w", err)
	}
	target := path.Join(spec.StateDir, rootfsDir)
	if premounted {
		// The monitor's mount is locked in this namespace, as every mount
		// copied into a less privileged one; pivot_root wants a mount of
		// its own.
		if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("rootfs: bind: %w", err)
		}
	}
	for _, m := range spec.Rootfs {
		if premounted {
			break
		}
		if err := mountRootfs(m, target); err != nil {
			return err
		}
	}

	// Everything taken from the host is cloned now, before the host's tree
	// goes away; it is attached after pivot_root.
	var binds, etcs, devs []hostMount
	var sysfs, console []hostMount
	defer func() {
		for _, l := range [][]hostMount{binds, etcs, devs, sysfs, console} {
			for _, h := range l {
				if h.fd >= 0 {
					unix.Close(h.fd)
				}
			}
		}
	}()
	dests := map[string]bool{}
	for _, m := range spec.Mounts {
		dests[path.Clean(m.Destination)] = true
		if m.Type != "bind" {
			continue
		}
		// Binds are nodev whatever the options say: devices reach a
		// container only through /dev.
		flags, _ := parseOptions(m.Options)
		h, err := cloneHost(m.Source, path.Clean(m.Destination), flags&unix.MS_REC != 0, attrOf(flags|unix.MS_NODEV))
		if err != nil {
			return err
		}
		binds = append(binds, h)
	}
	for _, f := range [...][2]string{{hostsFile, "/etc/hosts"}, {hostnameF, "/etc/hostname"}, {resolvFile, "/etc/resolv.conf"}} {
		src := path.Join(spec.StateDir, f[0])
		if dests[f[1]] {
			continue
		}
		if _, err := os.Stat(src); err != nil {
			continue
		}
		attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC)
		if spec.ReadonlyRootfs {
			attr |= unix.MOUNT_ATTR_RDONLY
		}
		h, err := cloneHost(src, f[1], false, attr)
		if err != nil {
			return err
		}
		etcs = append(etcs, h)
	}
	if userns {
		// Device nodes cannot be made in a user namespace: bind the host's.
		for _, d := range devices {
			h, err := cloneHost("/dev/"+d.name, "/dev/"+d.name, false, 0)
			if err != nil {
				return err
			}
			devs = append(devs, h)
		}
	}
	// The caller's devices: the host's nodes, bound where the spec says.
	var given []hostMount
	defer func() {
		for _, h := range given {
			if h.fd >= 0 {
				unix.Close(h.fd)
			}
		}
	}()
	for _, d := range spec.Devices {
		h, err := cloneHost(d.HostPath, path.Clean(d.Path), false, 0)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.HostPath, err)
		}
		given = append(given, h)
	}
	if userns && !spec.hasNew("net") {
		h, err := cloneHost("/sys", "/sys", true, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		if err != nil {
			return err
		}
		sysfs = append(sysfs, h)
	}
	if rs.console != "" {
		// The terminal lives on the host's devpts, out of reach after
		// pivot_root: take it now.
		h, err := cloneHost(rs.console, "/dev/console", false, 0)
		if err != nil {
			return err
		}
		console = append(console, h)
	}
	var cg unix.Statfs_t
	cgroup2 := spec.hasNew("cgroup") && unix.Statfs("/sys/fs/cgroup", &cg) == nil && cg.Type == unix.CGROUP2_SUPER_MAGIC

	// proc and sysfs go in before pivot_root: in a user namespace the
	// kernel lets them be mounted only while a fully visible instance is
	// in the mount namespace (the host's, until the old root goes). On a
	// thread, there is none: proc is the init's, and so are the masks in
	// it, an empty tmpfs over a directory and /dev/null over a file.
	const nsn = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	var procMasks []lateMount
	if rs.onThread {
		if err := dirMountpoint("/proc", path.Join(target, "proc")); err != nil {
			return err
		}
		rs.late = append(rs.late, lateMount{name: "mount proc on /proc", source: "proc", target: "/proc", fstype: "proc", flags: nsn})
		if !spec.Process.Privileged {
			for _, p := range spec.MaskedPaths {
				if inProc(p) {
					procMasks = append(procMasks, lateMount{name: "mask " + p, source: "tmpfs", target: p, fstype: "tmpfs",
						flags: unix.MS_RDONLY | nsn, data: "size=0", optional: true, orBind: "/dev/null"})
				}
			}
			for _, p := range spec.ReadonlyPaths {
				if inProc(p) {
					procMasks = append(procMasks, lateMount{name: "read-only " + p, source: p, target: p, flags: unix.MS_BIND | unix.MS_REC,
						attr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC, optional: true})
				}
			}
		}
	} else if err := mountAt("proc", path.Join(target, "proc"), "proc", nsn, ""); err != nil {
		return err
	}
	if len(sysfs) == 0 {
		if err := mountAt("sysfs", path.Join(target, "sys"), "sysfs", nsn|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}

	if err := pivotRoot(target); err != nil {
		return err
	}
	// Through the container's own proc, before any mount of the caller's
	// and before /proc/sys is made read-only.
	if err := writeSysctls(spec.Sysctls); err != nil {
		return err
	}

	if err := setupDev(spec, devs, console); err != nil {
		return err
	}
	for i := range given {
		if err := given[i].attach(); err != nil {
			return fmt.Errorf("device %s: %w", spec.Devices[i].HostPath, err)
		}
	}
	if len(sysfs) > 0 {
		if err := noSymlink("/sys"); err != nil {
			return err
		}
		if err := sysfs[0].attach(); err != nil {
			return err
		}
	}
	if cgroup2 && rs.onThread {
		if err := dirMountpoint("/sys/fs/cgroup", "/sys/fs/cgroup"); err != nil {
			return err
		}
		rs.late = append(rs.late, lateMount{name: "mount cgroup2 on /sys/fs/cgroup", source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: nsn | unix.MS_RDONLY})
	} else if cgroup2 {
		if err := mountAt("cgroup2", "/sys/fs/cgroup", "cgroup2", nsn|unix.MS_RDONLY, ""); err != nil {
			return err
		}
	}

	// The caller's mounts, in order, then the /etc files.
	hi := 0
	for _, m := range spec.Mounts {
		dest := path.Clean(m.Destination)
		switch m.Type {
		case "bind":
			if err := binds[hi].attach(); err != nil {
				return err
			}
			hi++
		case "tmpfs":
			flags, data := parseOptions(m.Options)
			dest, err := mountpoint(dest, true)
			if err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", dest, "tmpfs", flags|unix.MS_NODEV, data); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", dest, err)
			}
		default:
			flags, data := parseOptions(m.Options)
			dest, err := mountpoint(dest, true)
			if err != nil {
				return err
			}
			if err := unix.Mount(m.Source, dest, m.Type, flags, data); err != nil {
				return fmt.Errorf("mount %s on %s: %w", m.Type, dest, err)
			}
		}
	}
	for i := range etcs {
		if err := etcs[i].attach(); err != nil {
			return err
		}
	}

	if !spec.Process.Privileged {
		for _, p := range spec.MaskedPaths {
			if rs.onThread && inProc(p) {
				continue
			}
			if err := maskPath(p); err != nil {
				return err
			}
		}
		for _, p := range spec.ReadonlyPaths {
			if rs.onThread && inProc(p) {
				continue
			}
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
	}
	rs.late = append(rs.late, procMasks...)
	if spec.ReadonlyRootfs {
		// The working directory is made while the root can still take it,
		// as Docker makes it before it starts the container.
		if cwd := spec.Process.Cwd; cwd != "" {
			if err := mkdirInRoot(cwd); err != nil {
				return fmt.Errorf("working directory %s: %w", cwd, err)
			}
		}
		if err := setAttr(unix.AT_FDCWD, "/", unix.MOUNT_ATTR_RDONLY, false); err != nil {
			return fmt.Errorf("read-only rootfs: %w", err)
		}
	}
	return nil
}

// mountRootfs mounts one of the rootfs mounts at target, nodev so that no
// device node a layer carries can be used.
func mountRootfs(m Mount, target string) error {
	flags, data := parseOptions(m.Options)
	switch m.Type {
	case "bind", "rbind", "":
		src := m.Source
		if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("rootfs: bind %s: %w", src, err)
		}
		if err := setAttr(unix.AT_FDCWD, target, attrOf(flags)|unix.MOUNT_ATTR_NODEV, true); err != nil {
			return fmt.Errorf("rootfs: %s: %w", src, err)
		}
	default:
		if m.Type == "overlay" && len(data) >= unix.Getpagesize() {
			// The kernel takes one page of options: with many layers, name
			// them relative to their common directory instead.
			dir, short := shortenOverlay(m.Options)
			if err := unix.Chdir(dir); err != nil {
				return fmt.Errorf("rootfs: %w", err)
			}
			defer unix.Chdir("/")
			_, data = parseOptions(short)
		}
		if err := unix.Mount(m.Source, target, m.Type, flags|unix.MS_NODEV, data); err != nil {
			return fmt.Errorf("rootfs: mount %s: %w", m.Type, err)
		}
	}
	return nil
}

// shortenOverlay rewrites the lowerdir, upperdir and workdir options
// relative to the deepest directory holding all of them.
func shortenOverlay(opts []string) (string, []string) {
	var paths []string
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	if len(paths) == 0 {
		return "/", opts
	}
	common := path.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = path.Dir(common)
		}
	}
	rel := func(p string) string {
		switch {
		case p == common:
			return "."
		case common == "/":
			return strings.TrimPrefix(p, "/")
		}
		if r, ok := strings.CutPrefix(p, common+"/"); ok {
			return r
		}
		return p
	}
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			l := strings.Split(v, ":")
			for i := range l {
				l[i] = rel(l[i])
			}
			o = k + "=" + strings.Join(l, ":")
		case "upperdir", "workdir":
			o = k + "=" + rel(v)
		}
		out = append(out, o)
	}
	return common, out
}

// pivotRoot makes target the root and drops the host's tree: with both
// arguments ".", the old root ends up stacked under the new one and is
// detached at once, no directory needed for it.
func pivotRoot(target string) error {
	if err := unix.Chdir(target); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

type device struct {
	name         string
	major, minor uint32
}

var devices = []device{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

func setupDev(spec *Spec, hostDevs, console []hostMount) error {
	// /dev is nodev, like every other mount of the container: a node made
	// there later (CAP_MKNOD is a default capability) cannot be opened. The
	// standard nodes are each a bind mount of their own, without nodev.
	if err := mountAt("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	if len(hostDevs) > 0 {
		for i := range hostDevs {
			if err := hostDevs[i].attach(); err != nil {
				return err
			}
		}
	} else {
		for _, d := range devices {
			p := "/dev/" + d.name
			if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
				return fmt.Errorf("mknod %s: %w", p, err)
			}
			if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("dev: bind %s: %w", p, err)
			}
			if err := unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_NODEV}); err != nil {
				return fmt.Errorf("dev: %s: %w", p, err)
			}
		}
	}
	ptsOpts := "newinstance,ptmxmode=0666,mode=0620"
	if !spec.hasNew("user") {
		ptsOpts += ",gid=5"
	}
	const nsn = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := mountAt("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts); err != nil {
		return err
	}
	shm := "mode=1777,size=65536k"
	if spec.ShmSize > 0 {
		shm = "mode=1777,size=" + strconv.FormatInt(spec.ShmSize, 10)
	}
	if err := mountAt("shm", "/dev/shm", "tmpfs", nsn, shm); err != nil {
		return err
	}
	if err := mountAt("mqueue", "/dev/mqueue", "mqueue", nsn, ""); err != nil {
		return err
	}
	for _, l := range [...][2]string{
		{"pts/ptmx", "/dev/ptmx"}, {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}, {"/proc/kcore", "/dev/core"},
	} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	// The terminal is the container's console too.
	for i := range console {
		if err := console[i].attach(); err != nil {
			return err
		}
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory.
func maskPath(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if fi.IsDir() {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	} else {
		err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

// readonlyPath remounts p, and every mount below it, read-only.
func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	if err := setAttr(unix.AT_FDCWD, p, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, true); err != nil {
		return fmt.Errorf("read-only %s: %w", p, err)
	}
	return nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setupProcess sets up the namespaces the init made: hostname, loopback.
func setupProcess(spec *Spec) error {
	if spec.hasNew("uts") && spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if spec.hasNew("net") {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
	}
	return nil
}

// resource is rl's resource number for setrlimit(2).
func (rl Rlimit) resource() (int, error) {
	r, ok := rlimits[strings.ToUpper(rl.Type)]
	if !ok {
		return 0, fmt.Errorf("rlimit %q: unknown", rl.Type)
	}
	return r, nil
}

// setLimits sets the process's OOM score and resource limits.
func setLimits(p *Process) error {
	if adj := p.OOMScoreAdj; adj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*adj)), 0); err != nil {
			return fmt.Errorf("oom_score_adj: %w", err)
		}
	}
	for _, rl := range p.Rlimits {
		r, err := rl.resource()
		if err != nil {
			return err
		}
		if err := unix.Setrlimit(r, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("rlimit %s: %w", rl.Type, err)
		}
	}
	return nil
}

// raiseHardLimits raises the hard limits of the init pid to those of rls
// above them. An init in its own user namespace cannot: that needs
// CAP_SYS_RESOURCE in the host's. The init sets its limits as rls gives
// them once it is set up; until then it only has more room.
func raiseHardLimits(pid int, rls []Rlimit) error {
	for _, rl := range rls {
		r, err := rl.resource()
		if err != nil {
			return err
		}
		var cur unix.Rlimit
		if err := unix.Prlimit(pid, r, nil, &cur); err != nil {
			return fmt.Errorf("rlimit %s: %w", rl.Type, err)
		}
		if rl.Hard <= cur.Max {
			continue
		}
		if err := unix.Prlimit(pid, r, &unix.Rlimit{Cur: cur.Cur, Max: rl.Hard}, nil); err != nil {
			return fmt.Errorf("rlimit %s: %w", rl.Type, err)
		}
	}
	return nil
}

// writeSysctls writes each of sysctls to its file under /proc/sys, in
// the order of their names. Each is opened beneath /proc/sys, checked to
// be a proc, following no symbolic link: a name the caller allowed must
// not lead to a sysctl of the host's.
func writeSysctls(sysctls map[string]string) error {
	if len(sysctls) == 0 {
		return nil
	}
	dir, err := unix.Open("/proc/sys", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sysctl: %w", err)
	}
	defer unix.Close(dir)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dir, &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("sysctl: /proc/sys is not the container's proc")
	}
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		fd, err := unix.Openat2(dir, sysctlPath(k), &unix.OpenHow{
			Flags:   unix.O_WRONLY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
		_, err = unix.Write(fd, []byte(sysctls[k]))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in the new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
