package shortlived

import (
	"syscall"
	"unsafe"
)

// madvPopulateRead is MADV_POPULATE_READ, Linux 5.14 and later.
const madvPopulateRead = 22

// populateBinary maps into the process the pages of the binary's
// read-only mappings (code, read-only data) that the page cache holds.
func populateBinary() {
	var st syscall.Stat_t
	if syscall.Stat("/proc/self/exe", &st) != nil {
		return
	}
	var buf [32 << 10]byte
	maps := readMaps(buf[:])
	for len(maps) > 0 {
		var line []byte
		line, maps = cut(maps, '\n')
		m, ok := parseFileMapping(line)
		if !ok || m.inode != st.Ino || m.major != devMajor(st.Dev) || m.minor != devMinor(st.Dev) || !m.readOnly {
			continue
		}
		if !populateCached(m.start, m.end) {
			return
		}
	}
}

// populateCached maps the pages of [start, end) that the page cache holds.
// It reports false where the kernel has no MADV_POPULATE_READ.
func populateCached(start, end uintptr) bool {
	var vec [4096]byte // residency of 16 MiB
	for chunk := start; chunk < end; chunk += uintptr(len(vec)) * pageSize {
		n := min((end-chunk)/pageSize, uintptr(len(vec)))
		if _, _, e := syscall.Syscall(syscall.SYS_MINCORE, chunk, n*pageSize, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			return true
		}
		for i := uintptr(0); i < n; {
			if vec[i]&1 == 0 {
				i++
				continue
			}
			j := i + 1
			for j < n && vec[j]&1 != 0 {
				j++
			}
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, chunk+i*pageSize, (j-i)*pageSize, madvPopulateRead); e == syscall.EINVAL {
				return false
			}
			i = j
		}
	}
	return true
}

// fileMapping is one line of /proc/self/maps.
type fileMapping struct {
	start, end   uintptr
	readOnly     bool // r-xp or r--p: never written, so still the file's pages
	major, minor uint64
	inode        uint64
}

// parseFileMapping parses a line of /proc/self/maps such as
// "00400000-00aea000 r-xp 00000000 fe:00 1234    /usr/bin/dock".
func parseFileMapping(line []byte) (m fileMapping, ok bool) {
	var v uintptr
	if v, line = hex(line); len(line) == 0 || line[0] != '-' {
		return m, false
	}
	m.start = v
	if m.end, line = hex(line[1:]); len(line) < 6 || line[0] != ' ' {
		return m, false
	}
	perms := string(line[1:5])
	m.readOnly = perms == "r-xp" || perms == "r--p"
	line = line[5:]
	// The offset, then the device and the inode.
	if len(line) == 0 || line[0] != ' ' {
		return m, false
	}
	if _, line = hex(line[1:]); len(line) == 0 || line[0] != ' ' {
		return m, false
	}
	if v, line = hex(line[1:]); len(line) == 0 || line[0] != ':' {
		return m, false
	}
	m.major = uint64(v)
	if v, line = hex(line[1:]); len(line) == 0 || line[0] != ' ' {
		return m, false
	}
	m.minor = uint64(v)
	line = line[1:]
	i := 0
	for ; i < len(line) && '0' <= line[i] && line[i] <= '9'; i++ {
		m.inode = m.inode*10 + uint64(line[i]-'0')
	}
	if i == 0 || (i < len(line) && line[i] != ' ') {
		return m, false
	}
	return m, m.end > m.start
}

// devMajor and devMinor split a device number as the kernel encodes it
// for user space, as /proc/self/maps prints it.
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }
