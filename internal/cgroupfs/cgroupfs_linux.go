package cgroupfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// DeleteTimeout bounds how long Delete waits for the kernel to reap the
// group's last processes.
const DeleteTimeout = 3 * time.Second

// freezeTimeout bounds how long Freeze and Thaw wait for the kernel to
// report the new state.
const freezeTimeout = 10 * time.Second

// Add moves the process pid, with all its threads, into the group: on v1
// into every hierarchy.
func (g Group) Add(pid int) error {
	v := []byte(strconv.Itoa(pid))
	for _, d := range g.All() {
		if err := os.WriteFile(path.Join(d, "cgroup.procs"), v, 0); err != nil {
			return fmt.Errorf("cgroup %s: add %d: %w", g.Name, pid, err)
		}
	}
	return nil
}

// ProcsFiles is the group's cgroup.procs files, open for writing: a
// process whose view of the file system is no longer the host's (a
// thread in a container's root) adds processes through them.
type ProcsFiles struct {
	name  string
	files []*os.File
}

// OpenProcs opens the group's cgroup.procs files for AddTo.
func (g Group) OpenProcs() (*ProcsFiles, error) {
	pf := &ProcsFiles{name: g.Name}
	for _, d := range g.All() {
		f, err := os.OpenFile(path.Join(d, "cgroup.procs"), os.O_WRONLY, 0)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("cgroup %s: %w", g.Name, err)
		}
		pf.files = append(pf.files, f)
	}
	return pf, nil
}

// Add moves the process pid, with all its threads, into the group.
func (pf *ProcsFiles) Add(pid int) error {
	v := []byte(strconv.Itoa(pid))
	for _, f := range pf.files {
		if _, err := f.Write(v); err != nil {
			return fmt.Errorf("cgroup %s: add %d: %w", pf.name, pid, err)
		}
	}
	return nil
}

// Close closes the files.
func (pf *ProcsFiles) Close() {
	for _, f := range pf.files {
		f.Close()
	}
}

// Procs lists the processes in the group and its descendants.
func (g Group) Procs() ([]int, error) {
	if g.V2() {
		return readProcs(g.Dir)
	}
	// Every process is in every hierarchy: one is enough.
	for _, ctrl := range []string{"pids", "freezer", "memory", "cpu", "devices"} {
		if dir, ok := g.Dirs[ctrl]; ok {
			return readProcs(dir)
		}
	}
	return nil, fmt.Errorf("cgroup %s: procs: no hierarchy to read: %w", g.Name, errdefs.ErrNotSupported)
}

