package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/dockkit/dock/internal/caps"
	"golang.org/x/sys/unix"
)

// A process exec'd into a running container is a child of the monitor from
// a raw clone that becomes the user's command with system calls alone, as
// package syscall's child does between fork and exec: under the runtime's
// fork hooks (signals blocked, a stack that must not grow), allocating
// nothing. That lets it join the container's user and mount namespaces,
// which a process joins only while it has one thread, which no Go program
// has; and it keeps the time it spends in the container's pid namespace
// before it is in the container's mount namespace and has dropped its
// privileges down to a few system calls, during which it is not dumpable,
// so that nothing in the container can ptrace it or reach the host
// through /proc/PID/root or cwd (the CVE-2016-9962 family). (Coverage
// counters, which go test -cover puts in these functions too, are plain
// stores in the child's copy of memory; under -race they would go through
// the race runtime, so do not combine the two for this package.)

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

// atFDCWD is AT_FDCWD as a system call argument.
const atFDCWD = ^uintptr(99) // -100

// The steps of the child, as it reports the one that failed.
const (
	stageDumpable = iota
	stageUserNS
	stageNSRoot
	stageMountNS
	stageSession
	stageStdio
	stageTerminal
	stageWait
	stageCgroupNS
	stageRlimit
	stageOOMScore
	stageWorkdir
	stageSeccomp
	stageBounding
	stageUser
	stageCaps
	stageNoNewPrivs
	stageUserWorkdir
	stageExec
)

// childError is what the child writes to its error pipe when it stops.
type childError struct {
	Stage, Errno, Index uint32
}

type rlimitSet struct {
	resource uintptr
	lim      unix.Rlimit
}

// execChild is everything the child of forkExec works from, prepared by
// the parent. Descriptors are the parent's, all above 2 and close-on-exec.
type execChild struct {
	useClone3      bool
	clone          cloneArgs
	cloneA, cloneB uintptr // clone's first arguments, when not clone3
	userns         int     // -1: the host's
	mntns          int
	cgroupns       int // -1: stay
	wait           int // -1: none; else one byte comes on it once the child is in its cgroups
	errPipe        int
	stdio          [3]int
	setctty        bool
	rlimits        []rlimitSet
	oomPath        *byte // nil: keep
	oomValue       []byte
	mkdirs         []*byte // the working directory and its parents, made if missing
	cwd            *byte
	filter         *unix.SockFprog // nil: none
	early          bool            // load filter before giving up root, which it needs without no_new_privs
	drop           []uintptr       // capabilities dropped from the bounding set
	groups         []uint32
	uid, gid       uintptr
	setCaps        bool
	capHdr         unix.CapUserHeader
	capData        [2]unix.CapUserData
	nnp            bool
	paths          []*byte // the command's candidates, tried in order
	argv           []*byte
	envv           []*byte

	// Kept alive with the child, which reads through pointers into them.
	filterProg []unix.SockFilter
}

// execSetup is what the monitor gives newExecChild.
type execSetup struct {
	proc       *Process
	filter     []unix.SockFilter
	userns     *os.File // nil: none
	mntns      *os.File
	cgroupns   *os.File // nil: none
	cgroupFD   int      // -1: join the cgroup later (v1)
	stdio      []*os.File
	nofile     *unix.Rlimit // the container's, when proc gives none
	privileged bool
}

