// Package leakcheck fails a test that leaves mounts, cgroups or child
// processes behind. Call Check first in a test, so that its cleanup runs
// after every other one:
//
//	func TestRun(t *testing.T) {
//		leakcheck.Check(t, leakcheck.MountsUnder(dir))
//		...
//	}
package leakcheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Option narrows what Check looks at, so that work done in parallel by other
// tests on the same machine is not taken for a leak.
type Option func(*config)

type config struct {
	mountPrefixes []string
	cgroupPrefix  string
	cmdlines      []string
	grace         time.Duration
}

// MountsUnder limits the mount check to mount points under the given
// directories. Without it every new mount of the process's namespace counts.
func MountsUnder(dirs ...string) Option {
	return func(c *config) { c.mountPrefixes = append(c.mountPrefixes, dirs...) }
}

// CgroupPrefix sets the prefix of the cgroup directory names checked;
// "dock" unless set.
func CgroupPrefix(p string) Option { return func(c *config) { c.cgroupPrefix = p } }

// ProcessesMatching also counts every process, child of this one or not,
// whose command line contains one of the strings: a daemon a test started
// (setsid, reparented) is no child any more.
func ProcessesMatching(substrs ...string) Option {
	return func(c *config) { c.cmdlines = append(c.cmdlines, substrs...) }
}

// Grace sets how long Check waits for leftovers to go away (processes being
// reaped, groups being removed) before it fails; two seconds unless set.
func Grace(d time.Duration) Option { return func(c *config) { c.grace = d } }

// Snapshot is what a test may leave behind, at one moment.
type Snapshot struct {
	Mounts   map[string]bool // mount point and filesystem, from mountinfo
	Cgroups  map[string]bool // cgroup directories whose name has the prefix
	Children map[string]bool // "pid comm" of this process's children and of matching processes
}

// Take records the mounts, cgroups and child processes now.
func Take(opts ...Option) Snapshot {
	c := newConfig(opts)
	return c.take()
}

func newConfig(opts []Option) *config {
	c := &config{cgroupPrefix: "dock", grace: 2 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *config) take() Snapshot {
	return Snapshot{Mounts: c.mounts(), Cgroups: c.cgroups(), Children: c.processes()}
}

// Check snapshots now and, when the test ends, fails it listing every mount,
// cgroup and child process that appeared in between and is still there.
func Check(t testing.TB, opts ...Option) {
	t.Helper()
	c := newConfig(opts)
	before := c.take()
	t.Cleanup(func() {
		deadline := time.Now().Add(c.grace)
		for {
			leaks := Diff(before, c.take())
			if len(leaks) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("left behind:\n\t%s", strings.Join(leaks, "\n\t"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Diff lists what is in after but not in before.
func Diff(before, after Snapshot) []string {
	var out []string
	add := func(kind string, b, a map[string]bool) {
		for k := range a {
			if !b[k] {
				out = append(out, kind+" "+k)
			}
		}
	}
	add("mount", before.Mounts, after.Mounts)
	add("cgroup", before.Cgroups, after.Cgroups)
	add("process", before.Children, after.Children)
	sort.Strings(out)
	return out
}

func (c *config) mounts() map[string]bool {
	m := map[string]bool{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		point := unescape(f[4])
		fstype := ""
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1]
				break
			}
		}
		if len(c.mountPrefixes) > 0 && !under(point, c.mountPrefixes) {
			continue
		}
		// The mount ID makes two mounts at one place distinct.
		m[point+" ("+fstype+", id "+f[0]+")"] = true
	}
	return m
}

func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/") {
			return true
		}
	}
	return false
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroups lists directories named with the prefix in every cgroup
// hierarchy, two levels deep ("dock/<id>" included).
func (c *config) cgroups() map[string]bool {
	m := map[string]bool{}
	roots := []string{"/sys/fs/cgroup"}
	if ents, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
			}
		}
	}
	for _, root := range roots {
		ents, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), c.cgroupPrefix) {
				continue
			}
			p := filepath.Join(root, e.Name())
			m[p] = true
			sub, _ := os.ReadDir(p)
			for _, s := range sub {
				if s.IsDir() {
					m[filepath.Join(p, s.Name())] = true
				}
			}
		}
	}
	return m
}

// processes lists this process's child processes, zombies included, and
// those whose command line matches.
func (c *config) processes() map[string]bool {
	m := map[string]bool{}
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return m
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		name := fmt.Sprintf("%d %s", pid, s[strings.IndexByte(s, '(')+1:i])
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			m[name] = true
			continue
		}
		if len(c.cmdlines) > 0 && pid != self {
			cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			for _, sub := range c.cmdlines {
				if sub != "" && strings.Contains(string(cl), sub) {
					m[name+" ("+strings.ReplaceAll(strings.TrimRight(string(cl), "\x00"), "\x00", " ")+")"] = true
					break
				}
			}
		}
	}
	return m
}
