package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// unifiedRoot is where the cgroup2 hierarchy sits on a pure v2 host.
const unifiedRoot = "/sys/fs/cgroup"

// v2Controllers are enabled, where the kernel offers them, in the parents
// of every group so that each limit has its files.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids", "hugetlb"}

// deleteTimeout bounds how long Delete waits for the kernel to reap the
// group's last processes.
const deleteTimeout = 3 * time.Second

// Mode reports the host's cgroup layout: "v1", "hybrid" (v1 controllers
// plus an empty cgroup2 hierarchy, handled as v1), "v2", or "" when no
// cgroup file system is mounted.
func Mode() string {
	switch cgroupsv3.Mode() {
	case cgroupsv3.Legacy:
		return "v1"
	case cgroupsv3.Hybrid:
		return "hybrid"
	case cgroupsv3.Unified:
		return "v2"
	}
	return ""
}

// Group is one control group, on v1 spread over every mounted hierarchy.
type Group struct {
	name string
	v2   *cgroup2.Manager
	dir  string // v2 only
	v1   cgroup1.Cgroup
	dirs map[string]string // v1: hierarchy name → directory of this group
}

var (
	v1Once  sync.Once
	v1Root  map[string]string // v1 hierarchy name → mount directory
	v1Error error
)

type pather interface{ Path(string) string }

// v1Roots finds the mounted v1 hierarchies once.
func v1Roots() (map[string]string, error) {
	v1Once.Do(func() {
		subs, err := cgroup1.Default()
		if err != nil {
			v1Error = fmt.Errorf("cgroup v1 hierarchies: %w", err)
			return
		}
		v1Root = make(map[string]string, len(subs))
		for _, s := range subs {
			if p, ok := s.(pather); ok {
				v1Root[string(s.Name())] = p.Path("/")
			}
		}
	})
	return v1Root, v1Error
}

func v1Dirs(name string) (map[string]string, error) {
	roots, err := v1Roots()
	if err != nil {
		return nil, err
	}
	dirs := make(map[string]string, len(roots))
	for n, r := range roots {
		dirs[n] = filepath.Join(r, name)
	}
	return dirs, nil
}

// New makes the group name with res applied. It fails with
// errdefs.ErrAlreadyExists when the group is there already; on any other
// failure nothing is left behind.
func New(name string, res *Resources) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if res == nil {
		res = &Resources{}
	}
	if err := res.validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	// Parents are shared by every group below them and removed by the
	// last group's Delete: creating holds the parents lock shared, so that
	// a removal (exclusive) cannot pull a parent from under a new group.
	unlock := lockParents(unix.LOCK_SH)
	defer unlock()
	var (
		g   *Group
		err error
	)
	switch Mode() {
	case "v2":
		g, err = newV2(name)
	case "v1", "hybrid":
		g, err = newV1(name)
	default:
		return nil, fmt.Errorf("cgroup %s: no cgroup file system mounted: %w", name, errdefs.ErrNotSupported)
	}
	if err != nil {
		return nil, err
	}
	if err := g.Update(res); err != nil {
		_ = g.Delete()
		return nil, err
	}
	return g, nil
}

func newV2(name string) (*Group, error) {
	dir := filepath.Join(unifiedRoot, name)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	enableControllers(filepath.Dir(dir))
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	m, err := cgroup2.Load("/"+name, cgroup2.WithMountpoint(unifiedRoot))
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return &Group{name: name, v2: m, dir: dir}, nil
}

// enableControllers turns on, in dir and each of its ancestors up to the
// root, every controller of v2Controllers the parent offers. Each is
// written alone so that one the kernel refuses (cpuset with a busy
// parent, say) does not keep the others off; a limit whose controller is
// missing then fails when it is written, naming the file.
func enableControllers(dir string) {
	var chain []string
	for d := dir; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == unifiedRoot || !strings.HasPrefix(d, unifiedRoot+"/") {
			break
		}
	}
	slices.Reverse(chain)
	for _, d := range chain {
		offered := fields(filepath.Join(d, "cgroup.controllers"))
		enabled := fields(filepath.Join(d, "cgroup.subtree_control"))
		for _, c := range v2Controllers {
			if slices.Contains(offered, c) && !slices.Contains(enabled, c) {
				_ = os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+"+c), 0)
			}
		}
	}
}

