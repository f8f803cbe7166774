package store

import (
	"context"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushAt stores the blob desc names from bytes that fill writes at their
// offsets through w: from several goroutines at once and in any order, as
// the ranges of a download fetched in parallel. Every byte of
// [0, desc.Size) must be written exactly once; a write past the end or
// over bytes already written fails. The bytes are hashed in order as the
// written prefix grows (a write that extends it is hashed from its own
// buffer, bytes written ahead of it are read back once the gap before them
// is filled), and, as with [Store.Push], the blob is synced and renamed
// into blobs/ only when it has desc.Size bytes of desc.Digest; any error,
// from fill or a check, leaves nothing. A blob already stored is not
// written again: PushAt returns nil without calling fill.
func (s *Store) PushAt(ctx context.Context, desc ocispec.Descriptor, fill func(ctx context.Context, w io.WriterAt) error) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.pushAt(ctx, desc, fill); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

func (s *Store) pushAt(ctx context.Context, desc ocispec.Descriptor, fill func(ctx context.Context, w io.WriterAt) error) error {
	in, err := s.beginIngest(ctx, desc)
	if err != nil || in == nil {
		return err
	}
	defer in.close()

	w := &partsWriter{size: desc.Size, h: desc.Digest.Algorithm().Hash(), sync: syncer{f: in.f}}
	defer func() {
		if w.buf != nil {
			putBuf(w.buf)
		}
	}()
	err = fill(ctx, w)
	w.mu.Lock()
	w.sync.wait()
	w.closed = true // a write fill left running must not touch the file now
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := w.prefix(); n != desc.Size {
		return fmt.Errorf("%d of %d bytes written in order: %w", n, desc.Size, errdefs.ErrInvalidArgument)
	}
	if err := w.hashTo(desc.Size); err != nil {
		return err
	}
	return in.commit(w.h)
}

// span is the byte range [start, end).
type span struct{ start, end int64 }

// spans is a sorted list of disjoint, non-adjacent spans.
type spans []span

// overlaps reports whether any of s meets [start, end).
func (s spans) overlaps(start, end int64) bool {
	for _, x := range s {
		if x.start < end && start < x.end {
			return true
		}
	}
	return false
}

// add inserts [start, end), merging it with its neighbours; it must not
// overlap s.
func (s spans) add(start, end int64) spans {
	i := 0
	for i < len(s) && s[i].end < start {
		i++
	}
	// s[i] is the first span that ends at or after start.
	if i < len(s) && s[i].end == start {
		s[i].end = end
		if i+1 < len(s) && s[i+1].start == end {
			s[i].end = s[i+1].end
			s = append(s[:i+1], s[i+2:]...)
		}
		return s
	}
	if i < len(s) && s[i].start == end {
		s[i].start = start
		return s
	}
	s = append(s, span{})
	copy(s[i+1:], s[i:])
	s[i] = span{start, end}
	return s
}

// partsWriter is the io.WriterAt PushAt hands to fill.
type partsWriter struct {
	size int64

	mu      sync.Mutex
	claimed spans // being written or written
	written spans
	sync    syncer
	closed  bool

	hashMu sync.Mutex // held while hashing; guards h, hashed and buf
	h      hash.Hash
	hashed int64
	buf    []byte
}

// WriteAt writes p at off; it fails without writing when [off, off+len(p))
// reaches past the blob's end or meets bytes already written.
func (w *partsWriter) WriteAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if off < 0 || end > w.size {
		return 0, fmt.Errorf("write of %d bytes at %d: beyond the size %d: %w", len(p), off, w.size, errdefs.ErrInvalidArgument)
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, fmt.Errorf("write at %d after the push ended: %w", off, errdefs.ErrWrongState)
	}
	if w.claimed.overlaps(off, end) {
		w.mu.Unlock()
		return 0, fmt.Errorf("write of %d bytes at %d: over bytes already written: %w", len(p), off, errdefs.ErrInvalidArgument)
	}
	w.claimed = w.claimed.add(off, end)
	w.mu.Unlock()

	n, err := w.sync.f.WriteAt(p, off)
	if err != nil {
		return n, err // the claim stays: these bytes are not to be written again
	}
	w.mu.Lock()
	w.written = w.written.add(off, end)
	if !w.closed {
		w.sync.wrote(n)
		if len(w.written) == 1 && w.written[0] == (span{0, w.size}) {
			// All bytes are in: the file syncs while what was written
			// ahead of the first part is read back and hashed (below, or
			// in PushAt), so that the sync before the rename finds
			// nothing left.
			w.sync.flush()
		}
	}
	w.mu.Unlock()

	// Hash what is now in order, unless another writer is at it (the last
	// step of PushAt hashes what is left).
	if w.hashMu.TryLock() {
		if w.hashed == off {
			w.h.Write(p)
			w.hashed = end
		}
		err = w.hashPrefixLocked()
		w.hashMu.Unlock()
	}
	return n, err
}

// prefix returns how many bytes from the start are written.
func (w *partsWriter) prefix() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.written) > 0 && w.written[0].start == 0 {
		return w.written[0].end
	}
	return 0
}

// hashPrefixLocked hashes the written prefix beyond what is hashed, reading
// it back from the file.
func (w *partsWriter) hashPrefixLocked() error {
	for {
		n := w.prefix()
		if n <= w.hashed {
			return nil
		}
		if w.buf == nil {
			w.buf = getBuf(copyBufferSize)
		}
		chunk := w.buf[:min(int64(len(w.buf)), n-w.hashed)]
		if _, err := w.sync.f.ReadAt(chunk, w.hashed); err != nil {
			return fmt.Errorf("read back at %d: %w", w.hashed, err)
		}
		w.h.Write(chunk)
		w.hashed += int64(len(chunk))
	}
}

// hashTo hashes up to n, which must be written.
func (w *partsWriter) hashTo(n int64) error {
	w.hashMu.Lock()
	defer w.hashMu.Unlock()
	if err := w.hashPrefixLocked(); err != nil {
		return err
	}
	if w.hashed != n {
		return fmt.Errorf("hashed %d of %d bytes: %w", w.hashed, n, errdefs.ErrInvalidArgument)
	}
	return nil
}

var _ io.WriterAt = (*partsWriter)(nil)
