// Package archive applies and builds image layers: tar streams, optionally
// gzip- or zstd-compressed, that describe a change set of a root filesystem.
//
// Every layer is untrusted. Apply resolves each entry inside the target root
// (openat2 with RESOLVE_IN_ROOT), creates the final component relative to a
// directory descriptor without following symlinks, bounds entry counts, name
// lengths and sizes, and refuses an entry that tries to leave the root with
// an error naming the entry and the rule it broke.
package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// WhiteoutMode says how Apply renders the deletions a layer records.
type WhiteoutMode int

const (
	// WhiteoutOverlay writes deletions the way overlayfs reads them: .wh.NAME
	// becomes a 0/0 character device NAME and .wh..wh..opq sets
	// trusted.overlay.opaque=y on its directory. Use it to apply into an
	// empty overlay upper directory.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutDelete carries deletions out: .wh.NAME removes NAME and its
	// subtree, .wh..wh..opq empties the directory of what lower layers put
	// there (entries this same layer wrote stay). Use it to apply onto a full
	// copy of the parent tree.
	WhiteoutDelete
)

// Limits bound what one layer may do, so that a hostile layer fails with an
// error instead of exhausting inodes or the disk. A zero field takes the
// value of DefaultLimits.
type Limits struct {
	MaxEntries   int   // tar entries, whiteouts included
	MaxNameLen   int   // bytes in an entry name or link target
	MaxFileSize  int64 // bytes in one regular file
	MaxTotalSize int64 // bytes of regular file content in the layer
}

// DefaultLimits returns limits generous enough for any real image layer.
func DefaultLimits() Limits {
	return Limits{
		MaxEntries:   1 << 21,  // 2M entries; large distro images hold ~100k
		MaxNameLen:   4096,     // PATH_MAX
		MaxFileSize:  64 << 30, // 64 GiB
		MaxTotalSize: 256 << 30,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = d.MaxNameLen
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = d.MaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = d.MaxTotalSize
	}
	return l
}

// ApplyOptions configures Apply and ApplyLayer.
type ApplyOptions struct {
	Whiteouts WhiteoutMode
	Limits    Limits
	// NoSameOwner leaves files owned by the calling user instead of the
	// owners the layer records, and skips device nodes the kernel refuses
	// (an unprivileged or rootless caller).
	NoSameOwner bool
	// Progress, when set, is called after each entry and at the end of the
	// tar with the number of tar bytes read so far.
	Progress func(n int64)
	// ParentAttrs, when set, gives the owner and mode of a directory the
	// layer writes into without naming it, as the layers below hold it.
	// Applying into an overlay upper directory needs it: a parent made
	// there with default attributes would hide the lower one's (a 1777
	// /tmp turning 0755).
	ParentAttrs func(rel string) (uid, gid int, mode os.FileMode, ok bool)
	// StartWriteback starts writing each large file to disk as soon as it
	// is written, for a caller that syncs the tree afterwards: the sync
	// then finds less to write.
	StartWriteback bool
	// ImplicitDirs, when set, receives after a successful Apply the
	// directories (relative to root, sorted) that the layer made because
	// it wrote into them without naming them, and did not name later.
	// It lets a caller that applies into an overlay upper directory
	// before the layers below are complete give those directories their
	// lower attributes afterwards (see SetDirAttrs), instead of through
	// ParentAttrs while applying.
	ImplicitDirs *[]string
}

// IDMap maps a range of ids inside a user namespace to host ids.
type IDMap struct {
	ContainerID, HostID, Size uint32
}

// DiffOptions change how a diff is written.
type DiffOptions struct {
	// UIDMap and GIDMap, when set, write owners as the user namespace
	// they describe sees them: a file the namespace's root made, owned
	// by its host uid, goes into the layer as uid 0. Host ids outside the
	// maps become 65534, the namespace's overflow id.
	UIDMap, GIDMap []IDMap
}

// toContainer maps the host id to the one maps show inside; with no maps,
// ids stay as they are.
func toContainer(maps []IDMap, id uint32) int {
	if len(maps) == 0 {
		return int(id)
	}
	for _, m := range maps {
		if id >= m.HostID && uint64(id) < uint64(m.HostID)+uint64(m.Size) {
			return int(m.ContainerID + (id - m.HostID))
		}
	}
	return 65534
}

// DirAttrs is what a directory that a layer writes into without naming it
// takes from the layers below: its owner, mode and times.
type DirAttrs struct {
	UID, GID     int
	Mode         os.FileMode // permission bits with setuid, setgid and sticky
	Atime, Mtime time.Time
}

// EntryError reports a layer entry that Apply refused or could not write.
// It matches errdefs.ErrInvalidArgument when the layer broke a rule.
type EntryError struct {
	Name string // the entry's name as the tar spells it
	Rule string // the rule the entry broke, or what was being done
	Err  error  // the cause
}

