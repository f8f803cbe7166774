package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// restartFile carries the restart count and back-off from one monitor to
// the next; a start by a caller removes it.
const restartFile = "restart.json"

type restartRecord struct {
	Count int           `json:"count"`
	Delay time.Duration `json:"delay"`
}

// lockContainer takes the lock of LockFile, waiting for it; it fails when
// the container was removed.
func lockContainer(stateDir string) (func(), error) {
	f, err := os.OpenFile(path.Join(stateDir, LockFile), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := flockRetry(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// restartingSelf is set in a monitor that starts its container again: its
// own binary is already the sealed copy, and the restart count carries.
var restartingSelf bool

func readRestart(stateDir string) restartRecord {
	var r restartRecord
	if b, err := os.ReadFile(path.Join(stateDir, restartFile)); err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

// monitorExe returns the binary a new monitor runs: the sealed copy under
// the root, made when missing.
func monitorExe(stateDir string) (string, error) {
	if restartingSelf {
		return ownSealedCopy(path.Join(rootOf(stateDir), exeDirName))
	}
	os.Remove(path.Join(stateDir, restartFile))
	os.Remove(path.Join(stateDir, stopFile))
	if f, err := os.OpenFile(path.Join(stateDir, LockFile), os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600); err == nil {
		f.Close()
	}
	return sealedExe(path.Join(rootOf(stateDir), exeDirName))
}

// ownSealedCopy finds in dir the sealed copy this monitor runs, which it
// reaches only through a detached mount (standby.OpenSealed).
func ownSealedCopy(dir string) (string, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		var st unix.Stat_t
		p := path.Join(dir, e.Name())
		if unix.Lstat(p, &st) == nil && st.Dev == self.Dev && st.Ino == self.Ino {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: this monitor's binary is gone", dir)
}

// updateState changes the recorded state while the container runs; once
// finish began, only finish writes it.
func (m *monitor) updateState(fn func(*State)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updateStateLocked(fn)
}

func (m *monitor) updateStateLocked(fn func(*State)) {
	if m.ending {
		return
	}
	st, err := readState(m.stateDir)
	if err != nil || st.Status != Running {
		return
	}
	fn(&st)
	if err := writeState(m.stateDir, &st); err != nil {
		fmt.Fprintf(os.Stderr, "record state: %v\n", err)
	}
}

// carry copies into the final state what the monitor knows beyond the exit.
func (m *monitor) carry(st *State) {
	if m.spec == nil {
		return
	}
	st.RestartCount = readRestart(m.stateDir).Count
	if m.health != nil {
		h := *m.health
		st.Health = &h
	}
}

// onStarted records the start and starts the health checks.
func (m *monitor) onStarted() {
	attrs := map[string]string{"pid": strconv.Itoa(m.pid)}
	if n := readRestart(m.stateDir).Count; n > 0 {
		attrs["restartCount"] = strconv.Itoa(n)
		m.updateState(func(st *State) { st.RestartCount = n })
	}
	m.spec.event(EventStarted, attrs)
	if hc := m.spec.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		go m.healthLoop(hc)
	}
}

// afterKill thaws a paused container a caller sent a signal, as Docker
// does: a frozen task acts on no signal (on cgroup v1 it does not even die
// of SIGKILL) until thawed, and a stop would wait out its whole timeout.
func (m *monitor) afterKill(syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused && m.group != nil {
		if err := m.group.Thaw(); err == nil {
			m.paused = false
			m.updateStateLocked(func(st *State) { st.Paused = false })
			m.spec.event(EventUnpaused, nil)
		}
	}
}

// serveOp answers the requests beyond the basic ones.
func (m *monitor) serveOp(req *monitorReq, resp *monitorResp) bool {
	switch req.Op {
	case "pause", "resume":
		m.mu.Lock()
		defer m.mu.Unlock()
		pause := req.Op == "pause"
		switch {
		case m.done || m.ending || m.proc == nil:
			resp.Error = errNotRunning
		case m.group == nil:
			resp.Error = "no cgroup to freeze"
		case m.paused == pause:
			resp.Error = "already " + map[bool]string{true: "paused", false: "running"}[pause]
		default:
			var err error
			if pause {
				err = m.group.Freeze()
				if err != nil {
					// Half frozen (a freeze that timed out) is neither
					// paused nor running: back to running, as runc does.
					m.group.Thaw()
				}
			} else {
				err = m.group.Thaw()
			}
			if err != nil {
				resp.Error = err.Error()
				return true
			}
			m.paused = pause
			m.updateStateLocked(func(st *State) { st.Paused = pause })
			if pause {
				m.spec.event(EventPaused, nil)
			} else {
				m.spec.event(EventUnpaused, nil)
			}
		}
		return true
	}
	return false
}

// exitEvents records the end in the events log. It runs before any waiter
// hears of the exit, so that whatever a waiter does next (a removal) is
// logged after it.
func (m *monitor) exitEvents(es ExitStatus) {
	if es.OOMKilled {
		m.spec.event(EventOOM, nil)
	}
	attrs := map[string]string{"exitCode": strconv.Itoa(es.ExitCode)}
	if es.Signal != 0 {
		attrs["signal"] = strconv.Itoa(es.Signal)
	}
	m.spec.event(EventDied, attrs)
}

// afterExit starts the container again after a back-off, through a new
// monitor, when the restart policy says so.
func (m *monitor) afterExit(es ExitStatus) {
	if !m.restarts(es) {
		return
	}
	rec := readRestart(m.stateDir)
	// Docker's back-off: from 100ms, doubling, at most a minute; a run of
	// ten seconds or more starts over.
	switch {
	case time.Since(m.started) >= 10*time.Second || rec.Delay == 0:
		rec.Delay = 100 * time.Millisecond
	default:
		rec.Delay = min(2*rec.Delay, time.Minute)
	}
	rec.Count++
	b, _ := json.Marshal(rec)
	if err := writeFileAtomic(path.Join(m.stateDir, restartFile), b, false); err != nil {
		fmt.Fprintf(os.Stderr, "restart: %v\n", err)
		m.dropGroup()
		return
	}
	st, err := readState(m.stateDir)
	if err != nil || st.Status != Stopped {
		return
	}
	// With this monitor's pid: a back-off whose monitor died reads as
	// over (ReadState).
	st.Restarting, st.RestartCount, st.MonitorPid = true, rec.Count, os.Getpid()
	writeState(m.stateDir, &st)
	m.spec.event(EventRestarted, map[string]string{"restartCount": strconv.Itoa(rec.Count), "delay": rec.Delay.String()})
	time.Sleep(rec.Delay)
	// A caller may have started, stopped or removed the container
	// meanwhile, or be doing so now: the restart takes the lock a caller's
	// start and removal take, and looks again under it.
	unlock, err := lockContainer(m.stateDir)
	if err != nil {
		return // removed
	}
	defer unlock()
	if st, err := readState(m.stateDir); err != nil || st.Status != Stopped || !st.Restarting {
		return
	}
	if _, err := os.Stat(path.Join(m.stateDir, configFile)); err != nil {
		return
	}
	if StoppedByCaller(m.stateDir) {
		// Stopped by a caller that found no monitor to tell.
		st.Restarting = false
		writeState(m.stateDir, &st)
		m.dropGroup()
		return
	}
	restartingSelf = true
	if _, err := Start(context.Background(), m.spec, nil); err != nil {
		fmt.Fprintf(os.Stderr, "restart: %v\n", err)
		m.dropGroup()
	}
}

// restarts reports whether the restart policy starts the container again
// after it ended with es; the group is then kept for the new run.
func (m *monitor) restarts(es ExitStatus) bool {
	m.mu.Lock()
	manual := m.manual
	m.mu.Unlock()
	return !manual && !StoppedByCaller(m.stateDir) && es.Error == "" && restartWanted(m.spec.Restart, es.ExitCode, readRestart(m.stateDir).Count)
}

// dropGroup removes the group kept for a restart that could not happen,
// unless a new run took it meanwhile.
func (m *monitor) dropGroup() {
	if m.group == nil {
		return
	}
	m.group.DeleteIfUnused()
}

func restartWanted(p RestartPolicy, code, count int) bool {
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.MaxRetries <= 0 || count < p.MaxRetries)
	}
	return false
}

// cancelRestart keeps a container that waits for its restart back-off
// stopped; it reports whether one was waiting.
func (h *Handle) cancelRestart() bool {
	st, err := readState(h.stateDir)
	if err != nil || st.Status != Stopped || !st.Restarting {
		return false
	}
	st.Restarting = false
	writeState(h.stateDir, &st)
	// The monitor kept the group for the run that will not come.
	removeCgroup(h.spec.Cgroup)
	return true
}

// Pause freezes every process of the container.
func (h *Handle) Pause() error { return h.simple("pause") }

// Resume thaws a paused container.
func (h *Handle) Resume() error { return h.simple("resume") }

func (h *Handle) simple(op string) error {
	var resp monitorResp
	if err := h.call(context.Background(), monitorReq{Op: op}, &resp); err != nil {
		if st, _ := h.readState(); st.Status != Running {
			return fmt.Errorf("container %s: not running: %w", h.spec.ID, errdefs.ErrWrongState)
		}
		return fmt.Errorf("container %s: %s: %w", h.spec.ID, op, err)
	}
	switch {
	case resp.Error == errNotRunning:
		return fmt.Errorf("container %s: not running: %w", h.spec.ID, errdefs.ErrWrongState)
	case len(resp.Error) > 8 && resp.Error[:8] == "already ":
		return fmt.Errorf("container %s: %s: %w", h.spec.ID, resp.Error, errdefs.ErrWrongState)
	case resp.Error != "":
		return fmt.Errorf("container %s: %s: %s", h.spec.ID, op, resp.Error)
	}
	return nil
}

// healthLoop runs the health check every interval while the container runs.
func (m *monitor) healthLoop(hc *Healthcheck) {
	interval, timeout, retries := hc.Interval, hc.Timeout, hc.Retries
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if retries <= 0 {
		retries = 3
	}
	args := hc.Test
	switch args[0] {
	case "CMD":
		args = args[1:]
	case "CMD-SHELL":
		args = append([]string{"/bin/sh", "-c"}, args[1:]...)
	}
	if len(args) == 0 {
		return
	}
	m.setHealth(func(h *Health) { h.Status = HealthStarting })
	filter := ""
	if len(os.Args) > 3 && os.Args[3] != "-" {
		filter = os.Args[3]
	}
	passed := false
	for {
		time.Sleep(interval)
		m.mu.Lock()
		stop := m.ending || m.done
		paused := m.paused
		m.mu.Unlock()
		if stop {
			return
		}
		if paused {
			continue
		}
		res := m.healthRun(args, filter, timeout)
		// As Docker: failures of checks started in the start period do
		// not count, until a first success ends it.
		inStart := !passed && res.Start.Sub(m.started) < hc.StartPeriod
		passed = passed || res.ExitCode == 0
		m.setHealth(func(h *Health) {
			h.Log = append(h.Log, res)
			if len(h.Log) > 5 {
				h.Log = h.Log[len(h.Log)-5:]
			}
			if res.ExitCode == 0 {
				h.Status, h.FailingStreak = HealthHealthy, 0
				return
			}
			if inStart {
				return
			}
			h.FailingStreak++
			if h.FailingStreak >= retries {
				h.Status = HealthUnhealthy
			}
		})
	}
}

// setHealth changes the health record, writes it to the state and reports
// a change of status as an event.
func (m *monitor) setHealth(fn func(*Health)) {
	m.mu.Lock()
	if m.health == nil {
		m.health = &Health{}
	}
	before := m.health.Status
	fn(m.health)
	h := *m.health
	h.Log = append([]HealthLog(nil), h.Log...)
	m.updateStateLocked(func(st *State) { st.Health = &h })
	ending := m.ending
	m.mu.Unlock()
	if h.Status != before && !ending {
		m.spec.event(EventHealth, map[string]string{"status": h.Status})
	}
}

// healthRun runs one check in the container and returns its outcome.
func (m *monitor) healthRun(args []string, filter string, timeout time.Duration) HealthLog {
	res := HealthLog{Start: time.Now().UTC()}
	proc := m.spec.Process
	proc.Args, proc.Terminal = args, false
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		res.End, res.ExitCode, res.Output = time.Now().UTC(), -1, err.Error()
		return res
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		res.End, res.ExitCode, res.Output = time.Now().UTC(), -1, err.Error()
		return res
	}
	pid, exited, err := m.startExec(&monitorReq{Op: "exec", Exec: &proc, Filter: filter}, []*os.File{null, w, w})
	w.Close()
	if err != nil {
		r.Close()
		res.End, res.ExitCode, res.Output = time.Now().UTC(), 1, err.Error()
		var se *StartError
		if errors.As(err, &se) {
			res.ExitCode = se.ExitCode
		}
		return res
	}
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		io.Copy(io.Discard, r)
		r.Close()
		out <- b
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
		res.ExitCode, _ = exitCodeOf(ws)
	case <-t.C:
		// The check leads a process group of its own (childSession):
		// killing the group reaches the children that would outlive it.
		// Its id is the check's pid, nobody else's while the check is
		// registered: the reaper drops it just as it reaps it, and a pid
		// is not handed out again that soon.
		m.mu.Lock()
		if _, ok := m.execs[pid]; ok {
			unix.Kill(-pid, syscall.SIGKILL)
		}
		m.mu.Unlock()
		<-exited
		res.ExitCode = -1
	}
	select {
	case b := <-out:
		res.Output = string(b)
	case <-time.After(time.Second):
		// A child of the check still holds the output open; the reader
		// must not wait for it.
		r.Close()
	}
	if res.ExitCode == -1 {
		res.Output = fmt.Sprintf("health check exceeded its timeout (%v)", timeout)
	}
	res.End = time.Now().UTC()
	return res
}
