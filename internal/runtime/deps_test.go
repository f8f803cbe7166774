package runtime

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies keeps out of this package's imports what would
// delay the start of every monitor and init, which wait for everything
// this package imports to be initialised: containerd's cgroup managers
// (protobuf, eBPF, D-Bus), and the standard packages a binary initialises
// only after most of its others (initialisation goes in import path order
// among the packages ready for it), such as net, os/exec and path/filepath.
func TestLightDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	heavy := []string{"net", "os/exec", "path/filepath", "github.com/creack/pty", "github.com/containerd", "google.golang.org/protobuf", "github.com/cilium/ebpf",
		"github.com/godbus/dbus", "github.com/sirupsen/logrus", "github.com/dockkit/dock/internal/cgroups"}
	for _, dep := range strings.Fields(string(out)) {
		for _, h := range heavy {
			h = strings.TrimSuffix(h, "/")
			if dep == h || strings.HasPrefix(dep, h+"/") {
				t.Errorf("internal/runtime depends on %s", dep)
			}
		}
	}
}
