package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// RangeTarget is a VerifyingTarget that can also store a blob from parts
// written at their offsets in any order, so that Pull may fetch a large
// blob as several HTTP Range requests at once. PushAt has the contract of
// Push for what becomes visible; fill writes every byte of the blob once.
type RangeTarget interface {
	VerifyingTarget
	PushAt(ctx context.Context, desc ocispec.Descriptor, fill func(ctx context.Context, w io.WriterAt) error) error
}

// minSplitSize is the smallest blob Pull fetches in parts (a variable for
// tests).
var minSplitSize int64 = 32 << 20

// splitParts says in how many parts to fetch each of blobs (the missing
// ones): the largest, in two, when it is at least minSplitSize and half
// again as large as the next, so that it does not download alone long after
// the others. Not more parts: the digest is computed in order, so the bytes
// after the first part are hashed only once that part is complete, and a
// part more leaves more to hash at the end.
func splitParts(blobs []ocispec.Descriptor) map[int]int {
	big, next := -1, int64(0)
	for i, d := range blobs {
		switch {
		case big < 0 || d.Size > blobs[big].Size:
			if big >= 0 {
				next = blobs[big].Size
			}
			big = i
		case d.Size > next:
			next = d.Size
		}
	}
	if big < 0 || blobs[big].Size < minSplitSize || 2*blobs[big].Size < 3*next {
		return nil
	}
	return map[int]int{big: 2}
}

// errWholeBlob is returned with the body when a registry answers a Range
// request with the whole blob.
var errWholeBlob = errors.New("registry ignored the range")

// fetchRange GETs bytes [off, off+n) of blob d. When the registry ignores
// Range and sends the whole blob (200), it returns that body with
// errWholeBlob. Its errors do not name d.
func (s *pullSource) fetchRange(ctx context.Context, d ocispec.Descriptor, off, n int64) (io.ReadCloser, error) {
	ref := s.repo.Reference
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
	scheme := "https"
	if s.repo.PlainHTTP {
		scheme = "http"
	}
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", scheme, ref.Host(), ref.Repository, d.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := s.repo.Client.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if err := checkContentRange(resp.Header.Get("Content-Range"), off, n, d.Size); err != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp.Body, nil
	case http.StatusOK:
		return resp.Body, errWholeBlob
	default:
		resp.Body.Close()
		err := &errcode.ErrorResponse{Method: req.Method, URL: req.URL, StatusCode: resp.StatusCode}
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
		return nil, err
	}
}

// checkContentRange checks that a 206's Content-Range ("bytes a-b/size")
// is the range asked for, of a blob of the expected size.
func checkContentRange(h string, off, n, size int64) error {
	bad := fmt.Errorf("Content-Range %q for bytes %d-%d of %d: %w", h, off, off+n-1, size, errdefs.ErrInvalidArgument)
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return bad
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad
	}
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || a != off || b != off+n-1 {
		return bad
	}
	if total != "*" {
		if t, err := strconv.ParseInt(total, 10, 64); err != nil || t != size {
			return bad
		}
	}
	return nil
}

