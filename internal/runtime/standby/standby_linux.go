package standby

import (
	"errors"
	"strconv"
	"sync"
	"syscall"
)

// SealedName is the name, in the state root's exe directory, of the sealed
// copy of a binary: its device, inode, size and modification time (ns), so
// that a rebuilt binary gets a copy of its own.
func SealedName(dev, ino uint64, size, mtime int64) string {
	return "dock-" + strconv.FormatUint(dev, 16) + "-" + strconv.FormatUint(ino, 16) + "-" +
		strconv.FormatInt(size, 16) + "-" + strconv.FormatInt(mtime, 16)
}

// Spawn starts the sealed binary exe as a monitor on standby for the
// container of stateDir, in a mount namespace and a session of its own,
// with namespaces (comma-separated, may be empty) for the init to start
// ahead. Unused, the monitor ends after idleMillis milliseconds, or once
// the caller's end of their socket closes. It returns the monitor's pid and the caller's end of their
// socket (close-on-exec), which the monitor holds as descriptor 3.
// Descriptors 4 to 6 hold /dev/null until the start puts the container's
// pipes there: a Go process takes the lowest free numbers for its own (the
// poller's, cgroup files), which must not be those.
func Spawn(exe, stateDir, namespaces string, idleMillis int) (pid, sock int, err error) {
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
	argv := []string{MonitorArg0, stateDir, Arg, namespaces, strconv.Itoa(idleMillis)}
	n := uintptr(null)
	pid, err = syscall.ForkExec(exe, argv, &syscall.ProcAttr{
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

// Started is a monitor that Prestart started, until the runtime takes it.
type Started struct {
	Root, ID, Exe string
	Namespaces    string
	Pid, Sock     int
}

var (
	mu      sync.Mutex
	started *Started
	claimed bool // its ID was given to a create
)

// Prestart starts a monitor on standby for a container that this program
// is about to create in the state root root (absolute and clean), under a
// new ID, with namespaces for its init to start ahead. The runtime's
// Create claims the ID (ClaimID) and takes the monitor (Take). It does
// nothing when the root holds no sealed copy of this binary yet, made by
// this user: the first container a binary runs makes it.
func Prestart(root, namespaces string) {
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
	pid, sock, err := Spawn(exe, root+"/containers/"+id, namespaces, PrestartIdleMillis)
	if err != nil {
		return
	}
	started, claimed = &Started{Root: root, ID: id, Exe: exe, Namespaces: namespaces, Pid: pid, Sock: sock}, false
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
