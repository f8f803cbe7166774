package runtime

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/procstat"
	"github.com/dockkit/dock/internal/unixsock"
)

// The init's end of its socket pair with the monitor, and the cgroup
// namespace it joins, if any.
const (
	initSyncFD   = 3
	initCgroupFD = 4
)

// initMsg is what init reports when it cannot exec the user's command.
type initMsg struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

type monitor struct {
	stateDir string
	roles    string
	spec     *Spec
	group    *cgroupfs.Group // nil when the container has no group of its own
	log      *logWriter
	proc     signaler // the init, once it executed the command
	pid      int
	master   *os.File // the terminal's master side, when Terminal
	mntns    *os.File // the container's mount namespace, held until its exit is reported
	stdinW   *os.File // the container's input, for attached clients
	copies   sync.WaitGroup
	exited   chan syscall.WaitStatus
	released chan struct{} // closed once the init's exit is reported
	ln       *unixsock.Listener
	started  time.Time
	answered sync.WaitGroup // requests being answered

	execs          map[int]chan syscall.WaitStatus // exec'd processes not yet reaped
	unclaimed      map[int]unclaimedStatus         // the last statuses of processes not (yet) in execs
	unclaimedOrder []int
	nofile         *unix.Rlimit                 // the container's open-file limit as it started, for exec'd processes
	filters        map[string][]unix.SockFilter // exec'd processes' seccomp filters, by file
	joined         []*os.File                   // other containers' namespaces the container enters

	mu      sync.Mutex
	ending  bool // finish began: no more state changes but its own
	manual  bool // stopped or killed through the monitor: no restart
	paused  bool
	health  *Health // the health checks' record, when the spec has one
	done    bool
	status  ExitStatus
	waiters []chan ExitStatus
}

// monitorMain runs in the monitor process: start the container, report to
// the caller, then serve requests and record the exit.
func monitorMain() {
	keepDescriptors()
	m := &monitor{stateDir: os.Args[1], roles: os.Args[2], exited: make(chan syscall.WaitStatus, 1), released: make(chan struct{}), execs: map[int]chan syscall.WaitStatus{}}
	syncF := os.NewFile(monSyncFD, "sync")
	report := func(msg syncMsg) {
		b, _ := json.Marshal(msg)
		syncF.Write(append(b, '\n'))
		syncF.Close()
	}
	m.started = time.Now()
	err := m.start()
	if err != nil {
		code, text := 125, err.Error()
		var se *StartError
		if errors.As(err, &se) {
			code = se.ExitCode
		}
		m.finish(ExitStatus{ExitCode: code, Error: text})
		report(syncMsg{Code: code, Error: text})
		return
	}
	// What an exec'd process gets when it sets none.
	var nofile unix.Rlimit
	if unix.Prlimit(m.pid, unix.RLIMIT_NOFILE, nil, &nofile) == nil {
		m.mu.Lock()
		m.nofile = &nofile
		m.mu.Unlock()
	}
	st := State{Status: Running, Pid: m.pid, MonitorPid: os.Getpid(), StartedAt: m.started, PidStart: procStart(m.pid)}
	if err := writeState(m.stateDir, &st); err != nil {
		m.proc.Kill()
		ws := <-m.exited
		code, sig := exitCodeOf(ws)
		m.finish(ExitStatus{ExitCode: code, Signal: sig, Error: err.Error()})
		report(syncMsg{Code: 125, Error: err.Error()})
		return
	}
	// The started event is logged before the caller hears of the start, so
	// that whatever the caller does next (a pause) is logged after it.
	m.onStarted()
	report(syncMsg{Pid: m.pid})
	// Not at once: a container that ends within the second would wait for
	// the monitor to unmap what it exits without anyway.
	release := time.AfterFunc(time.Second, releaseStartMemory)

	ws := <-m.exited
	release.Stop()
	code, sig := exitCodeOf(ws)
	es := ExitStatus{ExitCode: code, Signal: sig}
	if m.group != nil {
		if !m.spec.hasNew("pid") {
			m.group.Kill() // what the init left behind
		}
		if sig == int(syscall.SIGKILL) {
			if n, err := m.group.OOMKills(); err == nil && n > 0 {
				es.OOMKilled = true
			}
		}
	}
	m.finish(es)
	if m.mntns != nil {
		m.mntns.Close()
	}
	close(m.released)
	m.afterExit(es)
}

