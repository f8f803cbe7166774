package runahead

import (
	"os"
	"strings"
	"testing"

	"github.com/dockkit/dock"
)

func TestPlan(t *testing.T) {
	t.Setenv("DOCK_ROOT", "")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args string
		root string
		ok   bool
	}{
		{"run --rm busybox true", defaultRoot, true},
		{"--root /r run busybox", "/r", true},
		{"--root=/r --debug run -d busybox", "/r", true},
		{"run --root /r busybox", "/r", true},
		{"--root rel run busybox", wd + "/rel", true},
		{"--root ./a/../b/ run busybox", wd + "/b", true},
		{"--root /r/ run busybox", "/r", true},
		{"--insecure-registry h:5000 --certs-dir /c run busybox", defaultRoot, true},
		{"--userns-remap 100000:100000 run busybox", defaultRoot, true},
		{"run --network host busybox", defaultRoot, true},
		{"run --network=none busybox", defaultRoot, true},
		{"run -p 8080:80 busybox", defaultRoot, true},
		{"run -p8080:80 busybox", defaultRoot, true},
		{"run --publish=8080:80 busybox", defaultRoot, true},
		{"run -it -e A=1 -v /x:/y --name n busybox sh", defaultRoot, true},
		{"run -ite A=1 --root /r busybox", "/r", true},
		{"run -eA=1 -w /tmp busybox", defaultRoot, true},
		// What follows the image is the container's.
		{"run busybox tool --root /home/u/x", defaultRoot, true},
		{"run busybox ls -pa", defaultRoot, true},
		{"run -- busybox --root /x", defaultRoot, true},
		{"run --no-such-flag busybox", "", false},
		{"run -X busybox", "", false},
		{"run -iX busybox", "", false},
		{"run --help", "", false},
		{"run --name", "", false},
		{"ps -a", "", false},
		{"create busybox", "", false},
		{"--root /r images", "", false},
		{"--root", "", false},
		{"--root= run busybox", "", false},
		{"", "", false},
	} {
		root, ok := plan(strings.Fields(tc.args))
		if ok != tc.ok || (ok && root != tc.root) {
			t.Errorf("%q: %q %v, want %q %v", tc.args, root, ok, tc.root, tc.ok)
		}
	}
	t.Setenv("DOCK_ROOT", "/from/env")
	if root, _ := plan([]string{"run", "x"}); root != "/from/env" {
		t.Errorf("with DOCK_ROOT: root %q", root)
	}
}

// TestDefaults checks the package's copy of dock's default root.
func TestDefaults(t *testing.T) {
	if defaultRoot != dock.DefaultRoot {
		t.Errorf("default root %q, dock's is %q", defaultRoot, dock.DefaultRoot)
	}
}

func TestCmdline(t *testing.T) {
	var buf [4096]byte
	got := cmdline(buf[:])
	if strings.Join(got, "\x00") != strings.Join(os.Args[1:], "\x00") {
		t.Errorf("cmdline %q, want %q", got, os.Args[1:])
	}
}

// TestFlagsOfDock is in examples/dock: it holds GlobalFlags and RunFlags to
// the command's.
