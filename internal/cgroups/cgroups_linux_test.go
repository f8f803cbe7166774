package cgroups

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
)

// childEnv selects what the re-executed test binary does in place of the
// tests; see runChild.
const childEnv = "DOCK_CGROUPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		runChild(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild waits for one line on stdin (the parent has moved it into the
// group by then) and does mode's work.
func runChild(mode string) {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(3)
	}
	switch mode {
	case "sleep":
		time.Sleep(time.Hour)
	case "spin":
		for range runtime.GOMAXPROCS(0) - 1 {
			go spin()
		}
		spin()
	case "alloc":
		// 256 MiB, every page touched so that it is really charged.
		b := make([]byte, 256<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived")
	case "forkbomb":
		n, errno := forkUntilFailure()
		fmt.Printf("forked %d errno %d\n", n, errno)
		time.Sleep(time.Hour)
	}
}

var sink uint64

func spin() {
	for i := uint64(0); ; i++ {
		sink += i
	}
}

// forkUntilFailure forks children that only pause, until fork fails. The
// children run no Go code beyond the raw system calls, which is safe in a
// forked copy of a Go process.
func forkUntilFailure() (int, syscall.Errno) {
	for n := 0; n < 10000; n++ {
		pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if errno != 0 {
			return n, errno
		}
		if pid == 0 {
			for {
				syscall.RawSyscall(syscall.SYS_PAUSE, 0, 0, 0)
			}
		}
	}
	return 10000, 0
}