func (e *EntryError) Error() string {
	if e.Err == nil || errors.Is(e.Err, errdefs.ErrInvalidArgument) && e.Rule != "" {
		return fmt.Sprintf("layer entry %q: %s", e.Name, e.Rule)
	}
	if e.Rule == "" {
		return fmt.Sprintf("layer entry %q: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("layer entry %q: %s: %v", e.Name, e.Rule, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// refuse makes the error for an entry that broke a rule of the layer format.
func refuse(name, rule string) error {
	return &EntryError{Name: name, Rule: rule, Err: errdefs.ErrInvalidArgument}
}

// Media type fragments that name a compression.
const (
	mtGzip = "gzip"
	mtZstd = "zstd"
)

// compressionOf returns "gzip", "zstd", "" (plain) or "?" (unknown) for an
// OCI or Docker layer media type.
func compressionOf(mediaType string) string {
	switch {
	case mediaType == "":
		return "?"
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".gzip"),
		strings.HasSuffix(mediaType, "/gzip"):
		return mtGzip
	case strings.HasSuffix(mediaType, "+zstd"), strings.HasSuffix(mediaType, ".zstd"),
		strings.HasSuffix(mediaType, "/zstd"):
		return mtZstd
	case strings.HasSuffix(mediaType, ".tar"), strings.HasSuffix(mediaType, "/x-tar"):
		return ""
	}
	return "?"
}

// maxZstdWindow bounds the memory a zstd frame may ask for (128 MiB, what
// zstd --long=27 produces; the format's usual limit is 8 MiB).
const maxZstdWindow = 128 << 20

// Decompress returns the uncompressed stream of r. mediaType, when it names
// a compression, decides; otherwise the first bytes do (gzip, zstd, or else
// plain tar). Closing the result releases the decoder, not r. It decodes in
// the caller's goroutine; ApplyLayer runs it ahead in its own.
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	rc, _, err := decompress(r, mediaType)
	return rc, err
}

// decompress is Decompress that also says which compression it found.
func decompress(r io.Reader, mediaType string) (io.ReadCloser, string, error) {
	kind := compressionOf(mediaType)
	br := bufio.NewReaderSize(r, 64<<10)
	if kind == "?" {
		magic, err := br.Peek(4)
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			kind = mtGzip
		case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			kind = mtZstd
		case err != nil && err != io.EOF:
			return nil, "", fmt.Errorf("layer: %w", err)
		default:
			kind = ""
		}
	}
	switch kind {
	case mtGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("layer: gzip: %w", err)
		}
		return zr, kind, nil
	case mtZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, "", fmt.Errorf("layer: zstd: %w", err)
		}
		return zstdReadCloser{zr}, kind, nil
	}
	return io.NopCloser(br), "", nil
}

type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error { z.Decoder.Close(); return nil }

// Compress returns a writer that compresses into w as mediaType says: zstd
// for a "+zstd" type, nothing for a plain tar type, gzip otherwise (the
// type every registry and runtime reads). Close flushes the compressor,
// not w.
func Compress(w io.Writer, mediaType string) (io.WriteCloser, error) {
	switch compressionOf(mediaType) {
	case mtZstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("layer: zstd: %w", err)
		}
		return zw, nil
	case "":
		return nopWriteCloser{w}, nil
	case mtGzip, "?":
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return nil, fmt.Errorf("layer: gzip: %w", err)
		}
		return zw, nil
	}
	return nil, fmt.Errorf("layer media type %q: %w", mediaType, errdefs.ErrNotSupported)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// ApplyLayer decompresses a layer blob, applies it into root and returns the
// digest of the uncompressed stream (the layer's diffID). When wantDiffID is
// set and differs, the error matches errdefs.ErrDigestMismatch; root then
// holds a partly applied layer that the caller removes.
//
// Decompression runs in its own goroutine, ahead of the file writes, so
// that the two overlap on separate cores. The diffID is hashed on the
// writing side when the layer is compressed (decompressing is then the
// slower side), on the reading side when it is not.
func ApplyLayer(ctx context.Context, root string, compressed io.Reader, mediaType string, wantDiffID digest.Digest, opts ApplyOptions) (digest.Digest, error) {
	algo := digest.Canonical
	if wantDiffID != "" {
		if err := wantDiffID.Validate(); err != nil {
			return "", fmt.Errorf("diffID %q: %w: %v", wantDiffID, errdefs.ErrInvalidArgument, err)
		}
		algo = wantDiffID.Algorithm()
	}
	h := algo.Hash()
	var ra *readAhead
	if pf, ok := compressed.(*Prefetcher); ok {
		// Decompressing already; its owner closes it.
		ra = pf.ra
		ra.h = h
	} else {
		dec, kind, err := decompress(compressed, mediaType)
		if err != nil {
			return "", err
		}
		defer dec.Close()
		if kind == "" {
			ra = newReadAhead(io.TeeReader(dec, h), readAheadChunks)
		} else {
			ra = newReadAhead(dec, readAheadChunks)
			ra.h = h
		}
		defer ra.Close()
	}
	if _, err := Apply(ctx, root, ra, opts); err != nil {
		return "", err
	}
	// The diffID covers the whole stream, padding after the tar's end
	// included; reading to EOF also makes gzip check its CRC.
	lim := opts.Limits.withDefaults().MaxTotalSize
	if n, err := io.Copy(io.Discard, io.LimitReader(ra, lim)); err != nil {
		return "", fmt.Errorf("layer: %w", err)
	} else if n == lim {
		return "", fmt.Errorf("layer: trailing data after the tar exceeds %d bytes: %w", lim, errdefs.ErrInvalidArgument)
	}
	got := digest.NewDigest(algo, h)
	if wantDiffID != "" && got != wantDiffID {
		return got, fmt.Errorf("layer diffID: got %s, want %s: %w", got, wantDiffID, errdefs.ErrDigestMismatch)
	}
	return got, nil
}

