package dock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// remapped opens a host whose containers have a user namespace mapping
// 0–65535 to the host's 100000–165535.
func remapped(t *testing.T) *Host {
	t.Helper()
	ns, err := RemappedNamespaces(100000, 100000, 65536)
	if err != nil {
		t.Fatal(err)
	}
	return newHost(t, WithNamespaces(ns))
}

// A container in a user namespace runs over the image's overlay layers as
// its own root: the layers' files are root's inside, it can write
// anywhere in its filesystem, and what it writes is owned on the host by
// the mapped ids, never by the host's root.
func TestUserNamespaceOverlay(t *testing.T) {
	h := remapped(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, stdout, stderr := startRemapped(t, h, img,
		"id -u; head -1 /proc/self/uid_map | tr -s ' '; stat -c '%u:%g' /bin/sh; echo hi > /etc/written && mkdir /newdir && echo ok")
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := []string{"0", " 0 100000 65536", "0:0", "ok"}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want %q", lines, want)
	}
	for i := range want {
		if strings.TrimSpace(lines[i]) != strings.TrimSpace(want[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}

	// On the host, the written file is the mapped root's.
	mounts, err := h.Snapshotter().Mounts(context.Background(), "container-"+c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var upper string
	for _, o := range mounts[0].Options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
	}
	if upper == "" {
		t.Skipf("container's layer is not an overlay: %+v", mounts)
	}
	for _, p := range []string{"etc/written", "newdir"} {
		fi, err := os.Stat(filepath.Join(upper, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("%s owned by %d:%d on the host, want 100000:100000", p, st.Uid, st.Gid)
		}
	}

	// A commit writes the files as the container saw them: root's.
	out, err := c.Commit(ctx, "test.local/userns-commit:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unpack(ctx, out); err != nil {
		t.Fatal(err)
	}
	dir, done := viewDir(t, h, out.Layers[len(out.Layers)-1].ChainID.String())
	defer done()
	for _, p := range []string{"etc/written", "newdir"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("committed %s owned by %d:%d, want 0:0", p, st.Uid, st.Gid)
		}
	}
}

// startRemapped starts sh -c script in a container of h, which has a user
// namespace, and skips the test where the kernel cannot idmap the root.
func startRemapped(t *testing.T, h *Host, img *Image, script string) (c *Container, stdout, stderr *strings.Builder) {
	t.Helper()
	return startRemappedWith(t, h, img, nil, script)
}

// startRemappedWith is startRemapped with more options for the container.
func startRemappedWith(t *testing.T, h *Host, img *Image, opts []CreateOption, script string) (c *Container, stdout, stderr *strings.Builder) {
	t.Helper()
	// t.TempDir's directories are closed to others.
	for _, d := range []string{h.Root(), filepath.Dir(h.Root())} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	c, err := h.Create(ctx, img, append(opts, WithCmd("sh", "-c", script))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(context.Background(), true); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	stdout, stderr = new(strings.Builder), new(strings.Builder)
	if err := c.Start(ctx, WithOutput(stdout, stderr)); err != nil {
		if strings.Contains(err.Error(), "idmapped mount") && strings.Contains(err.Error(), "not supported") {
			// tmpfs before Linux 6.3, for one.
			t.Skipf("this kernel cannot idmap the root's file system: %v", err)
		}
		t.Fatal(err)
	}
	return c, stdout, stderr
}

// A process exec'd into a container with a user namespace is in that
// namespace as in all the others, as the namespace's root or the user
// asked for, which the host sees as the mapped ids; it has the container's
// capabilities, and a terminal works as elsewhere.
func TestUserNamespaceExec(t *testing.T) {
	h := remapped(t)
	img := busyboxImage(t, h)
	c, _, _ := startRemapped(t, h, img, "sleep 1000")
	pid := c.State().Pid

	checkExecNamespaces(t, c, pid, "user", "pid", "net", "mnt", "uts", "ipc", "cgroup")

	status := func(p *Process) string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	initStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user     string
		inside   string // id -u, id -g, id -G
		hostUID  string // the Uid: line on the host
		hostGID  string
		initCaps bool
	}{
		{"", "0 0 0", "100000", "100000", true},
		{"1000:2000", "1000 2000 2000", "101000", "102000", false},
	} {
		var opts []ExecOption
		if tt.user != "" {
			opts = append(opts, WithExecUser(tt.user))
		}
		ctx := ctxT(t, 30*time.Second)
		pr, pw := io.Pipe()
		var out bytes.Buffer
		p, err := c.Exec(ctx, []string{"sh", "-c", "echo $(id -u) $(id -g) $(id -G); read x"},
			append(opts, WithInput(pr), WithOutput(&out, os.Stderr))...)
		if err != nil {
			t.Fatalf("exec as %q: %v", tt.user, err)
		}
		waitFor(t, func() bool { return strings.Contains(out.String(), "\n") }, "output of id")
		st := status(p)
		pw.Write([]byte("go\n"))
		pw.Close()
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 {
			t.Fatalf("exec as %q: %+v, %v", tt.user, es, err)
		}
		if got := strings.TrimSpace(out.String()); got != tt.inside {
			t.Errorf("user %q: ids %q inside, want %q", tt.user, got, tt.inside)
		}
		if want := fmt.Sprintf("Uid:\t%[1]s\t%[1]s\t%[1]s\t%[1]s\n", tt.hostUID); !strings.Contains(st, want) {
			t.Errorf("user %q: host sees\n%s\nwant %q", tt.user, st, want)
		}
		if want := fmt.Sprintf("Gid:\t%[1]s\t%[1]s\t%[1]s\t%[1]s\n", tt.hostGID); !strings.Contains(st, want) {
			t.Errorf("user %q: host sees\n%s\nwant %q", tt.user, st, want)
		}
		capEff := func(s string) string {
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, "CapEff:") {
					return l
				}
			}
			return ""
		}
		if got, want := capEff(st), capEff(string(initStatus)); (got == want) != tt.initCaps || got == "" {
			t.Errorf("user %q: %q, container's init has %q", tt.user, got, want)
		}
	}

	got, code := execOut(t, c, []string{"sh", "-c", "test -t 0 && test -t 1 && echo tty"}, WithExecTerminal())
	if code != 0 || strings.TrimSpace(got) != "tty" {
		t.Errorf("terminal exec: %q, exit %d", got, code)
	}
	_, err = c.Exec(context.Background(), []string{"/no/such"})
	var se *StartError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Code != 127 {
		t.Errorf("missing command: %v", err)
	}
}