// newExecChild prepares the child for s.
func newExecChild(s *execSetup) (*execChild, error) {
	p := s.proc
	if len(p.Args) == 0 {
		return nil, errors.New("no command")
	}
	c := &execChild{userns: -1, cgroupns: -1, wait: -1, mntns: int(s.mntns.Fd())}
	c.clone.exitSignal = uint64(unix.SIGCHLD)
	if s.cgroupFD >= 0 {
		c.clone.flags |= unix.CLONE_INTO_CGROUP
		c.clone.cgroup = uint64(s.cgroupFD)
	}
	if s.userns != nil {
		c.userns = int(s.userns.Fd())
	}
	if s.cgroupns != nil {
		c.cgroupns = int(s.cgroupns.Fd())
	}
	c.setctty = p.Terminal

	haveNofile := false
	for _, rl := range p.Rlimits {
		r, ok := rlimits[strings.ToUpper(rl.Type)]
		if !ok {
			return nil, fmt.Errorf("rlimit %q: unknown", rl.Type)
		}
		haveNofile = haveNofile || r == unix.RLIMIT_NOFILE
		c.rlimits = append(c.rlimits, rlimitSet{uintptr(r), unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}})
	}
	// The monitor's own soft limit is the one the Go runtime raised.
	if !haveNofile && s.nofile != nil {
		c.rlimits = append(c.rlimits, rlimitSet{unix.RLIMIT_NOFILE, *s.nofile})
	}
	var err error
	if p.OOMScoreAdj != nil {
		if c.oomPath, err = unix.BytePtrFromString("/proc/self/oom_score_adj"); err != nil {
			return nil, err
		}
		c.oomValue = []byte(strconv.Itoa(*p.OOMScoreAdj))
	}

	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("working directory %q: not absolute", cwd)
	}
	for d := path.Clean(cwd); d != "/"; d = path.Dir(d) {
		b, err := unix.BytePtrFromString(d)
		if err != nil {
			return nil, err
		}
		c.mkdirs = append([]*byte{b}, c.mkdirs...)
	}
	if c.cwd, err = unix.BytePtrFromString(cwd); err != nil {
		return nil, err
	}

	if len(s.filter) > 0 {
		if len(s.filter) > unix.BPF_MAXINSNS {
			return nil, fmt.Errorf("seccomp: filter of %d instructions", len(s.filter))
		}
		c.filterProg = s.filter
		c.filter = &unix.SockFprog{Len: uint16(len(s.filter)), Filter: &c.filterProg[0]}
		c.early = !p.NoNewPrivs
	}
	if !s.privileged {
		keep, err := caps.NewSet(p.Caps)
		if err != nil {
			return nil, fmt.Errorf("capabilities: %w", err)
		}
		known := caps.Set(1)<<(caps.Last()+1) - 1
		for n := 0; n <= caps.Last(); n++ {
			if !keep.Has(n) {
				c.drop = append(c.drop, uintptr(n))
			}
		}
		keep &= known
		c.setCaps = true
		c.capHdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		c.capData = [2]unix.CapUserData{
			{Effective: uint32(keep), Permitted: uint32(keep)},
			{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
		}
	}
	c.groups = append([]uint32{}, p.User.AdditionalGIDs...)
	c.uid, c.gid = uintptr(p.User.UID), uintptr(p.User.GID)
	c.nnp = p.NoNewPrivs

	env := p.Env
	if !hasEnv(env, "PATH") {
		env = append(append([]string(nil), env...), defaultPath)
	}
	for _, cand := range commandPaths(p.Args[0], env) {
		b, err := unix.BytePtrFromString(cand)
		if err != nil {
			return nil, err
		}
		c.paths = append(c.paths, b)
	}
	if c.argv, err = syscall.SlicePtrFromStrings(p.Args); err != nil {
		return nil, err
	}
	if c.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return nil, err
	}
	return c, nil
}

// commandPaths lists where the child looks for file: file itself when it
// holds a slash, else each directory of PATH ("" being the working
// directory), as execvp and Docker do.
func commandPaths(file string, env []string) []string {
	if strings.Contains(file, "/") {
		return []string{file}
	}
	p := getEnv(env, "PATH")
	if p == "" {
		return nil
	}
	var out []string
	for _, dir := range strings.Split(p, ":") {
		if dir == "" {
			dir = "."
		}
		out = append(out, path.Join(dir, file))
	}
	return out
}

