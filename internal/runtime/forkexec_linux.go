package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/dockkit/dock/internal/caps"
	"golang.org/x/sys/unix"
)

// A process exec'd into a running container comes from raw clones of the
// monitor that work with system calls alone, as package syscall's child
// does between fork and exec: under the runtime's fork hooks (signals
// blocked, a stack that must not grow), allocating nothing. That lets them
// join the container's user and mount namespaces, which a process joins
// only while it has one thread, which no Go program has.
//
// The first child stays in the host's pid namespace, where nothing in the
// container can see it: it makes itself undumpable, joins the container's
// namespaces (its pid namespace for its children), its cgroups, and drops
// to the process's privileges; it closes every descriptor of the
// monitor's but stdio and the report pipe, then clones the process itself
// into the container's pid namespace as the monitor's child
// (CLONE_PARENT), reports that pid and exits. The process takes its
// session and terminal and executes the command. So a process of the
// container sees it only once it is in the container's mount namespace
// with its privileges dropped and nothing of the monitor's open, and
// cannot reach the host through its /proc entries (the CVE-2016-9962
// family). (Coverage counters, which go test -cover puts in
// these functions too, are plain stores in the child's copy of memory;
// under -race they would go through the race runtime, so do not combine
// the two for this package.)

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

// The steps of the children, as they report the one that failed.
const (
	stageDumpable = iota
	stageOOMScore
	stageUserNS
	stageNSRoot
	stageNamespace
	stageMountNS
	stageStdio
	stageWait
	stageCgroupNS
	stageMount
	stageRlimit
	stageWorkdir
	stageSeccomp
	stageBounding
	stageUser
	stageCaps
	stageNoNewPrivs
	stageUserWorkdir
	stageSpawn
	stageSession
	stageTerminal
	stageExec
)

// What a child writes to the report pipe: the first child the process's
// pid, or either of them the step that failed.
const (
	reportFailed = iota
	reportPid
)

// childError is one report on the pipe.
type childError struct {
	Kind, Stage, Errno, Index, Pid uint32
}

// nsJoin is a namespace the first child joins.
type nsJoin struct {
	fd   int
	flag uintptr
}

// childMount is a mount a container's init makes itself, once it is in
// the container's pid and cgroup namespaces, which proc and cgroup2 take
// their view from: mount(2), then, when attr is set, mount_setattr(2) on
// the new mount and every mount below it. An optional one whose target is
// missing is skipped.
type childMount struct {
	source, target, fstype, data *byte
	flags                        uintptr
	attr                         *unix.MountAttr
	optional                     bool
	orBind                       *byte // bound on the target instead where that is no directory
}

// rlimitSet is a limit a child sets with prlimit64.
type rlimitSet struct {
	resource uintptr
	lim      unix.Rlimit
}

// execChild is everything the children of forkExec work from, prepared by
// the parent. Descriptors are the parent's, all above 2 and close-on-exec.
type execChild struct {
	useClone3      bool
	clone          cloneArgs
	cloneA, cloneB uintptr // clone's first arguments, when not clone3
	finalA, finalB uintptr // those of the clone of the process
	userns         int     // -1: the host's
	joins          []nsJoin
	mntns          int  // -1: the parent's
	cgroupns       int  // -1: stay
	init           bool // a container's init: the first child is the process, already in its namespaces
	newCgroupNS    bool // the init unshares a cgroup namespace once in its cgroup
	mounts         []childMount
	mountNames     []string
	wait           int // -1: none; else one byte comes on it once the child is in its cgroups
	waitW          int // the other end of wait, which the child closes
	errPipe        int
	maxFD          int   // where close_range is missing: the highest descriptor to close
	keep           []int // the descriptors above 2 the child uses, ascending
	stdio          [3]int
	setctty        bool
	rlimits        []rlimitSet
	rlimitNames    []string
	oomPath        *byte // nil: keep
	oomValue       []byte
	mkdirs         []mkdirStep // the working directory and its parents, made if missing
	cwd            *byte
	cwdBuf         []byte          // for getcwd
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
	proc     *Process
	filter   []unix.SockFilter
	userns   *os.File // nil: none
	joins    []nsFile // pid, net, ipc, uts: those the container has of its own or joined
	mntns    *os.File // nil: the caller's, which a cloned init already is in
	cgroupns *os.File // nil: none
	cgroupFD int      // -1: join the cgroup later (v1)
	stdio    []*os.File
	nofile   *unix.Rlimit // the container's, when proc gives none
}