func fields(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

func newV1(name string) (*Group, error) {
	dirs, err := v1Dirs(name)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); err == nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrAlreadyExists)
		}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath("/"+name), &specs.LinuxResources{})
	if err != nil {
		g := &Group{name: name, dirs: dirs}
		_ = g.Delete()
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return &Group{name: name, v1: cg, dirs: dirs}, nil
}

// Load finds the existing group name, or fails with errdefs.ErrNotFound.
func Load(name string) (*Group, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	switch Mode() {
	case "v2":
		dir := filepath.Join(unifiedRoot, name)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrNotFound)
		}
		m, err := cgroup2.Load("/"+name, cgroup2.WithMountpoint(unifiedRoot))
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
		return &Group{name: name, v2: m, dir: dir}, nil
	case "v1", "hybrid":
		dirs, err := v1Dirs(name)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
		cg, err := cgroup1.Load(cgroup1.StaticPath("/" + name))
		if err != nil {
			if errors.Is(err, cgroup1.ErrCgroupDeleted) {
				return nil, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("cgroup %s: %w", name, err)
		}
		return &Group{name: name, v1: cg, dirs: dirs}, nil
	}
	return nil, fmt.Errorf("cgroup %s: no cgroup file system mounted: %w", name, errdefs.ErrNotSupported)
}

// Name returns the group's name relative to the cgroup root.
func (g *Group) Name() string { return g.name }

// V2Path returns the group's directory in the unified hierarchy, for
// CLONE_INTO_CGROUP, or "" on v1 and hybrid hosts.
func (g *Group) V2Path() string { return g.dir }

// Add moves the process pid, with all its threads, into the group.
func (g *Group) Add(pid int) error {
	var err error
	if g.v2 != nil {
		err = g.v2.AddProc(uint64(pid))
	} else {
		err = g.v1.AddProc(uint64(pid))
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: add %d: %w", g.name, pid, err)
	}
	return nil
}

// Update applies res to the group. Zero fields are left as they are.
func (g *Group) Update(res *Resources) error {
	if res == nil {
		return nil
	}
	if err := res.validate(); err != nil {
		return fmt.Errorf("cgroup %s: %w", g.name, err)
	}
	if g.v2 != nil {
		return g.apply(v2Writes(res))
	}
	return g.apply(v1Writes(res))
}

func (g *Group) ctrlDir(ctrl string) (string, bool) {
	if g.v2 != nil {
		return g.dir, true
	}
	d, ok := g.dirs[ctrl]
	return d, ok
}

func (g *Group) apply(ws []write) error {
	for i := 0; i < len(ws); i++ {
		w := ws[i]
		err := g.writeOne(w)
		// v1 refuses a memory limit above the memory+swap limit, and a
		// memory+swap limit below the memory limit: when raising both,
		// memsw goes first.
		if errors.Is(err, unix.EINVAL) && w.file == "memory.limit_in_bytes" &&
			i+1 < len(ws) && ws[i+1].file == "memory.memsw.limit_in_bytes" {
			if err = g.writeOne(ws[i+1]); err == nil {
				err = g.writeOne(w)
			}
			i++
		}
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", g.name, err)
		}
	}
	return nil
}

func (g *Group) writeOne(w write) error {
	dir, ok := g.ctrlDir(w.ctrl)
	if !ok {
		if w.optional {
			return nil
		}
		return fmt.Errorf("%s: controller %s not mounted: %w", w.file, w.ctrl, errdefs.ErrNotSupported)
	}
	file := filepath.Join(dir, w.file)
	if _, err := os.Stat(file); err != nil && w.alt != "" {
		file = filepath.Join(dir, w.alt)
		if _, err := os.Stat(file); err != nil && w.optional {
			return nil
		}
		if strings.HasPrefix(w.value, "default ") && w.alt == "io.bfq.weight" {
			w.value = strings.TrimPrefix(w.value, "default ")
		}
	} else if err != nil && w.optional {
		return nil
	}
	if err := os.WriteFile(file, []byte(w.value), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", w.value, file, err)
	}
	return nil
}

