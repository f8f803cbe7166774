//go:build linux

package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCompareCrun times `run --rm busybox true` here against crun on the
// same rootfs, interleaved, and logs the medians and the paired ratio. It
// runs only when DOCK_RUNTIME_BENCH_CRUN is set, inside a private mount
// namespace without the cgroup2 mount of a hybrid host (crun refuses hybrid
// layouts):
//
//	unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified; DOCK_RUNTIME_BENCH_CRUN=40 ./runtime.test -test.run CompareCrun -test.v'
func TestCompareCrun(t *testing.T) {
	n := 0
	fmt.Sscan(os.Getenv("DOCK_RUNTIME_BENCH_CRUN"), &n)
	if n == 0 {
		t.Skip("set DOCK_RUNTIME_BENCH_CRUN=N to compare with crun")
	}
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("no crun")
	}
	bundle := t.TempDir()
	out, err := exec.Command(crun, "spec", "--bundle", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("crun spec: %v %s", err, out)
	}
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(bundle, "config.json"))
	json.Unmarshal(b, &cfg)
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"true"}
	cfg["root"] = map[string]any{"path": baseRootfs, "readonly": true}
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)
	crunState := t.TempDir()

	var ours, theirs, ratios []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		cmd := exec.Command(crun, "--root", crunState, "run", "--bundle", bundle, fmt.Sprintf("cmp-%d-%d", os.Getpid(), i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("crun run: %v %s", err, out)
		}
		c := time.Since(t0).Seconds()

		spec := testSpec(t, "true")
		t0 = time.Now()
		h, err := Start(context.Background(), spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if es, err := h.Wait(context.Background()); err != nil || es.ExitCode != 0 {
			t.Fatal(es, err)
		}
		if err := h.Delete(false); err != nil {
			t.Fatal(err)
		}
		o := time.Since(t0).Seconds()
		ours, theirs, ratios = append(ours, o), append(theirs, c), append(ratios, o/c)
	}
	med := func(x []float64) float64 { x = slices.Clone(x); slices.Sort(x); return x[len(x)/2] }
	t.Logf("n=%d dock median %.1f ms, crun median %.1f ms, paired ratio median %.2f (min %.2f max %.2f)",
		n, 1000*med(ours), 1000*med(theirs), med(ratios), slices.Min(ratios), slices.Max(ratios))
}
