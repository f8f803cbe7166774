package dock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/testutil/imagetest"
	digest "github.com/opencontainers/go-digest"
)

// A test binary started with DOCK_RUN_CHILD plays a program that starts a
// container and goes away; it runs before TestMain.
func init() {
	if role := os.Getenv("DOCK_RUN_CHILD"); role != "" {
		os.Exit(runningChild(role))
	}
}

func runningChild(role string) int {
	ctx := context.Background()
	h, err := Open(ctx, WithRoot(os.Getenv("DOCK_TEST_ROOT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	img, err := h.Image(ctx, "test.local/busybox:latest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	var c *Container
	switch role {
	case "restart":
		c, err = h.Create(ctx, img, WithCmd("sh", "-c", "echo run; exit 3"), WithRestartPolicy("on-failure:2"))
	case "attach":
		// Attach to the container named by DOCK_TEST_NAME: send a line and
		// print what comes back.
		if c, err = h.Container(ctx, os.Getenv("DOCK_TEST_NAME")); err != nil {
			break
		}
		var a *Attachment
		if a, err = c.Attach(ctx, WithInput(strings.NewReader("ping\n")), WithOutput(os.Stdout, os.Stderr)); err != nil {
			break
		}
		err = a.Wait(ctx)
		if err == nil {
			return 0
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err == nil {
		if err = c.Start(ctx); err == nil {
			fmt.Println(c.ID)
			// Stay until killed, so that the test kills the program that
			// started the container.
			time.Sleep(time.Hour)
		}
	}
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// startChild runs the test binary in role on h's root and returns its first
// line of output.
func startChild(t *testing.T, h *Host, role string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"DOCK_RUN_CHILD=" + role, "DOCK_TEST_ROOT=" + h.Root()}, env...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child %s: %v", role, err)
	}
	return cmd, strings.TrimSpace(line)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkExecNamespaces checks that a process exec'd in c is in the
// namespaces nss of c's init, pid.
func checkExecNamespaces(t *testing.T, c *Container, pid int, nss ...string) {
	t.Helper()
	for _, ns := range nss {
		want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		got, code := execOut(t, c, []string{"readlink", "/proc/self/ns/" + ns})
		if code != 0 || strings.TrimSpace(got) != want {
			t.Errorf("%s: exec'd process in %q (exit %d), container in %q", ns, strings.TrimSpace(got), code, want)
		}
	}
}

// execOut runs args in c and returns its stdout and exit code.
func execOut(t *testing.T, c *Container, args []string, opts ...ExecOption) (string, int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	var out bytes.Buffer
	p, err := c.Exec(ctx, args, append([]ExecOption{WithOutput(&out, os.Stderr)}, opts...)...)
	if err != nil {
		t.Fatalf("exec %q: %v", args, err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), st.ExitCode
}

func TestExec(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"), WithEnv("BASE=1"), WithWorkdir("/etc"))
	pid := c.State().Pid

	t.Run("namespaces", func(t *testing.T) {
		checkExecNamespaces(t, c, pid, "pid", "net", "mnt", "uts", "ipc", "cgroup")
	})
	t.Run("cgroup", func(t *testing.T) {
		self, _ := execOut(t, c, []string{"cat", "/proc/self/cgroup"})
		init, _ := execOut(t, c, []string{"cat", "/proc/1/cgroup"})
		if self == "" || self != init {
			t.Errorf("exec'd process in cgroups\n%s\ncontainer's init in\n%s", self, init)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		got, _ := execOut(t, c, []string{"sh", "-c", "id -u; echo $BASE; pwd; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status"})
		want, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(lines) != 6 || lines[0] != "0" || lines[1] != "1" || lines[2] != "/etc" {
			t.Fatalf("got %q", got)
		}
		for _, l := range lines[3:] {
			if !strings.Contains(string(want), strings.Join(strings.Fields(l), "\t")) {
				t.Errorf("exec'd %q, container's init has\n%s", l, want)
			}
		}
	})
	t.Run("overrides", func(t *testing.T) {
		got, code := execOut(t, c, []string{"sh", "-c", "id -u; id -g; echo $FOO $BASE; pwd"},
			WithExecUser("1234:5678"), WithExecEnv("FOO=bar", "BASE=2"), WithExecWorkdir("/tmp"))
		if want := "1234\n5678\nbar 2\n/tmp\n"; got != want || code != 0 {
			t.Errorf("got %q exit %d, want %q", got, code, want)
		}
	})
	t.Run("exit codes", func(t *testing.T) {
		for _, tt := range []struct {
			cmd  string
			code int
		}{{"exit 0", 0}, {"exit 7", 7}, {"kill -9 $$", 137}} {
			if _, code := execOut(t, c, []string{"sh", "-c", tt.cmd}); code != tt.code {
				t.Errorf("%q: exit %d, want %d", tt.cmd, code, tt.code)
			}
		}
		_, err := c.Exec(context.Background(), []string{"/no/such"})
		var se *StartError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Code != 127 {
			t.Errorf("missing command: %v", err)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		data := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		got, code := execOut(t, c, []string{"sh", "-c", "cat; echo eof"}, WithInput(strings.NewReader(data)))
		if code != 0 || got != data+"eof\n" {
			t.Errorf("stdin round trip: %d bytes back, exit %d", len(got), code)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		ctx := ctxT(t, 30*time.Second)
		pr, pw := io.Pipe()
		var out syncBuffer
		p, err := c.Exec(ctx, []string{"sh", "-c", "test -t 0 && test -t 1 && echo tty; read x; stty size; read x; stty size"},
			WithExecTerminal(), WithInput(pr), WithOutput(&out, nil))
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][2]uint16{{33, 99}, {50, 120}} {
			if err := p.Resize(sz[0], sz[1]); err != nil {
				t.Fatal(err)
			}
			pw.Write([]byte("go\n"))
			want := fmt.Sprintf("%d %d", sz[0], sz[1])
			waitFor(t, func() bool { return strings.Contains(out.String(), want) }, "size "+want+" in "+out.String())
		}
		st, err := p.Wait(ctx)
		pw.Close()
		if err != nil || st.ExitCode != 0 || !strings.Contains(out.String(), "tty") {
			t.Errorf("exit %+v %v, output %q", st, err, out.String())
		}
	})
	t.Run("dies with the container", func(t *testing.T) {
		c2, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
		p, err := c2.Exec(context.Background(), []string{"sleep", "1000"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c2.Stop(ctxT(t, 30*time.Second), time.Second); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctxT(t, 10*time.Second))
		if err != nil || st.Signal != syscall.SIGKILL {
			t.Errorf("exec'd process: %+v %v, want killed", st, err)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid)); err == nil {
			t.Errorf("exec'd process %d still there", p.Pid)
		}
		if _, err := c2.Exec(context.Background(), []string{"true"}); !errors.Is(err, ErrWrongState) {
			t.Errorf("exec in a stopped container: %v", err)
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPauseResume(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "while :; do :; done"))
	ctx := ctxT(t, time.Minute)
	cpu := func() uint64 {
		s, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.CPUUsageNanos
	}
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.State().Status; st != StatusPaused {
		t.Fatalf("status %s after Pause", st)
	}
	if err := c.Pause(ctx); !errors.Is(err, ErrWrongState) {
		t.Errorf("second Pause: %v", err)
	}
	if _, err := c.Exec(ctx, []string{"true"}); !errors.Is(err, ErrWrongState) {
		t.Errorf("exec in a paused container: %v", err)
	}
	a := cpu()
	time.Sleep(300 * time.Millisecond)
	if b := cpu(); b != a {
		t.Errorf("paused container used %v of CPU", time.Duration(b-a))
	}
	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.State().Status; st != StatusRunning {
		t.Fatalf("status %s after Resume", st)
	}
	a = cpu()
	time.Sleep(300 * time.Millisecond)
	if b := cpu(); b-a < uint64(20*time.Millisecond) {
		t.Errorf("resumed container used only %v of CPU", time.Duration(b-a))
	}
	// A paused container can still be stopped.
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.Signal != syscall.SIGKILL {
		t.Errorf("paused container stopped with %+v", st)
	}
}

func TestStats(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "while :; do :; done"))
	ctx := ctxT(t, time.Minute)
	ch, err := c.StreamStats(ctx, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	first := <-ch
	var last Stats
	for i := 0; i < 3; i++ {
		last = <-ch
	}
	if last.CPUUsageNanos <= first.CPUUsageNanos {
		t.Errorf("CPU usage did not move: %d then %d", first.CPUUsageNanos, last.CPUUsageNanos)
	}
	if last.MemoryUsage == 0 || last.Pids < 1 {
		t.Errorf("memory %d, pids %d", last.MemoryUsage, last.Pids)
	}
	// Memory that the container touches shows.
	before := last.MemoryUsage
	p, err := c.Exec(ctx, []string{"sh", "-c", "dd if=/dev/zero bs=1M count=40 | cat > /dev/shm/x; sleep 1000"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill(syscall.SIGKILL)
	waitFor(t, func() bool {
		s, err := c.Stats(ctx)
		return err == nil && s.MemoryUsage > before+30<<20
	}, "memory to grow by 30 MiB")
	c.Kill(syscall.SIGKILL)
	wait(t, c)
	if _, err := c.Stats(ctx); !errors.Is(err, ErrWrongState) {
		t.Errorf("stats of a stopped container: %v", err)
	}
}

// nextEvent returns the next event of ch or fails.
func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("events ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event in 30s")
	}
	return Event{}
}

func TestEvents(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	// Another program's view of the same root.
	h2 := otherHost(t, h)
	evs, err := h2.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.Create(ctx, img, WithCmd("sleep", "1000"), WithName("events-test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	c.Kill(syscall.SIGKILL)
	wait(t, c)
	if err := c.Remove(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{EventCreated, EventStarted, EventPaused, EventUnpaused, EventDied, EventRemoved} {
		ev := nextEvent(t, evs)
		if ev.Type != want || ev.ContainerID != c.ID || ev.ContainerName != "events-test" {
			t.Fatalf("got %+v, want %s", ev, want)
		}
		if want == EventDied && ev.Attributes["exitCode"] != "137" {
			t.Errorf("died with %v, want exitCode 137", ev.Attributes)
		}
	}
	// A reader from the past replays them, filtered.
	old, err := h.Events(ctx, EventsSince(time.Now().Add(-time.Minute)), EventsUntil(time.Now()), EventsOfType(EventDied))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for range old {
		n++
	}
	if n != 1 {
		t.Errorf("replayed %d died events, want 1", n)
	}
}

func TestRestartPolicyWithCallerGone(t *testing.T) {
	h := newHost(t)
	busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	evs, err := h.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	child, id := startChild(t, h, "restart")
	child.Process.Kill()
	child.Wait()
	c, err := h.Container(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	// Three runs: the first and two restarts, each ending with exit 3.
	var died, restarts int
	for died < 3 {
		ev := nextEvent(t, evs)
		switch ev.Type {
		case EventDied:
			died++
			if ev.Attributes["exitCode"] != "3" {
				t.Errorf("died: %v", ev.Attributes)
			}
		case EventRestarting:
			restarts++
		}
	}
	if restarts != 2 {
		t.Errorf("%d restarts, want 2", restarts)
	}
	time.Sleep(500 * time.Millisecond)
	st := c.State()
	if st.Status != StatusExited || st.Restarting || st.RestartCount != 2 || st.ExitCode != 3 {
		t.Errorf("final state %+v", st)
	}
	logs, _ := c.Logs(ctx)
	b, _ := io.ReadAll(logs)
	logs.Close()
	if string(b) != "run\nrun\nrun\n" {
		t.Errorf("log %q", b)
	}
}

func TestRestartAlwaysAndStop(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "sleep 0.2"), WithRestartPolicy("always"))
	waitFor(t, func() bool { return c.RestartCount() >= 2 }, "two restarts")
	if err := c.Stop(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	n := c.RestartCount()
	if st := c.State(); st.Status != StatusExited || st.Restarting {
		t.Errorf("after Stop: %+v", st)
	}
	time.Sleep(time.Second)
	if c.RestartCount() != n || c.State().Status != StatusExited {
		t.Errorf("restarted after Stop")
	}
	if _, err := runtimeParse("on-failure:x"); err == nil {
		t.Error("on-failure:x accepted")
	}
}

func runtimeParse(s string) (CreateOption, error) {
	o := WithRestartPolicy(s)
	return o, o(&createConfig{})
}

func TestHealthcheck(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	evs, err := h.Events(ctx, EventsOfType(EventHealth))
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := runContainer(t, h, img,
		WithCmd("sh", "-c", "sleep 0.5; touch /tmp/ok; sleep 1.5; rm /tmp/ok; sleep 1000"),
		WithHealthcheck(Healthcheck{Test: []string{"CMD-SHELL", "test -f /tmp/ok && echo fine"}, Interval: 150 * time.Millisecond, Retries: 2, StartPeriod: 10 * time.Second}))
	for _, want := range []string{"starting", "healthy", "unhealthy"} {
		ev := nextEvent(t, evs)
		if ev.Attributes["status"] != want {
			t.Fatalf("health event %v, want %s", ev.Attributes, want)
		}
		if got := c.State().Health; got == nil || got.Status != want && want != "starting" {
			t.Errorf("state's health %+v, want %s", got, want)
		}
	}
	hl := c.Health()
	if hl == nil || hl.FailingStreak < 2 || len(hl.Log) == 0 {
		t.Fatalf("health %+v", hl)
	}
	found := false
	for _, l := range hl.Log {
		found = found || l.Output == "fine\n"
	}
	if !found {
		t.Errorf("no check output in %+v", hl.Log)
	}
}

// TestLogsLargeOutput has a container write 50 MiB on each stream at once;
// the log holds both complete and in order.
func TestLogsLargeOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB of logs")
	}
	h := newHost(t)
	img := busyboxImage(t, h)
	const lines = 50 << 20 / 16
	gen := fmt.Sprintf(`awk 'BEGIN{for(i=0;i<%d;i++) printf "%%015d\n", i}'`, lines)
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", gen+" & "+gen+" >&2; wait"))
	ctx := ctxT(t, 5*time.Minute)
	if st, err := c.Wait(ctx); err != nil || st.ExitCode != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	logs, err := c.Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	out, errw := &seqChecker{t: t, name: "stdout"}, &seqChecker{t: t, name: "stderr"}
	if err := logs.WriteTo(out, errw); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*seqChecker{out, errw} {
		if s.n != lines || len(s.part) != 0 {
			t.Errorf("%s: %d lines in order, want %d", s.name, s.n, lines)
		}
	}
}

// seqChecker checks that what is written is the lines 0, 1, 2, ...
type seqChecker struct {
	t    *testing.T
	name string
	n    int
	part []byte
	bad  bool
}

func (s *seqChecker) Write(p []byte) (int, error) {
	s.part = append(s.part, p...)
	for len(s.part) >= 16 && !s.bad {
		want := fmt.Sprintf("%015d\n", s.n)
		if string(s.part[:16]) != want {
			s.t.Errorf("%s: line %d is %q", s.name, s.n, s.part[:16])
			s.bad = true
			break
		}
		s.n++
		s.part = s.part[16:]
	}
	if s.bad {
		s.part = nil
	}
	return len(p), nil
}

func TestAttachFromAnotherProgram(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, err := h.Create(ctx, img, WithCmd("sh", "-c", "while read l; do echo got $l; echo err $l >&2; done"), WithStdin(), WithName("attach-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// This program attaches too, output only.
	var out, errb syncBuffer
	a, err := c.Attach(ctx, WithOutput(&out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	_, line := startChild(t, h, "attach", "DOCK_TEST_NAME=attach-test")
	if line != "got ping" {
		t.Errorf("the other program got %q", line)
	}
	waitFor(t, func() bool { return out.String() == "got ping\n" && errb.String() == "err ping\n" }, "output at the first attacher")
	c.Kill(syscall.SIGKILL)
	if err := a.Wait(ctx); err != nil {
		t.Errorf("attach ended with %v", err)
	}
}

func TestContainerTerminal(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, err := h.Create(ctx, img, WithTTY(), WithStdin(),
		WithCmd("sh", "-c", "test -t 0 && test -t 1 && test -t 2 && echo tty; read x; stty size; read x; stty size"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	pr, pw := io.Pipe()
	var out syncBuffer
	if err := c.Start(ctx, WithInput(pr), WithOutput(&out, nil)); err != nil {
		t.Fatal(err)
	}
	if !c.Config().TTY {
		t.Error("Config().TTY false")
	}
	for _, sz := range [][2]uint16{{24, 80}, {40, 132}} {
		if err := c.Resize(sz[0], sz[1]); err != nil {
			t.Fatal(err)
		}
		pw.Write([]byte("go\n"))
		want := fmt.Sprintf("%d %d", sz[0], sz[1])
		waitFor(t, func() bool { return strings.Contains(out.String(), want) }, want+" in "+out.String())
	}
	if st := wait(t, c); st.ExitCode != 0 || !strings.Contains(out.String(), "tty") {
		t.Errorf("exit %+v, output %q", st, out.String())
	}
	pw.Close()
}

// withImageHealthcheck rewrites the single image of the OCI layout dir so
// that its config carries a Docker HEALTHCHECK, as docker build writes it.
func withImageHealthcheck(t *testing.T, dir string, img imagetest.Image, test []string, interval time.Duration) {
	t.Helper()
	blob := func(d digest.Digest) string { return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()) }
	put := func(b []byte) (digest.Digest, int64) {
		d := digest.FromBytes(b)
		if err := os.WriteFile(blob(d), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d, int64(len(b))
	}
	var cfg map[string]any
	b, err := os.ReadFile(blob(img.ConfigDesc.Digest))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &cfg)
	inner, _ := cfg["config"].(map[string]any)
	if inner == nil {
		inner = map[string]any{}
		cfg["config"] = inner
	}
	inner["Healthcheck"] = map[string]any{"Test": test, "Interval": interval, "Retries": 1}
	b, _ = json.Marshal(cfg)
	cd, cs := put(b)
	var m map[string]any
	mb, err := os.ReadFile(blob(img.Manifest.Digest))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(mb, &m)
	m["config"].(map[string]any)["digest"], m["config"].(map[string]any)["size"] = cd, cs
	mb, _ = json.Marshal(m)
	md, ms := put(mb)
	var idx map[string]any
	ib, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(ib, &idx)
	for _, e := range idx["manifests"].([]any) {
		e.(map[string]any)["digest"], e.(map[string]any)["size"] = md, ms
	}
	ib, _ = json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHealthcheckFromImage(t *testing.T) {
	h := newHost(t)
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	bi := imagetest.Busybox(t, dir, imagetest.Name("test.local/healthy:1"))
	withImageHealthcheck(t, dir, bi, []string{"CMD", "true"}, 100*time.Millisecond)
	imgs, err := h.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := runContainer(t, h, imgs[0], WithCmd("sleep", "1000"))
	waitFor(t, func() bool { hl := c.Health(); return hl != nil && hl.Status == "healthy" }, "healthy from the image's HEALTHCHECK")
	// NONE turns it off.
	c2, _, _ := runContainer(t, h, imgs[0], WithCmd("sleep", "1000"), WithHealthcheck(Healthcheck{Test: []string{"NONE"}}))
	time.Sleep(500 * time.Millisecond)
	if hl := c2.Health(); hl != nil {
		t.Errorf("health %+v with HEALTHCHECK NONE", hl)
	}
}

// healthImage loads a busybox image whose config has a HEALTHCHECK.
func healthImage(t *testing.T, h *Host, name string, test []string, interval time.Duration) *Image {
	t.Helper()
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	bi := imagetest.Busybox(t, dir, imagetest.Name(name))
	withImageHealthcheck(t, dir, bi, test, interval)
	imgs, err := h.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return imgs[0]
}

// TestHealthcheckMergesImage checks that WithHealthcheck changes only the
// fields it sets of the image's HEALTHCHECK, as docker run's --health-*.
func TestHealthcheckMergesImage(t *testing.T) {
	h := newHost(t)
	slow := healthImage(t, h, "test.local/slowcheck:1", []string{"CMD", "true"}, time.Hour)
	fast := healthImage(t, h, "test.local/fastcheck:1", []string{"CMD", "true"}, 100*time.Millisecond)
	for _, tc := range []struct {
		name string
		img  *Image
		hc   Healthcheck
		want string // the status within two seconds; "" for no check
	}{
		{"interval only", slow, Healthcheck{Interval: 100 * time.Millisecond}, "healthy"},
		{"test only", fast, Healthcheck{Test: []string{"CMD", "false"}}, "unhealthy"},
		{"no check in the image", busyboxImage(t, h), Healthcheck{Interval: 100 * time.Millisecond}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := runContainer(t, h, tc.img, WithCmd("sleep", "1000"), WithHealthcheck(tc.hc))
			var hl *Health
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if hl = c.Health(); hl != nil && hl.Status == tc.want {
					return
				}
			}
			if tc.want != "" || hl != nil {
				t.Errorf("health %+v, want %q", hl, tc.want)
			}
		})
	}
}

// TestHealthcheckTimeoutKillsChildren checks that a check that times out
// is killed with its children, which would otherwise pile up.
func TestHealthcheckTimeoutKillsChildren(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"),
		WithHealthcheck(Healthcheck{Test: []string{"CMD-SHELL", "sleep 32; true"}, Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}))
	waitFor(t, func() bool { hl := c.Health(); return hl != nil && len(hl.Log) >= 3 }, "three checks")
	// The check running now may have its sleep.
	if n := countProcs(t, c.State().Pid, "sleep\x0032\x00"); n > 1 {
		t.Errorf("%d sleeps of timed-out checks left in the container", n)
	}
	if l := c.Health().Log[0]; l.ExitCode != -1 || !strings.Contains(l.Output, "timeout") {
		t.Errorf("first check %+v, want a timeout", l)
	}
}

// countProcs counts the live processes with the command line cmdline in
// the pid namespace of pid.
func countProcs(t *testing.T, pid int, cmdline string) int {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		dir := filepath.Join("/proc", e.Name())
		if l, _ := os.Readlink(filepath.Join(dir, "ns/pid")); l != ns {
			continue
		}
		// A zombie has no command line.
		if b, _ := os.ReadFile(filepath.Join(dir, "cmdline")); string(b) == cmdline {
			n++
		}
	}
	return n
}

// TestHealthcheckStartPeriod checks that the start period is judged by when
// a check starts: a failure of a check started in it does not count, even
// when the check ends after it.
func TestHealthcheckStartPeriod(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	const period = time.Second
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"),
		WithHealthcheck(Healthcheck{Test: []string{"CMD-SHELL", "sleep 5"}, Interval: 100 * time.Millisecond,
			Timeout: 1500 * time.Millisecond, StartPeriod: period, Retries: 1}))
	waitFor(t, func() bool { hl := c.Health(); return hl != nil && len(hl.Log) > 0 }, "a check")
	hl, started := c.Health(), c.State().StartedAt
	if l := hl.Log[0]; l.Start.Sub(started) >= period || l.End.Sub(started) < period {
		t.Fatalf("check from %v to %v after the start, want across the start period", l.Start.Sub(started), l.End.Sub(started))
	}
	if hl.Status != "starting" || hl.FailingStreak != 0 {
		t.Errorf("health %s, failing streak %d after a failure in the start period", hl.Status, hl.FailingStreak)
	}
}

func TestContainerStdinStreams(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	data := strings.Repeat("stdin streams into the container\n", 1<<15) // 1 MiB
	ctx := ctxT(t, time.Minute)
	c, err := h.Create(ctx, img, WithStdin(), WithCmd("sh", "-c", "cat; echo eof"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	var out bytes.Buffer
	if err := c.Start(ctx, WithInput(strings.NewReader(data)), WithOutput(&out, os.Stderr)); err != nil {
		t.Fatal(err)
	}
	// The end of the input closes the container's stdin: cat ends.
	if st := wait(t, c); st.ExitCode != 0 || out.String() != data+"eof\n" {
		t.Errorf("exit %d, %d bytes back of %d", st.ExitCode, out.Len(), len(data)+4)
	}
}

func TestOOMEvent(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	evs, err := h.Events(ctx, EventsOfType(EventOOM, EventDied))
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := runContainer(t, h, img, WithMemoryLimit(16<<20),
		WithCmd("sh", "-c", `a=$(head -c 200000000 /dev/zero | tr '\0' x); echo ${#a}`))
	if st := wait(t, c); !st.OOMKilled {
		t.Skipf("not OOM killed (%+v): the kernel may not account this memory", st)
	}
	for _, want := range []string{EventOOM, EventDied} {
		if ev := nextEvent(t, evs); ev.Type != want || ev.ContainerID != c.ID {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
}

// TestRestartStopRaces stops a container with a restart policy just as it
// ended of itself, again and again: each Stop that returns leaves it
// stopped, with no restart to come.
func TestRestartStopRaces(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, 2*time.Minute)
	for i := range 8 {
		c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "sleep 0.3"), WithRestartPolicy("always"))
		for c.State().Status != StatusExited {
			time.Sleep(time.Millisecond)
		}
		if err := c.Stop(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if st := c.State(); st.Status != StatusExited || st.Restarting {
			t.Fatalf("round %d: after Stop the container is %s, restarting %v", i, st.Status, st.Restarting)
		}
	}
}

// TestRestartingContainer starts and removes a container that waits for
// its restart: Start and Remove without force are refused, and a forced
// Remove leaves nothing, however it meets the restart.
func TestRestartingContainer(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, 2*time.Minute)
	c, _, _ := runContainer(t, h, img, WithCmd("false"), WithRestartPolicy("always"))
	waitFor(t, func() bool { return c.RestartCount() >= 3 && c.State().Restarting }, "a restart back-off")
	if err := c.Start(ctx); !errors.Is(err, ErrWrongState) {
		t.Errorf("Start of a restarting container: %v, want ErrWrongState", err)
	}
	if err := c.Remove(ctx, false); !errors.Is(err, ErrWrongState) {
		t.Errorf("Remove of a restarting container: %v, want ErrWrongState", err)
	}
	if err := c.Remove(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		c, err := h.Create(ctx, img, WithCmd("sh", "-c", "sleep 0.05"), WithRestartPolicy("always"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*90) * time.Millisecond)
		if err := c.Remove(ctx, true); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	time.Sleep(time.Second) // for a restart that would come after all
	ents, err := os.ReadDir(filepath.Join(h.Root(), "containers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") { // .names
			t.Errorf("container %s left", e.Name())
		}
	}
}

// TestStatsAsDockerShows checks two figures against docker stats: memory
// leaves out the file cache a write left behind, and a container on the
// host's network shows no network traffic of its own.
func TestStatsAsDockerShows(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, _, _ := runContainer(t, h, img, WithNetwork("host"), WithCmd("sleep", "1000"))
	p, err := c.Exec(ctx, []string{"sh", "-c", "dd if=/dev/zero of=/big bs=1M count=64 2>/dev/null && sync"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx); err != nil || st.ExitCode != 0 {
		t.Fatalf("dd: %+v %v", st, err)
	}
	s, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(h.Root(), &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC {
		// The file is in memory, not cached from a disk: it counts.
		t.Logf("the root is in memory: the memory figure is not checked")
	} else if s.MemoryUsage > 16<<20 {
		t.Errorf("memory usage %d MiB after writing a 64 MiB file: the file cache counts", s.MemoryUsage>>20)
	}
	if s.NetRxBytes != 0 || s.NetTxBytes != 0 {
		t.Errorf("on the host's network: %d bytes in, %d out, want none", s.NetRxBytes, s.NetTxBytes)
	}
}

// TestStopPaused stops a paused container that handles the stop signal:
// it is thawed to take it, as with Docker, and ends by it, not by SIGKILL
// at the end of the timeout.
func TestStopPaused(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "trap 'exit 3' TERM; touch /ready; while :; do sleep 0.1; done"))
	waitFor(t, func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d/root/ready", c.State().Pid))
		return err == nil
	}, "the trap")
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 3 {
		t.Errorf("paused container stopped with %+v, want exit code 3", st)
	}
}
