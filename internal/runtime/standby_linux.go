package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/runtime/standby"
)

// standbyArg, as the argument after a monitor's state directory, starts it
// on standby; how long it waits, in milliseconds, may follow.
const standbyArg = standby.Arg

// Standby is a monitor started ahead of its container, so that its own
// start-up, a Go process's, runs while the caller still prepares the
// container (snapshot, record, cgroup), on another CPU. Start on it hands it
// the container; unused, it ends on Close, when the caller's process ends,
// or after about a second.
type Standby struct {
	exe      string
	stateDir string
	proc     *os.Process
	done     chan struct{} // closed once the process is reaped

	mu   sync.Mutex
	sock *os.File      // nil once taken by a start, closed or ended
	gone chan struct{} // closed when sock becomes nil
}

// takeSockLocked takes the caller's end of the socket, or nil when the standby
// is no longer there to take. The caller holds s.mu.
func (s *Standby) takeSockLocked() *os.File {
	sock := s.sock
	if sock != nil {
		s.sock = nil
		close(s.gone)
	}
	return sock
}

// NewStandby starts a monitor on standby for the container whose state
// directory is stateDir, under its state root.
func NewStandby(stateDir string) (*Standby, error) {
	if !path.IsAbs(stateDir) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		stateDir = path.Join(wd, stateDir)
	}
	exe, err := sealedExe(path.Join(rootOf(stateDir), exeDirName))
	if err != nil {
		return nil, fmt.Errorf("sealed binary: %w", err)
	}
	pid, sockFD := 0, -1
	// The monitor this program started ahead of the container, if it is
	// this one's; one for another container ends once its socket closes.
	if pre := standby.Take(); pre != nil {
		if pre.Exe == exe && pre.Root == rootOf(stateDir) && pre.ID == path.Base(stateDir) {
			pid, sockFD = pre.Pid, pre.Sock
		} else {
			unix.Close(pre.Sock)
			if p, err := os.FindProcess(pre.Pid); err == nil {
				go p.Wait()
			}
		}
	}
	if pid == 0 {
		if pid, sockFD, err = standby.Spawn(exe, stateDir, standby.IdleMillis); err != nil {
			return nil, fmt.Errorf("start monitor: %w", err)
		}
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		unix.Close(sockFD)
		return nil, err
	}
	// The caller's end in the poller, for the deadline on the answer.
	if err := unix.SetNonblock(sockFD, true); err != nil {
		unix.Close(sockFD)
		proc.Kill()
		proc.Wait()
		return nil, err
	}
	parent := os.NewFile(uintptr(sockFD), "standby")
	s := &Standby{exe: exe, stateDir: stateDir, proc: proc, done: make(chan struct{}), sock: parent, gone: make(chan struct{})}
	go func() {
		s.proc.Wait()
		s.mu.Lock()
		if sock := s.takeSockLocked(); sock != nil {
			sock.Close()
		}
		s.mu.Unlock()
		close(s.done)
	}()
	return s, nil
}

// PrestartedID returns, once, the ID of the container that the monitor this
// program started ahead (see package standby) waits for in the state root
// root, or "" when there is none: a create that takes it has its monitor
// started.
func PrestartedID(root string) string { return standby.ClaimID(root) }

// Gone is closed once the standby is no longer there to take: a start took
// it, it was closed, or it ended by itself.
func (s *Standby) Gone() <-chan struct{} { return s.gone }

// Close ends the monitor unless a start took it, and waits for its end.
func (s *Standby) Close() {
	s.mu.Lock()
	sock := s.takeSockLocked()
	s.mu.Unlock()
	if sock == nil {
		return
	}
	s.end(sock)
}

// end closes sock, the caller's end of the socket, which tells a monitor
// still waiting on standby to end; one that does not end within a second
// is killed.
func (s *Standby) end(sock *os.File) {
	sock.Close()
	select {
	case <-s.done:
	case <-time.After(time.Second):
		s.proc.Kill()
		<-s.done
	}
}

// Start starts the container of spec, as the package's Start does, with the
// monitor on standby when it is still there for a container of the same
// state directory, and with a new one otherwise.
func (s *Standby) Start(ctx context.Context, spec *Spec, stdio *Stdio) (*Handle, error) {
	return startMonitor(ctx, spec, stdio, s)
}

