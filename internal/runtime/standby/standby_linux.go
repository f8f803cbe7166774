package standby

import (
	"errors"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// SealedName is the name, in the state root's exe directory, of the sealed
// copy of a binary: its device, inode, size and modification time (ns), so
// that a rebuilt binary gets a copy of its own.
func SealedName(dev, ino uint64, size, mtime int64) string {
	return "dock-" + strconv.FormatUint(dev, 16) + "-" + strconv.FormatUint(ino, 16) + "-" +
		strconv.FormatInt(size, 16) + "-" + strconv.FormatInt(mtime, 16)
}

// Spawn starts the sealed binary exe as a monitor on standby for the
// container of stateDir, in a mount namespace and a session of its own.
// Unused, the monitor ends after idleMillis milliseconds, or once the
// caller's end of their socket closes. It returns the monitor's pid and the caller's end of their
// socket (close-on-exec), which the monitor holds as descriptor 3.
// Descriptors 4 to 6 hold /dev/null until the start puts the container's
// pipes there: a Go process takes the lowest free numbers for its own (the
// poller's, cgroup files), which must not be those.
func Spawn(exe, stateDir string, idleMillis int) (pid, sock int, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, -1, err
	}
	defer syscall.Close(fds[1])
	null, err := syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		syscall.Close(fds[0])
		return 0, -1, err
	}
	defer syscall.Close(null)
	sealed, err := OpenSealed(exe)
	if err != nil {
		syscall.Close(fds[0])
		return 0, -1, err
	}
	defer syscall.Close(sealed)
	argv := []string{MonitorArg0, stateDir, Arg, strconv.Itoa(idleMillis)}
	n := uintptr(null)
	pid, err = syscall.ForkExec(SealedPath(sealed), argv, &syscall.ProcAttr{
		Dir:   "/",
		Env:   MonitorEnv,
		Files: []uintptr{n, n, n, uintptr(fds[1]), n, n, n},
		Sys:   &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWNS},
	})
	if err != nil {
		syscall.Close(fds[0])
		return 0, -1, err
	}
	return pid, fds[0], nil
}

// OpenSealed opens exe, the sealed copy of a binary, on a detached
// read-only mount of its own (open_tree(2), mount_setattr(2)), close-on-exec.
// A monitor executed through it (SealedPath) has it as /proc/PID/exe, as
// has every process the monitor clones until it executes another
// program: no process of a container can open the copy for writing
// through those links, even once nothing executes it any more
// (CVE-2019-5736).
func OpenSealed(exe string) (int, error) {
	p, err := syscall.BytePtrFromString(exe)
	if err != nil {
		return -1, err
	}
	tree, _, e := syscall.Syscall(sysOpenTree, atFDCWD, uintptr(unsafe.Pointer(p)), openTreeClone|syscall.O_CLOEXEC)
	if e != 0 {
		return -1, &sealError{"open_tree " + exe, e}
	}
	// Above the numbers a child's stdio and extra files take before it
	// executes the binary through this one.
	fd, _, e := syscall.Syscall(syscall.SYS_FCNTL, tree, syscall.F_DUPFD_CLOEXEC, minSealedFD)
	syscall.Close(int(tree))
	if e != 0 {
		return -1, &sealError{"open_tree " + exe, e}
	}
	attr := mountAttr{set: mountAttrRdonly | mountAttrNosuid | mountAttrNodev}
	empty := [1]byte{}
	if _, _, e := syscall.Syscall6(sysMountSetattr, fd, uintptr(unsafe.Pointer(&empty[0])), atEmptyPath,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0); e != 0 {
		syscall.Close(int(fd))
		return -1, &sealError{"mount_setattr " + exe, e}
	}
	return int(fd), nil
}

// sealError is a failed step of OpenSealed.
type sealError struct {
	step string
	err  error
}

func (e *sealError) Error() string { return e.step + ": " + e.err.Error() }
func (e *sealError) Unwrap() error { return e.err }

// SealedPath is the path to execute the binary OpenSealed opened as fd.
func SealedPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// The system calls OpenSealed makes, which package syscall lacks; their
// numbers are the same on every architecture.
const (
	sysOpenTree     = 428
	sysMountSetattr = 442
	openTreeClone   = 1
	atFDCWD         = ^uintptr(99) // -100
	atEmptyPath     = 0x1000
	mountAttrRdonly = 0x1
	mountAttrNosuid = 0x2
	mountAttrNodev  = 0x4
	minSealedFD     = 100
)

// mountAttr is struct mount_attr.
type mountAttr struct {
	set, clr, propagation, userns uint64
}

// Started is a monitor that Prestart started, until the runtime takes it.
type Started struct {
	Root, ID, Exe string
	Pid, Sock     int
}

var (
	mu      sync.Mutex
	started *Started
	claimed bool // its ID was given to a create
)

// Prestart starts a monitor on standby for a container that this program
// is about to create in the state root root (absolute and clean), under a
// new ID. The runtime's
// Create claims the ID (ClaimID) and takes the monitor (Take). It does
// nothing when the root holds no sealed copy of this binary yet, made by
// this user: the first container a binary runs makes it.
func Prestart(root string) {
	mu.Lock()
	defer mu.Unlock()
	if started != nil || root == "" || root[0] != '/' {
		return
	}
	var st, sealed syscall.Stat_t
	if syscall.Stat("/proc/self/exe", &st) != nil {
		return
	}
	exe := root + "/exe/" + SealedName(st.Dev, st.Ino, st.Size, st.Mtim.Nano())
	if syscall.Stat(exe, &sealed) != nil || sealed.Size != st.Size || sealed.Mode&0o7777 != 0o555 ||
		sealed.Uid != uint32(syscall.Geteuid()) {
		return
	}
	id, err := NewID()
	if err != nil {
		return
	}
	pid, sock, err := Spawn(exe, root+"/containers/"+id, PrestartIdleMillis)
	if err != nil {
		return
	}
	started, claimed = &Started{Root: root, ID: id, Exe: exe, Pid: pid, Sock: sock}, false
}

// ClaimID returns, once, the ID of the container that the monitor Prestart
// started waits for, if it was started for root; "" otherwise.
func ClaimID(root string) string {
	mu.Lock()
	defer mu.Unlock()
	if started == nil || claimed || started.Root != root {
		return ""
	}
	claimed = true
	return started.ID
}

// Take returns, once, the monitor Prestart started, whatever it was started
// for; nil if none. The caller uses it or ends it (closing Sock ends it)
// and reaps it.
func Take() *Started {
	mu.Lock()
	defer mu.Unlock()
	s := started
	started = nil
	return s
}

// NewID returns a new random container ID: 64 hex digits.
func NewID() (string, error) {
	fd, err := syscall.Open("/dev/urandom", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	var b [32]byte
	for got := 0; got < len(b); {
		n, err := syscall.Read(fd, b[got:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n <= 0 {
			return "", errors.New("/dev/urandom: no bytes")
		}
		got += n
	}
	const digits = "0123456789abcdef"
	var id [64]byte
	for i, c := range b {
		id[2*i], id[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(id[:]), nil
}
