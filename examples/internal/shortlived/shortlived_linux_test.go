package shortlived

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

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

// TestPopulateBinary drops the binary's read-only mappings from this
// process and has populateBinary map them again.
func TestPopulateBinary(t *testing.T) {
	if _, err := os.ReadFile(os.Args[0]); err != nil { // all of it cached
		t.Fatal(err)
	}
	if err := forEachBinaryMapping(func(start, end uintptr) error {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, unix.MADV_DONTNEED); e != 0 {
			return e
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cached, before, err := binaryPages()
	if err != nil {
		t.Fatal(err)
	}
	if before > cached*9/10 {
		t.Fatalf("%d of %d cached pages of the binary mapped after dropping them", before, cached)
	}
	populateBinary()
	cached, after, err := binaryPages()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d cached pages mapped before, %d after", before, cached, after)
	if after < cached*95/100 {
		if page, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANON); err == nil {
			err = unix.Madvise(page, madvPopulateRead)
			unix.Munmap(page)
			if err == unix.EINVAL {
				t.Skip("the kernel has no MADV_POPULATE_READ")
			}
		}
		t.Errorf("%d of %d cached pages of the binary mapped after populateBinary", after, cached)
	}
}

// forEachBinaryMapping calls f with each of this binary's read-only
// mappings.
func forEachBinaryMapping(f func(start, end uintptr) error) error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		fl := strings.Fields(line)
		if len(fl) < 6 || fl[5] != exe || (fl[1] != "r-xp" && fl[1] != "r--p") {
			continue
		}
		var start, end uintptr
		if _, err := fmt.Sscanf(fl[0], "%x-%x", &start, &end); err != nil {
			return err
		}
		if err := f(start, end); err != nil {
			return err
		}
	}
	return nil
}

// binaryPages counts the pages of this binary's read-only mappings that
// the page cache holds, and those of them mapped in this process.
func binaryPages() (cached, mapped int, err error) {
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, 0, err
	}
	defer pagemap.Close()
	err = forEachBinaryMapping(func(start, end uintptr) error {
		n := (end - start) / pageSize
		vec := make([]byte, n)
		if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, start, end-start, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return e
		}
		entries := make([]byte, 8*n)
		if _, err := pagemap.ReadAt(entries, int64(start/pageSize*8)); err != nil {
			return err
		}
		for i := range n {
			if vec[i]&1 == 0 {
				continue
			}
			cached++
			if binary.LittleEndian.Uint64(entries[8*i:])&(1<<63) != 0 {
				mapped++
			}
		}
		return nil
	})
	return cached, mapped, err
}

func TestParseFileMapping(t *testing.T) {
	for _, tc := range []struct {
		line string
		want fileMapping
		ok   bool
	}{
		{"00400000-00aea000 r-xp 00000000 fe:00 1234    /usr/bin/dock", fileMapping{0x400000, 0xaea000, true, 0xfe, 0, 1234}, true},
		{"00aea000-0124f000 r--p 006ea000 103:02 98765   /usr/bin/dock", fileMapping{0xaea000, 0x124f000, true, 0x103, 2, 98765}, true},
		{"0124f000-012c3000 rw-p 00e4f000 fe:00 1234    /usr/bin/dock", fileMapping{0x124f000, 0x12c3000, false, 0xfe, 0, 1234}, true},
		{"7f1e2a000000-7f1e2a021000 rw-p 00000000 00:00 0", fileMapping{0x7f1e2a000000, 0x7f1e2a021000, false, 0, 0, 0}, true},
		{"00400000-00aea000 r-xp 00000000 fe:00", fileMapping{}, false},
		{"00400000-00aea000 r-xp 00000000 fe:00 12x4 /a", fileMapping{}, false},
		{"00400000 r-xp 00000000 fe:00 1234 /a", fileMapping{}, false},
		{"garbage", fileMapping{}, false},
		{"", fileMapping{}, false},
	} {
		m, ok := parseFileMapping([]byte(tc.line))
		if ok != tc.ok || (ok && m != tc.want) {
			t.Errorf("%q: %+v %v, want %+v %v", tc.line, m, ok, tc.want, tc.ok)
		}
	}
}

func TestDevNumbers(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	if got := fmt.Sprintf("%02x:%02x", devMajor(st.Dev), devMinor(st.Dev)); got != want {
		t.Errorf("device %#x: %s, want %s", st.Dev, got, want)
	}
	for _, dev := range []uint64{unix.Mkdev(259, 3), unix.Mkdev(0xfe, 0), unix.Mkdev(8, 300), unix.Mkdev(4095, 1<<19)} {
		if devMajor(dev) != uint64(unix.Major(dev)) || devMinor(dev) != uint64(unix.Minor(dev)) {
			t.Errorf("device %#x: %d:%d, want %d:%d", dev, devMajor(dev), devMinor(dev), unix.Major(dev), unix.Minor(dev))
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
