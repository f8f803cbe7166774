package runtime

import (
	"fmt"
	"os"
	"path"
	"time"
)

// Recover records as stopped a container whose monitor died while it ran:
// the host restarted, or the monitor was killed. Its processes, which
// nothing would log or reap any more, are killed through its cgroup, and
// the cgroup removed; the state says exit 255, as Docker reports a
// container it lost. It reports whether the container was such a one.
// Callers serialise it with starts of the same container.
func (h *Handle) Recover() (bool, error) {
	st, err := readState(h.stateDir) // as recorded: h.readState reports such a container stopped already
	if err != nil || st.Status != Running || st.MonitorPid <= 0 || monitorAlive(st.MonitorPid, h.stateDir) {
		return false, err
	}
	removeCgroup(h.spec.Cgroup)
	st.Status, st.Paused, st.Restarting = Stopped, false, false
	st.ExitCode, st.Signal, st.Error = 255, 0, "monitor exited without recording the container's end"
	st.FinishedAt = time.Now()
	if err := writeState(h.stateDir, &st); err != nil {
		return true, fmt.Errorf("container %s: %w", h.spec.ID, err)
	}
	if err := syncState(h.stateDir); err != nil {
		return true, fmt.Errorf("container %s: %w", h.spec.ID, err)
	}
	os.Remove(path.Join(h.stateDir, socketFile))
	h.spec.event(EventDied, map[string]string{"exitCode": "255"})
	return true, nil
}
