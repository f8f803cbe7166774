package main

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
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