// readProcs reads cgroup.procs in dir and every group below it.
func readProcs(dir string) ([]int, error) {
	dirs, err := groupsUnder(dir)
	if err != nil {
		return nil, fmt.Errorf("procs %s: %w", dir, err)
	}
	var out []int
	for _, d := range dirs {
		b, err := os.ReadFile(path.Join(d, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("procs %s: %w", dir, err)
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// groupsUnder lists dir and the groups below it, parents first; groups
// removed meanwhile are left out. (Not filepath.WalkDir: see the package
// documentation on what this package may import.)
func groupsUnder(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := []string{dir}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub, err := groupsUnder(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// Freeze stops every process in the group; it returns once the kernel
// reports the group frozen. Without a freezer it fails with
// errdefs.ErrNotSupported.
func (g Group) Freeze() error {
	if err := g.setFrozen(true); err != nil {
		return fmt.Errorf("cgroup %s: freeze: %w", g.Name, err)
	}
	return nil
}

// Thaw lets a frozen group run again; it returns once the kernel reports
// the group thawed.
func (g Group) Thaw() error {
	if err := g.setFrozen(false); err != nil {
		return fmt.Errorf("cgroup %s: thaw: %w", g.Name, err)
	}
	return nil
}

func (g Group) setFrozen(frozen bool) error {
	var file, value, want string
	var done func() (bool, error)
	if g.V2() {
		file, value = path.Join(g.Dir, "cgroup.freeze"), "0"
		if frozen {
			value = "1"
		}
		events := path.Join(g.Dir, "cgroup.events")
		done = func() (bool, error) {
			b, err := os.ReadFile(events)
			if err != nil {
				return false, err
			}
			return (keyedValue(b, "frozen") == 1) == frozen, nil
		}
	} else {
		dir, ok := g.Dirs["freezer"]
		if !ok {
			return fmt.Errorf("freezer hierarchy not mounted: %w", errdefs.ErrNotSupported)
		}
		file, value, want = path.Join(dir, "freezer.state"), "THAWED", "THAWED"
		if frozen {
			value, want = "FROZEN", "FROZEN"
		}
		done = func() (bool, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return false, err
			}
			return strings.TrimSpace(string(b)) == want, nil
		}
	}
	if err := os.WriteFile(file, []byte(value), 0); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(path.Dir(file)); serr == nil {
				return fmt.Errorf("%s: %w", file, errdefs.ErrNotSupported)
			}
		}
		return err
	}
	deadline := time.Now().Add(freezeTimeout)
	delay := 100 * time.Microsecond
	for i := 0; ; i++ {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still not %s after %v: %w", file, value, freezeTimeout, errdefs.ErrWrongState)
		}
		time.Sleep(delay)
		delay = min(2*delay, 10*time.Millisecond)
		// A v1 freezer can stay FREEZING when a task was busy (in a
		// vfork, say) as the state was written; writing again retries
		// those tasks.
		if !g.V2() && i%10 == 9 {
			if err := os.WriteFile(file, []byte(value), 0); err != nil {
				return err
			}
		}
	}
}

// Kill sends SIGKILL to every process in the group and its descendants. On
// v2 kernels with cgroup.kill the kernel does it atomically; elsewhere the
// group is frozen first so that nothing forks past the signal. It does not
// wait for the processes to die. Killing a group already removed does
// nothing.
func (g Group) Kill() error {
	if g.V2() {
		err := os.WriteFile(path.Join(g.Dir, "cgroup.kill"), []byte("1"), 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroup %s: kill: %w", g.Name, err)
		}
		if _, err := os.Stat(g.Dir); errors.Is(err, fs.ErrNotExist) {
			return nil // the group is gone: nothing left to kill
		}
	}
	frozen := g.Freeze() == nil
	var err error
	for range 10 {
		var pids []int
		pids, err = g.Procs()
		if err != nil || len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if kerr := unix.Kill(pid, unix.SIGKILL); kerr != nil && kerr != unix.ESRCH {
				err = fmt.Errorf("cgroup %s: kill %d: %w", g.Name, pid, kerr)
			}
		}
		if frozen {
			break // nothing can fork while frozen: one pass reached all
		}
	}
	if frozen {
		if terr := g.Thaw(); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

// OOMKills reads how many processes the kernel's OOM killer has killed in
// the group: one small file, for a monitor that has just seen the
// container exit.
func (g Group) OOMKills() (uint64, error) {
	var file string
	if g.V2() {
		file = path.Join(g.Dir, "memory.events")
	} else {
		dir, ok := g.Dirs["memory"]
		if !ok {
			return 0, fmt.Errorf("cgroup %s: memory controller not mounted: %w", g.Name, errdefs.ErrNotSupported)
		}
		file = path.Join(dir, "memory.oom_control")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("cgroup %s: %w", g.Name, errdefs.ErrNotFound)
		}
		return 0, fmt.Errorf("cgroup %s: %w", g.Name, err)
	}
	return keyedValue(b, "oom_kill"), nil
}

// keyedValue finds "key N" in a flat keyed file such as memory.events.
func keyedValue(b []byte, key string) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Delete removes the group and any groups below it, then the parents it
// leaves empty. It retries for DeleteTimeout while the kernel reaps exiting
// processes, and fails with errdefs.ErrWrongState if processes remain. A
// group already gone is not an error.
func (g Group) Delete() error {
	if err := g.DeleteOwn(); err != nil {
		return err
	}
	g.RemoveParents()
	return nil
}

// DeleteOwn is Delete without the parents: for a caller with more urgent
// work between the two, such as a monitor recording its container's exit.
func (g Group) DeleteOwn() error {
	deadline := time.Now().Add(DeleteTimeout)
	for _, d := range g.All() {
		if err := removeTree(d, deadline); err != nil {
			return fmt.Errorf("cgroup %s: delete: %w", g.Name, err)
		}
	}
	return nil
}

// DeleteIfUnused deletes the group unless a process is in it: for a group
// made for a start that did not happen, which a start that did may have
// taken meanwhile.
func (g Group) DeleteIfUnused() error {
	procs, err := g.Procs()
	if err != nil || len(procs) > 0 {
		return err
	}
	return g.Delete()
}

// ParentsLock is the host-wide lock between making groups and removing the
// parents they leave empty.
const ParentsLock = "/run/dock/cgroup-parents.lock"

// LockParents takes the parents lock (unix.LOCK_SH to make a group,
// unix.LOCK_EX to remove parents; blocking) and returns its release.
// Without /run it does nothing.
func LockParents(how int) func() {
	if err := os.MkdirAll(path.Dir(ParentsLock), 0o755); err != nil {
		return func() {}
	}
	f, err := os.OpenFile(ParentsLock, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return func() {}
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return func() {}
	}
	return func() { f.Close() }
}

// RemoveParents removes the parent groups of the group ("dock" of
// "dock/ID") that no other group uses any more, so that a host is left as
// it was once its last container is gone. A parent still in use is left.
func (g Group) RemoveParents() {
	if !strings.Contains(g.Name, "/") {
		return
	}
	unlock := LockParents(unix.LOCK_EX)
	defer unlock()
	for _, d := range g.All() {
		for p, n := path.Dir(d), strings.Count(g.Name, "/"); n > 0; p, n = path.Dir(p), n-1 {
			if os.Remove(p) != nil {
				break // not empty: others use it
			}
		}
	}
}

// removeTree removes dir and the groups below it, deepest first.
func removeTree(dir string, deadline time.Time) error {
	// Most groups have none below them and no process left: one rmdir,
	// without reading the directory first.
	if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
		return nil
	}
	sub, err := groupsUnder(dir)
	if err != nil {
		return err
	}
	slices.Reverse(sub)
	for _, p := range sub {
		delay := 5 * time.Millisecond
		for {
			err := unix.Rmdir(p)
			if err == nil || err == unix.ENOENT {
				break
			}
			if err != unix.EBUSY && err != unix.EAGAIN {
				return fmt.Errorf("rmdir %s: %w", p, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rmdir %s: processes remain: %w", p, errdefs.ErrWrongState)
			}
			time.Sleep(delay)
			delay = min(delay*2, 100*time.Millisecond)
		}
	}
	return nil
}