// Prefetcher decompresses a layer in its own goroutine, up to a bound
// ahead of its reader, so that a layer can be decompressed while the one
// below it is still being written. ApplyLayer given a Prefetcher reads from
// it directly.
type Prefetcher struct {
	ra  *readAhead
	dec io.ReadCloser
}

// Prefetch starts decompressing r as Decompress would, keeping at most limit
// bytes (rounded up to the chunk size) decompressed ahead of the reader.
// Close the Prefetcher, then r.
func Prefetch(r io.Reader, mediaType string, limit int) (*Prefetcher, error) {
	dec, _, err := decompress(r, mediaType)
	if err != nil {
		return nil, err
	}
	n := (limit + readAheadChunk - 1) / readAheadChunk
	return &Prefetcher{ra: newReadAhead(dec, max(n, readAheadChunks)), dec: dec}, nil
}

// Read returns the decompressed stream.
func (p *Prefetcher) Read(b []byte) (int, error) { return p.ra.Read(b) }

// Decompressed is closed once the whole stream has been decompressed (or
// decompressing failed), though not all of it may have been read.
func (p *Prefetcher) Decompressed() <-chan struct{} { return p.ra.gone }

// Close stops decompressing and releases the decoder; it does not close
// the source.
func (p *Prefetcher) Close() error {
	p.ra.Close()
	return p.dec.Close()
}

// readAhead runs a reader in its own goroutine and hands its output over in
// large chunks, so that decompression overlaps with whatever consumes it.
// Chunks are allocated as needed, up to a bound.
type readAhead struct {
	full  chan chunk
	free  chan []byte
	spare int // chunks fill may still allocate
	done  chan struct{}
	gone  chan struct{} // closed when fill returns
	once  sync.Once
	cur   []byte    // unread part of buf
	buf   []byte    // chunk being consumed, returned to free when empty
	h     hash.Hash // when set, gets every byte Read hands out
	err   error
	ended bool
}

type chunk struct {
	b   []byte
	err error
}

const (
	readAheadChunk  = iobuf.Size
	readAheadChunks = 8
)

func newReadAhead(src io.Reader, chunks int) *readAhead {
	ra := &readAhead{
		full:  make(chan chunk, chunks),
		free:  make(chan []byte, chunks),
		done:  make(chan struct{}),
		gone:  make(chan struct{}),
		spare: chunks,
	}
	go ra.fill(src)
	return ra
}

func (ra *readAhead) fill(src io.Reader) {
	defer close(ra.gone)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		default:
			if ra.spare > 0 {
				ra.spare--
				b = getChunk()
				break
			}
			select {
			case b = <-ra.free:
			case <-ra.done:
				return
			}
		}
		n, err := io.ReadFull(src, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.full <- chunk{b[:n], err}:
		case <-ra.done:
			putChunk(b)
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.ended {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		c := <-ra.full
		ra.buf, ra.cur = c.b, c.b
		if c.err != nil {
			ra.ended, ra.err = true, c.err
		}
	}
	n := copy(p, ra.cur)
	if ra.h != nil {
		ra.h.Write(ra.cur[:n])
	}
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine and waits for it to leave the source, which
// the caller may then close; it does not close the source itself.
func (ra *readAhead) Close() error {
	ra.once.Do(func() {
		close(ra.done)
		<-ra.gone
		// Nothing reads after Close: the chunks go back to the pool.
		if ra.buf != nil {
			putChunk(ra.buf)
			ra.buf, ra.cur = nil, nil
		}
		for {
			select {
			case b := <-ra.free:
				putChunk(b)
			case c := <-ra.full:
				putChunk(c.b)
			default:
				return
			}
		}
	})
	<-ra.gone
	return nil
}

// getChunk and putChunk take the read-ahead chunks from iobuf, which
// recycles them between layers and backs them with huge pages: 16 MiB of
// read-ahead in fresh 4 KiB pages cost some 4000 page faults a pull.
func getChunk() []byte { return iobuf.Get() }

func putChunk(b []byte) { iobuf.Put(b) }