// nsFile is a namespace to join, open, and its kind.
type nsFile struct {
	f    *os.File
	flag uintptr
}

// newExecChild prepares the child for s.
func newExecChild(s *execSetup) (*execChild, error) {
	p := s.proc
	if len(p.Args) == 0 {
		return nil, errors.New("no command")
	}
	c := &execChild{userns: -1, cgroupns: -1, wait: -1, waitW: -1, mntns: -1}
	if s.mntns != nil {
		c.mntns = int(s.mntns.Fd())
	}
	c.clone.exitSignal = uint64(unix.SIGCHLD)
	// clone's flags come second on s390x.
	c.cloneA, c.cloneB = uintptr(unix.SIGCHLD), 0
	c.finalA, c.finalB = unix.CLONE_PARENT|uintptr(unix.SIGCHLD), 0
	if goruntime.GOARCH == "s390x" {
		c.cloneA, c.cloneB = c.cloneB, c.cloneA
		c.finalA, c.finalB = c.finalB, c.finalA
	}
	for _, j := range s.joins {
		c.joins = append(c.joins, nsJoin{int(j.f.Fd()), j.flag})
	}
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
		r, err := rl.resource()
		if err != nil {
			return nil, err
		}
		haveNofile = haveNofile || r == unix.RLIMIT_NOFILE
		c.rlimits = append(c.rlimits, rlimitSet{uintptr(r), unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}})
		c.rlimitNames = append(c.rlimitNames, rl.Type)
	}
	// The monitor's own soft limit is the one the Go runtime raised.
	if !haveNofile && s.nofile != nil {
		c.rlimits = append(c.rlimits, rlimitSet{unix.RLIMIT_NOFILE, *s.nofile})
		c.rlimitNames = append(c.rlimitNames, "RLIMIT_NOFILE")
	}
	var err error
	if p.OOMScoreAdj != nil {
		// Written first, through this monitor's /proc, before the child
		// is in the container's mount namespace or under its limits.
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
		parent, err := unix.BytePtrFromString(path.Dir(d))
		if err != nil {
			return nil, err
		}
		base, err := unix.BytePtrFromString(path.Base(d))
		if err != nil {
			return nil, err
		}
		c.mkdirs = append([]mkdirStep{{parent, base}}, c.mkdirs...)
	}
	if c.cwd, err = unix.BytePtrFromString(cwd); err != nil {
		return nil, err
	}
	c.cwdBuf = make([]byte, unix.PathMax)

	if len(s.filter) > 0 {
		if len(s.filter) > unix.BPF_MAXINSNS {
			return nil, fmt.Errorf("seccomp: filter of %d instructions", len(s.filter))
		}
		c.filterProg = s.filter
		c.filter = &unix.SockFprog{Len: uint16(len(s.filter)), Filter: &c.filterProg[0]}
		c.early = !p.NoNewPrivs
	}
	if !p.Privileged {
		keep, err := caps.NewSet(p.Caps)
		if err != nil {
			return nil, fmt.Errorf("capabilities: %w", err)
		}
		last := caps.Last()
		known := caps.Set(1)<<(last+1) - 1
		for n := 0; n <= last; n++ {
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

// start starts the process with s's stdio and returns its pid once it has
// executed the command; a failure comes back as a *StartError with
// Docker's exit code. It works with the monitor through h; clone3 refused
// (an old kernel, or a seccomp profile such as Docker's default) makes it
// use clone.
func (c *execChild) start(s *execSetup, h execHooks) (int, error) {
	clone3 := !noClone3.Load()
	first, report, err := c.spawn(s, h, clone3)
	if errors.Is(err, unix.ENOSYS) && clone3 {
		noClone3.Store(true)
		first, report, err = c.spawn(s, h, false)
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(report)
	var ce childError
	buf := (*[unsafe.Sizeof(ce)]byte)(unsafe.Pointer(&ce))[:]

	pid := first
	if !c.init {
		// The first child reports the process's pid, or its failure; it
		// is out of the container's reach, so this comes promptly.
		n, err := readReport(report, buf)
		if n != len(buf) {
			h.kill(first)
			if err == nil {
				err = errors.New("the exec'd process's parent ended without a word")
			}
			return 0, fmt.Errorf("exec: %w", err)
		}
		if ce.Kind != reportPid {
			return 0, c.explain(s.proc, ce)
		}
		pid = int(ce.Pid)
	}
	if err := h.register(pid); err != nil {
		return 0, err
	}

	// The process reports a failure, or the pipe closes at its exec.
	if n, err := readReport(report, buf); n == len(buf) {
		return 0, c.explain(s.proc, ce)
	} else if err != nil {
		// Stopped on its way in, by a process of the container.
		h.kill(pid)
		return 0, fmt.Errorf("exec: %w", err)
	}
	return pid, nil
}

// execHooks is how start works with the monitor.
type execHooks struct {
	// join puts the first child in the container's cgroups when it was
	// not cloned into them (cgroup v1, or no clone3); nil when it has none.
	join func(pid int) error
	// forked is called with the first child's pid as soon as it exists,
	// holding mu, so that the reaper takes the child for one it knows.
	mu     sync.Locker
	forked func(pid int)
	// register is called with the process's pid once it is known, before
	// it executes the command; an error ends the exec.
	register func(pid int) error
	// kill kills pid unless it has been reaped.
	kill func(pid int)
}

// reportTimeout bounds each wait for a child's report: the children make
// a few dozen system calls before they report or execute.
const reportTimeout = 30 * time.Second

// readReport reads one report from fd: len(b) bytes, or 0 at the end of
// the pipe; it fails once reportTimeout passes with nothing.
func readReport(fd int, b []byte) (int, error) {
	deadline := time.Now().Add(reportTimeout)
	n := 0
	for n < len(b) {
		left := time.Until(deadline)
		if left <= 0 {
			return n, errors.New("no report from the exec'd process within " + reportTimeout.String())
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return n, err
		}
		if fds[0].Revents == 0 {
			continue
		}
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if m <= 0 {
			return n, err
		}
		n += m
	}
	return n, nil
}

// noClone3 is set once clone3 has answered ENOSYS.
var noClone3 atomic.Bool

// spawn starts the first child, with clone3 or clone, and lets it go on
// once it is in the container's cgroups; it returns the child's pid and
// the end of the report pipe to read.
func (c *execChild) spawn(s *execSetup, h execHooks, clone3 bool) (pid, report int, err error) {
	c.useClone3 = clone3
	join := h.join
	intoCgroup := clone3 && s.cgroupFD >= 0
	if !intoCgroup && s.cgroupFD >= 0 && join == nil {
		return 0, -1, errors.New("no way into the cgroup without clone3")
	}
	var errPipe [2]int
	if err := unix.Pipe2(errPipe[:], unix.O_CLOEXEC); err != nil {
		return 0, -1, err
	}
	c.errPipe, c.wait, c.waitW = errPipe[1], -1, -1
	wait := [2]int{-1, -1}
	if join != nil && !intoCgroup {
		if err := unix.Pipe2(wait[:], unix.O_CLOEXEC); err != nil {
			unix.Close(errPipe[0])
			unix.Close(errPipe[1])
			return 0, -1, err
		}
		defer unix.Close(wait[1])
		c.wait, c.waitW = wait[0], wait[1]
	}
	if !intoCgroup {
		c.clone.flags &^= unix.CLONE_INTO_CGROUP
	}
	h.mu.Lock()
	pid, err = c.fork(s)
	if err == nil {
		h.forked(pid)
	}
	h.mu.Unlock()
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
			h.kill(pid)
			unix.Close(errPipe[0])
			return 0, -1, err
		}
	}
	return pid, errPipe[0], nil
}

// fork starts the child with copies of the stdio descriptors numbered above
// 2, so that none of the child's dup3 calls overwrites another's source.
func (c *execChild) fork(s *execSetup) (int, error) {
	if !haveCloseRange() {
		c.maxFD = 1024
		if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
			for _, e := range ents {
				if n, err := strconv.Atoi(e.Name()); err == nil && n+64 > c.maxFD {
					c.maxFD = n + 64
				}
			}
		}
	}
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
	c.keep = append(c.keep[:0], c.errPipe, c.wait, c.cgroupns, c.mntns, c.userns)
	c.keep = append(c.keep, c.stdio[:]...)
	for _, j := range c.joins {
		c.keep = append(c.keep, j.fd)
	}
	slices.Sort(c.keep)
	c.keep = slices.Compact(slices.DeleteFunc(c.keep, func(fd int) bool { return fd < 3 }))
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
			if ce.Index < uint32(len(c.paths)) {
				// The file is there: its interpreter or loader is not.
				return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: %s: no such file or directory (its interpreter is missing)",
					file, unix.BytePtrToString(c.paths[ce.Index]))}
			}
			if !strings.Contains(file, "/") {
				return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", file)}
			}
			return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: stat %s: no such file or directory", file, file)}
		case unix.EACCES, unix.EPERM, unix.ENOEXEC, unix.EISDIR:
			code = 126
		}
		return &StartError{ExitCode: code, Msg: fmt.Sprintf("exec: %q: %v", file, errno)}
	}
	prefix := "exec"
	if c.init {
		prefix = "init"
	}
	what := map[uint32]string{
		stageDumpable:    "make the process undumpable",
		stageOOMScore:    "oom_score_adj",
		stageUserNS:      "enter the user namespace",
		stageNSRoot:      "become the user namespace's root",
		stageNamespace:   "enter the container's namespaces",
		stageMountNS:     "enter the mount namespace",
		stageStdio:       "set up stdio",
		stageWait:        "wait for the cgroup",
		stageCgroupNS:    "enter the cgroup namespace",
		stageWorkdir:     "working directory " + p.Cwd,
		stageSeccomp:     "seccomp",
		stageBounding:    "capabilities: bounding set",
		stageUser:        fmt.Sprintf("user %d:%d", p.User.UID, p.User.GID),
		stageCaps:        "capabilities",
		stageNoNewPrivs:  "no_new_privs",
		stageUserWorkdir: "working directory " + p.Cwd,
		stageSpawn:       "start the process",
		stageSession:     "start a session",
		stageTerminal:    "take the terminal",
	}[ce.Stage]
	if ce.Stage == stageRlimit && int(ce.Index) < len(c.rlimitNames) {
		what = "rlimit " + c.rlimitNames[ce.Index]
	}
	if ce.Stage == stageMount && int(ce.Index) < len(c.mountNames) {
		what = c.mountNames[ce.Index]
	}
	if ce.Stage == stageCgroupNS && c.newCgroupNS {
		what = "cgroup namespace"
	}
	if (ce.Stage == stageWorkdir || ce.Stage == stageUserWorkdir) && errno == unix.EXDEV {
		return &StartError{ExitCode: 125, Msg: fmt.Sprintf("%s: working directory %s: outside the container's root", prefix, p.Cwd)}
	}
	code := 125
	if ce.Stage == stageUserWorkdir {
		code = 126 // the user may not be allowed in
	}
	return &StartError{ExitCode: code, Msg: fmt.Sprintf("%s: %s: %v", prefix, what, errno)}
}

