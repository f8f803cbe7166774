package runtime

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies keeps the packages heavy to initialise out of this
// package's imports: the monitor and the init start only once everything
// this package imports is initialised, and package net (initialised late
// in any binary) or containerd's cgroup managers (protobuf, eBPF, D-Bus)
// would add milliseconds to every container start and memory to every
// monitor.
func TestLightDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	heavy := []string{"net", "github.com/containerd", "google.golang.org/protobuf", "github.com/cilium/ebpf",
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