// monitorPrelude prepares a monitor's process before it starts anything:
// a monitor on standby starts the container's init at once.
func monitorPrelude() {
	keepDescriptors()
	// Caught, not ignored: an ignored signal stays ignored across execve,
	// and the container's processes must start with every default.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTTIN, syscall.SIGTTOU)
	go func() {
		for range sigs {
		}
	}()
}

// keepDescriptors makes every descriptor above stderr close-on-exec: what
// the caller handed down reaches the processes the monitor starts only
// where it passes it on itself.
func keepDescriptors() {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		closeExtraFDs()
	}
}

// finish drains the output, removes the socket and the cgroup, records the
// exit and answers waiters. Everything that could disturb a new start of the
// same container happens before the stopped state is written, since that
// state is what allows one.
func (m *monitor) finish(es ExitStatus) {
	m.mu.Lock()
	m.ending = true
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// A process outside the container's pid namespace still holds the
		// output open.
		if m.group != nil {
			m.group.Kill()
		}
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
	if m.master != nil {
		m.master.Close()
	}
	if m.log != nil {
		m.log.Close()
	}
	if m.ln != nil {
		// Requests already accepted are still answered.
		m.ln.Close()
		os.Remove(path.Join(m.stateDir, socketFile))
	}
	removed := false
	if m.group != nil && !m.restarts(es) {
		err := m.group.DeleteOwn()
		if err != nil {
			fmt.Fprintf(os.Stderr, "remove cgroup: %v\n", err)
		}
		removed = err == nil
	}
	es.FinishedAt = time.Now()
	st := State{Status: Stopped, Pid: m.pid, ExitCode: es.ExitCode, Signal: es.Signal,
		OOMKilled: es.OOMKilled, StartedAt: m.started, FinishedAt: es.FinishedAt, Error: es.Error}
	m.carry(&st)
	if err := writeState(m.stateDir, &st); err != nil {
		fmt.Fprintf(os.Stderr, "record exit: %v\n", err)
	}
	if es.Error == "" {
		m.exitEvents(es) // a start that failed never started
	}
	m.mu.Lock()
	m.done, m.status = true, es
	for _, w := range m.waiters {
		w <- es
	}
	m.waiters = nil
	m.mu.Unlock()
	// The parents are shared with other containers, not part of this
	// one's exit: they go once its waiters have their answer.
	if removed {
		m.group.RemoveParents()
	}
	// An auto-remove container's exit need not outlive a crash: after one,
	// its state reads as lost, and it is removed all the same.
	if m.spec == nil || !m.spec.AutoRemove {
		if err := syncState(m.stateDir); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "record exit: %v\n", err)
		}
	}
	// Let the answers reach the waiters (and the exec'd processes, which
	// die with the container's pid namespace, their callers) before the
	// process ends.
	answered := make(chan struct{})
	go func() { m.answered.Wait(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
	}
}

