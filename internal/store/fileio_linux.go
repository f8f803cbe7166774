package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// maxPreallocate caps what preallocate reserves: the size comes from a
// descriptor that may lie, and a reservation holds disk space before any
// byte has arrived.
const maxPreallocate = 256 << 20

// preallocate reserves up to size bytes for f so that a large blob lands in
// few extents; it is a hint and its failure is ignored.
func preallocate(f *os.File, size int64) {
	size = min(size, maxPreallocate)
	if size > 0 {
		_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
	}
}

// startWriteback asks the kernel to begin writing [off, off+n) of f (n == 0:
// to the end) to disk now, without waiting, so that the final fsync finds
// little left to do.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
