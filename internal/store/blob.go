package store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyBufferSize is the chunk Push reads, hashes and writes at a time, and
// between which it checks its context.
const copyBufferSize = iobuf.Size

// getBuf returns a buffer of n bytes, lent by iobuf when n is
// copyBufferSize.
func getBuf(n int64) []byte {
	if n != copyBufferSize {
		return make([]byte, n)
	}
	return iobuf.Get()
}

// putBuf gives b back to iobuf if it came from there.
func putBuf(b []byte) {
	if cap(b) == copyBufferSize {
		iobuf.Put(b)
	}
}

// BlobPath returns where the blob d lives (or would live) in the layout, or
// "" when d is not a valid digest of an available algorithm, so that a
// malformed digest never names a path outside blobs/.
func (s *Store) BlobPath(d digest.Digest) string {
	if d.Validate() != nil {
		return ""
	}
	return s.path(blobsDir, d.Algorithm().String(), d.Encoded())
}

func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("blob %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
	}
	return s.path(blobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// Fetch opens the blob desc names. A missing blob wraps errdefs.ErrNotFound;
// a stored size other than desc.Size wraps errdefs.ErrInvalidArgument. The
// returned reader is an *os.File, so it also seeks and reads at offsets.
func (s *Store) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if fi.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("blob %s: stored size %d, descriptor says %d: %w",
			desc.Digest, fi.Size(), desc.Size, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// Exists reports whether the blob desc names is stored.
func (s *Store) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
}

// Info returns the stored size of blob d, or an error wrapping
// errdefs.ErrNotFound.
func (s *Store) Info(ctx context.Context, d digest.Digest) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	p, err := s.blobPath(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Delete removes blob d whether or not anything refers to it; prefer
// [Store.Untag] and [Store.GC], which keep what index.json reaches.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := s.check(); err != nil {
		return err
	}
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	return nil
}

// Push stores the content r yields as the blob desc names. It streams r to a
// temp file under ingest/, hashing while it writes, and fails if r yields
// other than desc.Size bytes (errdefs.ErrInvalidArgument) or bytes of
// another digest (errdefs.ErrDigestMismatch); only then is the file synced
// and renamed into blobs/, so no error leaves anything visible. A blob
// already stored is not read again: Push returns nil without consuming r.
// Two pushes of one blob, from any processes, both succeed. ctx is checked
// between chunks.
func (s *Store) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.push(ctx, desc, r); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// VerifiesContent reports that Push checks size and digest itself, so that
// a caller streaming from a registry need not hash the content a second
// time.
func (s *Store) VerifiesContent() bool { return true }

func (s *Store) push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	in, err := s.beginIngest(ctx, desc)
	if err != nil || in == nil {
		return err
	}
	defer in.close()

	h := desc.Digest.Algorithm().Hash()
	w := &writebackWriter{syncer: syncer{f: in.f}}
	n, err := copyHashed(ctx, w, h, r, desc.Size)
	w.wait()
	if err != nil {
		return err
	}
	if n != desc.Size {
		return fmt.Errorf("size %d, descriptor says %d: %w", n, desc.Size, errdefs.ErrInvalidArgument)
	}
	return in.commit(h)
}

// ingest is a blob being written to a temp file under ingest/.
type ingest struct {
	desc      ocispec.Descriptor
	f         *os.File
	dst       string // its place under blobs/
	committed bool
}

// beginIngest checks desc and creates the temp file for it, preallocated;
// it returns nil and no error when the blob is already stored.
func (s *Store) beginIngest(ctx context.Context, desc ocispec.Descriptor) (*ingest, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("negative size %d: %w", desc.Size, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	alg := desc.Digest.Algorithm()
	dst := s.path(blobsDir, alg.String(), desc.Digest.Encoded())
	if fi, err := os.Stat(dst); err == nil {
		if fi.Size() != desc.Size {
			return nil, fmt.Errorf("stored size %d, descriptor says %d: %w", fi.Size(), desc.Size, errdefs.ErrInvalidArgument)
		}
		return nil, nil
	}
	if alg != digest.SHA256 {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
	}
	f, err := s.createIngest(desc.Digest)
	if err != nil {
		return nil, err
	}
	preallocate(f, desc.Size)
	return &ingest{desc: desc, f: f, dst: dst}, nil
}

// commit checks the digest h computed and, if it is desc's, syncs the temp
// file and renames it into blobs/.
func (in *ingest) commit(h hash.Hash) error {
	alg := in.desc.Digest.Algorithm()
	if got := digest.NewDigestFromBytes(alg, h.Sum(nil)); got != in.desc.Digest {
		return fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrDigestMismatch)
	}
	if err := in.f.Chmod(0o644); err != nil {
		return err
	}
	if err := in.f.Sync(); err != nil {
		return err
	}
	// A concurrent push of the same blob may rename first; replacing its
	// file with identical verified bytes is harmless, and open readers keep
	// the inode they hold.
	if err := os.Rename(in.f.Name(), in.dst); err != nil {
		return err
	}
	in.committed = true
	return syncDir(filepath.Dir(in.dst))
}

