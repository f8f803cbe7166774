package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/internal/testutil/imagetest"
)

// runImage is the image every container test runs: busybox with a file
// that is not executable.
const runImage = "cli/run:1"

func newRunEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := newCLIEnv(t)
	e.loadImage(runImage, imagetest.WithFile("/bin/noexec", []byte("#!/bin/sh\necho no\n"), 0o644))
	return e
}

func TestRun(t *testing.T) {
	e := newRunEnv(t)
	host := t.TempDir()
	wd, _ := os.Getwd()
	relHost, err := filepath.Rel(wd, host) // ../../.., as -v takes it relative to dock's directory
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "greeting"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		args   []string // between "run --rm" and the command
		cmd    []string
		stdin  string
		code   int
		stdout string // exact, when code is 0
		errHas string // for failures of dock itself: the one stderr line holds it
	}{
		{"echo", nil, []string{"echo", "hi"}, "", 0, "hi\n", ""},
		{"image cmd", []string{"-i"}, nil, "echo from-stdin-sh\n", 0, "from-stdin-sh\n", ""},
		{"exit status", nil, []string{"sh", "-c", "exit 3"}, "", 3, "", ""},
		{"not found", nil, []string{"nonexistent"}, "", 127, "", "not found"},
		{"not found path", nil, []string{"/nonexistent/x"}, "", 127, "", "no such file"},
		{"not executable", nil, []string{"/bin/noexec"}, "", 126, "", "permission denied"},
		{"stderr", nil, []string{"sh", "-c", "echo out; echo err >&2"}, "", 0, "out\n", ""},
		{"env", []string{"-e", "FOO=bar", "--env", "BAZ=qux"}, []string{"sh", "-c", "echo $FOO $BAZ"}, "", 0, "bar qux\n", ""},
		{"env passed from dock's", []string{"-e", "DOCKER_CONFIG", "-e", "DOCK_CLI_TEST_UNSET"}, []string{"sh", "-c", "echo $DOCKER_CONFIG ${DOCK_CLI_TEST_UNSET-unset}"}, "", 0, e.dockerCfg + " unset\n", ""},
		{"workdir", []string{"-w", "/tmp"}, []string{"pwd"}, "", 0, "/tmp\n", ""},
		{"user uid", []string{"-u", "1000"}, []string{"id", "-u"}, "", 0, "1000\n", ""},
		{"user name", []string{"-u", "user"}, []string{"id", "-un"}, "", 0, "user\n", ""},
		{"user uid:gid", []string{"-u", "1000:0"}, []string{"id"}, "", 0, "uid=1000(user) gid=0(root)\n", ""},
		{"user combined", []string{"-uroot"}, []string{"id", "-u"}, "", 0, "0\n", ""},
		{"user unknown", []string{"-u", "nosuchuser"}, []string{"id"}, "", 125, "", "nosuchuser"},
		{"user malformed", []string{"-u", "1000:"}, []string{"id"}, "", 125, "", "-u"},
		{"entrypoint", []string{"--entrypoint", "echo"}, []string{"a", "b"}, "", 0, "a b\n", ""},
		{"hostname", []string{"--hostname", "cli-host"}, []string{"hostname"}, "", 0, "cli-host\n", ""},
		{"memory", []string{"-m", "64m"}, []string{"true"}, "", 0, "", ""},
		{"memory bytes", []string{"-m", "67108864"}, []string{"true"}, "", 0, "", ""},
		{"memory too small", []string{"-m", "1k"}, []string{"true"}, "", 125, "", "-m"},
		{"memory junk", []string{"-m", "lots"}, []string{"true"}, "", 125, "", "-m"},
		{"stdin", []string{"-i"}, []string{"cat"}, "piped\n", 0, "piped\n", ""},
		{"no stdin without -i", nil, []string{"cat"}, "piped\n", 0, "", ""},
		{"-it without a terminal", []string{"-it"}, []string{"echo", "hi"}, "", 125, "", "not a TTY"},
		// A terminal writes \r\n.
		{"-t", []string{"-t"}, []string{"sh", "-c", "test -t 0 && test -t 1 && echo tty"}, "", 0, "tty\r\n", ""},
		{"read-only", []string{"--read-only"}, []string{"touch", "/x"}, "", 1, "", ""},
		{"read-only with tmpfs", []string{"--read-only", "--tmpfs", "/data"}, []string{"sh", "-c", "touch /data/x && echo ok"}, "", 0, "ok\n", ""},
		{"bind ro", []string{"-v", host + ":/mnt:ro"}, []string{"sh", "-c", "cat /mnt/greeting; touch /mnt/x"}, "", 1, "", ""},
		{"bind", []string{"-v", host + ":/mnt"}, []string{"cat", "/mnt/greeting"}, "", 0, "from the host\n", ""},
		{"bad volume", []string{"-v", "nocolon"}, []string{"true"}, "", 125, "", "-v"},
		{"bind relative", []string{"-v", relHost + ":/mnt"}, []string{"cat", "/mnt/greeting"}, "", 0, "from the host\n", ""},
		{"bad tmpfs option", []string{"--tmpfs", "/t:size=1m,foo"}, []string{"true"}, "", 125, "", `tmpfs option "foo"`},
		{"cap-drop", []string{"--cap-drop", "CHOWN"}, []string{"chown", "1000", "/tmp"}, "", 1, "", ""},
		{"cap kept", nil, []string{"chown", "1000", "/tmp"}, "", 0, "", ""},
		{"cap-add", []string{"--cap-add", "SYS_ADMIN"}, []string{"sh", "-c", "grep CapEff /proc/self/status"}, "", 0, "CapEff:\t00000000a82425fb\n", ""},
		{"network none", nil, []string{"ls", "/sys/class/net"}, "", 0, "lo\n", ""},
		{"pids-limit", []string{"--pids-limit", "16", "--cpus", "0.5"}, []string{"true"}, "", 0, "", ""},
		{"missing image", nil, nil, "", 125, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := runImage
			if tc.name == "missing image" {
				img = "127.0.0.1:1/cli/missing:1"
			}
			args := append(append(append([]string{"--root", e.root, "run", "--rm"}, tc.args...), img), tc.cmd...)
			r := e.exec(tc.stdin, args...)
			if r.code != tc.code {
				t.Fatalf("want exit %d:\n%s", tc.code, r)
			}
			if tc.code == 0 && tc.stdout != "" && r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
			switch {
			case tc.name == "missing image":
				// As docker, run says first that it will pull.
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "Unable to find image") || !strings.HasPrefix(lines[1], "dock: ") {
					t.Errorf("want docker's notice and one error line:\n%s", r)
				}
			case tc.code == 125 || tc.code == 126 || tc.code == 127:
				checkFailure(t, r, tc.code, tc.errHas)
			}
			if tc.name == "stderr" && r.stderr != "err\n" {
				t.Errorf("stderr %q, want %q", r.stderr, "err\n")
			}
		})
	}
	// --rm left nothing behind, whatever the outcome.
	if r := e.ok("ps", "-aq"); r.stdout != "" {
		t.Errorf("run --rm left containers:\n%s", r)
	}
}