// forkExec clones the calling process; the first child does c's work and
// clones the process, which executes the command. Each writes a childError
// to c.errPipe when it stops short, the first child the process's pid when
// it has started it, then exits 253. It returns the first child's pid in
// the parent.
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

// childRun is the children's work: the first child's part returns with
// the process's pid, or either's with the step that failed, in ce.
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
	// The process is in the container's sight before it executes: it
	// takes stdio and the report pipe, nothing else of the monitor's.
	childCloseFrom(c)
	if c.init {
		// Cloned into the container's namespaces, as its first process.
		if e := childExec(c, ce); e != 0 {
			ce.Errno = uint32(e)
		}
		return
	}
	ce.Stage = stageSpawn
	r, _, e := syscall.RawSyscall6(unix.SYS_CLONE, c.finalA, c.finalB, 0, 0, 0, 0)
	if e != 0 {
		ce.Errno = uint32(e)
		return
	}
	if r != 0 {
		ce.Kind, ce.Pid = reportPid, uint32(r)
		return
	}
	// The process, in the container's pid namespace.
	if e := childExec(c, ce); e != 0 {
		ce.Errno = uint32(e)
	}
}

// haveCloseRange reports whether the kernel has close_range (Linux 5.9):
// closing a range that holds no descriptor fails only without it.
var haveCloseRange = sync.OnceValue(func() bool {
	return unix.CloseRange(1<<30, 1<<30, 0) == nil
})