func (m *monitor) start() error {
	raw, err := os.ReadFile(path.Join(m.stateDir, configFile))
	if err != nil {
		return err
	}
	spec := new(Spec)
	if err := json.Unmarshal(raw, spec); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	m.spec = spec
	if m.joined, err = resolveJoins(spec); err != nil {
		return err
	}
	// Entered by the time the init runs.
	defer func() {
		for _, f := range m.joined {
			f.Close()
		}
		m.joined = nil
	}()
	if spec.Cgroup != nil {
		if !spec.Cgroup.Made() {
			return fmt.Errorf("cgroup %s: not made: %w", spec.Cgroup.Name, errdefs.ErrInvalidArgument)
		}
		m.group = spec.Cgroup
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	// On cgroup v2 the init is cloned straight into its group; on v1 it
	// joins after the clone.
	v2 := m.group != nil && m.group.V2()

	// Only what the clone needs comes before it; the rest is done while
	// the init's runtime starts.
	var teeOut, teeErr io.Writer
	if strings.Contains(m.roles, "o") {
		teeOut = os.NewFile(monStdoutFD, "stdout")
	}
	if strings.Contains(m.roles, "e") {
		teeErr = os.NewFile(monStderrFD, "stderr")
	}
	var callerIn *os.File
	if strings.Contains(m.roles, "i") {
		callerIn = os.NewFile(monStdinFD, "stdin")
	}

	cmd := &command{
		Args:        []string{initArg0, m.stateDir},
		Env:         initEnv,
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	// With its root over idmapped layers, the init starts in this mount
	// namespace and makes its own once the monitor has mounted the root.
	premount := idmapRootfs(spec)
	cmd.SysProcAttr.Cloneflags = initCloneFlags(spec.Namespaces.New)
	if premount {
		cmd.Args = append(cmd.Args, premountArg)
		cmd.SysProcAttr.Cloneflags &^= unix.CLONE_NEWNS
	}
	if spec.hasNew("user") {
		for _, im := range spec.Namespaces.UIDMap {
			cmd.SysProcAttr.UidMappings = append(cmd.SysProcAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(im.ContainerID), HostID: int(im.HostID), Size: int(im.Size)})
		}
		for _, im := range spec.Namespaces.GIDMap {
			cmd.SysProcAttr.GidMappings = append(cmd.SysProcAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(im.ContainerID), HostID: int(im.HostID), Size: int(im.Size)})
		}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// Become root of the new namespace: the init keeps the host's ids
		// otherwise, which the maps need not cover.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	var childEnds []*os.File
	var readers []func()
	if spec.Process.Terminal {
		master, slave, err := openPTY()
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		if sz := spec.Process.ConsoleSize; sz != (ConsoleSize{}) {
			if err := setWinsize(master, sz.Rows, sz.Cols); err != nil {
				return fmt.Errorf("terminal: %w", err)
			}
		}
		m.master = master
		if spec.Process.OpenStdin {
			m.stdinW = master
		}
		childEnds = append(childEnds, slave)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
		readers = append(readers, func() {
			m.log.copyStream("stdout", master, teeOut)
		})
		if callerIn != nil {
			go func() {
				io.Copy(master, callerIn)
				callerIn.Close()
			}()
		}
	} else {
		if spec.Process.OpenStdin {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			cmd.Stdin, m.stdinW = r, w
			childEnds = append(childEnds, r)
			if callerIn != nil {
				go func() {
					io.Copy(w, callerIn)
					callerIn.Close()
					m.closeStdin()
				}()
			}
		} else if callerIn != nil {
			cmd.Stdin = callerIn
			childEnds = append(childEnds, callerIn)
		}
		for i, tee := range []io.Writer{teeOut, teeErr} {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			childEnds = append(childEnds, w)
			if i == 0 {
				cmd.Stdout = w
			} else {
				cmd.Stderr = w
			}
			stream := [...]string{"stdout", "stderr"}[i]
			readers = append(readers, func() {
				m.log.copyStream(stream, r, tee)
				r.Close()
				if c, ok := tee.(io.Closer); ok {
					c.Close()
				}
			})
		}
	}

	if initOnThread(spec) {
		return m.startThreadInit(spec, cmd, childEnds, readers, v2)
	}
	// The monitor's own binary is sealed (standby.OpenSealed): so is an
	// init executed through its link.
	cmd.Path = "/proc/self/exe"
	if v2 {
		fd, err := unix.Open(m.group.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range childEnds {
				f.Close()
			}
			return fmt.Errorf("cgroup: %w", err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}

	parentSync, childSync, err := socketPair()
	if err == nil {
		cmd.ExtraFiles = []*os.File{childSync}
		childEnds = append(childEnds, childSync)
		err = m.spawn(cmd)
	}
	for _, f := range childEnds {
		f.Close()
	}
	if parentSync != nil {
		defer parentSync.Close()
	}
	if err != nil {
		return fmt.Errorf("start init: %w", err)
	}
	m.mu.Lock()
	m.proc, m.pid = cmd.Process, cmd.Process.Pid
	m.mu.Unlock()
	go m.reap()
	m.holdMountNS()
	abort := func(err error) error {
		cmd.Process.Kill()
		<-m.exited
		return err
	}

	if err := m.serveOutput(readers); err != nil {
		return abort(err)
	}
	filter, err := initFilter()
	if err != nil {
		return abort(err)
	}
	if m.group != nil && !v2 {
		if err := m.group.Add(m.pid); err != nil {
			return abort(fmt.Errorf("cgroup: %w", err))
		}
	}
	if premount {
		// The monitor's mount namespace, a copy of the host's, must not
		// pass the mount on to it.
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return abort(fmt.Errorf("make / rslave: %w", err))
		}
		target := path.Join(m.stateDir, rootfsDir)
		uid, gid := rootIDs(spec)
		if err := mountIdmappedOverlay(spec.Rootfs[0], target, path.Join(m.stateDir, idmapDir), m.pid, uid, gid); err != nil {
			return abort(&StartError{ExitCode: 125, Msg: "rootfs: " + err.Error()})
		}
	}
	if spec.hasNew("user") {
		// What an init in its own user namespace may not do itself: it
		// sets the same again once it is set up.
		if err := raiseHardLimits(m.pid, spec.Process.Rlimits); err != nil {
			return abort(&StartError{ExitCode: 125, Msg: err.Error()})
		}
		if adj := spec.Process.OOMScoreAdj; adj != nil {
			if err := os.WriteFile("/proc/"+strconv.Itoa(m.pid)+"/oom_score_adj", []byte(strconv.Itoa(*adj)), 0); err != nil {
				return abort(&StartError{ExitCode: 125, Msg: "oom_score_adj: " + err.Error()})
			}
		}
	}
	if err := sendConfig(parentSync, raw, filter); err != nil {
		return abort(fmt.Errorf("init: %w", err))
	}
	// The init's end closes on exec (it is close-on-exec) or exit; before
	// that, a message says why the command could not run.
	b, _ := io.ReadAll(parentSync)
	if len(b) > 0 {
		var im initMsg
		if err := json.Unmarshal(b, &im); err != nil {
			im = initMsg{Code: 125, Msg: strings.TrimSpace(string(b))}
		}
		<-m.exited
		return &StartError{ExitCode: im.Code, Msg: im.Msg}
	}
	return nil
}

// startThreadInit starts the init from a thread (initOnThread), with the
// stdio cmd holds; childEnds are what the monitor closes once the init
// has them, readers copy the output to the log.
func (m *monitor) startThreadInit(spec *Spec, cmd *command, childEnds []*os.File, readers []func(), v2 bool) error {
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	// Served before the init is cloned: it executes the command at once.
	if err := m.serveOutput(readers); err != nil {
		return err
	}
	raw, err := initFilter()
	if err != nil {
		return err
	}
	filter, err := decodeFilter(raw)
	if err != nil {
		return err
	}
	cgroupFD := -1
	if v2 {
		fd, err := unix.Open(m.group.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		defer unix.Close(fd)
		cgroupFD = fd
	}
	console := ""
	if spec.Process.Terminal {
		console = cmd.Stdin.Name()
	}
	if err := m.startOnThread(spec, filter, []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr}, console, cgroupFD); err != nil {
		return err
	}
	m.holdMountNS()
	return nil
}

// holdMountNS keeps the container's mount namespace open: that defers its
// teardown (an unmount of every mount in it, with an RCU grace period
// each time, tens of milliseconds on some hosts) from the init's exit,
// which the caller waits for, to after the exit has been reported.
func (m *monitor) holdMountNS() {
	if f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", m.pid)); err == nil {
		m.mntns = f
	}
}

// serveOutput opens the log, starts copying the container's output into
// it, and serves the monitor's socket.
func (m *monitor) serveOutput(readers []func()) error {
	var err error
	m.log, err = openLogWriter(m.spec.Log, m.spec.logPath())
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	for _, r := range readers {
		m.copies.Add(1)
		go func() {
			defer m.copies.Done()
			r()
		}()
	}
	return m.listen()
}

// initFilter reads the seccomp filter the monitor was started with, if
// any: its file is the monitor's fourth argument ("-" for none).
func initFilter() ([]byte, error) {
	if len(os.Args) <= 3 || os.Args[3] == "-" {
		return nil, nil
	}
	b, err := os.ReadFile(os.Args[3])
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return b, nil
}

// spawn starts the init, from a thread that first entered the namespaces
// the spec joins.
func (m *monitor) spawn(cmd *command) error {
	join := map[string]string{}
	for ns, path := range m.spec.Namespaces.Join {
		if ns == "cgroup" {
			// Entered by the init once it is in its cgroup: on v2 the
			// kernel refuses CLONE_INTO_CGROUP from inside another
			// namespace's root.
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("join cgroup namespace: %w", err)
			}
			defer f.Close()
			cmd.ExtraFiles = append(cmd.ExtraFiles, f) // initCgroupFD
			continue
		}
		join[ns] = path
	}
	return spawnIn(join, cmd.Start)
}

