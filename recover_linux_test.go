package dock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A container whose monitor dies while it runs (the host restarted, or the
// monitor was killed) is found by the next Open: it is recorded as exited
// with 255 and its orphaned processes are killed, or, with the policy
// always or unless-stopped, it runs again under a new monitor.
func TestRecoverLostContainers(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	plain, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	always, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithRestartPolicy("always"))

	monitorOf := func(c *Container) int {
		hd, err := c.handle()
		if err != nil {
			t.Fatal(err)
		}
		return hd.State().MonitorPid
	}
	oldPlain, oldAlways := plain.State().Pid, always.State().Pid
	for _, c := range []*Container{plain, always} {
		pid := monitorOf(c)
		if pid <= 0 {
			t.Fatalf("%s: no monitor pid", c.Name)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := syscall.Kill(oldPlain, 0); err != nil {
		t.Fatalf("the container died with its monitor (%v); this test wants it orphaned", err)
	}

	h2 := reopen(t, h)
	p, err := h2.Container(ctx, plain.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.State(); st.Status != StatusExited || st.ExitCode != 255 || !strings.Contains(st.Error, "monitor") {
		t.Errorf("container without a policy: %+v, want exited 255 with the monitor named", st)
	}
	for i := 0; i < 500 && syscall.Kill(oldPlain, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if syscall.Kill(oldPlain, 0) == nil {
		t.Errorf("orphaned process %d of %s still runs", oldPlain, plain.Name)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(oldAlways) + "/cmdline"); err == nil && strings.HasPrefix(string(b), "sleep") {
		t.Errorf("orphaned process %d of %s still runs", oldAlways, always.Name)
	}

	a, err := h2.Container(ctx, always.Name)
	if err != nil {
		t.Fatal(err)
	}
	st := a.State()
	if st.Status != StatusRunning || st.Pid == oldAlways {
		t.Fatalf("container with restart always: %+v, want running again under a new pid", st)
	}
	if pid := monitorOf(a); pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("restarted container has no living monitor (%d)", pid)
	}
}

// The first Open of a root after the host booted starts again, as dockerd
// does when it starts, a container with the policy always that was
// stopped by hand, but not one with unless-stopped: Docker's one
// difference between the two.
func TestRestartAfterBoot(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	always, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithRestartPolicy("always"))
	unless, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithRestartPolicy("unless-stopped"))
	// One that fails six times, then runs, caught in a back-off when its
	// monitor goes (with the host, as far as it knows).
	crashy, _, _ := runContainer(t, h, img, WithRestartPolicy("unless-stopped"), WithCmd("sh", "-c",
		`n=$(cat /n 2>/dev/null || echo 0); echo $((n+1)) >/n; [ "$n" -ge 6 ] && exec sleep 1000; exit 1`))
	waitFor(t, func() bool { return crashy.RestartCount() >= 4 && crashy.State().Restarting }, "a long back-off")
	killMonitor(t, crashy)
	for _, c := range []*Container{always, unless} {
		if err := c.Stop(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		if st := c.State(); st.Status != StatusExited {
			t.Fatalf("%s after Stop: %+v", c.Name, st)
		}
	}
	open := func() *Host { return reopen(t, h) }
	// Another Open in the same boot starts nothing.
	open()
	if st := always.State(); st.Status != StatusExited {
		t.Fatalf("an Open in the same boot started %s: %+v", always.Name, st)
	}

	// As if the host had booted since.
	fakeBoot(t, h)
	open()
	if st := always.State(); st.Status != StatusRunning {
		t.Errorf("always after a boot: %+v, want running", st)
	}
	if st := unless.State(); st.Status != StatusExited {
		t.Errorf("unless-stopped, stopped by hand, after a boot: %+v, want exited", st)
	}
	waitFor(t, func() bool { return crashy.State().Status == StatusRunning }, "unless-stopped, caught in a back-off, running after a boot")
}

// TestRestartAfterBootJoined has containers that join another's network
// namespace come back after a boot with it: the one they join starts
// first.
func TestRestartAfterBootJoined(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	pod, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithRestartPolicy("always"))
	var members []*Container
	for range 3 {
		m, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithRestartPolicy("always"), WithJoinNamespace(NetNamespace, pod))
		members = append(members, m)
	}
	for _, c := range append(members, pod) {
		if err := c.Stop(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// As if the host had booted since.
	fakeBoot(t, h)
	reopen(t, h)
	podNet, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pod.State().Pid))
	if err != nil {
		t.Fatalf("the joined container after a boot: %+v: %v", pod.State(), err)
	}
	for _, m := range members {
		if st := m.State(); st.Status != StatusRunning {
			t.Errorf("%s after a boot: %+v, want running", m.Name, st)
			continue
		}
		if net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", m.State().Pid)); net != podNet {
			t.Errorf("%s in %s after a boot, want %s", m.Name, net, podNet)
		}
	}
}