// childKeepOnly closes, first thing, the monitor's descriptors the child
// does not use (its sockets, logs, other containers' pipes): a cloned init
// that shares a pid namespace with others is in their sight from its
// start, and one held up (its cgroup frozen) would keep them open. Where
// close_range is missing, childCloseFrom does it later.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childKeepOnly(c *execChild) {
	next := uintptr(3)
	for i := 0; i < len(c.keep); i++ {
		fd := uintptr(c.keep[i])
		if fd > next {
			if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, next, fd-1, 0); e != 0 {
				return
			}
		}
		next = fd + 1
	}
	syscall.RawSyscall(unix.SYS_CLOSE_RANGE, next, ^uintptr(0), 0)
}

// childCloseFrom closes every descriptor above 2 but the report pipe.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childCloseFrom(c *execChild) {
	p := uintptr(c.errPipe)
	_, _, e1 := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, p+1, ^uintptr(0), 0)
	e2 := syscall.Errno(0)
	if p > 3 {
		_, _, e2 = syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 3, p-1, 0)
	}
	if e1 == 0 && e2 == 0 {
		return
	}
	for fd := uintptr(3); fd <= uintptr(c.maxFD); fd++ {
		if fd != p {
			syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		}
	}
}

// childExec is the process's part: its own session and terminal, then the
// command, trying each candidate path as execvp does. It returns only when
// it could not execute one, with the step in ce.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childExec(c *execChild, ce *childError) syscall.Errno {
	if !c.init {
		if e := childSession(c, ce); e != 0 {
			return e
		}
	}
	ce.Stage = stageExec
	ce.Index = uint32(len(c.paths))
	denied := false
	for i := 0; i < len(c.paths); i++ {
		_, _, e := syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(c.paths[i])),
			uintptr(unsafe.Pointer(&c.argv[0])), uintptr(unsafe.Pointer(&c.envv[0])))
		if e == unix.ENOENT || e == unix.ENOTDIR {
			// A file that is there lacks its interpreter or loader.
			if _, _, ae := syscall.RawSyscall6(unix.SYS_FACCESSAT, atFDCWD, uintptr(unsafe.Pointer(c.paths[i])), unix.F_OK, 0, 0, 0); ae == 0 {
				ce.Index = uint32(i)
				return e
			}
			continue
		}
		if e == unix.EACCES {
			denied = true
			continue
		}
		ce.Index = uint32(i)
		return e
	}
	if denied {
		return unix.EACCES
	}
	return unix.ENOENT
}

