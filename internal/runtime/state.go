package runtime

import (
	"encoding/json"
	"os"
	"path"

	"github.com/dockkit/dock/internal/atomicfile"
)

// writeFileAtomic replaces path with data; with sync set the new file is
// synced before it takes the old one's place.
func writeFileAtomic(path string, data []byte, sync bool) error {
	return atomicfile.Write(path, data, 0o600, sync)
}

// writeState records st: the new state.json replaces the old by rename, so
// readers see one or the other, never a torn file. It is not synced here:
// the monitor answers waiters first and then calls syncState, which keeps
// the sync's milliseconds off the path of `run --rm`.
func writeState(stateDir string, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(path.Join(stateDir, stateFile), b, false)
}

// syncState makes the recorded state durable.
func syncState(stateDir string) error {
	for _, p := range []string{path.Join(stateDir, stateFile), stateDir} {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readState returns the recorded state, or a Created state when none was
// written yet.
func readState(stateDir string) (State, error) {
	b, err := os.ReadFile(path.Join(stateDir, stateFile))
	if os.IsNotExist(err) {
		return State{Status: Created}, nil
	}
	if err != nil {
		return State{}, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		// Only a crash of the host between the rename and the sync of the
		// final state leaves this; the container is gone with the monitor.
		return State{Status: Stopped, ExitCode: 255, Error: "state lost: " + err.Error()}, nil
	}
	return st, nil
}

func (st State) exitStatus() ExitStatus {
	return ExitStatus{ExitCode: st.ExitCode, Signal: st.Signal, OOMKilled: st.OOMKilled, FinishedAt: st.FinishedAt, Error: st.Error}
}

// LockFile is the file in a container's state directory whose lock a
// caller holds to start or remove the container, and a monitor to start it
// again: one at a time. It is made with the container (and by a caller's
// start) and never again, so that a removal under way cannot see it come
// back.
const LockFile = "lock"

// stopFile marks a container stopped or killed by a caller: its restart
// policy leaves it stopped until a caller starts it again. It is written
// before the signal is sent, so that an exit of the container's own at the
// same moment does not restart it either.
const stopFile = "stopped-by-caller"

// StoppedByCaller tells whether the container in stateDir was last stopped
// or killed by a caller, not by itself: unless-stopped does not start it
// again when the host boots.
func StoppedByCaller(stateDir string) bool {
	_, err := os.Stat(path.Join(stateDir, stopFile))
	return err == nil
}
