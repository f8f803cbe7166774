package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/unixsock"
)

// ExecProcess is a further process running in a container, started by
// [Handle.Exec].
type ExecProcess struct {
	Pid    int // in the host's pid namespace
	h      *Handle
	conn   *unixsock.Conn
	rd     *bufio.Reader
	master *os.File
	copies sync.WaitGroup

	once   sync.Once
	status ExitStatus
	err    error
}

// Exec starts proc in the running container: in its namespaces, its cgroup
// and its root filesystem, with proc's own user, capabilities and seccomp
// profile. It returns once proc's command has been executed, or with a
// *StartError carrying Docker's exit code. The process is a child of the
// container's monitor, which reports its exit; its output goes to stdio,
// not to the container's log. ctx bounds the start: the monitor kills a
// process whose caller gave up before it learned the pid.
func (h *Handle) Exec(ctx context.Context, proc *Process, stdio *Stdio) (*ExecProcess, error) {
	if len(proc.Args) == 0 {
		return nil, fmt.Errorf("exec: no command: %w", errdefs.ErrInvalidArgument)
	}
	if st, err := h.readState(); err != nil {
		return nil, err
	} else if st.Status != Running {
		return nil, fmt.Errorf("container %s: %s: %w", h.spec.ID, st.Status, errdefs.ErrWrongState)
	}
	req := monitorReq{Op: "exec", Exec: proc}
	if proc.Seccomp && !proc.Privileged {
		exe, err := sealedExe(h.exeDir())
		if err != nil {
			return nil, err
		}
		if req.Filter, err = filterFile(exe, proc); err != nil {
			return nil, err
		}
	}
	if stdio == nil {
		stdio = &Stdio{}
	}

	p := &ExecProcess{h: h}
	var child [3]*os.File // what the process gets as 0, 1, 2
	var parent []*os.File // our ends of the copies
	fail := func(err error) (*ExecProcess, error) {
		for _, f := range child {
			if f != nil {
				f.Close()
			}
		}
		// Nothing reaches the caller's writers once Exec has failed.
		for _, f := range parent {
			f.Close()
		}
		p.copies.Wait()
		return nil, err
	}
	if proc.Terminal {
		master, slave, err := openPTY()
		if err != nil {
			return fail(err)
		}
		p.master = master
		child = [3]*os.File{slave, slave, slave}
		parent = append(parent, master)
		size := proc.ConsoleSize
		if stdio.ConsoleSize != (ConsoleSize{}) {
			size = stdio.ConsoleSize
		}
		if size != (ConsoleSize{}) {
			if err := setWinsize(master, size.Rows, size.Cols); err != nil {
				return fail(err)
			}
		}
		if stdio.Stdin != nil {
			go io.Copy(master, stdio.Stdin)
		}
		// Read even when nobody asked for the output, as Docker does: a
		// full terminal would stop the process.
		out := stdio.Stdout
		if out == nil {
			out = io.Discard
		}
		p.copies.Add(1)
		go func() {
			defer p.copies.Done()
			io.Copy(out, master) // ends with EIO once the process is gone
		}()
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return fail(err)
		}
		child = [3]*os.File{null, null, null}
		if stdio.Stdin != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			child[0] = r
			parent = append(parent, w)
			go func() {
				io.Copy(w, stdio.Stdin)
				w.Close()
			}()
		}
		for i, dst := range []io.Writer{stdio.Stdout, stdio.Stderr} {
			if dst == nil {
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			child[1+i] = w
			parent = append(parent, r)
			p.copies.Add(1)
			go func() {
				defer p.copies.Done()
				io.Copy(dst, r)
				r.Close()
			}()
		}
	}

	c, err := dialMonitor(h.stateDir)
	if err != nil {
		return fail(fmt.Errorf("container %s: exec: %w", h.spec.ID, err))
	}
	b, _ := json.Marshal(req)
	rights := unix.UnixRights(int(child[0].Fd()), int(child[1].Fd()), int(child[2].Fd()))
	_, err = c.WriteMsg(append(b, '\n'), rights)
	seen := map[*os.File]bool{}
	for _, f := range child {
		if !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
	child = [3]*os.File{}
	if err != nil {
		c.Close()
		return fail(fmt.Errorf("container %s: exec: %w", h.spec.ID, err))
	}
	p.conn, p.rd = c, bufio.NewReader(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	var resp monitorResp
	err = p.read(&resp)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return fail(fmt.Errorf("container %s: exec: %w", h.spec.ID, err))
	}
	if resp.Pid == 0 {
		c.Close()
		p.copies.Wait()
		if p.master != nil {
			p.master.Close()
		}
		if resp.Code != 0 {
			return nil, &StartError{ExitCode: resp.Code, Msg: resp.Error}
		}
		return nil, fmt.Errorf("container %s: exec: %s", h.spec.ID, resp.Error)
	}
	// Without this acknowledgement, as when ctx has closed the connection,
	// the monitor kills the process: no caller could. The write fails only
	// once the monitor has reported the exit, or is gone; Wait tells which.
	c.Write([]byte{'\n'})
	p.Pid = resp.Pid
	return p, nil
}