// start starts the child with s's stdio on the calling thread, whose
// namespaces the child has, and returns its pid once it has executed the
// command; a failure of the child comes back as a *StartError with
// Docker's exit code. join puts a child in its cgroups when it was not
// cloned into them (cgroup v1, or a kernel without clone3, or seccomp
// refusing it as Docker's default profile does): it is called with the
// child's pid before the child goes on.
func (c *execChild) start(s *execSetup, join func(pid int) error) (int, error) {
	clone3 := !noClone3.Load()
	pid, report, err := c.spawn(s, join, clone3)
	if errors.Is(err, unix.ENOSYS) && clone3 {
		noClone3.Store(true)
		pid, report, err = c.spawn(s, join, false)
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(report)
	// The pipe closes at the exec; a report on it is the child's failure.
	var ce childError
	buf := (*[unsafe.Sizeof(ce)]byte)(unsafe.Pointer(&ce))[:]
	if n, _ := readFull(report, buf); n == len(buf) {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil) // the monitor's reaper may get there first
		return 0, c.explain(s.proc, ce)
	}
	return pid, nil
}

// noClone3 is set once clone3 has answered ENOSYS.
var noClone3 atomic.Bool

// spawn starts the child, with clone3 or clone, and lets it go on once it
// is in its cgroups; it returns the child's pid and the end of its error
// pipe to read.
func (c *execChild) spawn(s *execSetup, join func(pid int) error, clone3 bool) (pid, report int, err error) {
	c.useClone3 = clone3
	c.cloneArgs()
	intoCgroup := clone3 && s.cgroupFD >= 0
	if !intoCgroup && s.cgroupFD >= 0 && join == nil {
		return 0, -1, errors.New("no way into the cgroup without clone3")
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		return 0, -1, err
	}
	c.errPipe, c.wait = errPipe[1], -1
	wait := [2]int{-1, -1}
	if join != nil && !intoCgroup {
		if err := unix.Pipe2(wait[:], unix.O_CLOEXEC); err != nil {
			unix.Close(errPipe[0])
			unix.Close(errPipe[1])
			return 0, -1, err
		}
		defer unix.Close(wait[1])
		c.wait = wait[0]
	}
	if !intoCgroup {
		c.clone.flags &^= unix.CLONE_INTO_CGROUP
	}
	pid, err = c.fork(s)
	unix.Close(errPipe[1])
	if wait[0] >= 0 {
		unix.Close(wait[0])
	}
	if err != nil {
		unix.Close(errPipe[0])
		return 0, -1, err
	}
	if c.wait >= 0 {
		err := join(pid)
		if err == nil {
			_, err = unix.Write(wait[1], []byte{1})
		}
		if err != nil {
			unix.Kill(pid, unix.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
			unix.Close(errPipe[0])
			return 0, -1, err
		}
	}
	return pid, errPipe[0], nil
}

// cloneArgs sets the arguments of clone, for when clone3 is not to be used:
// a fork that signals SIGCHLD, the stack argument first on s390x.
func (c *execChild) cloneArgs() {
	c.cloneA, c.cloneB = uintptr(unix.SIGCHLD), 0
	if goruntime.GOARCH == "s390x" {
		c.cloneA, c.cloneB = 0, uintptr(unix.SIGCHLD)
	}
}

// fork starts the child with copies of the stdio descriptors numbered above
// 2, so that none of the child's dup3 calls overwrites another's source.
func (c *execChild) fork(s *execSetup) (int, error) {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	var dups []int
	defer func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}()
	for i, f := range s.stdio {
		d, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return 0, err
		}
		dups = append(dups, d)
		c.stdio[i] = d
	}
	pid, errno := forkExec(c)
	goruntime.KeepAlive(c)
	goruntime.KeepAlive(s)
	if errno != 0 {
		name := "clone3"
		if !c.useClone3 {
			name = "clone"
		}
		return 0, os.NewSyscallError(name, errno)
	}
	return pid, nil
}

