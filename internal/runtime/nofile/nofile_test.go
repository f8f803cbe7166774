package nofile_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/dockkit/dock/internal/runtime/nofile"
)

// TestBeforeRaise starts this test binary with a soft limit below the hard
// one, which package syscall raises at once, and checks that the package
// saw it as it was.
func TestBeforeRaise(t *testing.T) {
	if os.Getenv("NOFILE_TEST_HELPER") != "" {
		t.Skip("helper")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 600 {
		t.Skipf("hard limit %d too low", lim.Max)
	}
	low := lim
	low.Cur = 513
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	cmd := exec.Command(os.Args[0], "-test.run=TestHelper")
	cmd.Env = append(os.Environ(), "NOFILE_TEST_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "513 " + strconv.FormatUint(lim.Max, 10)
	if !strings.Contains(string(out), "limit "+want+" ") {
		t.Errorf("helper saw %q, want limit %s", out, want)
	}
}

func TestHelper(t *testing.T) {
	if os.Getenv("NOFILE_TEST_HELPER") == "" {
		t.Skip("run by TestBeforeRaise")
	}
	if !nofile.Known {
		t.Skip("unknown on this architecture")
	}
	var now syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	os.Stdout.WriteString("limit " + strconv.FormatUint(nofile.Soft, 10) + " " + strconv.FormatUint(nofile.Hard, 10) + " now " + strconv.FormatUint(now.Cur, 10) + "\n")
}
