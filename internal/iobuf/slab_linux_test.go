//go:build !race

package iobuf

import (
	"testing"
	"time"
	"unsafe"
)

// TestRelease checks that the slab's memory goes back to the system once
// no buffer is lent for idleRelease: what was written there reads as zero.
func TestRelease(t *testing.T) {
	old := idleRelease
	idleRelease = 50 * time.Millisecond
	defer func() { idleRelease = old }()
	b := Get()
	if slab.mem == nil {
		t.Skip("no slab mapped here")
	}
	if p := uintptr(unsafe.Pointer(&b[0])); p < uintptr(unsafe.Pointer(&slab.mem[0])) || p >= uintptr(unsafe.Pointer(&slab.mem[0]))+slabBytes {
		t.Fatal("the first buffer lent is not from the slab")
	}
	b[0], b[Size-1] = 1, 2
	Put(b)
	deadline := time.Now().Add(5 * time.Second)
	for b[0] != 0 || b[Size-1] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slab was not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Lent again, it is usable.
	c := Get()
	c[0] = 3
	if c[0] != 3 {
		t.Fatal("write to a buffer after release lost")
	}
	Put(c)
}
