package iobuf

import (
	"testing"
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