func (p *ExecProcess) read(resp *monitorResp) error {
	line, err := p.rd.ReadBytes('\n')
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return json.Unmarshal(line, resp)
}

// Wait blocks until the process has exited and its output has been copied,
// and returns how it ended. It may be called more than once.
func (p *ExecProcess) Wait(ctx context.Context) (ExitStatus, error) {
	done := make(chan struct{})
	go func() {
		p.once.Do(func() {
			var resp monitorResp
			if err := p.read(&resp); err != nil {
				p.err = fmt.Errorf("exec %d: monitor: %w", p.Pid, err)
			} else if resp.Status == nil {
				p.err = fmt.Errorf("exec %d: %s", p.Pid, resp.Error)
			} else {
				p.status = *resp.Status
			}
			p.conn.Close()
			if p.master != nil {
				// The copy ends once the terminal has no other end open.
				p.copies.Wait()
				p.master.Close()
			}
			p.copies.Wait()
		})
		close(done)
	}()
	select {
	case <-done:
		return p.status, p.err
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Kill sends sig to the process.
func (p *ExecProcess) Kill(sig syscall.Signal) error {
	var resp monitorResp
	if err := p.h.call(context.Background(), monitorReq{Op: "kill-exec", Pid: p.Pid, Signal: int(sig)}, &resp); err != nil {
		return fmt.Errorf("exec %d: kill: %w", p.Pid, err)
	}
	if resp.Error == errNotRunning {
		return fmt.Errorf("exec %d: not running: %w", p.Pid, errdefs.ErrWrongState)
	}
	if resp.Error != "" {
		return fmt.Errorf("exec %d: kill: %s", p.Pid, resp.Error)
	}
	return nil
}

// Resize sets the window size of the process's terminal.
func (p *ExecProcess) Resize(rows, cols uint16) error {
	if p.master == nil {
		return fmt.Errorf("exec %d: no terminal: %w", p.Pid, errdefs.ErrWrongState)
	}
	return setWinsize(p.master, rows, cols)
}

func (h *Handle) exeDir() string {
	return path.Join(path.Dir(path.Dir(h.stateDir)), exeDirName)
}

// execStarted, when set (by tests, in the monitor), runs between an exec'd
// process's start and the report of its pid.
var execStarted func()

// serveExec answers an "exec" request: it starts the process and reports
// its pid, then its exit. It returns false for a malformed request.
func (m *monitor) serveExec(c *unixsock.Conn, req *monitorReq, fds []int) bool {
	if req.Exec == nil || len(fds) != 3 {
		return false
	}
	// The files own the descriptors from here on: serve must not close
	// them too, or a descriptor number reused meanwhile would be closed by
	// the files' finalizers.
	files := make([]*os.File, 3)
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "stdio")
		fds[i] = -1
	}
	pid, exited, err := m.startExec(req, files)
	for _, f := range files {
		f.Close() // the process has its own copies
	}
	if err != nil {
		resp := monitorResp{Error: err.Error()}
		var se *StartError
		if errors.As(err, &se) {
			resp.Code, resp.Error = se.ExitCode, se.Msg
		}
		writeResp(c, &resp)
		return true
	}
	if execStarted != nil {
		execStarted()
	}
	// The process is the caller's once it acknowledges the pid; a caller
	// gone before (its ctx ended during the start) has returned an error
	// and can neither wait for it nor kill it. An exit ends the wait for a
	// caller that never acknowledges.
	writeResp(c, &monitorResp{Pid: pid})
	c.SetReadDeadline(time.Time{})
	acked := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := c.Read(b[:])
		acked <- n == 1
	}()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case ok := <-acked:
		if !ok {
			m.killExec(pid)
			<-exited
			return true
		}
		ws = <-exited
	}
	code, sig := exitCodeOf(ws)
	writeResp(c, &monitorResp{Status: &ExitStatus{ExitCode: code, Signal: sig}})
	return true
}

