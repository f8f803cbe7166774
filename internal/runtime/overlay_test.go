//go:build linux

package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOverlayRootfs runs on an overlay of the busybox tree, as a snapshotter
// returns it, and checks that writes land in the upper directory and that a
// device node carried by a layer cannot be opened.
func TestOverlayRootfs(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	lower2, upper, work := filepath.Join(dir, "lower2"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{lower2, upper, work} {
		os.Mkdir(d, 0o755)
	}
	// A layer carrying /dev/null's device number under another name.
	if err := unix.Mknod(filepath.Join(lower2, "layer-null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	spec := testSpec(t, "sh", "-c", `echo written > /newfile; if echo x > /layer-null 2>/dev/null; then echo layerdev=usable; else echo layerdev=refused; fi; cat /newfile`)
	spec.ReadonlyRootfs = false
	spec.Rootfs = []Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + lower2 + ":" + baseRootfs, "upperdir=" + upper, "workdir=" + work}}}
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("%+v %s", es, stderr)
	}
	if !strings.Contains(stdout, "layerdev=refused") || !strings.Contains(stdout, "written") {
		t.Fatalf("output %q", stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "newfile")); string(b) != "written\n" {
		t.Fatalf("upper dir has %q", b)
	}
}

// TestOverlayManyLayers mounts an overlay whose options pass the kernel's
// one-page limit when written with absolute paths.
func TestOverlayManyLayers(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	copyTree(t, baseRootfs, base)
	var lowers []string
	for i := 0; i < 45; i++ {
		l := filepath.Join(dir, fmt.Sprintf("layer-%02d-%s", i, strings.Repeat("x", 50)))
		os.Mkdir(l, 0o755)
		os.WriteFile(filepath.Join(l, fmt.Sprintf("f%02d", i)), []byte("x"), 0o644)
		lowers = append(lowers, l)
	}
	lowers = append(lowers, base)
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	os.Mkdir(upper, 0o755)
	os.Mkdir(work, 0o755)
	opts := []string{"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + upper, "workdir=" + work}
	if n := len(strings.Join(opts, ",")); n < 4096 {
		t.Fatalf("options only %d bytes", n)
	}
	spec := testSpec(t, "sh", "-c", "ls / | grep -c '^f[0-9]'")
	spec.ReadonlyRootfs = false
	spec.Rootfs = []Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 || strings.TrimSpace(stdout) != "45" {
		t.Fatalf("%+v %q %s", es, stdout, stderr)
	}
}
