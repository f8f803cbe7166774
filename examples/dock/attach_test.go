package main

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

func TestEventsCLI(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "ev", runImage, "sleep", "1000")
	e.ok("pause", "ev")
	e.ok("unpause", "ev")
	e.ok("restart", "-t", "0", "ev")
	r := e.ok("events", "--since", "1m", "--until", "0s", "--filter", "container=ev")
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			types = append(types, f[2])
		}
	}
	if got, want := strings.Join(types, " "), "created started paused unpaused died started"; got != want {
		t.Errorf("events %q, want %q\n%s", got, want, r.stdout)
	}
	e.ok("rm", "-f", "ev")
}

// TestAttachRealTerminal attaches from a real pseudo-terminal to a
// container with a terminal: input in raw mode reaches the container,
// Ctrl-P Ctrl-Q detaches and leaves it running, and dock's terminal is
// restored.
func TestAttachRealTerminal(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "-i", "-t", "--name", "echo", runImage, "sh", "-c", "while read l; do echo got $l; done")
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockBin, "--root", e.root, "attach", "echo")
	cmd.Env = e.environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var mu sync.Mutex
	var out bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string, d time.Duration) bool {
		deadline := time.Now().Add(d)
		for {
			mu.Lock()
			ok := strings.Contains(out.String(), s)
			mu.Unlock()
			if ok || time.Now().After(deadline) {
				return ok
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The attach may not be up yet: send until the container answers.
	deadline := time.Now().Add(20 * time.Second)
	for !seen("got hello", 300*time.Millisecond) && time.Now().Before(deadline) {
		master.Write([]byte("hello\r"))
	}
	if !seen("got hello", 0) {
		mu.Lock()
		t.Fatalf("no answer through the terminal: %q", out.String())
	}
	// Raw mode: dock's terminal did not echo the input itself; the one echo
	// comes from the container's terminal.
	master.Write([]byte{0x10, 0x11}) // Ctrl-P Ctrl-Q
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("attach after detach: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-P Ctrl-Q did not detach")
	}
	if !seen("read escape sequence", 5*time.Second) {
		t.Errorf("no detach message")
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal not restored: lflag %#x iflag %#x, was %#x %#x", after.Lflag, after.Iflag, before.Lflag, before.Iflag)
	}
	waitStatus(t, e, "echo", "Up")
	e.ok("rm", "-f", "echo")
}

// TestRunInteractiveTerminal runs `dock run -it` on a real pseudo-terminal:
// the container's shell sees dock's window size at start and after a
// change, and Ctrl-P Ctrl-Q detaches, leaving it running.
func TestRunInteractiveTerminal(t *testing.T) {
	e := newRunEnv(t)
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	if err := pty.Setsize(master, &pty.Winsize{Rows: 31, Cols: 97}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockBin, "--root", e.root, "run", "-it", "--name", "tty", runImage, "sh")
	cmd.Env = e.environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var mu sync.Mutex
	var out bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	expect := func(send, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			master.Write([]byte(send))
			for i := 0; i < 10; i++ {
				mu.Lock()
				ok := strings.Contains(out.String(), want)
				mu.Unlock()
				if ok {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no %q after sending %q:\n%q", want, send, out.String())
	}
	expect("stty size; test -t 0 && echo is-a-tty\r", "31 97\r\nis-a-tty")
	if err := pty.Setsize(master, &pty.Winsize{Rows: 44, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	expect("stty size\r", "44 120")
	master.Write([]byte{0x10, 0x11})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run -it after detach: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-P Ctrl-Q did not detach")
	}
	waitStatus(t, e, "tty", "Up")
	e.ok("rm", "-f", "tty")
}

func TestRunRestartAndHealthFlags(t *testing.T) {
	e := newRunEnv(t)
	e.fails(125, "conflicts with --rm", "run", "--rm", "--restart", "always", runImage, "true")
	e.fails(125, "restart policy", "run", "--restart", "sometimes", runImage, "true")
	e.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", runImage, "sh", "-c", "exit 3")
	e.ok("run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "100ms", runImage, "sleep", "1000")
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Two restarts, then it stays exited: three deaths.
		r := e.ok("events", "--since", "1m", "--until", "0s", "--filter", "container=flaky", "--filter", "event=died")
		n := strings.Count(r.stdout, " died ")
		if n > 3 {
			t.Fatalf("%d died events, want 3:\n%s", n, r.stdout)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d died events, want 3:\n%s", n, r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStatus(t, e, "flaky", "Exited (3)")
	if r := e.ok("inspect", "flaky"); !strings.Contains(r.stdout, `"RestartCount": 2`) {
		t.Errorf("inspect lacks the restart count:\n%s", r.stdout)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := e.ok("events", "--since", "1m", "--until", "0s", "--filter", "container=hc")
		if strings.Contains(r.stdout, "status=healthy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no healthy event:\n%s", r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitStatus(t, e, "hc", "Up")
	if r := e.ok("inspect", "hc"); !strings.Contains(r.stdout, `"Status": "healthy"`) {
		t.Errorf("inspect lacks the health:\n%s", r.stdout)
	}
	if row := waitStatus(t, e, "hc", "Up"); !strings.HasSuffix(row[4], "(healthy)") {
		t.Errorf("ps status %q", row[4])
	}
	e.ok("rm", "-f", "flaky", "hc")
}

// TestAttachSignals checks that a signal sent to `dock attach` without a
// terminal reaches the container, as docker's --sig-proxy does, and that
// attach then exits with the container's status.
func TestAttachSignals(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "trap", runImage, "sh", "-c", "trap 'exit 9' TERM; while :; do echo tick; sleep 0.1; done")
	cmd := startDock(t, e, "tick", "attach", "--no-stdin", "trap")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 9 {
		t.Errorf("dock attach after SIGTERM exits %d, want 9", code)
	}
}

// TestDetachReader checks docker's detach keys: Ctrl-P Ctrl-Q detaches, a
// Ctrl-P followed by anything else (or by the end of the input) is passed
// on.
func TestDetachReader(t *testing.T) {
	tests := []struct {
		in, want string
		detached bool
	}{
		{"abc", "abc", false},
		{"ab\x10\x11cd", "ab", true},
		{"a\x10b", "a\x10b", false},
		{"a\x10\x10\x11", "a\x10", true},
		{"ab\x10", "ab\x10", false},
	}
	for _, tc := range tests {
		detached := false
		// One byte a read: a sequence split across reads.
		r := newDetachReader(iotest.OneByteReader(strings.NewReader(tc.in)), func() { detached = true })
		got, err := io.ReadAll(r)
		if err != nil || string(got) != tc.want || detached != tc.detached {
			t.Errorf("%q: read %q, %v, detached %v; want %q, detached %v", tc.in, got, err, detached, tc.want, tc.detached)
		}
	}
}
