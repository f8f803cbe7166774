package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	goruntime "runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/runtime/nofile"
)

// A container's init is, where it can be, a raw clone of the monitor (see
// forkexec_linux.go) rather than the binary executed again: that saves a
// Go program's start-up, some 15 to 20 ms of CPU here, on every start. The clone comes
// from a thread of the monitor that first enters the container's new
// namespaces, as a thread of a Go program can with unshare(2) (the Go
// runtime starts no thread from one it is locked to), and builds the root
// there with the init's own code, setupRootfs. The init, cloned into those
// namespaces as the first process of its pid namespace, mounts proc and
// cgroup2, whose view is their mounter's, enters its cgroup namespace and
// turns into the user's process as an exec'd one does. The thread ends
// with its goroutine, never unlocked.

// initOnThread reports whether the init of spec comes from a thread: not
// in a user namespace, which no thread of a multithreaded process may
// enter, nor over idmapped layers, and without the caller's mounts in
// /proc or on the way to /sys/fs/cgroup, which the init's own would cover
// or be covered by, unlike the order setupRootfs keeps in an init of its
// own; nor with masks or read-only paths in /sys/fs/cgroup, which the
// init's cgroup2 would cover; nor with sysctls, written through the
// init's own proc before its /proc/sys is made read-only; nor with a
// reaper, which the init executes. The binary
// executed again handles the rest.
func initOnThread(spec *Spec) bool {
	if spec.hasNew("user") || idmapRootfs(spec) || !nofile.Known || len(spec.Sysctls) > 0 || spec.Process.Init {
		return false
	}
	for _, m := range spec.Mounts {
		d := path.Clean(m.Destination)
		if inProc(d) || d == "/sys" || d == "/sys/fs" || inCgroupFS(d) {
			return false
		}
	}
	for _, paths := range [][]string{spec.MaskedPaths, spec.ReadonlyPaths} {
		for _, p := range paths {
			if inCgroupFS(path.Clean(p)) {
				return false
			}
		}
	}
	return true
}

// inCgroupFS reports whether p is /sys/fs/cgroup or below it.
func inCgroupFS(p string) bool {
	return p == "/sys/fs/cgroup" || strings.HasPrefix(p, "/sys/fs/cgroup/")
}

// startOnThread starts the container's init from a thread and returns once
// it has executed the command, or with why it could not. stdio is the
// init's, nil for /dev/null; console is the terminal's path, if any; cgroupFD
// is the cgroup v2 directory to clone into, or -1.
func (m *monitor) startOnThread(spec *Spec, filter []unix.SockFilter, stdio []*os.File, console string, cgroupFD int) error {
	for i, f := range stdio {
		if f == nil {
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer null.Close()
			stdio[i] = null
		}
	}
	proc := spec.Process
	s := &execSetup{proc: &proc, filter: filter, stdio: stdio, cgroupFD: cgroupFD}
	if p := spec.Namespaces.Join["cgroup"]; p != "" {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("join cgroup namespace: %w", err)
		}
		defer f.Close()
		s.cgroupns = f
	}
	// The limit the monitor was started with, which its Go runtime
	// raised, as an init executed from it would have it.
	s.nofile = &unix.Rlimit{Cur: nofile.Soft, Max: nofile.Hard}

	var initProc signaler
	hooks := execHooks{
		mu: &m.mu,
		forked: func(pid int) {
			m.pid = pid
			// Before the reaper runs, so that the pid is still the init's.
			initProc = openPidfd(pid)
			go m.reap()
		},
		register: func(int) error { return nil },
		kill:     func(int) { initProc.Kill() },
	}
	if m.group != nil {
		// Called on the thread, which sees the container's root by then:
		// the group's files are opened now.
		procs, err := m.group.OpenProcs()
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		defer procs.Close()
		hooks.join = func(pid int) error {
			if err := procs.Add(pid); err != nil {
				return fmt.Errorf("cgroup: %w", err)
			}
			return nil
		}
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread is left in the container's
		// namespaces and root, and ends with this goroutine.
		goruntime.LockOSThread()
		err := m.cloneInit(spec, s, console, hooks)
		errc <- err
		if err == nil {
			// The init's parent, for PR_SET_PDEATHSIG, is this thread,
			// not the monitor: it stays until the init's end is told.
			<-m.released
		}
	}()
	err := <-errc
	if err != nil && m.pid != 0 {
		// The init reported why it stopped and exits, or is killed.
		initProc.Kill()
		<-m.exited
		return err
	}
	if err == nil {
		m.mu.Lock()
		m.proc = initProc
		m.mu.Unlock()
	}
	return err
}