// spawnIn calls start, which starts a process, on a thread that first
// entered the namespaces in join, kind to path.
func spawnIn(join map[string]string, start func() error) error {
	if len(join) == 0 {
		return start()
	}
	errc := make(chan error, 1)
	go func() {
		// setns changes only this thread, which is never unlocked: the Go
		// runtime ends it with the goroutine.
		goruntime.LockOSThread()
		for ns, path := range join {
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("join %s namespace: %w", ns, err)
				return
			}
			err = unix.Setns(fd, int(nsFlags[ns]))
			unix.Close(fd)
			if err != nil {
				errc <- fmt.Errorf("join %s namespace %s: %w", ns, path, err)
				return
			}
		}
		errc <- start()
	}()
	return <-errc
}

// reap collects every child, the container's init and the orphans this
// subreaper inherits, and reports the init's end.
func (m *monitor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if pid == m.pid {
			m.exited <- ws
			continue
		}
		m.mu.Lock()
		ch := m.execs[pid]
		delete(m.execs, pid)
		if ch == nil {
			m.keepUnclaimed(pid, ws)
		}
		m.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}

// maxUnclaimed bounds the statuses the reaper keeps for processes it does
// not know: an exec'd process that ended before its pid was registered,
// among the orphans this subreaper inherits.
const maxUnclaimed = 64

