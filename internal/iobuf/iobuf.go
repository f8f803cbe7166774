// Package iobuf lends the fixed-size buffers that copies of blob content
// read into and write from.
//
// A pull copies several blobs at once, each through a few buffers of Size
// bytes: some four MiB, touched for the first time by the copies. On
// virtual machines a page fault costs microseconds (some 25 µs each on the
// paravirtualised hosts dock is measured on), and 4 KiB pages made a
// thousand of them per pull. The buffers come from one region backed by
// huge pages where the kernel allows it, so that the first touch of all of
// them costs two faults; beyond that region, and where huge pages are not
// to be had, they come from the Go heap, reused through a sync.Pool.
//
// The region lies outside the Go heap, where the race detector does not
// look: built with -race, every buffer comes from the heap.
package iobuf

import "sync"

// Size is the length of every buffer.
const Size = 256 << 10

var heap = sync.Pool{New: func() any { return new([Size]byte) }}

// Get returns a buffer of Size bytes; give it back with Put once nothing
// refers to it any more.
func Get() []byte {
	if b := slabGet(); b != nil {
		return b
	}
	return heap.Get().(*[Size]byte)[:]
}

// Put gives back a buffer Get returned.
func Put(b []byte) {
	if cap(b) < Size {
		return
	}
	b = b[:Size]
	if slabPut(b) {
		return
	}
	heap.Put((*[Size]byte)(b))
}

// Lent returns how many buffers of the huge-page region are lent now: zero
// once every copy has given its buffers back, which tests check.
func Lent() int { return slabLent() }