func TestRunKeepsContainer(t *testing.T) {
	e := newRunEnv(t)
	r := e.dock("run", "--name", "kept", runImage, "sh", "-c", "echo bye; exit 4")
	if r.code != 4 || r.stdout != "bye\n" {
		t.Fatalf("run without --rm:\n%s", r)
	}
	rows := psRows(t, e, "-a")
	if len(rows) != 1 || rows[0][len(rows[0])-1] != "kept" || !strings.HasPrefix(rows[0][4], "Exited (4)") {
		t.Errorf("ps -a after run: %q", rows)
	}
	if r := e.ok("logs", "kept"); r.stdout != "bye\n" {
		t.Errorf("logs of the kept container:\n%s", r)
	}
	e.fails(125, "", "run", "--name", "kept", runImage, "true")
	e.ok("rm", "kept")
}

// psRows returns the rows of `dock ps` after its header, split into columns.
func psRows(t *testing.T, e *cliEnv, flags ...string) [][]string {
	t.Helper()
	r := e.ok(append([]string{"ps"}, flags...)...)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	header := strings.Join(strings.Fields(lines[0]), " ")
	if header != "CONTAINER ID IMAGE COMMAND CREATED STATUS NAMES" {
		t.Fatalf("ps header %q", lines[0])
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, splitColumns(l))
	}
	return rows
}

