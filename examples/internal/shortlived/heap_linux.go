package shortlived

import (
	"syscall"
	"unsafe"
)

const (
	hugePage = 2 << 20 // a huge page with 4 KiB pages on amd64 and arm64; with larger pages the collapse is refused
	pageSize = 4 << 10 // the smallest page size

	madvHugepage = 14 // MADV_HUGEPAGE
	madvCollapse = 25 // MADV_COLLAPSE, Linux 6.1 and later
)

// heapObject is allocated on the heap; its address locates the heap arena.
var heapObject *[64]byte

// Advise asks for huge pages for the heap as it is mapped now: future
// faults get 2 MiB pages, and the 2 MiB blocks already in use are collapsed
// into one, since a fault never replaces the small pages of a block that
// has some. It does nothing where the kernel refuses, or where the host
// turned transparent huge pages off: a collapse would ignore that.
func Advise() {
	if !hugePagesOn() {
		return
	}
	heapObject = new([64]byte)
	p := uintptr(unsafe.Pointer(heapObject))
	// The heap is the anonymous mapping holding a heap object and those
	// next to it: the runtime maps its growth right after what it has.
	var buf [32 << 10]byte
	maps := readMaps(buf[:])
	var spans [][2]uintptr
	heap := -1
	for len(maps) > 0 {
		var line []byte
		line, maps = cut(maps, '\n')
		start, end, anonRW := parseMapping(line)
		if !anonRW {
			continue
		}
		if n := len(spans); n > 0 && spans[n-1][1] == start {
			spans[n-1][1] = end
		} else {
			if heap >= 0 {
				break
			}
			spans = append(spans, [2]uintptr{start, end})
		}
		if start <= p && p < end {
			heap = len(spans) - 1
		}
	}
	if heap >= 0 {
		advise(spans[heap][0], spans[heap][1])
	}
}

// advise advises the huge-page-aligned part of [start, end).
func advise(start, end uintptr) {
	start = (start + hugePage - 1) &^ (hugePage - 1)
	end &^= hugePage - 1
	if end <= start {
		return
	}
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvHugepage); e != 0 {
		return
	}
	var vec [hugePage / pageSize]byte
	for b := start; b < end; b += hugePage {
		if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, b, hugePage, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			continue
		}
		for _, v := range vec {
			if v&1 != 0 {
				syscall.Syscall(syscall.SYS_MADVISE, b, hugePage, madvCollapse)
				break
			}
		}
	}
}

// thpOff caches what hugePagesOn reads: 0 unknown, 1 off, 2 on.
var thpOff int

// hugePagesOn reports whether transparent huge pages are on, for all
// memory or for the memory that asks.
func hugePagesOn() bool {
	if thpOff == 0 {
		thpOff = 1
		var buf [128]byte
		fd, err := syscall.Open("/sys/kernel/mm/transparent_hugepage/enabled", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			n, _ := syscall.Read(fd, buf[:])
			syscall.Close(fd)
			if n > 0 && (contains(buf[:n], "[always]") || contains(buf[:n], "[madvise]")) {
				thpOff = 2
			}
		}
	}
	return thpOff == 2
}

// contains is bytes.Contains, whose package this one does not import: it
// would be initialised later, and this package with it.
func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

// readMaps reads /proc/self/maps into buf, as much as fits.
func readMaps(buf []byte) []byte {
	fd, err := syscall.Open("/proc/self/maps", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	return buf[:n]
}

// parseMapping reads the range of one line of /proc/self/maps and reports
// whether it is private, writable memory backed by no file: nameless, or
// named as the Go runtime names its heap where the kernel keeps names.
func parseMapping(line []byte) (start, end uintptr, anonRW bool) {
	start, line = hex(line)
	if len(line) == 0 || line[0] != '-' {
		return 0, 0, false
	}
	end, line = hex(line[1:])
	// " rw-p 00000000 00:00 0", then spaces and the name, if any.
	const anon = " rw-p 00000000 00:00 0"
	if len(line) < len(anon) || string(line[:len(anon)]) != anon {
		return start, end, false
	}
	name := line[len(anon):]
	for len(name) > 0 && name[0] == ' ' {
		name = name[1:]
	}
	return start, end, len(name) == 0 || string(name) == "[anon: Go: heap]"
}

func hex(b []byte) (uintptr, []byte) {
	var v uintptr
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uintptr(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uintptr(c-'a'+10)
		default:
			return v, b[i:]
		}
	}
	return v, nil
}

func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// isReexec reports whether this process is a container's monitor, init or
// reaper, from the first argument of /proc/self/cmdline; the os package,
// which has os.Args, is not initialised yet.
func isReexec() bool {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	var buf [max(len(monitorArg0), len(initArg0), len(reaperArg0)) + 1]byte
	n, err := syscall.Read(fd, buf[:])
	if err != nil {
		return false
	}
	arg0, _ := cut(buf[:n], 0)
	return n > len(arg0) && (string(arg0) == monitorArg0 || string(arg0) == initArg0 || string(arg0) == reaperArg0)
}