// childSession gives the process a session of its own and, when it has a
// terminal, makes that its controlling one.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childSession(c *execChild, ce *childError) syscall.Errno {
	ce.Stage = stageSession
	if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		return e
	}
	if c.setctty {
		ce.Stage = stageTerminal
		if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0); e != 0 {
			return e
		}
	}
	return 0
}

// childEnter moves the first child into the container: undumpable, its
// oom score, namespaces, stdio, cgroups, limits and working directory. It
// sets ce.Stage as it goes.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childEnter(c *execChild, ce *childError) syscall.Errno {
	ce.Stage = stageDumpable
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0, 0); e != 0 {
		return e
	}
	childKeepOnly(c)
	// First, before anything that can fail: the monitor puts the child
	// in the container's cgroups by its pid.
	if c.wait >= 0 {
		ce.Stage = stageWait
		// Without the monitor's end, the end of the pipe tells of its death.
		syscall.RawSyscall(unix.SYS_CLOSE, uintptr(c.waitW), 0, 0)
		var b [1]byte
		n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(c.wait), uintptr(unsafe.Pointer(&b[0])), 1)
		if e != 0 {
			return e
		}
		if n != 1 {
			return unix.EPIPE
		}
	}
	// Directories it makes are 0755 whatever the monitor's umask.
	syscall.RawSyscall(unix.SYS_UMASK, 0, 0, 0)
	if !c.init {
		if e := childOOMScore(c, ce); e != 0 {
			return e
		}
	}
	// A process entering a user namespace takes its limits first: raising
	// a hard one needs CAP_SYS_RESOURCE in the host's namespace.
	if c.userns >= 0 {
		if e := childRlimits(c, ce); e != 0 {
			return e
		}
	}
	// As the host's root, which may enter any namespace, also one the
	// container's user namespace does not own (a joined one's); the user
	// namespace last.
	ce.Stage = stageNamespace
	for i := 0; i < len(c.joins); i++ {
		ce.Index = uint32(i)
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.joins[i].fd), c.joins[i].flag, 0); e != 0 {
			return e
		}
	}
	ce.Index = 0
	if c.mntns >= 0 {
		ce.Stage = stageMountNS
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.mntns), unix.CLONE_NEWNS, 0); e != 0 {
			return e
		}
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
	ce.Stage = stageStdio
	for i := 0; i < len(c.stdio); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(c.stdio[i]), uintptr(i), 0); e != 0 {
			return e
		}
	}
	if c.cgroupns >= 0 {
		ce.Stage = stageCgroupNS
		if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.cgroupns), unix.CLONE_NEWCGROUP, 0); e != 0 {
			return e
		}
	}
	if c.newCgroupNS {
		// Now that it is in its cgroup, that becomes the namespace's root.
		ce.Stage = stageCgroupNS
		if _, _, e := syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP, 0, 0); e != 0 {
			return e
		}
	}
	if c.init {
		// The init is in the container's pid namespace, and about to
		// mount its proc: from here on /proc/self/fd names its
		// descriptors, which must be the container's alone (the
		// CVE-2024-21626 family). Its session, too, comes before its
		// seccomp filter, as in an init that is executed.
		childCloseFrom(c)
		if e := childSession(c, ce); e != 0 {
			return e
		}
	}
	ce.Stage = stageMount
	for i := 0; i < len(c.mounts); i++ {
		ce.Index = uint32(i)
		m := &c.mounts[i]
		_, _, e := syscall.RawSyscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(m.source)), uintptr(unsafe.Pointer(m.target)),
			uintptr(unsafe.Pointer(m.fstype)), m.flags, uintptr(unsafe.Pointer(m.data)), 0)
		if e == unix.ENOTDIR && m.orBind != nil {
			_, _, e = syscall.RawSyscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(m.orBind)), uintptr(unsafe.Pointer(m.target)),
				0, unix.MS_BIND, 0, 0)
		}
		if e == unix.ENOENT && m.optional {
			continue
		}
		if e != 0 {
			return e
		}
		if m.attr != nil {
			if _, _, e := syscall.RawSyscall6(unix.SYS_MOUNT_SETATTR, atFDCWD, uintptr(unsafe.Pointer(m.target)),
				unix.AT_SYMLINK_NOFOLLOW|unix.AT_RECURSIVE, uintptr(unsafe.Pointer(m.attr)), unsafe.Sizeof(*m.attr), 0); e != 0 {
				return e
			}
		}
	}
	ce.Index = 0
	if c.init {
		// Through the proc it has just mounted.
		if e := childOOMScore(c, ce); e != 0 {
			return e
		}
	}
	if c.userns < 0 {
		if e := childRlimits(c, ce); e != 0 {
			return e
		}
	}
	ce.Stage = stageWorkdir
	if e := childMkdirs(c); e != 0 {
		return e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.cwd)), 0, 0); e != 0 {
		return e
	}
	return childCwdInRoot(c)
}