// explain turns the child's report into the error Exec returns.
func (c *execChild) explain(p *Process, ce childError) error {
	errno := syscall.Errno(ce.Errno)
	file := p.Args[0]
	if ce.Stage == stageExec {
		code := 125
		switch errno {
		case unix.ENOENT, unix.ENOTDIR:
			code = 127
			if !strings.Contains(file, "/") {
				return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", file)}
			}
			return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: stat %s: no such file or directory", file, file)}
		case unix.EACCES, unix.EPERM, unix.ENOEXEC, unix.EISDIR:
			code = 126
		}
		return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: %v", file, errno)}
	}
	what := map[uint32]string{
		stageDumpable:    "make the process undumpable",
		stageUserNS:      "enter the user namespace",
		stageNSRoot:      "become the user namespace's root",
		stageMountNS:     "enter the mount namespace",
		stageSession:     "start a session",
		stageStdio:       "set up stdio",
		stageTerminal:    "take the terminal",
		stageWait:        "wait for the cgroup",
		stageCgroupNS:    "enter the cgroup namespace",
		stageOOMScore:    "oom_score_adj",
		stageWorkdir:     "working directory " + p.Cwd,
		stageSeccomp:     "seccomp",
		stageBounding:    "capabilities: bounding set",
		stageUser:        fmt.Sprintf("user %d:%d", p.User.UID, p.User.GID),
		stageCaps:        "capabilities",
		stageNoNewPrivs:  "no_new_privs",
		stageUserWorkdir: "working directory " + p.Cwd,
	}[ce.Stage]
	if ce.Stage == stageRlimit && int(ce.Index) < len(c.rlimits) {
		what = fmt.Sprintf("rlimit %d", c.rlimits[ce.Index].resource)
	}
	code := 125
	if ce.Stage == stageUserWorkdir {
		code = 126 // the user may not be allowed in
	}
	return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %s: %v", what, errno)}
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

// forkExec clones the calling process; the child does c's work and
// executes the command, or writes a childError to c.errPipe and exits
// 253. It returns the child's pid in the parent.
//
//go:norace
//go:nocheckptr
//go:noinline
func forkExec(c *execChild) (pid int, errno syscall.Errno) {
	var ce childError
	var r uintptr
	var e syscall.Errno
	beforeFork()
	if c.useClone3 {
		r, _, e = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.clone)), unsafe.Sizeof(c.clone), 0)
	} else {
		r, _, e = syscall.RawSyscall6(unix.SYS_CLONE, c.cloneA, c.cloneB, 0, 0, 0, 0)
	}
	if e != 0 || r != 0 {
		afterFork()
		return int(r), e
	}
	afterForkInChild()
	childRun(c, &ce)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(c.errPipe), uintptr(unsafe.Pointer(&ce)), unsafe.Sizeof(ce))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// childRun is the child's work: it returns only when a step fails, with
// the step in ce.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childRun(c *execChild, ce *childError) {
	if e := childEnter(c, ce); e != 0 {
		ce.Errno = uint32(e)
		return
	}
	if e := childPrivileges(c, ce); e != 0 {
		ce.Errno = uint32(e)
		return
	}
	ce.Stage = stageExec
	denied := false
	for i := 0; i < len(c.paths); i++ {
		_, _, e := syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(c.paths[i])),
			uintptr(unsafe.Pointer(&c.argv[0])), uintptr(unsafe.Pointer(&c.envv[0])))
		if e == unix.ENOENT || e == unix.ENOTDIR {
			continue
		}
		if e == unix.EACCES {
			denied = true
			continue
		}
		ce.Errno, ce.Index = uint32(e), uint32(i)
		return
	}
	ce.Errno = uint32(unix.ENOENT)
	if denied {
		ce.Errno = uint32(unix.EACCES)
	}
}

