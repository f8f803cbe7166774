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
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/runtime/standby"
)

var nsFlags = map[string]uintptr{
	"pid":    unix.CLONE_NEWPID,
	"mnt":    unix.CLONE_NEWNS,
	"uts":    unix.CLONE_NEWUTS,
	"ipc":    unix.CLONE_NEWIPC,
	"net":    unix.CLONE_NEWNET,
	"cgroup": unix.CLONE_NEWCGROUP,
	"user":   unix.CLONE_NEWUSER,
}

// Stdio connects a foreground container to the caller. Any field may be
// nil. The container's output always goes to its log as well; a writer that
// blocks holds the container up, as a terminal would. Stdin, when set, is
// copied to the container until it returns EOF or an error; the copy may
// outlive the container until then.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ConsoleSize, when not zero, is the size of the caller's own
	// terminal: the process's terminal starts with it, over its
	// Process.ConsoleSize.
	ConsoleSize ConsoleSize
}

// Handle is one container, seen from any process.
type Handle struct {
	stateDir string
	spec     *Spec
	st       State
	copies   *copySet // this process's copies of the container's output to Stdio
}

// copySet tracks copies in flight. Unlike a WaitGroup it may gain copies
// (a new start) while an earlier Wait still waits.
type copySet struct {
	mu      sync.Mutex
	pending []chan struct{}
}

// add registers a copy; the caller closes the channel when it is done.
func (c *copySet) add() chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	c.pending = append(c.pending, ch)
	c.mu.Unlock()
	return ch
}

