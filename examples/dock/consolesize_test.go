package main

import (
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestTerminalFirstSize runs `run -t` and `exec -t` on a real terminal:
// the command sees dock's window size from its start.
func TestTerminalFirstSize(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "sized", runImage, "sleep", "1000")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"run", []string{"run", "--rm", "-t", runImage, "stty", "size"}},
		{"exec", []string{"exec", "-t", "sized", "stty", "size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master, slave, err := pty.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer master.Close()
			if err := pty.Setsize(master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(dockBin, append([]string{"--root", e.root}, tc.args...)...)
			cmd.Env = e.environ()
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close() // the read below ends once dock has exited
			out := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(master)
				out <- string(b)
			}()
			select {
			case got := <-out:
				if err := cmd.Wait(); err != nil || !strings.Contains(got, "40 120") {
					t.Errorf("%v: printed %q, want \"40 120\"", err, got)
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("dock did not exit")
			}
		})
	}
	e.ok("rm", "-f", "sized")
}
