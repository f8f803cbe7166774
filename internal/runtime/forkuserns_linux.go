package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A process joins a user namespace only while it has a single thread, which
// a Go program never has once it runs. So the child of a raw clone joins it,
// between the clone and the exec, as package syscall's child does its work:
// with the runtime's fork hooks, which block signals and keep the child from
// growing its stack, and raw system calls only.

//go:linkname beforeFork syscall.runtime_BeforeFork
func beforeFork()

//go:linkname afterFork syscall.runtime_AfterFork
func afterFork()

//go:linkname afterForkInChild syscall.runtime_AfterForkInChild
func afterForkInChild()

// cloneArgs is the kernel's struct clone_args (version 2, with cgroup).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal uint64
	stack, stackSize, tls, setTID, setTIDSize     uint64
	cgroup                                        uint64
}

// userNSChild is what the child of startInUserNS works from, all prepared
// by the parent.
type userNSChild struct {
	clone   cloneArgs
	userns  uintptr
	fds     []uintptr // the child's descriptor i becomes fds[i]; each is >= len(fds)
	errPipe uintptr   // >= len(fds) as well
	setsid  bool
	setctty bool // descriptor 0 becomes the controlling terminal
	dir     *byte
	path    *byte
	argv    []*byte
	envv    []*byte
}

// startInUserNS starts c as the root of the user namespace c.UserNS: the
// child joins it, takes the namespace's ids 0 and drops the host's
// supplementary groups, then sets up its descriptors, session and
// directory as os.StartProcess would, and executes c.Path. The namespaces
// of the calling thread, and c's cgroup on cgroup v2, are the child's.
func (c *command) startInUserNS(files []*os.File, env []string) error {
	if len(c.Args) == 0 {
		return errors.New("no arguments")
	}
	path, err := syscall.BytePtrFromString(c.Path)
	if err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(c.Args)
	if err != nil {
		return err
	}
	envv, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	dirp, err := syscall.BytePtrFromString(dir)
	if err != nil {
		return err
	}
	ch := &userNSChild{
		userns: c.UserNS.Fd(),
		path:   path,
		argv:   argv,
		envv:   envv,
		dir:    dirp,
	}
	ch.clone.exitSignal = uint64(unix.SIGCHLD)
	if sys := c.SysProcAttr; sys != nil {
		ch.setsid = sys.Setsid
		if sys.Setctty {
			if sys.Ctty != 0 {
				return errors.New("a controlling terminal other than descriptor 0")
			}
			ch.setctty = true
		}
		if sys.UseCgroupFD {
			ch.clone.flags |= unix.CLONE_INTO_CGROUP
			ch.clone.cgroup = uint64(sys.CgroupFD)
		}
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(p[0])
	syscall.ForkLock.Lock()
	pid, err := ch.fork(files, p[1])
	syscall.ForkLock.Unlock()
	unix.Close(p[1])
	goruntime.KeepAlive(c.UserNS)
	if err != nil {
		return err
	}

	// The pipe closes at the exec; an errno on it is the child's failure.
	var childErr syscall.Errno
	buf := (*[unsafe.Sizeof(childErr)]byte)(unsafe.Pointer(&childErr))[:]
	n, _ := readFull(p[0], buf)
	if n == len(buf) {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil) // the monitor's reaper may get there first
		return fmt.Errorf("join the user namespace and exec %s: %w", c.Path, childErr)
	}
	c.Process, err = os.FindProcess(pid)
	return err
}

// fork starts the child with copies of files and of errPipe, numbered
// above every descriptor the child assigns, so that no dup2 in the child
// overwrites one it has yet to copy. The caller holds syscall.ForkLock.
func (ch *userNSChild) fork(files []*os.File, errPipe int) (int, error) {
	var dups []int
	defer func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}()
	dup := func(fd uintptr) (uintptr, error) {
		d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, len(files))
		if err != nil {
			return 0, err
		}
		dups = append(dups, d)
		return uintptr(d), nil
	}
	for _, f := range files {
		d, err := dup(f.Fd())
		if err != nil {
			return 0, err
		}
		ch.fds = append(ch.fds, d)
	}
	var err error
	if ch.errPipe, err = dup(uintptr(errPipe)); err != nil {
		return 0, err
	}
	pid, errno := forkInUserNS(ch)
	goruntime.KeepAlive(ch)
	goruntime.KeepAlive(files)
	if errno != 0 {
		return 0, os.NewSyscallError("clone3", errno)
	}
	return pid, nil
}

// readFull reads into b until it is full, the end, or an error.
func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if m <= 0 {
			return n, err
		}
		n += m
	}
	return n, nil
}

// forkInUserNS clones the calling process; the child does c's work and
// executes c.path, or writes the errno that stopped it to c.errPipe and
// exits 253. It returns the child's pid in the parent.
//
//go:norace
//go:nocheckptr
//go:noinline
func forkInUserNS(c *userNSChild) (pid int, errno syscall.Errno) {
	beforeFork()
	r, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.clone)), unsafe.Sizeof(c.clone), 0)
	if e != 0 || r != 0 {
		afterFork()
		return int(r), e
	}
	afterForkInChild()
	e = userNSChildSetup(c)
	if e == 0 {
		_, _, e = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(c.path)),
			uintptr(unsafe.Pointer(&c.argv[0])), uintptr(unsafe.Pointer(&c.envv[0])))
	}
	syscall.RawSyscall(unix.SYS_WRITE, c.errPipe, uintptr(unsafe.Pointer(&e)), unsafe.Sizeof(e))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// userNSChildSetup is the child's work before the exec.
//
//go:norace
//go:nocheckptr
//go:nosplit
func userNSChildSetup(c *userNSChild) syscall.Errno {
	if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, c.userns, unix.CLONE_NEWUSER, 0); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetgroups, 0, 0, 0); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetresgid, 0, 0, 0); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetresuid, 0, 0, 0); e != 0 {
		return e
	}
	if c.setsid {
		if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
			return e
		}
	}
	for i := 0; i < len(c.fds); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, c.fds[i], uintptr(i), 0); e != 0 {
			return e
		}
	}
	if c.setctty {
		if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0); e != 0 {
			return e
		}
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.dir)), 0, 0); e != 0 {
		return e
	}
	return 0
}