// copyRanges stores d in dst from parts fetched at once as Range requests.
// All are asked for together (a registry takes some milliseconds to answer
// a blob GET), but the first answer decides: a registry that answers it
// with the whole blob, or fails it, gets the blob stored as a plain
// download, and the other requests are dropped. A later range that fails
// to come also ends in a plain download, once PushAt has dropped what it
// had.
func copyRanges(ctx context.Context, src *pullSource, dst *pullDest, rt RangeTarget, d ocispec.Descriptor, parts int) error {
	bounds := make([]int64, parts+1)
	for i := range bounds {
		bounds[i] = d.Size * int64(i) / int64(parts)
	}
	type answer struct {
		rc  io.ReadCloser
		err error
	}
	// The later parts' requests live until copyRanges returns.
	laterCtx, cancelLater := context.WithCancel(ctx)
	later := make([]chan answer, parts)
	taken := make([]bool, parts)
	for i := 1; i < parts; i++ {
		later[i] = make(chan answer, 1)
		go func() {
			rc, err := src.fetchRange(laterCtx, d, bounds[i], bounds[i+1]-bounds[i])
			later[i] <- answer{rc, err}
		}()
	}
	defer func() {
		cancelLater()
		for i := 1; i < parts; i++ {
			if !taken[i] {
				if a := <-later[i]; a.rc != nil {
					a.rc.Close()
				}
			}
		}
	}()

	first, err := src.fetchRange(ctx, d, 0, bounds[1])
	if errors.Is(err, errWholeBlob) {
		sr := newStreamReader(ctx, first, d, src.verify, Downloading, src.progress)
		defer sr.Close()
		return dst.Push(ctx, d, sr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		// A registry or proxy that mangles ranges (416, a wrong
		// Content-Range) may still serve the blob whole; if it cannot,
		// the plain GET reports why.
		rc, err := src.fetch(ctx, d, nil, nil)
		if err != nil {
			return err
		}
		defer rc.Close()
		return dst.Push(ctx, d, rc)
	}
	var closeFirst sync.Once
	defer closeFirst.Do(func() { first.Close() }) // when PushAt found the blob stored

	var done, reported atomic.Int64
	count := func(n int) {
		total := done.Add(int64(n))
		if r := reported.Load(); (total-r >= reportEvery || total == d.Size) && reported.CompareAndSwap(r, total) {
			src.progress.emit(d, Downloading, total)
		}
	}
	err = rt.PushAt(ctx, d, func(ctx context.Context, w io.WriterAt) error {
		g, ctx := errgroup.WithContext(ctx)
		for i := range parts {
			g.Go(func() error {
				off, n := bounds[i], bounds[i+1]-bounds[i]
				var rc io.ReadCloser
				if i == 0 {
					rc = first
					defer closeFirst.Do(func() { first.Close() })
				} else {
					var a answer
					select {
					case a = <-later[i]:
						taken[i] = true
					case <-ctx.Done():
						return context.Cause(ctx)
					}
					if a.rc != nil {
						defer a.rc.Close()
					}
					if a.err != nil {
						err := a.err
						if errors.Is(err, errWholeBlob) {
							err = fmt.Errorf("registry answered a range after the first with the whole blob: %w", errdefs.ErrNotSupported)
						}
						return &rangeError{fmt.Errorf("bytes %d-%d: %w", off, off+n-1, err)}
					}
					rc = a.rc
				}
				if err := copyPart(ctx, w, rc, off, n, count); err != nil {
					return fmt.Errorf("bytes %d-%d: %w", off, off+n-1, err)
				}
				return nil
			})
		}
		return g.Wait()
	})
	var re *rangeError
	if errors.As(err, &re) && ctx.Err() == nil {
		// A later range could not be had (PushAt kept nothing): the
		// blob comes whole instead.
		rc, err := src.fetch(ctx, d, nil, nil)
		if err != nil {
			return err
		}
		defer rc.Close()
		return dst.Push(ctx, d, rc)
	}
	return err
}

// rangeError is a later range that could not be requested; the blob is
// then fetched whole.
type rangeError struct{ err error }

func (e *rangeError) Error() string { return e.err.Error() }
func (e *rangeError) Unwrap() error { return e.err }

// copyPart writes the n bytes r yields to w from off on, reading the next
// chunk while the last is written, and fails if r yields fewer. It checks
// ctx between chunks; count is told of each chunk written.
func copyPart(ctx context.Context, w io.WriterAt, r io.Reader, off, n int64, count func(int)) error {
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- iobuf.Get()
	}
	defer func() {
		for range len(free) {
			iobuf.Put(<-free)
		}
	}()
	full := make(chan []byte, nbuf)
	werr := make(chan error, 1)
	stop := make(chan struct{}) // closed when a write fails
	go func() {
		var err error
		at := off
		for b := range full {
			if err == nil {
				if _, err = w.WriteAt(b, at); err == nil {
					at += int64(len(b))
					count(len(b))
				} else {
					close(stop)
				}
			}
			free <- b[:cap(b)]
		}
		werr <- err
	}()
	var read int64
	var err error
	for read < n {
		if err = ctx.Err(); err != nil {
			break
		}
		var b []byte
		select {
		case b = <-free:
		case <-stop:
		}
		if b == nil {
			break // the write error is the one to report
		}
		m, rerr := io.ReadFull(r, b[:min(int64(len(b)), n-read)])
		if m > 0 {
			read += int64(m)
			full <- b[:m]
		} else {
			free <- b
		}
		if rerr != nil {
			if read < n {
				err = fmt.Errorf("%d of %d bytes: %w", read, n, io.ErrUnexpectedEOF)
				if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
					err = rerr
				}
			}
			break
		}
	}
	close(full)
	if e := <-werr; e != nil {
		return e
	}
	return err
}
