package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// State is where one blob or manifest stands in a pull or push.
type State int

const (
	// Waiting: known to be needed, not started.
	Waiting State = iota
	// Downloading: bytes are coming from the registry.
	Downloading
	// Uploading: bytes are going to the registry.
	Uploading
	// Exists: already at the destination; skipped.
	Exists
	// Mounted: linked from another repository of the registry; not uploaded.
	Mounted
	// Done: copied and verified.
	Done
)

func (s State) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Downloading:
		return "downloading"
	case Uploading:
		return "uploading"
	case Exists:
		return "exists"
	case Mounted:
		return "mounted"
	case Done:
		return "done"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Event reports progress on one blob or manifest.
type Event struct {
	Digest    digest.Digest
	MediaType string
	Done      int64 // bytes transferred so far
	Total     int64 // the descriptor's size
	State     State
}

type progressFunc func(Event)

func (f progressFunc) emit(desc ocispec.Descriptor, st State, done int64) {
	if f == nil {
		return
	}
	f(Event{Digest: desc.Digest, MediaType: desc.MediaType, Done: done, Total: desc.Size, State: st})
}

// reportEvery is how many bytes pass between two progress events of a
// stream.
const reportEvery = 64 << 10

// streamReader counts and, when verify is set, checks content against its
// descriptor as it streams. It stops at the first Read after ctx is done.
//
// A mismatch is found when the last byte arrives; that last chunk is then
// withheld so that even a reader that stops at exactly Size bytes (and never
// asks for EOF) sees the error instead of complete-looking content.
type streamReader struct {
	ctx      context.Context
	rc       io.ReadCloser
	desc     ocispec.Descriptor
	verify   bool
	h        hash.Hash
	n        int64
	reported int64
	state    State
	progress progressFunc
	checked  bool
	err      error

	// tee, when set, gets every byte Read returns; teeDone is called once
	// when the stream ends, with nil only when it ended complete.
	tee     io.Writer
	teeDone func(error)
}

func newStreamReader(ctx context.Context, rc io.ReadCloser, desc ocispec.Descriptor, verify bool, st State, progress progressFunc) *streamReader {
	r := &streamReader{ctx: ctx, rc: rc, desc: desc, verify: verify, state: st, progress: progress}
	if verify {
		if err := desc.Digest.Validate(); err != nil {
			r.err = fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrInvalidArgument)
		} else {
			r.h = desc.Digest.Algorithm().Hash()
		}
	}
	return r
}

func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.read(p)
	if r.tee == nil {
		return n, err
	}
	if n > 0 {
		if _, werr := r.tee.Write(p[:n]); werr != nil {
			r.err = fmt.Errorf("blob %s: %w", r.desc.Digest, werr)
			r.endTee(r.err)
			return 0, r.err
		}
	}
	switch {
	case err == io.EOF:
		r.endTee(nil)
	case err != nil:
		r.endTee(err)
	}
	return n, err
}

// errStreamCut ends a tee whose reader was closed before the end.
var errStreamCut = errors.New("stream closed before its end")

func (r *streamReader) endTee(err error) {
	if r.teeDone != nil {
		r.teeDone(err)
		r.teeDone = nil
	}
	r.tee = nil
}

func (r *streamReader) read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return 0, err
	}
	n, err := r.rc.Read(p)
	if n > 0 {
		if r.n+int64(n) > r.desc.Size {
			r.err = fmt.Errorf("blob %s: more than %d bytes: %w", r.desc.Digest, r.desc.Size, errdefs.ErrDigestMismatch)
			return 0, r.err
		}
		r.n += int64(n)
		if r.verify {
			r.h.Write(p[:n])
			if r.n == r.desc.Size {
				if err := r.check(); err != nil {
					return 0, err
				}
			}
		}
		if r.n-r.reported >= reportEvery || r.n == r.desc.Size {
			r.reported = r.n
			r.progress.emit(r.desc, r.state, r.n)
		}
	}
	if err == io.EOF {
		if r.n != r.desc.Size {
			r.err = fmt.Errorf("blob %s: %d of %d bytes: %w", r.desc.Digest, r.n, r.desc.Size, io.ErrUnexpectedEOF)
			return n, r.err
		}
		if r.verify && !r.checked {
			if err := r.check(); err != nil {
				return n, err
			}
		}
	}
	if err != nil && err != io.EOF {
		if cerr := r.ctx.Err(); cerr != nil {
			err = cerr
		}
		err = fmt.Errorf("blob %s: %w", r.desc.Digest, err)
		r.err = err
	}
	return n, err
}

// check compares the hash of all bytes read with the digest.
func (r *streamReader) check() error {
	r.checked = true
	if got := digest.NewDigestFromBytes(r.desc.Digest.Algorithm(), r.h.Sum(nil)); got != r.desc.Digest {
		r.err = fmt.Errorf("blob %s: got content of %s: %w", r.desc.Digest, got, errdefs.ErrDigestMismatch)
		return r.err
	}
	return nil
}

func (r *streamReader) Close() error {
	if r.tee != nil && r.err == nil {
		// The destination stopped reading early, having found the blob
		// already there (another program stored it meanwhile): the stream's
		// reader still wants the whole blob, so the rest is read for it.
		buf := make([]byte, 64<<10)
		for r.tee != nil {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
	if r.tee != nil {
		r.endTee(fmt.Errorf("blob %s: %w", r.desc.Digest, errStreamCut))
	}
	return r.rc.Close()
}

// readVerified reads all of desc, at most max bytes, checking it.
func readVerified(ctx context.Context, rc io.ReadCloser, desc ocispec.Descriptor, max int64) ([]byte, error) {
	defer rc.Close()
	if desc.Size < 0 || desc.Size > max {
		return nil, fmt.Errorf("manifest %s: size %d beyond the limit of %d: %w", desc.Digest, desc.Size, max, errdefs.ErrInvalidArgument)
	}
	var buf bytes.Buffer
	buf.Grow(int(desc.Size))
	if _, err := io.Copy(&buf, newStreamReader(ctx, rc, desc, true, Downloading, nil)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