// signaler is how the monitor signals its init.
type signaler interface {
	Signal(os.Signal) error
	Kill() error
}

// pidfdProcess signals a child through a pidfd, which unlike its pid
// names no other process once the child has been reaped. (os.FindProcess
// would do as much, but first starts a process to learn whether the
// kernel has pidfds.)
type pidfdProcess struct{ fd int }

// openPidfd returns a signaler for pid, a child not yet reaped.
func openPidfd(pid int) signaler {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		p, _ := os.FindProcess(pid) // never fails on Linux
		return p
	}
	return &pidfdProcess{fd}
}

func (p *pidfdProcess) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return errors.New("unsupported signal")
	}
	err := unix.PidfdSendSignal(p.fd, s, nil, 0)
	if err == unix.ESRCH {
		return os.ErrProcessDone
	}
	return err
}

func (p *pidfdProcess) Kill() error { return p.Signal(syscall.SIGKILL) }

// cloneInit runs on a locked thread: it enters the container's namespaces,
// builds its root and clones the init.
func (m *monitor) cloneInit(spec *Spec, s *execSetup, console string, hooks execHooks) error {
	for ns, p := range spec.Namespaces.Join {
		if ns == "cgroup" {
			continue // the init's, once in its cgroup
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("join %s namespace: %w", ns, err)
		}
		err = unix.Setns(fd, int(nsFlags[ns]))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("join %s namespace %s: %w", ns, p, err)
		}
	}
	// A mount namespace and file system context of this thread's own, and
	// new namespaces for the init: pid is its children's.
	if err := unix.Unshare(int(initCloneFlags(spec.Namespaces.New))); err != nil {
		return fmt.Errorf("namespaces: %w", err)
	}
	unix.Umask(0)
	rs := &rootfsSetup{console: console, onThread: true}
	if err := setupRootfs(spec, rs); err != nil {
		return &StartError{ExitCode: 125, Msg: "init: " + err.Error()}
	}
	if err := setupProcess(spec); err != nil {
		return &StartError{ExitCode: 125, Msg: "init: " + err.Error()}
	}
	c, err := newExecChild(s)
	if err != nil {
		return &StartError{ExitCode: 125, Msg: "init: " + err.Error()}
	}
	c.init = true
	c.newCgroupNS = spec.hasNew("cgroup")
	for _, lm := range rs.late {
		cm, err := lm.forChild()
		if err != nil {
			return &StartError{ExitCode: 125, Msg: "init: " + err.Error()}
		}
		c.mounts = append(c.mounts, cm)
		c.mountNames = append(c.mountNames, lm.name)
	}
	_, err = c.start(s, hooks)
	var se *StartError
	if err != nil && !errors.As(err, &se) {
		err = fmt.Errorf("start init: %w", err)
	}
	return err
}

// forChild turns m into the child's form.
func (m lateMount) forChild() (childMount, error) {
	var c childMount
	for _, f := range []struct {
		p **byte
		s string
	}{{&c.source, m.source}, {&c.target, m.target}, {&c.fstype, m.fstype}, {&c.data, m.data}, {&c.orBind, m.orBind}} {
		if f.s == "" {
			continue
		}
		b, err := syscall.BytePtrFromString(f.s)
		if err != nil {
			return c, err
		}
		*f.p = b
	}
	c.flags, c.optional = m.flags, m.optional
	if m.attr != 0 {
		c.attr = &unix.MountAttr{Attr_set: m.attr}
	}
	return c, nil
}