// mkdirStep makes base in parent.
type mkdirStep struct{ parent, base *byte }

var (
	// rootPath is "/", the root a working directory's parents resolve in.
	rootPath = [...]byte{'/', 0}
	// mkdirHow opens each parent inside the root and never through a
	// magic link of /proc: /proc/<pid>/root of a process in a pid
	// namespace the container shares (the host's, another container's)
	// would have the directories made in that process's tree.
	mkdirHow = unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
)

// childMkdirs makes the working directory and its missing parents, each in
// a parent opened with openat2 inside the root, without magic links.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childMkdirs(c *execChild) syscall.Errno {
	if len(c.mkdirs) == 0 {
		return 0
	}
	root, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&rootPath[0])), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return e
	}
	for i := 0; i < len(c.mkdirs); i++ {
		dir, _, e := syscall.RawSyscall6(unix.SYS_OPENAT2, root, uintptr(unsafe.Pointer(c.mkdirs[i].parent)),
			uintptr(unsafe.Pointer(&mkdirHow)), unsafe.Sizeof(mkdirHow), 0, 0)
		if e == 0 {
			_, _, e = syscall.RawSyscall(unix.SYS_MKDIRAT, dir, uintptr(unsafe.Pointer(c.mkdirs[i].base)), 0o755)
			syscall.RawSyscall(unix.SYS_CLOSE, dir, 0, 0)
		}
		if e != 0 && e != unix.EEXIST {
			syscall.RawSyscall(unix.SYS_CLOSE, root, 0, 0)
			return e
		}
	}
	syscall.RawSyscall(unix.SYS_CLOSE, root, 0, 0)
	return 0
}