// unclaimedStatus is the status of a process the reaper did not know, and
// when it reaped it.
type unclaimedStatus struct {
	ws syscall.WaitStatus
	at time.Time
}

// keepUnclaimed records the status of pid, which no exec has registered
// (yet). The caller holds m.mu.
func (m *monitor) keepUnclaimed(pid int, ws syscall.WaitStatus) {
	if m.unclaimed == nil {
		m.unclaimed = map[int]unclaimedStatus{}
	}
	if len(m.unclaimedOrder) >= maxUnclaimed {
		delete(m.unclaimed, m.unclaimedOrder[0])
		m.unclaimedOrder = m.unclaimedOrder[1:]
	}
	m.unclaimed[pid] = unclaimedStatus{ws, time.Now()}
	m.unclaimedOrder = append(m.unclaimedOrder, pid)
}

// claim returns the status the reaper kept for pid if it reaped pid after
// since (an earlier one was another process's, the pid since reused). The
// caller holds m.mu.
func (m *monitor) claim(pid int, since time.Time) (syscall.WaitStatus, bool) {
	u, ok := m.unclaimed[pid]
	if !ok {
		return 0, false
	}
	delete(m.unclaimed, pid)
	return u.ws, !u.at.Before(since)
}

// initCloneFlags returns the namespaces an init is cloned into for the new
// namespaces named: a mount namespace of its own always, since its rootfs
// and pivot_root must not reach the monitor's, and never the cgroup
// namespace, which the init unshares once it is in its cgroup.
func initCloneFlags(names []string) uintptr {
	flags := uintptr(unix.CLONE_NEWNS)
	for _, ns := range names {
		if ns != "cgroup" {
			flags |= nsFlags[ns]
		}
	}
	return flags
}

func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "sync"), os.NewFile(uintptr(fds[1]), "sync-init"), nil
}

