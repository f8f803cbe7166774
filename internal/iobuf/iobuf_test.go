package iobuf

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// TestLend lends more buffers than the slab holds, checks that none
// overlaps another and that every one is Size bytes, gives them back and
// lends them again.
func TestLend(t *testing.T) {
	n := 3 * 16
	bufs := make([][]byte, n)
	for i := range bufs {
		b := Get()
		if len(b) != Size || cap(b) != Size {
			t.Fatalf("buffer %d: len %d cap %d, want %d", i, len(b), cap(b), Size)
		}
		for j := range b {
			b[j] = byte(i)
		}
		bufs[i] = b
	}
	for i, b := range bufs {
		for j := 0; j < Size; j += 4096 {
			if b[j] != byte(i) {
				t.Fatalf("buffer %d was written through another", i)
			}
		}
	}
	starts := map[uintptr]bool{}
	for _, b := range bufs {
		p := uintptr(unsafe.Pointer(&b[0]))
		if starts[p] {
			t.Fatal("a buffer was lent twice")
		}
		starts[p] = true
	}
	for _, b := range bufs {
		Put(b)
	}
	again := Get()
	if !starts[uintptr(unsafe.Pointer(&again[0]))] {
		t.Error("a buffer given back was not lent again")
	}
	Put(again)
	Put(make([]byte, 10)) // not one of ours: ignored
}

// TestRelease checks that the slab's memory goes back to the system once
// no buffer is lent for idleRelease: what was written there reads as zero.
func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the slab is Linux only")
	}
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