// waitStatus polls `dock ps -a` until the container's STATUS starts with
// prefix.
func waitStatus(t *testing.T, e *cliEnv, name, prefix string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last [][]string
	for time.Now().Before(deadline) {
		last = psRows(t, e, "-a")
		for _, row := range last {
			if row[len(row)-1] == name && strings.HasPrefix(row[4], prefix) {
				return row
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s never reached status %q: %q", name, prefix, last)
	return nil
}

var fullID = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

func TestContainerLifecycle(t *testing.T) {
	e := newRunEnv(t)

	t.Run("create start logs rm", func(t *testing.T) {
		r := e.ok("create", "--name", "c1", "-e", "WHO=world", "-m", "64m", "-u", "1000:1000",
			runImage, "sh", "-c", "echo hello $WHO; echo line2")
		if !fullID.MatchString(r.stdout) {
			t.Errorf("create prints %q, want the full ID", r.stdout)
		}
		id := strings.TrimSpace(r.stdout)
		if rows := psRows(t, e); len(rows) != 0 {
			t.Errorf("ps lists a created container: %q", rows)
		}
		row := waitStatus(t, e, "c1", "Created")
		if row[0] != id[:12] || row[1] != runImage {
			t.Errorf("ps -a row %q", row)
		}

		var info []struct {
			ID     string
			Name   string
			State  struct{ Status string }
			Config struct {
				UID, GID  int
				Env       []string
				Resources struct{ MemoryMax int64 }
			}
		}
		r = e.ok("inspect", "c1")
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || len(info) != 1 {
			t.Fatalf("inspect c1: %v\n%s", err, r)
		}
		if c := info[0]; c.ID != id || c.Name != "c1" || c.State.Status != "created" ||
			c.Config.UID != 1000 || c.Config.GID != 1000 || c.Config.Resources.MemoryMax != 64<<20 {
			t.Errorf("inspect c1: %+v", c)
		}

		if r := e.ok("inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Resources.MemoryMax}}", "c1"); r.stdout != "created c1 67108864\n" {
			t.Errorf("inspect -f of a container: %q", r.stdout)
		}
		if r := e.ok("start", "c1"); r.stdout != "c1\n" {
			t.Errorf("start prints %q", r.stdout)
		}
		waitStatus(t, e, "c1", "Exited (0)")
		if r := e.ok("logs", "c1"); r.stdout != "hello world\nline2\n" {
			t.Errorf("logs:\n%s", r)
		}
		if r := e.ok("logs", "--tail", "1", "c1"); r.stdout != "line2\n" {
			t.Errorf("logs --tail 1:\n%s", r)
		}
		if r := e.ok("logs", "-n", "1", id[:12]); r.stdout != "line2\n" {
			t.Errorf("logs -n 1 by ID prefix:\n%s", r)
		}
		if r := e.ok("rm", "c1"); r.stdout != "c1\n" {
			t.Errorf("rm prints %q", r.stdout)
		}
		if rows := psRows(t, e, "-a"); len(rows) != 0 {
			t.Errorf("ps -a after rm: %q", rows)
		}
	})

	t.Run("detached stop", func(t *testing.T) {
		r := e.ok("run", "-d", "--name", "d1", runImage, "sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done")
		if !fullID.MatchString(r.stdout) {
			t.Errorf("run -d prints %q, want the full ID", r.stdout)
		}
		waitStatus(t, e, "d1", "Up")
		if rows := psRows(t, e); len(rows) != 1 || rows[0][len(rows[0])-1] != "d1" {
			t.Errorf("ps: %q", rows)
		}
		r = e.dock("rm", "d1")
		checkFailure(t, r, 1, "")
		if r := e.ok("stop", "-t", "5", "d1"); r.stdout != "d1\n" {
			t.Errorf("stop prints %q", r.stdout)
		}
		waitStatus(t, e, "d1", "Exited (0)")
		if r := e.ok("logs", "d1"); r.stdout != "up\n" {
			t.Errorf("logs d1:\n%s", r)
		}
		e.ok("rm", "d1")
	})

	t.Run("kill and rm -f", func(t *testing.T) {
		e.ok("run", "-d", "--name", "k1", runImage, "sleep", "1000")
		e.ok("run", "-d", "--name", "k2", runImage, "sleep", "1000")
		waitStatus(t, e, "k1", "Up")
		if r := e.ok("kill", "k1"); r.stdout != "k1\n" {
			t.Errorf("kill prints %q", r.stdout)
		}
		waitStatus(t, e, "k1", "Exited (137)")
		e.ok("rm", "-f", "k1", "k2")
		if rows := psRows(t, e, "-a"); len(rows) != 0 {
			t.Errorf("ps -a after rm -f: %q", rows)
		}
	})

	t.Run("restart follow stop twice", func(t *testing.T) {
		e.ok("run", "--name", "again", runImage, "echo", "once")
		e.ok("start", "again")
		waitStatus(t, e, "again", "Exited (0)")
		// logs -f of an exited container prints all and ends.
		if r := e.ok("logs", "-f", "again"); r.stdout != "once\nonce\n" {
			t.Errorf("logs after a restart:\n%s", r)
		}
		e.ok("rm", "again")

		e.ok("run", "-d", "--name", "follow", runImage, "sh", "-c", "echo a; sleep 1; echo b")
		if r := e.ok("logs", "-f", "follow"); r.stdout != "a\nb\n" {
			t.Errorf("logs -f until the exit:\n%s", r)
		}
		e.ok("stop", "follow") // already exited: nothing to do
		checkFailure(t, e.dock("kill", "follow"), 1, "not running")
		e.ok("rm", "follow")
	})

	t.Run("exec", func(t *testing.T) {
		e.ok("run", "-d", "--name", "ex", runImage, "sleep", "1000")
		waitStatus(t, e, "ex", "Up")
		for _, tc := range []struct {
			name   string
			args   []string
			stdin  string
			code   int
			stdout string
		}{
			{"echo", []string{"ex", "echo", "hi"}, "", 0, "hi\n"},
			{"exit status", []string{"ex", "sh", "-c", "exit 5"}, "", 5, ""},
			{"not found", []string{"ex", "nonexistent"}, "", 127, ""},
			{"not executable", []string{"ex", "/bin/noexec"}, "", 126, ""},
			{"user workdir env", []string{"-u", "1000", "-w", "/tmp", "-e", "A=b", "ex", "sh", "-c", "echo $(id -u) $(pwd) $A"}, "", 0, "1000 /tmp b\n"},
			{"user name:group", []string{"-u", "user:root", "ex", "id"}, "", 0, "uid=1000(user) gid=0(root)\n"},
			{"stdin", []string{"-i", "ex", "cat"}, "fed\n", 0, "fed\n"},
			{"terminal", []string{"-t", "ex", "sh", "-c", "test -t 1 && echo tty"}, "", 0, "tty\r\n"},
			{"-it without a terminal", []string{"-it", "ex", "true"}, "", 125, ""},
			{"flags after the name", []string{"ex", "ls", "-d", "/tmp"}, "", 0, "/tmp\n"},
			{"missing container", []string{"nosuch", "true"}, "", 125, ""},
			{"missing command", []string{"ex"}, "", 125, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.exec(tc.stdin, append([]string{"--root", e.root, "exec"}, tc.args...)...)
				if r.code != tc.code {
					t.Fatalf("want exit %d:\n%s", tc.code, r)
				}
				if tc.code == 0 && r.stdout != tc.stdout {
					t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
				}
				if tc.code >= 125 {
					checkFailure(t, r, tc.code, "")
				}
			})
		}
		e.ok("exec", "-d", "ex", "sh", "-c", "echo detached > /tmp/d")
		deadline := time.Now().Add(10 * time.Second)
		for e.dock("exec", "ex", "cat", "/tmp/d").stdout != "detached\n" {
			if time.Now().After(deadline) {
				t.Fatal("exec -d never ran its command")
			}
			time.Sleep(100 * time.Millisecond)
		}
		e.ok("stop", "-t", "1", "ex")
		e.fails(125, "", "exec", "ex", "true")
		e.ok("rm", "ex")
	})

	t.Run("missing containers", func(t *testing.T) {
		for _, cmd := range []string{"start", "stop", "kill", "rm"} {
			r := e.dock(cmd, "nosuch")
			checkFailure(t, r, 1, "nosuch")
		}
		e.fails(125, "not found", "logs", "nosuch")
		e.fails(125, "not found", "inspect", "nosuch")
	})

	t.Run("rmi of an image in use", func(t *testing.T) {
		e.ok("tag", runImage, "cli/inuse:1")
		e.ok("create", "--name", "user", "cli/inuse:1", "true")
		e.ok("rmi", runImage) // another name is left
		e.fails(125, "", "rmi", "cli/inuse:1")
		e.ok("rm", "user")
		e.ok("tag", "cli/inuse:1", runImage)
		e.ok("rmi", "cli/inuse:1")
	})

	t.Run("duplicate name", func(t *testing.T) {
		e.ok("create", "--name", "dup", runImage, "true")
		e.fails(125, "dup", "create", "--name", "dup", runImage, "true")
		e.ok("rm", "dup")
	})
}

// startRun starts `dock run --rm --name NAME IMAGE args...` and waits for
// the container to print its first line, "ready".
func startRun(t *testing.T, e *cliEnv, name string, args ...string) *exec.Cmd {
	t.Helper()
	return startDock(t, e, "ready", append([]string{"run", "--rm", "--name", name, runImage}, args...)...)
}

// startDock starts dock with args, waits for the first line of its
// output, which must be first, and leaves the rest unread.
func startDock(t *testing.T, e *cliEnv, first string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(dockBin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = e.environ()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != first+"\n" {
		t.Fatalf("first line %q, want %s", line, first)
	}
	return cmd
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("dock run did not exit")
		return -1
	}
}

// TestRunSignals checks that a signal sent to `dock run` reaches the
// container, and that a container killed by a signal makes dock run exit
// with 128+N.
func TestRunSignals(t *testing.T) {
	e := newRunEnv(t)
	t.Run("proxy", func(t *testing.T) {
		cmd := startRun(t, e, "proxy", "sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, cmd); code != 7 {
			t.Errorf("dock run after SIGTERM exits %d, want 7", code)
		}
	})
	t.Run("killed", func(t *testing.T) {
		cmd := startRun(t, e, "killed", "sh", "-c", "echo ready; exec sleep 1000")
		e.ok("kill", "-s", "KILL", "killed")
		if code := waitExit(t, cmd); code != 137 {
			t.Errorf("dock run of a container killed by SIGKILL exits %d, want 137", code)
		}
	})
	t.Run("proxy SIGINT", func(t *testing.T) {
		// A shell cannot trap a signal ignored when it started.
		r := e.ok("run", "--rm", runImage, "grep", "SigIgn", "/proc/self/status")
		var ign uint64
		if _, err := fmt.Sscanf(r.stdout, "SigIgn: %x", &ign); err != nil {
			t.Fatalf("SigIgn of a container process: %v\n%s", err, r)
		}
		if ign&(1<<(syscall.SIGINT-1)) != 0 {
			t.Skipf("runtime: the container process starts with signals ignored (SigIgn %#x): "+
				"the monitor's signal.Ignore is inherited across exec", ign)
		}
		cmd := startRun(t, e, "sigint", "sh", "-c", "trap 'exit 9' INT; echo ready; while :; do sleep 0.1; done")
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := waitExit(t, cmd); code != 9 {
			t.Errorf("dock run after SIGINT exits %d, want 9", code)
		}
	})
	// As with docker, --rm belongs to the container: with dock killed, the
	// container runs on, and once it has exited the next command that opens
	// the root removes it.
	t.Run("dock killed", func(t *testing.T) {
		cmd := startRun(t, e, "orphan", "sh", "-c", "echo ready; exec sleep 1")
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if rows := psRows(t, e); len(rows) != 1 {
			t.Fatalf("ps with dock killed: %q, want the container running", rows)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(psRows(t, e, "-a")) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the container of a killed dock run --rm stays after its exit: %q", psRows(t, e, "-a"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if r := e.ok("ps", "-aq"); r.stdout != "" {
		t.Errorf("run --rm left containers:\n%s", r)
	}
}

func TestCommit(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "--name", "changed", runImage, "sh", "-c", "echo committed > /etc/note; rm /etc/group")
	r := e.ok("commit", "-m", "a note", "changed", "cli/committed:1")
	id := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		t.Errorf("commit prints %q, want the image ID", r.stdout)
	}
	row := findImage(e.images(), "cli/committed", "1")
	if row == nil || row[2] != strings.TrimPrefix(id, "sha256:")[:12] {
		t.Errorf("images row of the committed image: %q", row)
	}
	r = e.dock("run", "--rm", "cli/committed:1", "sh", "-c", "cat /etc/note; test ! -e /etc/group")
	if r.code != 0 || r.stdout != "committed\n" {
		t.Errorf("run of the committed image:\n%s", r)
	}
	e.fails(125, "not found", "commit", "nosuch", "cli/committed:2")
	e.ok("rm", "changed")
}

func TestRunDetachedRemove(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--rm", "--name", "gone", runImage, "true")
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := psRows(t, e, "-a")
		if len(rows) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run -d --rm: the container stays after its exit: %q", rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
func TestRunOOM(t *testing.T) {
	e := newRunEnv(t)
	// The shell's variable grows past the limit: the kernel kills it.
	r := e.dock("run", "--rm", "-m", "16m", runImage, "sh", "-c", "a=$(head -c 100000000 /dev/zero | tr '\\0' x); echo survived")
	if r.code != 137 || !strings.Contains(r.stderr, "container killed: out of memory") {
		t.Fatalf("a container over its memory limit: want exit 137 and the OOM notice:\n%s", r)
	}
}

func TestRunUsernsRemap(t *testing.T) {
	e := newRunEnv(t)
	// The container's root must reach the state root: t.TempDir's
	// directories are closed to others.
	for d := e.root; d != "/" && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r := e.exec("", "--root", e.root, "--userns-remap", "100000:100000", "run", "--rm", runImage,
		"sh", "-c", "id -u; stat -c %u /bin; touch /x && echo ok")
	if r.code != 0 || r.stdout != "0\n0\nok\n" {
		t.Fatalf("want the container's root owning its files and writing:\n%s", r)
	}

	// exec joins the container's user namespace.
	remap := []string{"--root", e.root, "--userns-remap", "100000:100000"}
	r = e.exec("", append(remap, "run", "-d", "--name", "remapped", runImage, "sleep", "1000")...)
	if r.code != 0 {
		t.Fatalf("run -d:\n%s", r)
	}
	t.Cleanup(func() { e.exec("", append(remap, "rm", "-f", "remapped")...) })
	r = e.exec("", append(remap, "exec", "remapped", "sh", "-c", "id -u; head -1 /proc/self/uid_map | tr -s ' '")...)
	if r.code != 0 || r.stdout != "0\n 0 100000 65536\n" {
		t.Errorf("exec in the remapped container:\n%s", r)
	}
	r = e.exec("", append(remap, "exec", "-u", "1000", "remapped", "id", "-u")...)
	if r.code != 0 || r.stdout != "1000\n" {
		t.Errorf("exec -u 1000 in the remapped container:\n%s", r)
	}

	for _, bad := range []string{"100000", "0:0", "a:b", "1:2:3:4"} {
		checkFailure(t, e.exec("", "--root", e.root, "--userns-remap", bad, "run", "--rm", runImage, "true"), 125, "")
	}
}

// TestRunMoreFlags checks docker's run flags beyond the contract's: they
// reach the container's configuration, and a container made with them runs.
func TestRunMoreFlags(t *testing.T) {
	e := newRunEnv(t)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("\xef\xbb\xbfA=1\n# a comment\n\nB=two words\nDOCK_CLI_TEST_UNSET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.ok("run", "--rm", "--ulimit", "nofile=100:200", "--ulimit", "core=0", runImage, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"); r.stdout != "100\n200\n0\n" {
		t.Errorf("--ulimit: %q", r.stdout)
	}
	r := e.ok("run", "--rm", "--env-file", envFile, "-e", "A=3", runImage, "sh", "-c", "echo $A,$B,${DOCK_CLI_TEST_UNSET-unset}")
	if r.stdout != "3,two words,unset\n" {
		t.Errorf("--env-file then -e: %q", r.stdout)
	}

	e.ok("create", "--name", "limits", "-m", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
		"--cpu-shares", "512", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpuset-cpus", "0",
		"--stop-signal", "SIGUSR1", "--stop-timeout", "3", "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--ipc", "shareable",
		"--pid", "host", "--uts", "host", runImage, "true")
	var cfg struct {
		Resources   dock.Resources
		StopSignal  int
		StopTimeout time.Duration
		Namespaces  []string
	}
	if err := json.Unmarshal([]byte(e.ok("inspect", "-f", "{{json .Config}}", "limits").stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	want := dock.Resources{MemoryMax: 64 << 20, MemorySwapMax: 128 << 20, MemoryReservation: 32 << 20,
		CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, CPUSetCPUs: "0"}
	if cfg.Resources != want {
		t.Errorf("resources %+v, want %+v", cfg.Resources, want)
	}
	if cfg.StopSignal != int(syscall.SIGUSR1) || cfg.StopTimeout != 3*time.Second {
		t.Errorf("stop signal %d, timeout %v; want SIGUSR1, 3s", cfg.StopSignal, cfg.StopTimeout)
	}
	if slices.Contains(cfg.Namespaces, "pid") || slices.Contains(cfg.Namespaces, "uts") || !slices.Contains(cfg.Namespaces, "net") {
		t.Errorf("--pid host --uts host: new namespaces %v", cfg.Namespaces)
	}
	// As docker's: a container never started is not running, code 0.
	if r := e.ok("wait", "limits"); r.stdout != "0\n" {
		t.Errorf("dock wait of a created container printed %q, want 0", r.stdout)
	}
	e.ok("start", "limits")
	if r := e.ok("wait", "limits"); r.stdout != "0\n" {
		t.Errorf("a container with every limit set: dock wait printed %q, want its exit code 0", r.stdout)
	}

	// Joining another container's namespaces.
	e.ok("run", "-d", "--name", "first", runImage, "sleep", "60")
	ns := func(args ...string) string {
		r := e.ok(append(append([]string{"run", "--rm"}, args...), runImage, "sh", "-c", "ls -l /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/pid | sed 's/.*-> //'")...)
		return r.stdout
	}
	first := e.ok("exec", "first", "sh", "-c", "ls -l /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/pid | sed 's/.*-> //'").stdout
	if got := ns("--network", "container:first", "--ipc", "container:first", "--pid", "container:first"); got != first {
		t.Errorf("joined namespaces:\n%s\nwant the first container's:\n%s", got, first)
	}
	if got := ns(); got == first {
		t.Errorf("a container without --network/--ipc/--pid shares the first's namespaces:\n%s", got)
	}

	for _, bad := range [][]string{
		{"--pid", "nosuch"}, {"--pid", "private"}, {"--uts", "container:first"}, {"--log-opt", "color=1"},
		{"--hostname", "h", "--network", "container:first"}, {"--stop-timeout", "-2"},
		{"--ulimit", "nofile"}, {"--ulimit", "nofile=20:10"},
		{"--stop-signal", "SIGNOPE"}, {"--stop-timeout", "soon"}, {"--cpus", "1", "--cpu-quota", "50000"}, {"--env-file", "/nonexistent"},
	} {
		r := e.dock(append(append([]string{"run", "--rm"}, bad...), runImage, "true")...)
		if r.code != 125 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("run %v: exit %d, stderr %q; want 125 naming %s", bad, r.code, r.stderr, bad[0])
		}
	}
	checkFailure(t, e.dock("run", "--rm", "--pid", "container:nosuch", runImage, "true"), 125, "nosuch")

	// --security-opt, --group-add, --sysctl, --oom-score-adj, --shm-size.
	profile := filepath.Join(t.TempDir(), "seccomp.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.ok("run", "--rm", "--security-opt", "seccomp="+profile, "--security-opt", "no-new-privileges=false",
		"--security-opt", "systempaths=unconfined", "--group-add", "user", "--sysctl", "kernel.shmmni=77",
		"--oom-score-adj", "5", "--shm-size", "2m", runImage, "sh", "-c",
		"grep -E '^(NoNewPrivs|Groups):' /proc/self/status | tr -d '\\t'; grep -c ' /proc/kcore ' /proc/self/mountinfo; "+
			"cat /proc/sys/kernel/shmmni /proc/self/oom_score_adj; grep -o 'size=[0-9]*k' /proc/self/mounts | sort -u | grep 2048; mkdir /x || true")
	if want := "Groups:1000 \nNoNewPrivs:0\n0\n77\n5\nsize=2048k\n"; r.stdout != want || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Errorf("security and process flags: stdout %q, stderr %q; want %q and mkdir denied", r.stdout, r.stderr, want)
	}
	if r := e.ok("run", "--rm", "--add-host", "db:10.0.0.5", "--dns", "192.0.2.1", "--dns-search", "example.org", "--dns-option", "ndots:3",
		runImage, "sh", "-c", "tail -1 /etc/hosts; cat /etc/resolv.conf"); !strings.HasPrefix(r.stdout, "10.0.0.5\tdb\nnameserver 192.0.2.1\nsearch example.org\noptions ndots:3\n") {
		t.Errorf("--add-host, --dns, --dns-search, --dns-option: %q", r.stdout)
	}
	if r := e.dock("run", "--rm", "--init", runImage, "sh", "-c", "cat /proc/1/comm; exit 4"); r.code != 4 || r.stdout != "dock-reaper\n" {
		t.Errorf("--init: exit %d, process 1 %q; want 4 and the reaper", r.code, r.stdout)
	}
	for _, dev := range []string{"/dev/kmsg:/dev/klog:w", "/dev/kmsg:/dev/klog"} {
		if r := e.ok("run", "--rm", "--device", dev, runImage, "sh", "-c", "(exec 3>/dev/klog) && echo open"); r.stdout != "open\n" {
			t.Errorf("--device %s: %q", dev, r.stdout)
		}
	}
	if r := e.ok("run", "--rm", "--device", "/dev/kmsg:r", runImage, "sh", "-c", "(exec 3>/dev/kmsg) 2>/dev/null || echo denied"); r.stdout != "denied\n" {
		t.Errorf("--device /dev/kmsg:r: %q", r.stdout)
	}
	// As docker's: the last no-new-privileges decides; a zero shm size is the default.
	if r := e.ok("run", "--rm", "--security-opt", "no-new-privileges=false", "--security-opt", "no-new-privileges", "--shm-size", "0",
		runImage, "sh", "-c", "grep ^NoNewPrivs: /proc/self/status; grep -o 'shm .*size=[0-9]*k' /proc/self/mounts | grep -o 'size=.*'"); r.stdout != "NoNewPrivs:\t1\nsize=65536k\n" {
		t.Errorf("no-new-privileges twice, --shm-size 0: %q", r.stdout)
	}
	if r := e.ok("run", "--rm", "--security-opt", "seccomp=unconfined", runImage, "grep", "^Seccomp:", "/proc/self/status"); r.stdout != "Seccomp:\t0\n" {
		t.Errorf("--security-opt seccomp=unconfined: %q", r.stdout)
	}
	for _, bad := range [][]string{
		{"--security-opt", "apparmor=docker-default"}, {"--security-opt", "seccomp=/nonexistent.json"},
		{"--security-opt", "no-new-privileges=maybe"}, {"--sysctl", "kernel.panic=1"}, {"--sysctl", "net.ipv4.ip_forward"},
		{"--oom-score-adj", "2000"}, {"--shm-size", "lots"}, {"--group-add", "nosuchgroup"},
		{"--device", "/etc/passwd"}, {"--device", "/dev/kmsg:/a:r:x"}, {"--add-host", "db"}, {"--dns", "dns.example"},
	} {
		checkFailure(t, e.dock(append(append([]string{"run", "--rm"}, bad...), runImage, "true")...), 125, strings.Split(bad[1], "=")[0])
	}
	checkFailure(t, e.dock("run", "--rm", "--ulimit", "files=1", runImage, "true"), 125, "files")
	// max-file alone does nothing, as in docker; -1 waits for good.
	e.ok("run", "--rm", "--log-opt", "max-file=2", "--stop-timeout", "-1", runImage, "true")
	// Limits no cgroup takes are refused at create, leaving no container.
	for _, bad := range [][]string{
		{"--memory-swap", "1g"}, {"-m", "64m", "--memory-swap", "32m"}, {"--cpu-period", "500"},
		{"--blkio-weight", "5"},
	} {
		r := e.dock(append(append([]string{"run", "--name", "badlimits"}, bad...), runImage, "true")...)
		if r.code != 125 || !strings.Contains(r.stderr, "resources") {
			t.Errorf("run %v: exit %d, stderr %q; want 125 and the resources named", bad, r.code, r.stderr)
		}
		if r := e.ok("ps", "-a"); strings.Contains(r.stdout, "badlimits") {
			t.Errorf("run %v left a container:\n%s", bad, r.stdout)
			e.dock("rm", "-f", "badlimits")
		}
	}
	e.ok("rm", "-f", "first", "limits")
}

// TestPSFiltersAndFormat checks dock ps's filters, formats and order
// against docker's spelling of them.
func TestPSFiltersAndFormat(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "up", "-l", "tier=web", runImage, "sleep", "60")
	if r := e.dock("run", "--name", "three", runImage, "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("run exit 3:\n%s", r)
	}
	e.ok("create", "--name", "made", "-l", "tier=db", runImage, "true")
	names := func(args ...string) string {
		return strings.TrimSpace(e.ok(append(append([]string{"ps"}, args...), "--format", "{{.Names}}")...).stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "up"},
		{[]string{"-a"}, "made\nthree\nup"}, // the newest first
		{[]string{"-n", "2"}, "made\nthree"},
		{[]string{"-l"}, "made"},
		{[]string{"-a", "--filter", "status=exited"}, "three"},
		{[]string{"-a", "--filter", "status=created", "--filter", "status=running"}, "made\nup"},
		{[]string{"-a", "--filter", "exited=3"}, "three"},
		{[]string{"-a", "--filter", "exited=0"}, ""},
		{[]string{"-a", "--filter", "label=tier"}, "made\nup"},
		{[]string{"-a", "--filter", "label=tier=db"}, "made"},
		{[]string{"-a", "--filter", "name=e", "--filter", "label=tier"}, "made"},
		{[]string{"-a", "--filter", "ancestor=" + runImage}, "made\nthree\nup"},
		// As docker's: a status filter shows stopped containers without
		// -a, -n counts the matching ones, and names are expressions.
		{[]string{"--filter", "status=exited"}, "three"},
		{[]string{"-n", "1", "--filter", "status=running"}, "up"},
		{[]string{"-n", "2", "-l"}, "made\nthree"},
		{[]string{"-a", "--filter", "name=^up$"}, "up"},
		{[]string{"-a", "--filter", "name=^u"}, "up"},
		{[]string{"-a", "--filter", "status=dead"}, ""},
	} {
		if got := names(tc.args...); got != tc.want {
			t.Errorf("ps %v: %q, want %q", tc.args, got, tc.want)
		}
	}
	id := strings.TrimSpace(e.ok("inspect", "-f", "{{.ID}}", "made").stdout)
	if got := names("-a", "--filter", "id="+id[:5]); got != "made" {
		t.Errorf("ps --filter id=%s: %q", id[:5], got)
	}
	if r := e.ok("ps", "-l", "--no-trunc", "-q"); r.stdout != id+"\n" {
		t.Errorf("ps -lq --no-trunc: %q, want %s", r.stdout, id)
	}
	r := e.ok("ps", "-a", "--filter", "label=tier=web", "--format", `{{.ID}}\t{{.State}} {{.Labels}} {{.Label "tier"}} {{.Command}}`)
	if want := fmt.Sprintf("%s\trunning tier=web web %q\n", r.stdout[:12], "sleep 60"); r.stdout != want {
		t.Errorf("ps --format: %q, want %q", r.stdout, want)
	}
	r = e.ok("ps", "-a", "--filter", "status=exited", "--format", "table{{.Names}}\t{{.Status}}")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAMES") ||
		!strings.HasPrefix(lines[1], "three") || !strings.Contains(lines[1], "Exited (3)") {
		t.Errorf("ps --format table:\n%s", r.stdout)
	}
	for _, bad := range []string{"status=gone", "exited=x", "color=red", "name", "name=("} {
		checkFailure(t, e.dock("ps", "--filter", bad), 125, "--filter")
	}
	checkFailure(t, e.dock("ps", "--format", "{{.Nope"), 125, "--format")
	e.ok("rm", "-f", "up", "three", "made")
}

// TestLogsUntil checks dock logs --until, with a time and with a duration
// ago, as docker's.
func TestLogsUntil(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "--name", "talk", runImage, "sh", "-c", "echo a; sleep 1.5; echo b")
	r := e.ok("logs", "-t", "talk")
	first, _, ok := strings.Cut(r.stdout, " ")
	at, err := time.Parse(time.RFC3339Nano, first)
	if !ok || err != nil {
		t.Fatalf("logs -t: %q: %v", r.stdout, err)
	}
	if r := e.ok("logs", "--until", at.Add(500*time.Millisecond).Format(time.RFC3339Nano), "talk"); r.stdout != "a\n" {
		t.Errorf("logs --until a's time and a half second: %q, want a", r.stdout)
	}
	if r := e.ok("logs", "--until", "1h", "talk"); r.stdout != "" {
		t.Errorf("logs --until 1h: %q, want nothing", r.stdout)
	}
	if r := e.ok("logs", "--since", at.Add(500*time.Millisecond).Format(time.RFC3339Nano), "--until", "0s", "talk"); r.stdout != "b\n" {
		t.Errorf("logs --since --until: %q, want b", r.stdout)
	}
	if r := e.ok("logs", "--until", "0", "talk"); r.stdout != "a\nb\n" {
		t.Errorf("logs --until 0: %q, want everything, as docker's", r.stdout)
	}
	checkFailure(t, e.dock("logs", "--until", "soon", "talk"), 125, "--until")
	e.ok("rm", "talk")
}
