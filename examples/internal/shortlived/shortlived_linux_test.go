package shortlived

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"github.com/dockkit/dock/internal/runtime"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHORTLIVED_TEST_HELPER") != "" {
		// Started by TestReexecLeftAlone: report whether the package's
		// initialisation advised the heap.
		fmt.Print(heapAdvised())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// thpOnRequest skips the test unless the kernel gives huge pages to memory
// that asks for them.
func thpOnRequest(t *testing.T) {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(b), "[never]") {
		t.Skip("transparent huge pages are off on this kernel")
	}
}

// heapAdvised reports whether the mapping of a new heap object is advised
// for huge pages.
func heapAdvised() bool {
	return advisedAt(uintptr(unsafe.Pointer(new([64]byte))))
}

// advisedAt reports whether the mapping at p is advised for huge pages ("hg"
// in its VmFlags).
func advisedAt(p uintptr) bool {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return false
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if start, end, ok := parseRange(line); ok {
			in = start <= p && p < end
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Contains(line, " hg")
		}
	}
	return false
}

func parseRange(line string) (start, end uintptr, ok bool) {
	var s, e uintptr
	if n, _ := fmt.Sscanf(line, "%x-%x ", &s, &e); n != 2 || strings.HasSuffix(line, ":") {
		return 0, 0, false
	}
	return s, e, true
}

func TestAdvise(t *testing.T) {
	thpOnRequest(t)
	// Grow the heap past what the package's initialisation advised: the
	// runtime maps the growth anew.
	var keep [][]byte
	for range 256 {
		keep = append(keep, make([]byte, 64<<10))
	}
	last := uintptr(unsafe.Pointer(&keep[len(keep)-1][0]))
	if advisedAt(last) {
		t.Log("the growth was advised already")
	}
	Advise()
	if !advisedAt(last) {
		t.Errorf("the heap's growth is not advised for huge pages after Advise")
	}
}

func TestReexecNames(t *testing.T) {
	if monitorArg0 != runtime.MonitorArg0 {
		t.Errorf("a monitor here is %q, the runtime starts %q", monitorArg0, runtime.MonitorArg0)
	}
	if initArg0 != runtime.InitArg0 {
		t.Errorf("an init here is %q, the runtime starts %q", initArg0, runtime.InitArg0)
	}
	if reaperArg0 != runtime.ReaperArg0 {
		t.Errorf("a reaper here is %q, the runtime starts %q", reaperArg0, runtime.ReaperArg0)
	}
}

// TestReexecLeftAlone runs this test binary as a container's monitor and
// init, whose memory the package must leave alone, and as anything else.
func TestReexecLeftAlone(t *testing.T) {
	thp := true
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil || strings.Contains(string(b), "[never]") {
		thp = false
	}
	for _, tc := range []struct {
		arg0    string
		advised bool
	}{
		{monitorArg0, false},
		{initArg0, false},
		{"dock", thp},
		{monitorArg0 + "x", thp},
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Args[0] = tc.arg0
		cmd.Env = append(os.Environ(), "SHORTLIVED_TEST_HELPER=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.arg0, err)
		}
		var advised bool
		if _, err := fmt.Sscan(string(out), &advised); err != nil {
			t.Fatalf("%s: helper output %q: %v", tc.arg0, out, err)
		}
		if advised != tc.advised {
			t.Errorf("%s: heap advised: %v, want %v", tc.arg0, advised, tc.advised)
		}
	}
}

func TestParseMapping(t *testing.T) {
	for _, tc := range []struct {
		line       string
		start, end uintptr
		anonRW     bool
	}{
		{"c000000000-c000400000 rw-p 00000000 00:00 0 ", 0xc000000000, 0xc000400000, true},
		{"7f1e2a000000-7f1e2a021000 rw-p 00000000 00:00 0", 0x7f1e2a000000, 0x7f1e2a021000, true},
		{"00400000-00aea000 r-xp 00000000 fe:00 1234    /usr/bin/dock", 0x400000, 0xaea000, false},
		{"0124f000-012c3000 rw-p 00e4f000 fe:00 1234    /usr/bin/dock", 0x124f000, 0x12c3000, false},
		{"7ffc1a3e0000-7ffc1a401000 rw-p 00000000 00:00 0    [stack]", 0x7ffc1a3e0000, 0x7ffc1a401000, false},
		{"c000000000-c004000000 ---p 00000000 00:00 0", 0xc000000000, 0xc004000000, false},
		{"3a2054000000-3a2054800000 rw-p 00000000 00:00 0                          [anon: Go: heap]", 0x3a2054000000, 0x3a2054800000, true},
		{"7f1e2a000000-7f1e2a021000 rw-p 00000000 00:00 0    [anon: Go: immortal metadata]", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		start, end, anon := parseMapping([]byte(tc.line))
		if anon != tc.anonRW || (tc.anonRW && (start != tc.start || end != tc.end)) {
			t.Errorf("%q: %#x-%#x %v, want %#x-%#x %v", tc.line, start, end, anon, tc.start, tc.end, tc.anonRW)
		}
	}
}