// listen serves monitor.sock.
func (m *monitor) listen() error {
	p, d, err := sockPath(m.stateDir)
	if err != nil {
		return err
	}
	if d != nil {
		defer d.Close()
	}
	os.Remove(path.Join(m.stateDir, socketFile))
	ln, err := unixsock.Listen(p)
	if err != nil {
		return fmt.Errorf("monitor socket: %w", err)
	}
	m.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.answered.Add(1)
			go m.serve(c)
		}
	}()
	return nil
}

func (m *monitor) serve(c *unixsock.Conn) {
	defer m.answered.Done()
	defer c.Close()
	// A client that says nothing must not keep the monitor from exiting.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, fds, err := readRequest(c)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err != nil {
		return
	}
	var req monitorReq
	var resp monitorResp
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = err.Error()
	} else {
		switch req.Op {
		case "wait":
			m.mu.Lock()
			if m.done {
				es := m.status
				resp.Status = &es
				m.mu.Unlock()
			} else {
				ch := make(chan ExitStatus, 1)
				m.waiters = append(m.waiters, ch)
				m.mu.Unlock()
				es := <-ch
				resp.Status = &es
			}
		case "kill":
			m.mu.Lock()
			if m.done || m.proc == nil {
				resp.Error = errNotRunning
			} else if err := m.proc.Signal(syscall.Signal(req.Signal)); err != nil {
				if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
					resp.Error = errNotRunning
				} else {
					resp.Error = err.Error()
				}
			} else if req.Manual {
				m.manual = true
			}
			m.mu.Unlock()
			m.afterKill(syscall.Signal(req.Signal))
		case "attach":
			m.serveAttach(c, &req)
			return
		case "exec":
			if m.serveExec(c, &req, fds) {
				return
			}
			resp.Error = "exec: bad request"
		case "kill-exec":
			m.mu.Lock()
			if _, ok := m.execs[req.Pid]; !ok {
				resp.Error = errNotRunning
			} else if err := unix.Kill(req.Pid, syscall.Signal(req.Signal)); err != nil {
				resp.Error = err.Error()
			}
			m.mu.Unlock()
		case "resize":
			if m.master == nil {
				resp.Error = "no terminal"
			} else if err := setWinsize(m.master, req.Rows, req.Cols); err != nil {
				resp.Error = err.Error()
			}
		default:
			if !m.serveOp(&req, &resp) {
				resp.Error = fmt.Sprintf("unknown request %q", req.Op)
			}
		}
	}
	writeResp(c, &resp)
}

func writeResp(c *unixsock.Conn, resp *monitorResp) error {
	b, _ := json.Marshal(resp)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(append(b, '\n'))
	return err
}

// readRequest reads one JSON line and the descriptors sent with it.
func readRequest(c *unixsock.Conn) ([]byte, []int, error) {
	var fds []int
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*8))
	var got []byte
	for {
		n, oobn, err := c.ReadMsg(buf, oob)
		got = append(got, buf[:n]...)
		for _, fd := range rightsIn(oob[:oobn]) {
			unix.CloseOnExec(fd)
			fds = append(fds, fd)
		}
		if i := bytes.IndexByte(got, '\n'); i >= 0 {
			return got[:i+1], fds, nil
		}
		if err != nil {
			return nil, fds, err
		}
		if n == 0 || len(got) > 1<<20 {
			return nil, fds, io.ErrUnexpectedEOF
		}
	}
}

// rightsIn returns the descriptors passed in the control messages oob.
func rightsIn(oob []byte) []int {
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		if rights, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, rights...)
		}
	}
	return fds
}

// sendConfig hands the init its spec and seccomp filter, which also tells it
// that it is in its cgroup.
func sendConfig(w io.Writer, spec, filter []byte) error {
	buf := make([]byte, 8, 8+len(spec)+len(filter))
	binary.NativeEndian.PutUint32(buf, uint32(len(spec)))
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(filter)))
	buf = append(append(buf, spec...), filter...)
	_, err := w.Write(buf)
	return err
}