// close removes the temp file unless it was committed, then closes it,
// which drops the ingest lock after the rename or removal.
func (in *ingest) close() {
	if !in.committed {
		os.Remove(in.f.Name())
	}
	in.f.Close()
}

// createIngest creates a temp file under ingest/ and holds an exclusive flock
// on it, which tells [Open] in another process that a live writer owns it.
// If a concurrent Open removed the file between create and lock, it starts
// over.
func (s *Store) createIngest(d digest.Digest) (*os.File, error) {
	for range 10 {
		f, err := os.CreateTemp(s.path(ingestDir), d.Encoded()+"-*")
		if err != nil {
			return nil, err
		}
		if err := lockFile(context.Background(), f, lockExclusive); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if sameFile(f) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("ingest temp file kept vanishing: %w", errdefs.ErrLocked)
}

// sameFile reports whether f's path still names f.
func sameFile(f *os.File) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(f.Name())
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// copyHashed copies r into w and h, reading at most limit+1 bytes so that
// an overlong stream is caught without draining it, and checks ctx between
// chunks. Writing runs in a second goroutine, so reading and hashing one
// chunk overlaps writing the one before.
func copyHashed(ctx context.Context, w io.Writer, h hash.Hash, r io.Reader, limit int64) (int64, error) {
	bufSize := int64(copyBufferSize)
	if limit+1 < bufSize {
		bufSize = limit + 1
	}
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- getBuf(bufSize)
	}
	defer func() {
		for range len(free) {
			putBuf(<-free) // the reader gives back the one it holds when it ends
		}
	}()
	full := make(chan []byte, nbuf)
	werr := make(chan error, 1)
	stop := make(chan struct{}) // closed when a write fails
	go func() {
		var err error
		for b := range full {
			if err == nil {
				if _, err = w.Write(b); err != nil {
					close(stop)
				}
			}
			free <- b[:cap(b)]
		}
		werr <- err
	}()
	n, err := readHashed(ctx, full, free, stop, h, r, limit)
	close(full)
	if e := <-werr; e != nil {
		err = e // the cause, rather than errWriteFailed
	}
	return n, err
}

var errWriteFailed = errors.New("write failed")

func readHashed(ctx context.Context, full chan<- []byte, free <-chan []byte, stop <-chan struct{}, h hash.Hash, r io.Reader, limit int64) (int64, error) {
	var n int64
	var buf []byte // taken from free and not yet handed to the writer
	defer func() {
		if buf != nil {
			putBuf(buf)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		select {
		case buf = <-free:
		case <-stop:
			return n, errWriteFailed
		}
		want := int64(len(buf))
		if rest := limit + 1 - n; rest < want {
			want = rest
		}
		m, rerr := io.ReadFull(r, buf[:want])
		if m > 0 {
			n += int64(m)
			if n > limit {
				return n, fmt.Errorf("content longer than descriptor size %d: %w", limit, errdefs.ErrInvalidArgument)
			}
			h.Write(buf[:m])
			full <- buf[:m]
			buf = nil
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return n, nil
		default:
			return n, fmt.Errorf("read content: %w", rerr)
		}
	}
}

// syncer starts the writeback of f as bytes are written to it, and syncs
// it in the background every flushChunk bytes, so that disk I/O overlaps
// reading and hashing and the final fsync finds little left to write: on
// a virtual disk the host writes back only when the guest flushes, at
// about the speed the guest writes, so a blob synced once at its end
// waited for all of it. Its methods are not safe for concurrent use.
type syncer struct {
	f        *os.File
	n        int64         // bytes written so far
	started  int64         // n when writeback was last started
	flushed  int64         // n when the last background sync began
	flushing chan struct{} // closed when the running background sync ends
}

const (
	writebackChunk = 8 << 20
	flushChunk     = 16 << 20
)

// wrote records n more bytes written.
func (s *syncer) wrote(n int) {
	s.n += int64(n)
	if s.n-s.started >= writebackChunk {
		startWriteback(s.f, 0, 0) // all dirty pages; those under writeback are skipped
		s.started = s.n
	}
	if s.n-s.flushed >= flushChunk {
		s.flush()
	}
}

// flush starts a background sync of f unless one is running.
func (s *syncer) flush() {
	if s.busy() {
		return
	}
	s.flushed = s.n
	done := make(chan struct{})
	s.flushing = done
	go func() {
		defer close(done)
		_ = s.f.Sync() // an error shows again in the final Sync
	}()
}

// busy reports whether a background sync is still running.
func (s *syncer) busy() bool {
	if s.flushing == nil {
		return false
	}
	select {
	case <-s.flushing:
		s.flushing = nil
		return false
	default:
		return true
	}
}

// wait returns once no background sync runs; call it before closing f.
func (s *syncer) wait() {
	if s.flushing != nil {
		<-s.flushing
		s.flushing = nil
	}
}

// writebackWriter writes to f in order, keeping its syncer informed.
type writebackWriter struct {
	syncer
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wrote(n)
	return n, err
}
