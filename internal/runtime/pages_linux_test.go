package runtime

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

// TestSealedCopyInHugePages checks that the sealed binary is written so that
// an exec maps its code with huge pages, and that a monitor's release of
// its start memory leaves it with small ones.
func TestSealedCopyInHugePages(t *testing.T) {
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil || strings.Contains(string(b), "[never]") {
		t.Skip("transparent huge pages are off")
	}
	dir := t.TempDir()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	// Whether this filesystem and kernel map a file written at once with
	// huge pages at all.
	ref := filepath.Join(dir, "reference")
	if err := os.WriteFile(ref, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if before, _ := textPages(t, ref); before == 0 {
		t.Skipf("a file written at once on the filesystem of %s is not mapped with huge pages", dir)
	}

	sealed, err := sealedExe(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, after := textPages(t, sealed)
	if before == 0 {
		t.Errorf("the sealed copy's code is mapped with no huge page")
	}
	if after != 0 {
		t.Errorf("after releaseStartMemory, %d KiB of the code is still mapped with huge pages", after)
	}
}

// textPages runs exe as the text-pages helper, which reports the KiB of its
// binary mapped with huge pages before and after releaseStartMemory.
func textPages(t *testing.T, exe string) (before, after int) {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "DOCK_RUNTIME_TEST_HELPER=text-pages")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", exe, err)
	}
	if _, err := fmt.Sscan(string(out), &before, &after); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return before, after
}

func textPagesHelper() int {
	before := pmdMappedText()
	releaseStartMemory()
	// Code run again after the release comes back in small pages.
	_ = fmt.Sprintf("%v %d %s", before, before, "again")
	fmt.Println(before, pmdMappedText())
	return 0
}

// pmdMappedText returns the KiB of this binary's mappings mapped with huge
// pages.
func pmdMappedText() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return -1
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return -1
	}
	defer f.Close()
	total, ours := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			ours = len(fields) >= 6 && fields[5] == exe
		case ours && len(fields) >= 2 && fields[0] == "FilePmdMapped:":
			var kb int
			fmt.Sscan(fields[1], &kb)
			total += kb
		}
	}
	return total
}

// TestReleaseStartMemoryAllocatesLittle: the monitor calls it with its heap
// close to the collector's first goal, and a collection costs more memory
// than it frees (monitor-mem.sh: 1740 KiB of PSS anon a monitor after one,
// 1220 without; reading /proc/self/maps whole and splitting its lines
// allocated some 30 KiB).
func TestReleaseStartMemoryAllocatesLittle(t *testing.T) {
	releaseStartMemory()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	releaseStartMemory()
	goruntime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<10 {
		t.Errorf("%d bytes allocated", n)
	}
}