// childEnter moves the child into the container: namespaces, session,
// stdio, cgroups, limits and working directory. It sets ce.Stage as it goes.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childEnter(c *execChild, ce *childError) syscall.Errno {
	ce.Stage = stageDumpable
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0); e != 0 {
		return e
	}
	if c.userns >= 0 {
		ce.Stage = stageUserNS
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.userns), unix.CLONE_NEWUSER, 0); e != 0 {
			return e
		}
		ce.Stage = stageNSRoot
		if _, _, e := syscall.RawSyscall(sysSetgroups, 0, 0, 0); e != 0 {
			return e
		}
		if _, _, e := syscall.RawSyscall(sysSetresgid, 0, 0, 0); e != 0 {
			return e
		}
		if _, _, e := syscall.RawSyscall(sysSetresuid, 0, 0, 0); e != 0 {
			return e
		}
	}
	ce.Stage = stageMountNS
	if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.mntns), unix.CLONE_NEWNS, 0); e != 0 {
		return e
	}
	ce.Stage = stageSession
	if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		return e
	}
	ce.Stage = stageStdio
	for i := 0; i < len(c.stdio); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(c.stdio[i]), uintptr(i), 0); e != 0 {
			return e
		}
	}
	if c.setctty {
		ce.Stage = stageTerminal
		if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0); e != 0 {
			return e
		}
	}
	if c.wait >= 0 {
		ce.Stage = stageWait
		var b [1]byte
		n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(c.wait), uintptr(unsafe.Pointer(&b[0])), 1)
		if e != 0 {
			return e
		}
		if n != 1 {
			return unix.EPIPE
		}
	}
	if c.cgroupns >= 0 {
		ce.Stage = stageCgroupNS
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.cgroupns), unix.CLONE_NEWCGROUP, 0); e != 0 {
			return e
		}
	}
	ce.Stage = stageRlimit
	for i := 0; i < len(c.rlimits); i++ {
		ce.Index = uint32(i)
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, c.rlimits[i].resource,
			uintptr(unsafe.Pointer(&c.rlimits[i].lim)), 0, 0, 0); e != 0 {
			return e
		}
	}
	ce.Index = 0
	if c.oomPath != nil {
		ce.Stage = stageOOMScore
		fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(c.oomPath)),
			unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return e
		}
		_, _, e = syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.oomValue[0])), uintptr(len(c.oomValue)))
		syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		if e != 0 {
			return e
		}
	}
	ce.Stage = stageWorkdir
	for i := 0; i < len(c.mkdirs); i++ {
		_, _, e := syscall.RawSyscall(unix.SYS_MKDIRAT, atFDCWD, uintptr(unsafe.Pointer(c.mkdirs[i])), 0o755)
		if e != 0 && e != unix.EEXIST {
			return e
		}
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.cwd)), 0, 0); e != 0 {
		return e
	}
	return 0
}

// childPrivileges turns the child into the user's process: seccomp,
// bounding set, groups and ids, capabilities, no_new_privs, in Docker's
// order. It sets ce.Stage as it goes.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childPrivileges(c *execChild, ce *childError) syscall.Errno {
	if c.filter != nil && c.early {
		ce.Stage = stageSeccomp
		if _, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(c.filter))); e != 0 {
			return e
		}
	}
	ce.Stage = stageBounding
	for i := 0; i < len(c.drop); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c.drop[i], 0); e != 0 {
			return e
		}
	}
	ce.Stage = stageUser
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		return e
	}
	var groups uintptr
	if len(c.groups) > 0 {
		groups = uintptr(unsafe.Pointer(&c.groups[0]))
	}
	if _, _, e := syscall.RawSyscall(sysSetgroups, uintptr(len(c.groups)), groups, 0); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetresgid, c.gid, c.gid, c.gid); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(sysSetresuid, c.uid, c.uid, c.uid); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); e != 0 {
		return e
	}
	if c.setCaps {
		ce.Stage = stageCaps
		if _, _, e := syscall.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&c.capHdr)), uintptr(unsafe.Pointer(&c.capData[0])), 0); e != 0 {
			return e
		}
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
			return e
		}
	}
	if c.nnp {
		ce.Stage = stageNoNewPrivs
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			return e
		}
	}
	if c.filter != nil && !c.early {
		ce.Stage = stageSeccomp
		if _, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(c.filter))); e != 0 {
			return e
		}
	}
	// Again as the user, who may not be allowed in.
	ce.Stage = stageUserWorkdir
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.cwd)), 0, 0); e != 0 {
		return e
	}
	// Nothing of the monitor's stays open across the exec: its
	// descriptors are close-on-exec already, and this holds should one
	// not be.
	syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 3, ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC)
	syscall.RawSyscall(unix.SYS_UMASK, 0o022, 0, 0)
	return 0
}