// wait blocks until the copies registered so far are done.
func (c *copySet) wait(ctx context.Context) error {
	c.mu.Lock()
	pending := append([]chan struct{}(nil), c.pending...)
	c.mu.Unlock()
	for _, ch := range pending {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	kept := c.pending[:0]
	for _, ch := range c.pending {
		select {
		case <-ch:
		default:
			kept = append(kept, ch)
		}
	}
	c.pending = kept
	c.mu.Unlock()
	return nil
}

// pendingCopies holds, per state directory, the copies of a foreground
// container's output to the writers given to Start, so that Wait on any
// Handle in this process returns only after the output has been delivered.
var pendingCopies sync.Map // state dir -> *copySet

func callerCopies(stateDir string) *copySet {
	cs, _ := pendingCopies.LoadOrStore(stateDir, new(copySet))
	return cs.(*copySet)
}

// The monitor's file descriptors, as the caller passes them.
const (
	monSyncFD   = 3
	monStdinFD  = 4
	monStdoutFD = 5
	monStderrFD = 6
)

// syncMsg is what the monitor tells the caller once the user's command runs
// or could not be started.
type syncMsg struct {
	Pid   int    `json:"pid,omitempty"`
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

func (s *Spec) validate() error {
	if s.ID == "" || s.StateDir == "" {
		return fmt.Errorf("spec: id and state dir are required: %w", errdefs.ErrInvalidArgument)
	}
	if len(s.Process.Args) == 0 {
		return fmt.Errorf("spec: no command: %w", errdefs.ErrInvalidArgument)
	}
	if len(s.Rootfs) == 0 {
		return fmt.Errorf("spec: no rootfs mounts: %w", errdefs.ErrInvalidArgument)
	}
	for _, ns := range s.Namespaces.New {
		if _, ok := nsFlags[ns]; !ok {
			return fmt.Errorf("spec: namespace %q: %w", ns, errdefs.ErrInvalidArgument)
		}
	}
	for _, join := range []map[string]string{s.Namespaces.Join, s.Namespaces.JoinContainer} {
		for ns := range join {
			if _, ok := nsFlags[ns]; !ok {
				return fmt.Errorf("spec: join namespace %q: %w", ns, errdefs.ErrInvalidArgument)
			}
			if ns == "user" || ns == "mnt" {
				return fmt.Errorf("spec: joining a %s namespace: %w", ns, errdefs.ErrNotSupported)
			}
			if s.hasNew(ns) {
				return fmt.Errorf("spec: namespace %q both new and joined: %w", ns, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// Start runs the container that spec describes. It writes the spec into
// spec.StateDir, starts the container's monitor (which outlives the caller)
// and returns once the user's command has been executed. When the command
// cannot be started, the error is a *StartError carrying Docker's exit code,
// and the container is left stopped with that code. ctx bounds only the
// start, never the container.
func Start(ctx context.Context, spec *Spec, stdio *Stdio) (*Handle, error) {
	return startMonitor(ctx, spec, stdio, nil)
}

func startMonitor(ctx context.Context, spec *Spec, stdio *Stdio, sb *Standby) (*Handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	// The monitor and the init run in /; a relative directory would not
	// name the same place there.
	if !path.IsAbs(spec.StateDir) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		spec.StateDir = path.Join(wd, spec.StateDir)
	}
	// A stopped container may start again, with the same state directory
	// and log.
	if st, err := (&Handle{stateDir: spec.StateDir, spec: spec}).readState(); err == nil {
		if st.Status == Running || (st.Status == Created && (&Handle{stateDir: spec.StateDir}).monitorStarting()) {
			return nil, fmt.Errorf("container %s: %s: %w", spec.ID, st.Status, errdefs.ErrWrongState)
		}
		if st.Status == Stopped {
			os.Remove(path.Join(spec.StateDir, stateFile))
		}
	}
	if err := os.MkdirAll(path.Join(spec.StateDir, rootfsDir), 0o711); err != nil {
		return nil, err
	}
	if stdio != nil && stdio.ConsoleSize != (ConsoleSize{}) {
		spec.Process.ConsoleSize = stdio.ConsoleSize
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path.Join(spec.StateDir, configFile), b, false); err != nil {
		return nil, err
	}
	exe, err := monitorExe(spec.StateDir)
	if err != nil {
		return nil, fmt.Errorf("container %s: sealed binary: %w", spec.ID, err)
	}
	filter := "-"
	if spec.Process.Seccomp && !spec.Process.Privileged {
		if filter, err = filterFile(exe, &spec.Process); err != nil {
			return nil, fmt.Errorf("container %s: %w", spec.ID, err)
		}
	}

	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncR.Close()
	files := []*os.File{syncW, nil, nil, nil}
	var parentEnds, childEnds []*os.File
	childEnds = append(childEnds, syncW)
	roles := ""
	if stdio != nil {
		if stdio.Stdin != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			files[monStdinFD-3], roles = r, roles+"i"
			childEnds, parentEnds = append(childEnds, r), append(parentEnds, w)
		}
		for i, w := range []io.Writer{stdio.Stdout, stdio.Stderr} {
			if w == nil {
				continue
			}
			r, wp, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			files[monStdoutFD-3+i] = wp
			roles += "oe"[i : i+1]
			childEnds, parentEnds = append(childEnds, wp), append(parentEnds, r)
		}
	}
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	mlog, err := os.OpenFile(path.Join(spec.StateDir, monitorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		closeAll(childEnds)
		closeAll(parentEnds)
		return nil, err
	}
	if roles == "" {
		roles = "-"
	}
	args := []string{spec.StateDir, roles, filter}
	var monitor *os.Process
	if sb != nil && sb.hand(ctx, exe, args, mlog, files) {
		monitor = sb.proc
	} else {
		if err := ctx.Err(); err != nil {
			mlog.Close()
			closeAll(childEnds)
			closeAll(parentEnds)
			return nil, fmt.Errorf("container %s: start: %w", spec.ID, err)
		}
		sealed, err := standby.OpenSealed(exe)
		if err != nil {
			mlog.Close()
			closeAll(childEnds)
			closeAll(parentEnds)
			return nil, fmt.Errorf("container %s: start monitor: %w", spec.ID, err)
		}
		defer unix.Close(sealed)
		cmd := &command{
			Path:       standby.SealedPath(sealed),
			Args:       append([]string{monitorArg0}, args...),
			Env:        standby.MonitorEnv,
			Dir:        "/",
			Stdout:     mlog,
			Stderr:     mlog,
			ExtraFiles: files,
			SysProcAttr: &syscall.SysProcAttr{
				Setsid: true,
				// A mount namespace of the monitor's own, for the root
				// it mounts over idmapped layers.
				Cloneflags: unix.CLONE_NEWNS,
			},
		}
		if err := cmd.Start(); err != nil {
			mlog.Close()
			closeAll(childEnds)
			closeAll(parentEnds)
			return nil, fmt.Errorf("container %s: start monitor: %w", spec.ID, err)
		}
		// Reap the monitor if it ends while this process lives; it goes
		// on without us otherwise.
		go cmd.Process.Wait()
		monitor = cmd.Process
	}
	mlog.Close()
	closeAll(childEnds)

	h := &Handle{stateDir: spec.StateDir, spec: spec}
	h.copies = callerCopies(spec.StateDir)
	if stdio != nil {
		i := 0
		if stdio.Stdin != nil {
			w := parentEnds[i]
			i++
			go func() {
				io.Copy(w, stdio.Stdin)
				w.Close()
			}()
		}
		for _, dst := range []io.Writer{stdio.Stdout, stdio.Stderr} {
			if dst == nil {
				continue
			}
			r := parentEnds[i]
			i++
			done := h.copies.add()
			go func() {
				defer close(done)
				io.Copy(dst, r)
				r.Close()
			}()
		}
	}

	// A start that never ends (a mount of a file system that does not
	// answer, a frozen cgroup) ends with ctx: the monitor is killed, with
	// the thread an init is cloned from, and what is in the container's
	// group, and the wait for the report ends, as an init cloned before
	// may hold the pipe still.
	stop := context.AfterFunc(ctx, func() {
		monitor.Kill()
		if spec.Cgroup != nil {
			spec.Cgroup.Kill()
		}
		syncR.SetReadDeadline(time.Now())
	})
	line, rerr := bufio.NewReader(syncR).ReadBytes('\n')
	if !stop() {
		// Not waiting for the output: an init the monitor executed may
		// hold it still.
		return nil, fmt.Errorf("container %s: start: %w", spec.ID, ctx.Err())
	}
	var msg syncMsg
	if err := json.Unmarshal(line, &msg); err != nil {
		h.copies.wait(context.Background())
		detail, _ := os.ReadFile(path.Join(spec.StateDir, monitorLog))
		if rerr == nil {
			rerr = err
		}
		return nil, fmt.Errorf("container %s: monitor: %v: %s", spec.ID, rerr, strings.TrimSpace(string(detail)))
	}
	if msg.Error != "" {
		h.copies.wait(context.Background())
		return nil, &StartError{ExitCode: msg.Code, Msg: msg.Error}
	}
	h.st, _ = readState(spec.StateDir)
	return h, nil
}

// Load opens the container whose state is in stateDir, from any process.
func Load(stateDir string) (*Handle, error) {
	spec, err := readSpec(stateDir)
	if err != nil {
		return nil, err
	}
	h := &Handle{stateDir: stateDir, spec: spec, copies: callerCopies(stateDir)}
	h.st, err = h.readState()
	if err != nil {
		return nil, err
	}
	return h, nil
}

// readState reads state.json and notices a monitor that died without
// recording the container's end.
func (h *Handle) readState() (State, error) { return ReadState(h.stateDir) }

// ReadState reads the state of the container in stateDir as [Handle.State]
// has it, without loading the rest: a container whose monitor died without
// recording its end reads as stopped, exit code 255, with an Error.
func ReadState(stateDir string) (State, error) {
	st, err := readState(stateDir)
	if err != nil {
		return st, err
	}
	if st.Status == Running && st.MonitorPid > 0 && !monitorAlive(st.MonitorPid, stateDir) {
		// Read again: the monitor may have recorded the exit just now.
		if st2, err := readState(stateDir); err == nil && st2.Status != Running {
			return st2, nil
		}
		st.Status = Stopped
		st.ExitCode = 255
		st.Error = "monitor exited without recording the container's end"
	}
	if st.Status == Stopped && st.Restarting && st.MonitorPid > 0 && !monitorAlive(st.MonitorPid, stateDir) {
		// The monitor that was to start it again is gone.
		st.Restarting = false
	}
	return st, nil
}

// monitorAlive tells whether pid is still the monitor of stateDir. The
// monitor names its state directory as the program that started it spelt
// it, which another program may reach by another path (a symlink, a bind
// mount): the same directory counts.
func monitorAlive(pid int, stateDir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	if len(args) < 2 || args[0] != monitorArg0 {
		return false
	}
	if args[1] == stateDir {
		return true
	}
	a, err1 := os.Stat(args[1])
	d, err2 := os.Stat(stateDir)
	return err1 == nil && err2 == nil && os.SameFile(a, d)
}

// ID returns the container's ID.
func (h *Handle) ID() string { return h.spec.ID }

// Spec returns the spec the container was started with.
func (h *Handle) Spec() *Spec { return h.spec }

// StateDir returns the container's state directory.
func (h *Handle) StateDir() string { return h.stateDir }

// State reads the container's current state.
func (h *Handle) State() State {
	if st, err := h.readState(); err == nil {
		h.st = st
	}
	return h.st
}

// Wait blocks until the container has stopped and returns how it ended. It
// works from any process, before or after the exit, as often as asked. For
// a Handle from Start with Stdio, it also waits until all output reached
// the caller's writers.
func (h *Handle) Wait(ctx context.Context) (ExitStatus, error) {
	es, err := h.wait(ctx)
	if err == nil {
		if err := h.copies.wait(ctx); err != nil {
			return es, err
		}
	}
	return es, err
}

func (h *Handle) wait(ctx context.Context) (ExitStatus, error) {
	var watch *stateWatch
	defer func() {
		if watch != nil {
			watch.close()
		}
	}()
	for {
		st, err := h.readState()
		if err != nil {
			return ExitStatus{}, err
		}
		if st.Status == Stopped {
			return st.exitStatus(), nil
		}
		if st.Status == Created && st.MonitorPid == 0 {
			// Not started, or the monitor has not yet written anything.
			if !h.monitorStarting() {
				return ExitStatus{}, fmt.Errorf("container %s: not started: %w", h.spec.ID, errdefs.ErrWrongState)
			}
		}
		var resp monitorResp
		err = h.call(ctx, monitorReq{Op: "wait"}, &resp)
		if err == nil && resp.Status != nil {
			return *resp.Status, nil
		}
		if ctx.Err() != nil {
			return ExitStatus{}, ctx.Err()
		}
		// The monitor is gone or going: state.json has the answer, or
		// shows a monitor that died. Watch it, then read it again, so
		// that an exit recorded meanwhile is not missed; the timeout
		// notices a monitor that died without recording one.
		if watch == nil {
			watch = watchState(h.stateDir)
			continue
		}
		if err := watch.wait(ctx, 20*time.Millisecond); err != nil {
			return ExitStatus{}, err
		}
	}
}

// monitorStarting tells whether a monitor for this container is answering.
func (h *Handle) monitorStarting() bool {
	c, err := dialMonitor(h.stateDir)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Kill sends sig to the container's init process. A container killed this
// way is not restarted by its restart policy; one waiting for its restart
// stays stopped.
func (h *Handle) Kill(sig syscall.Signal) error {
	// Before the signal: a container that ends of itself meanwhile is not
	// restarted either.
	if f, err := os.OpenFile(path.Join(h.stateDir, stopFile), os.O_WRONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600); err == nil {
		f.Close()
	}
	var resp monitorResp
	if err := h.call(context.Background(), monitorReq{Op: "kill", Signal: int(sig), Manual: true}, &resp); err != nil {
		if h.cancelRestart() {
			return nil
		}
		if st, _ := h.readState(); st.Status != Running {
			return fmt.Errorf("container %s: not running: %w", h.spec.ID, errdefs.ErrWrongState)
		}
		return fmt.Errorf("container %s: kill: %w", h.spec.ID, err)
	}
	if resp.Error != "" {
		if resp.Error == errNotRunning {
			return fmt.Errorf("container %s: not running: %w", h.spec.ID, errdefs.ErrWrongState)
		}
		return fmt.Errorf("container %s: kill: %s", h.spec.ID, resp.Error)
	}
	return nil
}

// Stop sends the spec's stop signal, waits up to timeout for the container
// to exit, then kills it with SIGKILL and waits for it. A stopped container
// is not an error.
func (h *Handle) Stop(ctx context.Context, timeout time.Duration) error {
	if err := h.Kill(h.spec.stopSignal()); err != nil {
		if errors.Is(err, errdefs.ErrWrongState) {
			return nil
		}
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_, err := h.wait(wctx)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := h.Kill(syscall.SIGKILL); err != nil && !errors.Is(err, errdefs.ErrWrongState) {
		return err
	}
	_, err = h.wait(ctx)
	return err
}

// Delete removes the container's state directory. A running container is
// refused with ErrWrongState unless force is set, which kills it first.
func (h *Handle) Delete(force bool) error {
	st, err := h.readState()
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if st.Status == Running || (st.Status == Created && h.monitorStarting()) {
		if !force {
			return fmt.Errorf("container %s: %s: %w", h.spec.ID, st.Status, errdefs.ErrWrongState)
		}
		if err := h.Kill(syscall.SIGKILL); err != nil && !errors.Is(err, errdefs.ErrWrongState) {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := h.wait(ctx)
		cancel()
		// A monitor that answered, then went before it started the
		// container (killed with a start that was given up), leaves
		// nothing to wait for.
		if err != nil && !(st.Status == Created && errors.Is(err, errdefs.ErrWrongState)) {
			return fmt.Errorf("container %s: delete: %w", h.spec.ID, err)
		}
		st, _ = h.readState()
	}
	// The monitor may have died before removing the group, or kept it for
	// a restart.
	removeCgroup(h.spec.Cgroup)
	if err := os.RemoveAll(h.stateDir); err != nil {
		return fmt.Errorf("container %s: delete: %w", h.spec.ID, err)
	}
	pendingCopies.Delete(h.stateDir)
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