// childCwdInRoot refuses a working directory outside the process's root,
// which getcwd(2) gives a path for that does not start with a slash
// ("(unreachable)..."): one reached through a descriptor or a link into
// another tree.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childCwdInRoot(c *execChild) syscall.Errno {
	_, _, e := syscall.RawSyscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&c.cwdBuf[0])), uintptr(len(c.cwdBuf)), 0)
	if e != 0 {
		return e
	}
	if c.cwdBuf[0] != '/' {
		return unix.EXDEV
	}
	return 0
}

// childOOMScore writes the process's OOM score adjustment, if it has one.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childOOMScore(c *execChild, ce *childError) syscall.Errno {
	if c.oomPath == nil {
		return 0
	}
	ce.Stage = stageOOMScore
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(c.oomPath)),
		unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return e
	}
	_, _, e = syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.oomValue[0])), uintptr(len(c.oomValue)))
	syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	return e
}

// childRlimits sets the process's resource limits.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childRlimits(c *execChild, ce *childError) syscall.Errno {
	ce.Stage = stageRlimit
	for i := 0; i < len(c.rlimits); i++ {
		ce.Index = uint32(i)
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, c.rlimits[i].resource,
			uintptr(unsafe.Pointer(&c.rlimits[i].lim)), 0, 0, 0); e != 0 {
			return e
		}
	}
	ce.Index = 0
	return 0
}

// childSeccomp loads the seccomp filter.
//
//go:norace
//go:nocheckptr
//go:nosplit
func childSeccomp(c *execChild) syscall.Errno {
	_, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(c.filter)))
	return e
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
		if e := childSeccomp(c); e != 0 {
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
		if e := childSeccomp(c); e != 0 {
			return e
		}
	}
	// Again as the user, who may not be allowed in.
	ce.Stage = stageUserWorkdir
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.cwd)), 0, 0); e != 0 {
		return e
	}
	if e := childCwdInRoot(c); e != 0 {
		return e
	}
	// Nothing of the monitor's stays open across the exec: its
	// descriptors are close-on-exec already, and this holds should one
	// not be.
	syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 3, ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC)
	syscall.RawSyscall(unix.SYS_UMASK, 0o022, 0, 0)
	return 0
}