// killExec kills the exec'd process pid unless the reaper has taken it
// already, and with it the pid, which another process may have by now.
func (m *monitor) killExec(pid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.execs[pid]; ok {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// execFilter returns the seccomp filter in the file at path, read once:
// a filter file, named for what it was compiled from, never changes, and
// health checks exec at every interval.
func (m *monitor) execFilter(path string) ([]unix.SockFilter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.filters[path]; ok {
		return f, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	f, err := decodeFilter(b)
	if err != nil {
		return nil, err
	}
	if m.filters == nil {
		m.filters = map[string][]unix.SockFilter{}
	}
	m.filters[path] = f
	return f, nil
}

// startExec starts the exec'd process, a raw clone of this monitor that
// enters the container and executes the command (see forkexec_linux.go),
// and returns once it has.
func (m *monitor) startExec(req *monitorReq, stdio []*os.File) (int, chan syscall.WaitStatus, error) {
	proc := *req.Exec
	s := &execSetup{proc: &proc, stdio: stdio, cgroupFD: -1}
	if req.Filter != "" {
		var err error
		if s.filter, err = m.execFilter(req.Filter); err != nil {
			return 0, nil, err
		}
	}

	m.mu.Lock()
	if m.done || m.ending || m.proc == nil {
		m.mu.Unlock()
		return 0, nil, errors.New(errNotRunning)
	}
	if m.paused {
		// Its process would freeze as it joins the cgroup.
		m.mu.Unlock()
		return 0, nil, errors.New("the container is paused")
	}
	initPid, initProc := m.pid, m.proc
	// The container's open-file limit as it started, where the process
	// sets none: this monitor's own is the one the Go runtime raised.
	s.nofile = m.nofile
	m.mu.Unlock()
	openNS := func(ns string) (*os.File, error) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", initPid, ns))
		if err != nil {
			return nil, fmt.Errorf("container %s namespace: %w", ns, err)
		}
		return f, nil
	}
	spec := m.spec
	var err error
	if s.mntns, err = openNS("mnt"); err != nil {
		return 0, nil, err
	}
	defer s.mntns.Close()
	if spec.hasNew("user") {
		if s.userns, err = openNS("user"); err != nil {
			return 0, nil, err
		}
		defer s.userns.Close()
	}
	// The child enters the cgroup namespace once in its cgroup: the
	// kernel refuses CLONE_INTO_CGROUP from outside the namespace's root.
	if spec.hasNew("cgroup") || spec.Namespaces.Join["cgroup"] != "" {
		if s.cgroupns, err = openNS("cgroup"); err != nil {
			return 0, nil, err
		}
		defer s.cgroupns.Close()
	}
	for _, ns := range []string{"pid", "net", "ipc", "uts"} {
		if spec.hasNew(ns) || spec.Namespaces.Join[ns] != "" {
			f, err := openNS(ns)
			if err != nil {
				return 0, nil, err
			}
			defer f.Close()
			s.joins = append(s.joins, nsFile{f, nsFlags[ns]})
		}
	}
	// The files are the init's only if it still ran once they were open:
	// its pid is free again once it has been reaped.
	if err := initProc.Signal(syscall.Signal(0)); err != nil {
		return 0, nil, errors.New(errNotRunning)
	}
	// Straight into its cgroup on v2; on v1, or without clone3, the child
	// waits for joinCgroup.
	var joinCgroup func(pid int) error
	if m.group != nil {
		joinCgroup = func(pid int) error {
			if err := m.group.Add(pid); err != nil {
				return fmt.Errorf("cgroup: %w", err)
			}
			return nil
		}
	}
	if m.group != nil && m.group.V2() {
		fd, err := unix.Open(m.group.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, nil, fmt.Errorf("cgroup: %w", err)
		}
		defer unix.Close(fd)
		s.cgroupFD = fd
	}
	child, err := newExecChild(s)
	if err != nil {
		return 0, nil, &StartError{ExitCode: 125, Msg: "exec: " + err.Error()}
	}

	// Registered as soon as its pid is known; the reaper keeps the status
	// of a process that ended before that.
	exited := make(chan syscall.WaitStatus, 1)
	firstExited := make(chan syscall.WaitStatus, 1) // the reaper's, that it knows the first child
	spawned := time.Now()
	hooks := execHooks{
		join:   joinCgroup,
		mu:     &m.mu,
		forked: func(pid int) { m.execs[pid] = firstExited },
		register: func(pid int) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.ending || m.done {
				// A container without a pid namespace of its own would
				// not take the process with it.
				unix.Kill(pid, unix.SIGKILL)
				return errors.New(errNotRunning)
			}
			if ws, ok := m.claim(pid, spawned); ok {
				exited <- ws
				return nil
			}
			m.execs[pid] = exited
			return nil
		},
		kill: m.killExec,
	}
	pid, err := child.start(s, hooks)
	if err != nil {
		var se *StartError
		if errors.As(err, &se) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("start exec: %w", err)
	}
	return pid, exited, nil
}
