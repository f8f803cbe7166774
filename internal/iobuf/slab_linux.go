//go:build !race

package iobuf

import (
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	hugePage = 2 << 20
	// What a pull holds at most: the copies of four blobs at once, 16 MiB
	// of decompression read-ahead and the buffers of the layers being
	// written. Only what is touched takes memory.
	slabBufs  = 128
	slabBytes = slabBufs * Size
)

// idleRelease is how long the slab stays resident with no buffer lent (a
// variable for tests).
var idleRelease = 2 * time.Second

var slab struct {
	once  sync.Once
	mem   []byte // nil when it could not be mapped
	mu    sync.Mutex
	free  []int // indexes of the buffers not lent
	lent  int
	timer *time.Timer
}

// mapSlab maps the region, aligned to a huge page, and asks for huge pages.
func mapSlab() {
	m, err := unix.Mmap(-1, 0, slabBytes+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return
	}
	base := uintptr(unsafe.Pointer(&m[0]))
	skip := int((base+hugePage-1)&^(hugePage-1) - base)
	// Unmap what lies outside the aligned region (with the system call:
	// unix.Munmap takes only whole mappings it made).
	if skip > 0 {
		unix.Syscall(unix.SYS_MUNMAP, base, uintptr(skip), 0)
	}
	if tail := len(m) - skip - slabBytes; tail > 0 {
		unix.Syscall(unix.SYS_MUNMAP, base+uintptr(skip+slabBytes), uintptr(tail), 0)
	}
	mem := m[skip : skip+slabBytes : skip+slabBytes]
	unix.Madvise(mem, unix.MADV_HUGEPAGE) // best effort: 4 KiB pages otherwise
	slab.mem = mem
	for i := slabBufs - 1; i >= 0; i-- {
		slab.free = append(slab.free, i)
	}
}

func slabGet() []byte {
	slab.once.Do(mapSlab)
	if slab.mem == nil {
		return nil
	}
	slab.mu.Lock()
	defer slab.mu.Unlock()
	n := len(slab.free)
	if n == 0 {
		return nil
	}
	i := slab.free[n-1]
	slab.free = slab.free[:n-1]
	slab.lent++
	if slab.timer != nil {
		slab.timer.Stop()
	}
	return slab.mem[i*Size : (i+1)*Size : (i+1)*Size]
}

func slabPut(b []byte) bool {
	slab.once.Do(mapSlab) // done by the Get of b: this orders the read of mem
	if slab.mem == nil {
		return false
	}
	off := uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&slab.mem[0]))
	if off >= slabBytes || off%Size != 0 {
		return false
	}
	slab.mu.Lock()
	defer slab.mu.Unlock()
	slab.free = append(slab.free, int(off/Size))
	slab.lent--
	if slab.lent == 0 {
		// Idle: the memory goes back to the system after a while, and
		// comes back, zeroed, at the next touch.
		if slab.timer == nil {
			slab.timer = time.AfterFunc(idleRelease, release)
		} else {
			slab.timer.Reset(idleRelease)
		}
	}
	return true
}

func release() {
	slab.mu.Lock()
	defer slab.mu.Unlock()
	if slab.lent == 0 {
		unix.Madvise(slab.mem, unix.MADV_DONTNEED)
	}
}

func slabLent() int {
	slab.mu.Lock()
	defer slab.mu.Unlock()
	return slab.lent
}