// Stats reads the group's counters.
func (g *Group) Stats() (*Stats, error) {
	var s Stats
	if g.v2 != nil {
		m, err := g.v2.Stat()
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: stats: %w", g.name, err)
		}
		if c := m.GetCPU(); c != nil {
			s.CPUUsageNanos = c.UsageUsec * 1000
			s.CPUUserNanos = c.UserUsec * 1000
			s.CPUSystemNanos = c.SystemUsec * 1000
			s.CPUThrottled = c.NrThrottled
		}
		if mem := m.GetMemory(); mem != nil {
			s.MemoryUsage = mem.Usage
			s.MemoryMax = bounded(mem.UsageLimit)
			s.MemoryPeak = mem.MaxUsage
		}
		if ev := m.GetMemoryEvents(); ev != nil {
			s.OOMKills = ev.OomKill
		}
		if p := m.GetPids(); p != nil {
			s.Pids = p.Current
			s.PidsMax = bounded(p.Limit)
		}
		for _, e := range m.GetIo().GetUsage() {
			s.IOReadBytes += e.Rbytes
			s.IOWriteBytes += e.Wbytes
		}
		return &s, nil
	}
	m, err := g.v1.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: stats: %w", g.name, err)
	}
	if c := m.GetCPU(); c != nil {
		s.CPUUsageNanos = c.GetUsage().GetTotal()
		s.CPUUserNanos = c.GetUsage().GetUser()
		s.CPUSystemNanos = c.GetUsage().GetKernel()
		s.CPUThrottled = c.GetThrottling().GetThrottledPeriods()
	}
	if u := m.GetMemory().GetUsage(); u != nil {
		s.MemoryUsage = u.Usage
		s.MemoryMax = bounded(u.Limit)
		s.MemoryPeak = u.Max
	}
	s.OOMKills = m.GetMemoryOomControl().GetOomKill()
	if p := m.GetPids(); p != nil {
		s.Pids = p.Current
		s.PidsMax = bounded(p.Limit)
	}
	for _, e := range m.GetBlkio().GetIoServiceBytesRecursive() {
		switch e.Op {
		case "Read":
			s.IOReadBytes += e.Value
		case "Write":
			s.IOWriteBytes += e.Value
		}
	}
	return &s, nil
}

func bounded(v uint64) uint64 {
	if v >= unlimited {
		return 0
	}
	return v
}

// Freeze stops every process in the group; it returns once the kernel
// reports the group frozen.
func (g *Group) Freeze() error {
	var err error
	if g.v2 != nil {
		err = g.v2.Freeze()
	} else {
		err = g.v1.Freeze()
	}
	if err != nil {
		if errors.Is(err, cgroup1.ErrFreezerNotSupported) {
			err = errdefs.ErrNotSupported
		}
		return fmt.Errorf("cgroup %s: freeze: %w", g.name, err)
	}
	return nil
}

// Thaw lets a frozen group run again; it returns once the kernel reports
// the group thawed.
func (g *Group) Thaw() error {
	var err error
	if g.v2 != nil {
		err = g.v2.Thaw()
	} else {
		err = g.v1.Thaw()
	}
	if err != nil {
		if errors.Is(err, cgroup1.ErrFreezerNotSupported) {
			err = errdefs.ErrNotSupported
		}
		return fmt.Errorf("cgroup %s: thaw: %w", g.name, err)
	}
	return nil
}