// child is a re-executed test binary running inside a group.
type child struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild starts the test binary in mode, moves it into g, and lets it
// run. It is killed and reaped when the test ends.
func startChild(t *testing.T, g *Group, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GOMAXPROCS=2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd.Stdout = out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait waits for the child to exit and returns its wait status.
func (c *child) wait(t *testing.T, timeout time.Duration) syscall.WaitStatus {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(timeout):
		t.Fatalf("child did not exit within %s", timeout)
	}
	return c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// newTestGroup makes a uniquely named group that is killed and removed
// when the test ends.
func newTestGroup(t *testing.T, res *Resources) *Group {
	t.Helper()
	testutil.RequireRoot(t)
	if Mode() == "" {
		t.Skip("no cgroup file system mounted")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "docktest-" + hex.EncodeToString(b)
	g, err := New(name, res)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() {
		_ = g.Kill()
		if err := g.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return g
}

// readCtrl reads a control file of g, for checking what was written.
func readCtrl(t *testing.T, g *Group, ctrl, file string) string {
	t.Helper()
	dir, ok := g.ctrlDir(ctrl)
	if !ok {
		t.Fatalf("no %s hierarchy", ctrl)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func cpuUsage(t *testing.T, g *Group) time.Duration {
	t.Helper()
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(s.CPUUsageNanos)
}

func TestMode(t *testing.T) {
	m := Mode()
	t.Logf("cgroup mode %q", m)
	if m == "" {
		t.Skip("no cgroup file system mounted")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	if (st.Type == unix.CGROUP2_SUPER_MAGIC) != (m == "v2") {
		t.Fatalf("mode %q but /sys/fs/cgroup has magic %#x", m, st.Type)
	}
}

func TestLifecycle(t *testing.T) {
	res := &Resources{MemoryMax: 64 << 20, MemoryReservation: 16 << 20, PidsMax: 100, CPUShares: 512, CPUSetCPUs: "0", IOWeight: 500}
	g := newTestGroup(t, res)

	if (g.V2Path() != "") != (Mode() == "v2") {
		t.Fatalf("V2Path %q in mode %s", g.V2Path(), Mode())
	}
	if _, err := New(g.Name(), nil); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second New: %v, want ErrAlreadyExists", err)
	}
	if _, err := Load(g.Name() + "-absent"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Load absent: %v, want ErrNotFound", err)
	}
	if _, err := New("../escape", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("New ../escape: %v, want ErrInvalidArgument", err)
	}
	if _, err := New(g.Name()+"-bad", &Resources{MemorySwapMax: 1 << 20}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("New with swap alone: %v, want ErrInvalidArgument", err)
	}

	// What was written reads back.
	if Mode() == "v2" {
		if got := readCtrl(t, g, "", "cpu.weight"); got != "59" {
			t.Errorf("cpu.weight = %s, want 59 for 512 shares", got)
		}
		if got := readCtrl(t, g, "", "memory.low"); got != "16777216" {
			t.Errorf("memory.low = %s", got)
		}
	} else {
		if got := readCtrl(t, g, "cpu", "cpu.shares"); got != "512" {
			t.Errorf("cpu.shares = %s", got)
		}
		if got := readCtrl(t, g, "memory", "memory.soft_limit_in_bytes"); got != "16777216" {
			t.Errorf("soft limit = %s", got)
		}
	}
	ioCtrl, ioFiles := "blkio", []string{"blkio.weight", "blkio.bfq.weight"}
	if Mode() == "v2" {
		ioCtrl, ioFiles = "", []string{"io.weight", "io.bfq.weight"}
	}
	if dir, ok := g.ctrlDir(ioCtrl); ok {
		found := false
		for _, f := range ioFiles {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				if got := readCtrl(t, g, ioCtrl, f); !strings.Contains(got, "500") {
					t.Errorf("%s = %q, want weight 500", f, got)
				}
				found = true
				break
			}
		}
		if !found {
			t.Logf("kernel offers no IO weight; IOWeight skipped as docker does")
		}
	}
	if got := readCtrl(t, g, "cpuset", "cpuset.cpus"); got != "0" {
		t.Errorf("cpuset.cpus = %s", got)
	}

	c := startChild(t, g, "spin")
	l, err := Load(g.Name())
	if err != nil {
		t.Fatal(err)
	}
	pids, err := l.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != c.cmd.Process.Pid {
		t.Fatalf("Procs = %v, want [%d]", pids, c.cmd.Process.Pid)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryMax != 64<<20 || s.PidsMax != 100 || s.Pids < 1 {
		t.Fatalf("stats %+v: want MemoryMax 64 MiB, PidsMax 100, Pids >= 1", s)
	}

	if err := l.Update(&Resources{MemoryMax: 128 << 20, PidsMax: -1}); err != nil {
		t.Fatal(err)
	}
	if s, err = l.Stats(); err != nil {
		t.Fatal(err)
	}
	if s.MemoryMax != 128<<20 || s.PidsMax != 0 {
		t.Fatalf("after update: MemoryMax %d PidsMax %d, want 128 MiB and unlimited", s.MemoryMax, s.PidsMax)
	}

	// Frozen, the spinning child uses no CPU; thawed, it does again.
	if err := g.Freeze(); err != nil {
		t.Fatal(err)
	}
	u0 := cpuUsage(t, g)
	time.Sleep(300 * time.Millisecond)
	if d := cpuUsage(t, g) - u0; d > 20*time.Millisecond {
		t.Fatalf("frozen group used %s of CPU", d)
	}
	if err := g.Thaw(); err != nil {
		t.Fatal(err)
	}
	// A busy machine may give the child little CPU: wait for progress
	// rather than for a fixed share.
	u0 = cpuUsage(t, g)
	for deadline := time.Now().Add(20 * time.Second); cpuUsage(t, g)-u0 < 50*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("thawed group used only %s of CPU in 20s", cpuUsage(t, g)-u0)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if ws := c.wait(t, 10*time.Second); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", ws)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(g.Name()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Load after Delete: %v, want ErrNotFound", err)
	}
	if err := g.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := g.Kill(); err != nil {
		t.Fatalf("Kill after Delete: %v", err)
	}
}

func TestMemoryOOM(t *testing.T) {
	g := newTestGroup(t, &Resources{MemoryMax: 32 << 20, MemorySwapMax: 32 << 20})
	c := startChild(t, g, "alloc")
	ws := c.wait(t, 60*time.Second)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v (output %q), want SIGKILL", ws, c.out.String())
	}
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.OOMKills < 1 {
		t.Fatalf("Stats().OOMKills = %d, want >= 1", s.OOMKills)
	}
	n, err := g.Paths().OOMKills()
	if err != nil || n < 1 {
		t.Fatalf("OOMKills = %d, %v; want >= 1", n, err)
	}
	if s.MemoryPeak > 33<<20 {
		t.Fatalf("peak %d above the 32 MiB limit", s.MemoryPeak)
	}
}

func TestPidsLimit(t *testing.T) {
	const limit = 48
	g := newTestGroup(t, &Resources{PidsMax: limit})
	c := startChild(t, g, "forkbomb")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(c.out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("fork bomb did not report; output %q", c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n, errno int
	if _, err := fmt.Sscanf(c.out.String(), "forked %d errno %d", &n, &errno); err != nil {
		t.Fatalf("output %q: %v", c.out.String(), err)
	}
	t.Logf("forked %d children before errno %d", n, errno)
	if syscall.Errno(errno) != syscall.EAGAIN {
		t.Fatalf("fork failed with errno %d, want EAGAIN", errno)
	}
	if n >= limit || n == 0 {
		t.Fatalf("forked %d children under a limit of %d tasks", n, limit)
	}
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids > limit || s.PidsMax != limit {
		t.Fatalf("Pids %d PidsMax %d, want at most %d", s.Pids, s.PidsMax, limit)
	}
	procs, err := g.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != n+1 {
		t.Fatalf("%d processes in the group, want %d", len(procs), n+1)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	if err := g.Delete(); err != nil {
		t.Fatalf("Delete after killing the fork bomb: %v", err)
	}
}

func TestCPUQuota(t *testing.T) {
	g := newTestGroup(t, &Resources{CPUQuota: 20000, CPUPeriod: 100000})
	startChild(t, g, "spin")
	time.Sleep(300 * time.Millisecond)
	u0, t0 := cpuUsage(t, g), time.Now()
	time.Sleep(1200 * time.Millisecond)
	u1, t1 := cpuUsage(t, g), time.Now()
	share := float64(u1-u0) / float64(t1.Sub(t0))
	t.Logf("CPU share under a 0.2 CPU quota: %.3f", share)
	// The quota caps the share; a busy machine may give less, never more.
	if share > 0.30 || share < 0.02 {
		t.Fatalf("CPU share %.3f, want about 0.2 and at most 0.3", share)
	}
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUThrottled == 0 {
		t.Fatalf("no throttled periods reported: %+v", s)
	}
	if got := readQuota(t, g); got != "20000 100000" {
		t.Fatalf("quota reads %q", got)
	}
}

func readQuota(t *testing.T, g *Group) string {
	if g.V2Path() != "" {
		return readCtrl(t, g, "", "cpu.max")
	}
	return readCtrl(t, g, "cpu", "cpu.cfs_quota_us") + " " + readCtrl(t, g, "cpu", "cpu.cfs_period_us")
}

func TestNested(t *testing.T) {
	testutil.RequireRoot(t)
	if Mode() == "" {
		t.Skip("no cgroup file system mounted")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	parent := "docktest-" + hex.EncodeToString(b)
	g, err := New(parent+"/ctr", &Resources{MemoryMax: 64 << 20, PidsMax: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.Kill()
		_ = g.Delete()
		if p, err := Load(parent); err == nil {
			_ = p.Delete()
		}
	})
	c := startChild(t, g, "sleep")
	if p, err := Load(parent); err != nil {
		t.Fatal(err)
	} else if procs, err := p.Procs(); err != nil || len(procs) != 1 {
		t.Fatalf("parent Procs = %v, %v; want the child", procs, err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	p, err := Load(parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(); err != nil {
		t.Fatalf("delete parent with its child group: %v", err)
	}
	if _, err := Load(parent + "/ctr"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("child group after parent Delete: %v", err)
	}
}

// The parent of groups goes with the last of them, and not before.
func TestDeleteRemovesEmptyParent(t *testing.T) {
	testutil.RequireRoot(t)
	if Mode() == "" {
		t.Skip("no cgroup file system mounted")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	parent := "docktest-" + hex.EncodeToString(b)
	a, err := New(parent+"/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(parent+"/b", nil)
	if err != nil {
		a.Delete()
		t.Fatal(err)
	}
	parentDirs := func() []string {
		var out []string
		for _, d := range append(a.Paths().All(), c.Paths().All()...) {
			if _, err := os.Stat(filepath.Dir(d)); err == nil && !slices.Contains(out, filepath.Dir(d)) {
				out = append(out, filepath.Dir(d))
			}
		}
		return out
	}
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	if len(parentDirs()) == 0 {
		c.Delete()
		t.Fatal("parent removed while another group uses it")
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	if left := parentDirs(); len(left) != 0 {
		t.Fatalf("parents left behind: %v", left)
	}
}

// TestSetDevicesAgain checks that setting a group's device rules again,
// as a start that takes over a group left by an earlier run does, leaves
// the rules set last alone: on v1 the controller's list, on v2 one
// attached program.
func TestSetDevicesAgain(t *testing.T) {
	g := newTestGroup(t, nil)
	for range 3 {
		if err := g.SetDevices(DefaultDevices); err != nil {
			t.Fatal(err)
		}
	}
	if g.v2 == nil {
		if got := readCtrl(t, g, "devices", "devices.list"); !strings.Contains(got, "c 1:3 rwm") || strings.Contains(got, "a *:* rwm") {
			t.Errorf("devices.list %q: want the standard nodes and no rule for all", got)
		}
		return
	}
	fd, err := unix.Open(g.fs.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	q, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Programs) != 1 {
		t.Errorf("%d device programs attached, want 1", len(q.Programs))
	}
}