// activation is what a monitor on standby receives with its descriptors:
// the arguments a monitor started for the container gets, and which
// descriptors come, in order after the log (as its stdout and stderr).
type activation struct {
	Args []string `json:"args"`
	FDs  []int    `json:"fds"` // where each further descriptor goes
}

// hand gives the monitor on standby the container: its arguments, its log
// and the descriptors that go to 3 and up (nil ones skipped). It reports
// false when the monitor is gone, or will not answer, which leaves the
// caller to start one of its own; the monitor is then closed.
func (s *Standby) hand(ctx context.Context, exe string, args []string, mlog *os.File, files []*os.File) bool {
	s.mu.Lock()
	sock := s.takeSockLocked()
	s.mu.Unlock()
	if sock == nil {
		return false
	}
	ok := false
	defer func() {
		if ok {
			sock.Close()
		} else {
			s.end(sock)
		}
	}()
	if exe != s.exe || len(args) == 0 || args[0] != s.stateDir {
		return false
	}
	act := activation{Args: args}
	rights := []int{int(mlog.Fd())}
	for i, f := range files {
		if f != nil {
			act.FDs = append(act.FDs, 3+i)
			rights = append(rights, int(f.Fd()))
		}
	}
	b, err := json.Marshal(act)
	if err != nil {
		return false
	}
	send := func(fd int) error { return unix.Sendmsg(fd, b, unix.UnixRights(rights...), nil, unix.MSG_NOSIGNAL) }
	if err := control(sock, send); err != nil {
		return false
	}
	// The monitor answers once it holds the descriptors; a monitor that
	// gave up waiting at the same moment closes the socket instead.
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	sock.SetReadDeadline(deadline)
	var ack [1]byte
	n, err := sock.Read(ack[:])
	ok = err == nil && n == 1
	return ok
}

// awaitContainer runs in a monitor started on standby: it waits for the
// container on descriptor 3 and puts what comes where a monitor started
// for it would have it. It reports false when none comes.
func awaitContainer() bool {
	const sockFD = 3
	idle := standby.IdleMillis
	if len(os.Args) > 3 {
		if ms, err := strconv.Atoi(os.Args[3]); err == nil && ms > 0 {
			idle = ms
		}
	}
	return receiveContainer(sockFD, idle)
}

// receiveContainer waits on sockFD for the container, and sets the
// descriptors and arguments as they come.
func receiveContainer(sockFD, idleMillis int) bool {
	fds := []unix.PollFd{{Fd: int32(sockFD), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, idleMillis)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return false
		}
		break
	}
	buf := make([]byte, 8<<10)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := unix.Recvmsg(sockFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil || n == 0 {
		return false
	}
	var act activation
	if err := json.Unmarshal(buf[:n], &act); err != nil {
		return false
	}
	got := rightsIn(oob[:oobn])
	if len(got) != 1+len(act.FDs) || len(act.Args) < 3 || act.Args[0] != os.Args[1] {
		return false
	}
	// Out of the way of the numbers they go to first.
	for i, fd := range got {
		high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
		if err != nil {
			return false
		}
		unix.Close(fd)
		got[i] = high
	}
	// Taken: the caller waits for this before it lets go of its own
	// copies. The socket is descriptor 3, which the sync pipe replaces.
	if _, err := unix.Write(sockFD, []byte{1}); err != nil {
		return false
	}
	if unix.Dup3(got[0], 1, 0) != nil || unix.Dup3(got[0], 2, 0) != nil {
		abandon()
	}
	placed := map[int]bool{}
	for i, to := range act.FDs {
		if unix.Dup3(got[1+i], to, 0) != nil {
			abandon()
		}
		placed[to] = true
	}
	// What a monitor started for the container lacks stays closed.
	for fd := 4; fd <= 6; fd++ {
		if !placed[fd] {
			unix.Close(fd)
		}
	}
	for _, fd := range got {
		unix.Close(fd)
	}
	os.Args = append([]string{monitorArg0}, act.Args...)
	return true
}

// abandon ends a monitor that took its container but cannot start it.
func abandon() { os.Exit(125) }
