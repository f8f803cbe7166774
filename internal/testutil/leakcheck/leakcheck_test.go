//go:build linux

package leakcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/testutil"
)

func TestDiffFindsLeftovers(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	opts := []Option{MountsUnder(dir), CgroupPrefix("dockleakcheck-")}
	before := Take(opts...)

	mnt := filepath.Join(dir, "m")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cg := "/sys/fs/cgroup/pids/dockleakcheck-" + filepath.Base(dir)
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		cg = "/sys/fs/cgroup/dockleakcheck-" + filepath.Base(dir)
	}
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })

	leaks := strings.Join(Diff(before, Take(opts...)), "\n")
	for _, want := range []string{"mount " + mnt + " (tmpfs", "process " + itoa(cmd.Process.Pid) + " sleep", "cgroup " + cg} {
		if !strings.Contains(leaks, want) {
			t.Errorf("leaks lack %q:\n%s", want, leaks)
		}
	}

	unix.Unmount(mnt, 0)
	cmd.Process.Kill()
	cmd.Wait()
	os.Remove(cg)
	if l := Diff(before, Take(opts...)); len(l) != 0 {
		t.Errorf("after cleanup: %q", l)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/t\011x`: "/t\tx"} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestProcessesMatching(t *testing.T) {
	testutil.RequireRoot(t)
	token := "leakcheck-token-" + strconv.Itoa(os.Getpid())
	// Processes only: tests of other packages, run meanwhile, make mounts
	// and cgroups of their own.
	opts := []Option{ProcessesMatching(token), MountsUnder(t.TempDir()), CgroupPrefix(token)}
	before := Take(opts...)
	// A grandchild, reparented once its parent exits: no child of ours.
	if out, err := exec.Command("sh", "-c", "(exec sh -c 'sleep 30; : "+token+"' </dev/null >/dev/null 2>&1 &)").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	leaks := Diff(before, Take(opts...))
	if len(leaks) != 1 || !strings.Contains(leaks[0], token) {
		t.Fatalf("leaks %q", leaks)
	}
	pid, _ := strconv.Atoi(strings.Fields(strings.TrimPrefix(leaks[0], "process "))[0])
	unix.Kill(pid, unix.SIGKILL)
}
