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
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/unixsock"
)

// execArg0 marks the re-executed binary that becomes a process exec'd into
// a running container.
const execArg0 = "dock-exec"

// Where the exec'd helper finds the container's mount namespace and, when
// it has one of its own, its cgroup namespace.
const (
	execMntFD    = 4
	execCgroupFD = 5
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
// not to the container's log.
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
		if req.Filter, err = filterFile(exe, proc.Caps); err != nil {
			return nil, err
		}
	}
	if stdio == nil {
		stdio = &Stdio{}
	}

	p := &ExecProcess{h: h}
	var child [3]*os.File // what the process gets as 0, 1, 2
	var parent []*os.File // our ends, closed when the copies end
	fail := func(err error) (*ExecProcess, error) {
		for _, f := range child {
			if f != nil {
				f.Close()
			}
		}
		for _, f := range parent {
			f.Close()
		}
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
		if stdio.Stdin != nil {
			go io.Copy(master, stdio.Stdin)
		}
		if stdio.Stdout != nil {
			p.copies.Add(1)
			go func() {
				defer p.copies.Done()
				io.Copy(stdio.Stdout, master) // ends with EIO once the process is gone
			}()
		}
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
	stop()
	if err != nil {
		c.Close()
		return fail(fmt.Errorf("container %s: exec: %w", h.spec.ID, err))
	}
	if resp.Pid == 0 {
		c.Close()
		p.copies.Wait()
		if resp.Code != 0 {
			return nil, &StartError{ExitCode: resp.Code, Msg: resp.Error}
		}
		return nil, fmt.Errorf("container %s: exec: %s", h.spec.ID, resp.Error)
	}
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
	writeResp(c, &monitorResp{Pid: pid})
	ws := <-exited
	code, sig := exitCodeOf(ws)
	writeResp(c, &monitorResp{Status: &ExitStatus{ExitCode: code, Signal: sig}})
	return true
}

// startExec starts the helper that becomes the exec'd process.
func (m *monitor) startExec(req *monitorReq, stdio []*os.File) (int, chan syscall.WaitStatus, error) {
	spec := *m.spec
	spec.Process = *req.Exec
	raw, err := json.Marshal(&spec)
	if err != nil {
		return 0, nil, err
	}
	var filter []byte
	if req.Filter != "" {
		if filter, err = os.ReadFile(req.Filter); err != nil {
			return 0, nil, fmt.Errorf("seccomp: %w", err)
		}
	}
	parentSync, childSync, err := socketPair()
	if err != nil {
		return 0, nil, err
	}
	defer parentSync.Close()
	defer childSync.Close()

	m.mu.Lock()
	if m.done || m.cmd == nil {
		m.mu.Unlock()
		return 0, nil, errors.New(errNotRunning)
	}
	initPid := m.pid
	m.mu.Unlock()
	mnt, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", initPid))
	if err != nil {
		return 0, nil, fmt.Errorf("container mount namespace: %w", err)
	}
	defer mnt.Close()

	cmd := &command{
		Path:        m.exe,
		Args:        []string{execArg0, m.stateDir},
		Env:         helperEnv,
		Dir:         "/",
		Stdin:       stdio[0],
		Stdout:      stdio[1],
		Stderr:      stdio[2],
		ExtraFiles:  []*os.File{childSync, mnt},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if spec.Process.Terminal {
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
	}
	// The helper enters the mount namespace itself, once it runs from the
	// sealed binary, and the cgroup namespace once it is in the cgroup
	// (the kernel refuses CLONE_INTO_CGROUP from outside the namespace's
	// root). The others are entered before the clone.
	join := map[string]string{}
	for _, ns := range []string{"pid", "net", "ipc", "uts"} {
		if spec.hasNew(ns) || spec.Namespaces.Join[ns] != "" {
			join[ns] = fmt.Sprintf("/proc/%d/ns/%s", initPid, ns)
		}
	}
	if spec.hasNew("cgroup") || spec.Namespaces.Join["cgroup"] != "" {
		cgns, err := os.Open(fmt.Sprintf("/proc/%d/ns/cgroup", initPid))
		if err != nil {
			return 0, nil, fmt.Errorf("container cgroup namespace: %w", err)
		}
		defer cgns.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, cgns)
		cmd.Args = append(cmd.Args, "cgroupns")
	}
	if m.group != nil && m.group.V2() {
		fd, err := unix.Open(m.group.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, nil, fmt.Errorf("cgroup: %w", err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	// In a user namespace, the helper runs as its root, and the
	// namespaces it enters itself are the container's.
	if spec.hasNew("user") {
		userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", initPid))
		if err != nil {
			return 0, nil, fmt.Errorf("container user namespace: %w", err)
		}
		defer userns.Close()
		cmd.UserNS = userns
	}

	// Registered before the reaper can see it go.
	exited := make(chan syscall.WaitStatus, 1)
	m.mu.Lock()
	err = spawnIn(cmd, join)
	if err == nil {
		m.execs[cmd.Process.Pid] = exited
	}
	m.mu.Unlock()
	childSync.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("start exec: %w", err)
	}
	pid := cmd.Process.Pid
	if m.group != nil && !m.group.V2() {
		if err := m.group.Add(pid); err != nil {
			cmd.Process.Kill()
			<-exited
			return 0, nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	if err := sendConfig(parentSync, raw, filter); err != nil {
		cmd.Process.Kill()
		<-exited
		return 0, nil, err
	}
	b, _ := io.ReadAll(parentSync)
	if len(b) > 0 {
		var im initMsg
		if err := json.Unmarshal(b, &im); err != nil {
			im = initMsg{Code: 125, Msg: strings.TrimSpace(string(b))}
		}
		<-exited
		return 0, nil, &StartError{ExitCode: im.Code, Msg: im.Msg}
	}
	return pid, exited, nil
}

// execMain runs in the helper, on a locked thread, already in the
// container's namespaces but its mount namespace: enter that, then become
// the user's process as the init does.
func execMain() {
	syncF := os.NewFile(initSyncFD, "sync")
	fail := func(code int, format string, args ...any) {
		b, _ := json.Marshal(initMsg{Code: code, Msg: fmt.Sprintf(format, args...)})
		syncF.Write(b)
		os.Exit(code)
	}
	spec, filter, err := receiveConfig(syncF)
	if err != nil {
		fail(125, "exec: %v", err)
	}
	// The mount namespace needs a thread of its own file system context;
	// this thread is never unlocked and execs.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		fail(125, "exec: unshare: %v", err)
	}
	if len(os.Args) > 2 && os.Args[2] == "cgroupns" {
		if err := unix.Setns(execCgroupFD, unix.CLONE_NEWCGROUP); err != nil {
			fail(125, "exec: enter the cgroup namespace: %v", err)
		}
		unix.Close(execCgroupFD)
	}
	if err := unix.Setns(execMntFD, unix.CLONE_NEWNS); err != nil {
		fail(125, "exec: enter the mount namespace: %v", err)
	}
	unix.Close(execMntFD)
	if err := unix.Chdir("/"); err != nil {
		fail(125, "exec: %v", err)
	}
	finishProcess(spec, filter, fail)
}
