package procstat

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func TestFieldsAndStart(t *testing.T) {
	f, err := Fields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(f) < 20 || f[0] != "R" && f[0] != "S" {
		t.Fatalf("fields %q: want the state first", f)
	}
	if ppid, _ := strconv.Atoi(f[1]); ppid != os.Getppid() {
		t.Errorf("parent %s, want %d", f[1], os.Getppid())
	}
	self, err := Start(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("Start(self) = %d, %v", self, err)
	}
	// A process started later started later.
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	child, err := Start(cmd.Process.Pid)
	if err != nil || child < self {
		t.Errorf("Start(child) = %d, %v; want at least %d", child, err, self)
	}
	if _, err := Start(1 << 30); err == nil {
		t.Error("Start of no process: no error")
	}
}