// Kill sends SIGKILL to every process in the group and its descendants. On
// v2 kernels with cgroup.kill the kernel does it atomically; elsewhere the
// group is frozen first so that nothing forks past the signal. It does not
// wait for the processes to die. Killing a group already removed does
// nothing.
func (g *Group) Kill() error {
	if g.v2 != nil {
		err := os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cgroup %s: kill: %w", g.name, err)
		}
		if _, err := os.Stat(g.dir); errors.Is(err, fs.ErrNotExist) {
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
				err = fmt.Errorf("cgroup %s: kill %d: %w", g.name, pid, kerr)
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

// Procs lists the processes in the group and its descendants.
func (g *Group) Procs() ([]int, error) {
	if g.v2 != nil {
		ps, err := g.v2.Procs(true)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: procs: %w", g.name, err)
		}
		out := make([]int, len(ps))
		for i, p := range ps {
			out[i] = int(p)
		}
		return out, nil
	}
	for _, ctrl := range []string{"pids", "freezer", "memory", "cpu", "devices"} {
		dir, ok := g.dirs[ctrl]
		if !ok {
			continue
		}
		return readProcs(dir)
	}
	return nil, fmt.Errorf("cgroup %s: procs: no hierarchy to read: %w", g.name, errdefs.ErrNotSupported)
}

// readProcs reads cgroup.procs in dir and every group below it.
func readProcs(dir string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("procs %s: %w", dir, err)
	}
	return out, nil
}

// Delete removes the group and any groups below it. It retries for a few
// seconds while the kernel reaps exiting processes, and fails with
// errdefs.ErrWrongState if processes remain. A group already gone is not an
// error.
func (g *Group) Delete() error {
	dirs := g.dirsList()
	deadline := time.Now().Add(deleteTimeout)
	for _, d := range dirs {
		if err := removeTree(d, deadline); err != nil {
			return fmt.Errorf("cgroup %s: delete: %w", g.name, err)
		}
	}
	g.removeParents(dirs)
	return nil
}

// parentsLock is the host-wide lock between creating groups and removing
// the parents they leave empty.
const parentsLock = "/run/dock/cgroup-parents.lock"

// lockParents takes the parents lock (LOCK_SH or LOCK_EX, blocking) and
// returns its release; without /run it does nothing.
func lockParents(how int) func() {
	if err := os.MkdirAll(filepath.Dir(parentsLock), 0o755); err != nil {
		return func() {}
	}
	f, err := os.OpenFile(parentsLock, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return func() {}
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return func() {}
	}
	return func() { f.Close() }
}

// removeParents removes the parent groups of dirs ("dock" of "dock/ID")
// that no other group uses any more, so that a host is left as it was
// once its last container is gone. A parent still in use is left.
func (g *Group) removeParents(dirs []string) {
	if !strings.Contains(g.name, "/") {
		return
	}
	unlock := lockParents(unix.LOCK_EX)
	defer unlock()
	for _, d := range dirs {
		for p, n := filepath.Dir(d), strings.Count(g.name, "/"); n > 0; p, n = filepath.Dir(p), n-1 {
			if os.Remove(p) != nil {
				break // not empty: others use it
			}
		}
	}
}

// removeTree removes dir and the groups below it, deepest first.
func removeTree(dir string, deadline time.Time) error {
	var sub []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			sub = append(sub, p)
		}
		return nil
	})
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

// OOMKills reads how many processes the kernel's OOM killer has killed in
// the group name, cheaply (one small file), for a monitor that has just
// seen the container exit.
func OOMKills(name string) (uint64, error) {
	if err := validName(name); err != nil {
		return 0, err
	}
	var file string
	switch Mode() {
	case "v2":
		file = filepath.Join(unifiedRoot, name, "memory.events")
	case "v1", "hybrid":
		roots, err := v1Roots()
		if err != nil {
			return 0, err
		}
		root, ok := roots["memory"]
		if !ok {
			return 0, fmt.Errorf("cgroup %s: memory controller not mounted: %w", name, errdefs.ErrNotSupported)
		}
		file = filepath.Join(root, name, "memory.oom_control")
	default:
		return 0, fmt.Errorf("cgroup %s: no cgroup file system mounted: %w", name, errdefs.ErrNotSupported)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("cgroup %s: %w", name, errdefs.ErrNotFound)
		}
		return 0, fmt.Errorf("cgroup %s: %w", name, err)
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

// dirsList is the group's directories, one per hierarchy.
func (g *Group) dirsList() []string {
	if g.v2 != nil {
		return []string{g.dir}
	}
	var out []string
	for _, d := range g.dirs {
		out = append(out, d)
	}
	return out
}