// A state root that others cannot search is refused with a clear error
// for a user namespace container, rather than failing inside its init.
func TestUserNamespaceClosedRoot(t *testing.T) {
	h := remapped(t)
	if err := os.Chmod(h.Root(), 0o700); err != nil {
		t.Fatal(err)
	}
	img := busyboxImage(t, h)
	_, err := h.Create(context.Background(), img, WithCmd("true"))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), h.Root()) {
		t.Fatalf("create under a closed root: %v, want ErrInvalidArgument naming %s", err, h.Root())
	}
}

func TestRemappedNamespacesRefused(t *testing.T) {
	for _, tc := range [][3]uint32{{0, 100000, 65536}, {100000, 0, 65536}, {100000, 100000, 0}, {1 << 31, 100000, 1 << 31}} {
		if _, err := RemappedNamespaces(tc[0], tc[1], tc[2]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("RemappedNamespaces%v: %v, want ErrInvalidArgument", tc, err)
		}
	}
}

// TestUserNamespaceVolume gives a volume to a container whose root is a
// remapped user: it reaches the volume (through its group), host users do
// not, and a new volume is its root's, filled or empty.
func TestUserNamespaceVolume(t *testing.T) {
	h := remapped(t)
	img := busyboxImage(t, h)
	for _, d := range []string{h.Root(), filepath.Dir(h.Root())} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	c, err := h.Create(ctx, img, WithMount(Volume("v", "/data")), WithCmd("cat", "/data/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(ctx, true)
	if err := os.WriteFile(filepath.Join(h.Root(), "volumes", "v", "_data", "f"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if err := c.Start(ctx, WithOutput(&stdout, &stderr)); err != nil {
		if strings.Contains(err.Error(), "idmapped mount") && strings.Contains(err.Error(), "not supported") {
			t.Skipf("this kernel cannot idmap the root's file system: %v", err)
		}
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "hi\n" {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout.String(), stderr.String())
	}
	cmd := exec.Command("/bin/busybox", "cat", filepath.Join(h.Root(), "volumes", "v", "_data", "f"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("a host user read the volume: %s", out)
	}
}

// TestUserNamespaceNewVolume fills a new volume from the image for a
// container whose root is a remapped user: the files are its root's, as
// the image has them, and it can write there; on the host they belong to
// the mapped ids.
func TestUserNamespaceNewVolume(t *testing.T) {
	h := remapped(t)
	img := busyboxImage(t, h)
	c, stdout, stderr := startRemappedWith(t, h, img, []CreateOption{WithMount(Volume("etcvol", "/etc")), WithMount(Volume("empty", "/data"))},
		"stat -c '%u:%g' /etc/passwd /data && echo hi > /data/f && echo hi > /etc/new && echo ok")
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout.String(), stderr.String())
	}
	if got := stdout.String(); got != "0:0\n0:0\nok\n" {
		t.Errorf("output %q, want the files root's and writable", got)
	}
	for _, p := range []string{"etcvol/_data/passwd", "etcvol/_data/new", "empty/_data", "empty/_data/f"} {
		fi, err := os.Lstat(filepath.Join(h.Root(), "volumes", p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("%s owned by %d:%d on the host, want 100000:100000", p, st.Uid, st.Gid)
		}
	}
}
