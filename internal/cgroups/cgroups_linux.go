package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/errdefs"
)

// unifiedRoot is where the cgroup2 hierarchy sits on a pure v2 host.
const unifiedRoot = "/sys/fs/cgroup"

// v2Controllers are enabled, where the kernel offers them, in the parents
// of every group so that each limit has its files.
var v2Controllers = []string{"cpuset", "cpu", "io", "memory", "pids", "hugetlb"}

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
	fs cgroupfs.Group
	v2 *cgroup2.Manager
	v1 cgroup1.Cgroup
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
	if err := res.Validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	// Parents are shared by every group below them and removed by the
	// last group's Delete: creating holds the parents lock shared, so that
	// a removal (exclusive) cannot pull a parent from under a new group.
	unlock := cgroupfs.LockParents(unix.LOCK_SH)
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

// Make makes the group name with res applied, or takes over the one an
// earlier run of the same container left there empty: a group kept for a
// restart that did not come, or left by a monitor that died. A group with
// processes in it fails with errdefs.ErrWrongState.
func Make(name string, res *Resources) (*Group, error) {
	g, err := New(name, res)
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		return g, err
	}
	if g, err = Load(name); err != nil {
		return nil, err
	}
	if procs, _ := g.Procs(); len(procs) > 0 {
		return nil, fmt.Errorf("cgroup %s: in use: %w", name, errdefs.ErrWrongState)
	}
	if err := g.Update(res); err != nil {
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
	return &Group{fs: cgroupfs.Group{Name: name, Dir: dir}, v2: m}, nil
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
		g := &Group{fs: cgroupfs.Group{Name: name, Dirs: dirs}}
		_ = g.Delete()
		return nil, fmt.Errorf("cgroup %s: %w", name, err)
	}
	return &Group{fs: cgroupfs.Group{Name: name, Dirs: dirs}, v1: cg}, nil
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
		return &Group{fs: cgroupfs.Group{Name: name, Dir: dir}, v2: m}, nil
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
		return &Group{fs: cgroupfs.Group{Name: name, Dirs: dirs}, v1: cg}, nil
	}
	return nil, fmt.Errorf("cgroup %s: no cgroup file system mounted: %w", name, errdefs.ErrNotSupported)
}

// Name returns the group's name relative to the cgroup root.
func (g *Group) Name() string { return g.fs.Name }

// V2Path returns the group's directory in the unified hierarchy, for
// CLONE_INTO_CGROUP, or "" on v1 and hybrid hosts.
func (g *Group) V2Path() string { return g.fs.Dir }

// Add moves the process pid, with all its threads, into the group.
func (g *Group) Add(pid int) error {
	var err error
	if g.v2 != nil {
		err = g.v2.AddProc(uint64(pid))
	} else {
		err = g.v1.AddProc(uint64(pid))
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: add %d: %w", g.fs.Name, pid, err)
	}
	return nil
}

// Update applies res to the group. Zero fields are left as they are.
func (g *Group) Update(res *Resources) error {
	if res == nil {
		return nil
	}
	if err := res.Validate(); err != nil {
		return fmt.Errorf("cgroup %s: %w", g.fs.Name, err)
	}
	if g.v2 != nil {
		return g.apply(v2Writes(res))
	}
	return g.apply(v1Writes(res))
}

func (g *Group) ctrlDir(ctrl string) (string, bool) {
	if g.v2 != nil {
		return g.fs.Dir, true
	}
	d, ok := g.fs.Dirs[ctrl]
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
			return fmt.Errorf("cgroup %s: %w", g.fs.Name, err)
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

// withoutInactiveFile is memory usage as docker stats shows it: less the
// file cache the kernel would reclaim first, which a container that wrote a
// file and went idle still has charged.
func withoutInactiveFile(usage, inactive uint64) uint64 {
	if inactive > usage {
		return 0
	}
	return usage - inactive
}

// Stats reads the group's counters.
func (g *Group) Stats() (*Stats, error) {
	var s Stats
	if g.v2 != nil {
		m, err := g.v2.Stat()
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: stats: %w", g.fs.Name, err)
		}
		if c := m.GetCPU(); c != nil {
			s.CPUUsageNanos = c.UsageUsec * 1000
			s.CPUUserNanos = c.UserUsec * 1000
			s.CPUSystemNanos = c.SystemUsec * 1000
			s.CPUThrottled = c.NrThrottled
		}
		if mem := m.GetMemory(); mem != nil {
			s.MemoryUsage = withoutInactiveFile(mem.Usage, mem.InactiveFile)
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
		return nil, fmt.Errorf("cgroup %s: stats: %w", g.fs.Name, err)
	}
	if c := m.GetCPU(); c != nil {
		s.CPUUsageNanos = c.GetUsage().GetTotal()
		s.CPUUserNanos = c.GetUsage().GetUser()
		s.CPUSystemNanos = c.GetUsage().GetKernel()
		s.CPUThrottled = c.GetThrottling().GetThrottledPeriods()
	}
	if u := m.GetMemory().GetUsage(); u != nil {
		s.MemoryUsage = withoutInactiveFile(u.Usage, m.GetMemory().GetTotalInactiveFile())
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
func (g *Group) Freeze() error { return g.fs.Freeze() }

// Thaw lets a frozen group run again; it returns once the kernel reports
// the group thawed.
func (g *Group) Thaw() error { return g.fs.Thaw() }

// Kill sends SIGKILL to every process in the group and its descendants,
// without waiting for them to die.
func (g *Group) Kill() error { return g.fs.Kill() }

// Procs lists the processes in the group and its descendants.
func (g *Group) Procs() ([]int, error) { return g.fs.Procs() }

// Delete removes the group and any groups below it, and the parents it
// leaves empty. It fails with errdefs.ErrWrongState if processes remain
// after cgroupfs.DeleteTimeout. A group already gone is not an error.
func (g *Group) Delete() error { return g.fs.Delete() }

// Paths returns the group's directories, for a process that works on the
// group without this package (the container's monitor).
func (g *Group) Paths() cgroupfs.Group { return g.fs }