// fakeBoot makes h's root look as if the host had booted since it was
// last opened.
func fakeBoot(t *testing.T, h *Host) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.Root(), bootIDFile), []byte("00000000-0000-0000-0000-000000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reopen opens h's root again, as another program would, closed at the
// test's end.
func reopen(t *testing.T, h *Host) *Host {
	t.Helper()
	h2, err := Open(context.Background(), WithRoot(h.Root()), func(c *openConfig) error { c.cgParent = h.cgParent; return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	return h2
}

// killMonitor kills the monitor of c with SIGKILL.
func killMonitor(t *testing.T, c *Container) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if err != nil || len(args) < 2 || args[0] != "dock-monitor" || args[1] != c.stateDir() {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no monitor of %s", c.Name)
}

// Open leaves alone the name a create under way has linked before making
// its container's directory, and removes one whose create died.
func TestOpenKeepsNameOfCreateUnderWay(t *testing.T) {
	h := newHost(t)
	id := randomHex(32)
	unlock, err := h.lockScratch("create-" + id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.namesDir(), 0o711); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(h.namesDir(), "being-made")
	if err := os.Symlink(id, link); err != nil {
		t.Fatal(err)
	}
	reopen := func() {
		h2, err := Open(context.Background(), WithRoot(h.Root()))
		if err != nil {
			t.Fatal(err)
		}
		h2.Close()
	}
	reopen()
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("Open removed the name of a create under way: %v", err)
	}
	unlock() // the create died
	reopen()
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("Open kept the name of a create that died: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.Root(), "tmp", "create-"+id+".lock")); !os.IsNotExist(err) {
		t.Errorf("the dead create's lock file stays: %v", err)
	}
}

// An auto-remove container's layer and record are written without syncs, so
// a crash may leave its record empty or not JSON, or lose its state. The
// next Open removes such containers, and ones created before the host last
// booted that never ran, while it keeps the others.
func TestAutoRemoveAfterCrash(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	create := func(opts ...CreateOption) *Container {
		c, err := h.Create(ctx, img, append(opts, WithCmd("true"))...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	keep, current, damaged := create(), create(WithAutoRemove()), create()
	empty, garbage, oldBoot := create(WithAutoRemove()), create(WithAutoRemove()), create(WithAutoRemove())
	t.Cleanup(func() {
		keep.Remove(context.Background(), true)
		current.Remove(context.Background(), true)
		os.RemoveAll(damaged.stateDir())
		h.snap.Remove(context.Background(), damaged.rec.SnapshotKey)
	})

	for _, tc := range []struct {
		c    *Container
		want string
	}{{keep, ""}, {current, "true"}} {
		info, err := h.Snapshotter().Stat(ctx, tc.c.rec.SnapshotKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Labels[SnapshotLabelVolatile]; got != tc.want {
			t.Errorf("%s: the layer's %s label is %q, want %q", tc.c.Name, SnapshotLabelVolatile, got, tc.want)
		}
	}

	record := func(c *Container) string { return filepath.Join(c.stateDir(), "dock.json") }
	if err := os.Truncate(record(empty), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(record(garbage), make([]byte, 512), 0o600); err != nil {
		t.Fatal(err)
	}
	// A durable container's record damaged otherwise: not a crash's doing.
	if err := os.WriteFile(record(damaged), []byte(`{"id": "`), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(record(oldBoot))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), bootID()) {
		t.Fatalf("the record holds no boot id:\n%s", b)
	}
	if err := os.WriteFile(record(oldBoot), []byte(strings.ReplaceAll(string(b), bootID(), "an-earlier-boot")), 0o600); err != nil {
		t.Fatal(err)
	}
	// As if the host had booted since: a record not JSON is looked for
	// only then.
	fakeBoot(t, h)

	h2 := reopen(t, h)
	for _, c := range []*Container{keep, current} {
		if _, err := h2.Container(ctx, c.Name); err != nil {
			t.Errorf("%s after Open: %v", c.Name, err)
		}
	}
	if _, err := h2.Container(ctx, damaged.Name); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("%s, its record damaged, after Open: %v, want an error other than ErrNotFound", damaged.Name, err)
	}
	if _, err := os.Stat(record(damaged)); err != nil {
		t.Errorf("%s: its damaged record is gone: %v", damaged.Name, err)
	}
	for _, c := range []*Container{empty, garbage, oldBoot} {
		if _, err := h2.Container(ctx, c.Name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after Open: %v, want ErrNotFound", c.Name, err)
		}
		if _, err := os.Lstat(c.stateDir()); !os.IsNotExist(err) {
			t.Errorf("%s: its directory is left: %v", c.Name, err)
		}
		if _, err := h2.Snapshotter().Stat(ctx, c.rec.SnapshotKey); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: its layer is left: %v", c.Name, err)
		}
		if _, err := os.Lstat(filepath.Join(h.namesDir(), c.Name)); !os.IsNotExist(err) {
			t.Errorf("%s: its name is left: %v", c.Name, err)
		}
	}
}