// releaseStartMemory gives back the pages of the binary the monitor read
// only to start (code and read-only data of every package initialised
// before it, most of which it never touches again). A monitor lives as
// long as its container, one per container, so these pages are most of
// what it costs. The read-only mappings of the binary are only dropped
// from this process's page tables: a page it needs again comes back from
// the page cache.
func releaseStartMemory() {
	// Read and parsed in place, allocating next to nothing: the start-up
	// leaves the heap close to the collector's first goal, and a
	// collection costs the monitor more memory than it frees.
	var exeBuf [unix.PathMax]byte
	n, err := unix.Readlink("/proc/self/exe", exeBuf[:])
	if err != nil {
		return
	}
	exe := exeBuf[:n]
	fd, err := unix.Open("/proc/self/maps", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var buf [4 << 10]byte
	have := 0
	for {
		n, err := unix.Read(fd, buf[have:])
		if err != nil || n <= 0 {
			return
		}
		have += n
		lines := buf[:have]
		for {
			i := bytes.IndexByte(lines, '\n')
			if i < 0 {
				break
			}
			releaseMapping(lines[:i], exe)
			lines = lines[i+1:]
		}
		// A line longer than the buffer is not one of the binary's.
		have = copy(buf[:], lines)
		if have == len(buf) {
			have = 0
		}
	}
}

// releaseMapping drops the pages of one line of /proc/self/maps when it
// maps exe read-only or executable, privately: the file's own pages.
func releaseMapping(line, exe []byte) {
	// "start-end perms offset dev inode   path"
	var f [6][]byte
	for i := range f {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		if i == 5 {
			f[i] = line
			break
		}
		j := bytes.IndexByte(line, ' ')
		if j < 0 {
			return
		}
		f[i], line = line[:j], line[j:]
	}
	perms := string(f[1])
	if !bytes.Equal(f[5], exe) || perms != "r--p" && perms != "r-xp" {
		return
	}
	lo, hi, ok := bytes.Cut(f[0], []byte{'-'})
	if !ok {
		return
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return
	}
	// Small pages from now on: the sealed binary sits in huge pages in the
	// page cache (see copyInHugeChunks), which starts it faster, but a page
	// this monitor needs again would bring back 2 MiB.
	unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_NOHUGEPAGE)
	unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
}

// resolveJoins sets, in spec's Join, each namespace of another container
// that the container enters: a descriptor of the other container's init's
// namespace, opened now rather than at create, since that init may have
// ended and its pid gone to another process. The monitor holds the files
// it returns open.
func resolveJoins(spec *Spec) ([]*os.File, error) {
	var files []*os.File
	for ns, dir := range spec.Namespaces.JoinContainer {
		f, err := openJoined(ns, dir)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, f)
		if spec.Namespaces.Join == nil {
			spec.Namespaces.Join = map[string]string{}
		}
		spec.Namespaces.Join[ns] = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	}
	return files, nil
}

// openJoined opens the namespace of kind ns of the init of the container
// whose state directory is dir, which must be running.
func openJoined(ns, dir string) (*os.File, error) {
	notRunning := fmt.Errorf("join %s namespace of container %s: not running: %w", ns, path.Base(dir), errdefs.ErrWrongState)
	st, err := ReadState(dir)
	if err != nil {
		return nil, fmt.Errorf("join %s namespace of container %s: %w", ns, path.Base(dir), err)
	}
	if st.Status != Running || st.Pid <= 0 {
		return nil, notRunning
	}
	pidfd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return nil, notRunning
	}
	defer unix.Close(pidfd)
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns))
	if err != nil {
		return nil, notRunning
	}
	// The pid named the container's init when the pidfd was opened (its
	// start is the init's: the pid went to no other process since the
	// state was written), and that process lives on after the open: the
	// namespace is its.
	again, err := ReadState(dir)
	if err != nil || again.Status != Running || again.Pid != st.Pid || st.PidStart == 0 || procStart(st.Pid) != st.PidStart ||
		unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
		f.Close()
		return nil, notRunning
	}
	return f, nil
}

// procStart returns when process pid started, in clock ticks after boot,
// or 0 when it cannot tell.
func procStart(pid int) uint64 {
	n, _ := procstat.Start(pid)
	return n
}
