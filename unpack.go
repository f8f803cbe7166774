package dock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/dockkit/dock/internal/archive"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sizeLabel records on a layer snapshot the bytes of its uncompressed tar,
// so that sizes are known without walking the tree.
const sizeLabel = "dock.size"

// unpacker applies the layers of an image being pulled as soon as each one
// and those below it are in the store, while later layers still download.
// The layer it needs next, when its download starts while the unpacker
// waits for it, is applied from the download stream itself instead, so
// that decompressing the lowest layer does not wait for its last byte.
type unpacker struct {
	h        *Host
	ctx      context.Context
	cancel   context.CancelCauseFunc
	progress func(Progress)

	mu      sync.Mutex
	arrival map[digest.Digest]chan struct{}
	layers  map[digest.Digest]int // each layer's first index in the manifest
	next    int                   // the only layer a stream is taken for
	attach  map[digest.Digest]chan struct{}
	streams map[digest.Digest]*io.PipeReader // attached, not yet taken
	ended   bool                             // no more streams are taken
	started bool
	done    chan struct{}
	err     error
}

func (h *Host) newUnpacker(ctx context.Context, progress func(Progress)) *unpacker {
	ctx, cancel := context.WithCancelCause(ctx)
	return &unpacker{h: h, ctx: ctx, cancel: cancel, progress: progress,
		arrival: map[digest.Digest]chan struct{}{}, layers: map[digest.Digest]int{},
		attach: map[digest.Digest]chan struct{}{}, streams: map[digest.Digest]*io.PipeReader{},
		done: make(chan struct{})}
}

// stream is asked as the download of d starts whether the unpacker takes
// its bytes as they arrive: only for the layer it is about to apply, one
// stream at a time, so that a download waiting for its reader never waits
// for another download. The pipe paces that download by the unpack.
func (u *unpacker) stream(d ocispec.Descriptor) (io.Writer, func(error)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i, ok := u.layers[d.Digest]
	if !ok || i != u.next || u.ended || u.streams[d.Digest] != nil {
		return nil, nil
	}
	if ch, ok := u.arrival[d.Digest]; ok {
		select {
		case <-ch:
			return nil, nil
		default:
		}
	}
	pr, pw := io.Pipe()
	u.streams[d.Digest] = pr
	ch, ok := u.attach[d.Digest]
	if !ok {
		ch = make(chan struct{})
		u.attach[d.Digest] = ch
	}
	close(ch)
	return pw, func(err error) { pw.CloseWithError(err) }
}

// setNext says which layer the unpacker applies next; a stream already
// attached for another layer is dropped (drained, so that its download
// goes on into the store).
func (u *unpacker) setNext(i int, m ocispec.Manifest) {
	u.mu.Lock()
	u.next = i
	var drop []*io.PipeReader
	for d, pr := range u.streams {
		if i >= len(m.Layers) || m.Layers[i].Digest != d {
			drop = append(drop, pr)
			delete(u.streams, d)
			delete(u.attach, d)
		}
	}
	u.mu.Unlock()
	for _, pr := range drop {
		go func() { io.Copy(io.Discard, pr); pr.Close() }()
	}
}

// source waits until layer d is in the store (it returns nil then) or its
// download stream is attached (it returns the stream, which the caller
// closes).
func (u *unpacker) source(ctx context.Context, d digest.Digest) (*io.PipeReader, error) {
	arrived := u.chanFor(d)
	u.mu.Lock()
	attached, ok := u.attach[d]
	if !ok {
		attached = make(chan struct{})
		u.attach[d] = attached
	}
	u.mu.Unlock()
	take := func() *io.PipeReader {
		u.mu.Lock()
		defer u.mu.Unlock()
		pr := u.streams[d]
		delete(u.streams, d)
		delete(u.attach, d)
		return pr
	}
	// A blob in the store wins: a stream attached for it then was cut.
	select {
	case <-arrived:
		if pr := take(); pr != nil {
			pr.Close()
		}
		return nil, nil
	default:
	}
	select {
	case <-arrived:
		if pr := take(); pr != nil {
			pr.Close()
		}
		return nil, nil
	case <-attached:
		if pr := take(); pr != nil {
			return pr, nil
		}
		// Dropped meanwhile: its download goes on into the store.
		select {
		case <-arrived:
			return nil, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// endStreams stops taking streams and fails those attached and not taken,
// so that no download waits for a reader that will not come.
func (u *unpacker) endStreams(err error) {
	if err == nil {
		err = context.Canceled
	}
	u.mu.Lock()
	u.ended = true
	streams := u.streams
	u.streams = map[digest.Digest]*io.PipeReader{}
	u.mu.Unlock()
	for _, pr := range streams {
		pr.CloseWithError(err)
	}
}

func (u *unpacker) chanFor(d digest.Digest) chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	ch, ok := u.arrival[d]
	if !ok {
		ch = make(chan struct{})
		u.arrival[d] = ch
	}
	return ch
}

// arrived records that the blob d is in the store.
func (u *unpacker) arrived(d ocispec.Descriptor) {
	ch := u.chanFor(d.Digest)
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// start begins unpacking the image whose manifest is m.
func (u *unpacker) start(m ocispec.Manifest) error {
	u.mu.Lock()
	if u.started {
		u.mu.Unlock()
		return nil
	}
	u.started = true
	for i, l := range m.Layers {
		if _, ok := u.layers[l.Digest]; !ok {
			u.layers[l.Digest] = i
		}
	}
	u.mu.Unlock()
	go func() {
		defer close(u.done)
		u.err = u.run(m)
		u.endStreams(u.err)
		if u.err != nil {
			u.cancel(u.err)
		}
	}()
	return nil
}

func (u *unpacker) await(d digest.Digest) error {
	select {
	case <-u.chanFor(d):
		return nil
	case <-u.ctx.Done():
		return context.Cause(u.ctx)
	}
}

func (u *unpacker) run(m ocispec.Manifest) error {
	if err := u.await(m.Config.Digest); err != nil {
		return err
	}
	cfg, err := u.h.store.ReadConfig(u.ctx, m.Config)
	if err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("config has %d diff IDs for %d layers: %w", len(cfg.RootFS.DiffIDs), len(m.Layers), ErrInvalidArgument)
	}
	chains := chainIDs(cfg.RootFS.DiffIDs)
	// One goroutine decompresses the layers in order, the next one as soon
	// as the one before is decompressed, while this one writes them: the
	// decompressor does not wait for a layer's last files, sync and commit.
	ctx, cancel := context.WithCancel(u.ctx)
	srcs := make(chan *layerSource)
	go u.decompressLayers(ctx, m, chains, srcs)
	defer func() {
		cancel()
		for ls := range srcs {
			ls.close(context.Canceled)
		}
	}()
	for ls := range srcs {
		if ls.err != nil {
			return ls.err
		}
		i, l := ls.i, m.Layers[ls.i]
		parent := ""
		if i > 0 {
			parent = chains[i-1].String()
		}
		progress, unpacked := u.progress, false
		if ls.pr != nil && progress != nil {
			// A layer unpacked from its download is reported so once the
			// download has reported it stored, not before.
			progress = func(p Progress) {
				if p.State == ProgressUnpacked {
					unpacked = true
					return
				}
				u.progress(p)
			}
		}
		err := u.h.unpackLayer(u.ctx, l, cfg.RootFS.DiffIDs[i], chains[i], parent, ls.pf, progress)
		// A failed unpack fails the download it reads.
		ls.close(err)
		if err == nil {
			if unpacked {
				if err := u.await(l.Digest); err != nil {
					return err
				}
				u.progress(Progress{Digest: l.Digest.String(), MediaType: l.MediaType, State: ProgressUnpacked, Total: l.Size})
			}
			continue
		}
		if ls.pr == nil {
			return err
		}
		// A failed download leaves the pull to fail, or (a blob another
		// program stored meanwhile) the store to serve the layer.
		if err := u.await(l.Digest); err != nil {
			return err
		}
		if err := u.h.unpackLayer(u.ctx, l, cfg.RootFS.DiffIDs[i], chains[i], parent, nil, u.progress); err != nil {
			return err
		}
	}
	return nil
}

// prefetchBytes bounds how far a layer is decompressed ahead of its writes.
const prefetchBytes = 16 << 20

// layerSource is a layer being decompressed, from its download stream (pr)
// or from the store (f).
type layerSource struct {
	i   int
	pf  *archive.Prefetcher
	pr  *io.PipeReader
	f   io.Closer
	err error
}

func (ls *layerSource) close(err error) {
	if ls.pf != nil {
		ls.pf.Close()
	}
	if ls.pr != nil {
		ls.pr.CloseWithError(unpackStopped(err))
	}
	if ls.f != nil {
		ls.f.Close()
	}
}

// decompressLayers sends to srcs, in order, each layer of m not unpacked
// yet, decompressing it; the next starts once the one before is
// decompressed, so that one core is left for the writes. An error ends
// the list.
func (u *unpacker) decompressLayers(ctx context.Context, m ocispec.Manifest, chains []digest.Digest, srcs chan<- *layerSource) {
	defer close(srcs)
	send := func(ls *layerSource) bool {
		select {
		case srcs <- ls:
			return true
		case <-ctx.Done():
			ls.close(context.Cause(ctx))
			return false
		}
	}
	for i, l := range m.Layers {
		if u.h.hasSnapshot(ctx, chains[i]) {
			u.setNext(i+1, m)
			continue
		}
		pr, err := u.source(ctx, l.Digest)
		if err != nil {
			send(&layerSource{i: i, err: err})
			return
		}
		ls := &layerSource{i: i, pr: pr}
		var r io.Reader = pr
		if pr == nil {
			f, err := u.h.store.Fetch(ctx, l)
			if err != nil {
				send(&layerSource{i: i, err: fmt.Errorf("layer %s: %w", l.Digest, err)})
				return
			}
			r, ls.f = f, f
		}
		if ls.pf, err = archive.Prefetch(r, l.MediaType, prefetchBytes); err != nil {
			err = fmt.Errorf("layer %s: %w", l.Digest, err)
			ls.close(err)
			send(&layerSource{i: i, err: err})
			return
		}
		if !send(ls) {
			return
		}
		select {
		case <-ls.pf.Decompressed():
		case <-ctx.Done():
			return
		}
		u.setNext(i+1, m)
	}
	u.setNext(len(m.Layers), m)
}

// unpackStopped is what a download stream's writer sees once its reader is
// gone: err, or after a complete unpack that left bytes unread, a plain
// stop.
func unpackStopped(err error) error {
	if err != nil {
		return err
	}
	return io.ErrClosedPipe
}

// failed returns the unpack's error once it has failed, else nil.
func (u *unpacker) failed() error {
	select {
	case <-u.done:
		return u.err
	default:
		return nil
	}
}

// wait returns once unpacking has ended, with its error.
func (u *unpacker) wait() error {
	u.mu.Lock()
	started := u.started
	u.mu.Unlock()
	if !started {
		return fmt.Errorf("unpack: no manifest was seen: %w", ErrInvalidArgument)
	}
	<-u.done
	return u.err
}

// abort stops unpacking and waits for it to end.
func (u *unpacker) abort() {
	u.cancel(context.Canceled)
	u.mu.Lock()
	started := u.started
	u.mu.Unlock()
	if started {
		<-u.done
	}
}

// Unpack applies the image's layers into snapshots where they are not
// already; Pull does this unless told not to.
func (h *Host) Unpack(ctx context.Context, img *Image) error {
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return err
	}
	defer release()
	for i, l := range img.Layers {
		if h.hasSnapshot(ctx, l.ChainID) {
			continue
		}
		parent := ""
		if i > 0 {
			parent = img.Layers[i-1].ChainID.String()
		}
		desc := ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
		if err := h.unpackLayer(ctx, desc, l.DiffID, l.ChainID, parent, nil, nil); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name, err)
		}
	}
	return nil
}

func (h *Host) hasSnapshot(ctx context.Context, chain digest.Digest) bool {
	info, err := h.snap.Stat(ctx, chain.String())
	return err == nil && info.Kind == KindCommitted
}

// unpackLayer applies the blob l, read from src or else from the store, on
// top of the snapshot parent and commits the result as the snapshot chain.
// What src yields is trusted only because its uncompressed stream must hash
// to diffID. A concurrent unpack of the same chain by another process is not
// an error: one of them wins.
func (h *Host) unpackLayer(ctx context.Context, l ocispec.Descriptor, diffID, chain digest.Digest, parent string, src io.Reader, progress func(Progress)) (err error) {
	report := func(s ProgressState) {
		if progress != nil {
			progress(Progress{Digest: l.Digest.String(), MediaType: l.MediaType, State: s, Total: l.Size})
		}
	}
	report(ProgressUnpacking)
	key := "extract-" + randomHex(6) + "-" + chain.Encoded()[:12]
	// The lock tells other programs opening the root that this unpack is
	// alive; one left unlocked belongs to a program that died mid-unpack.
	unlock, err := h.lockScratch(key)
	if err != nil {
		return err
	}
	defer unlock()
	mounts, err := h.snap.Prepare(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer func() {
		if err != nil {
			h.snap.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	dir, mode, done, err := h.applyTarget(mounts)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	r, rc := src, io.NopCloser(src)
	if src == nil {
		rc, err = h.store.Fetch(ctx, l)
		if err != nil {
			done()
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		r = rc
	}
	var size int64
	parents, closeParents := lowerAttrs(mounts)
	_, err = archive.ApplyLayer(ctx, dir, r, l.MediaType, diffID, archive.ApplyOptions{
		Whiteouts:      mode,
		Progress:       func(n int64) { size = n },
		ParentAttrs:    parents,
		StartWriteback: true,
	})
	closeParents()
	if err == nil && src != nil {
		// The rest of the blob (nothing, for a well-formed one) and how
		// its download ended.
		_, err = io.Copy(io.Discard, src)
	}
	rc.Close()
	if err == nil {
		err = syncDir(dir)
	}
	if derr := done(); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	labels := map[string]string{sizeLabel: strconv.FormatInt(size, 10)}
	if err := h.snap.Commit(ctx, chain.String(), key, WithSnapshotLabels(labels)); err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			h.snap.Remove(context.WithoutCancel(ctx), key)
			report(ProgressUnpacked)
			return nil
		}
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	report(ProgressUnpacked)
	return nil
}

// applyTarget finds the directory a layer should be written into for the
// snapshot shown by mounts, and how deletions must be written there.
func (h *Host) applyTarget(mounts []Mount) (dir string, mode archive.WhiteoutMode, done func() error, err error) {
	nop := func() error { return nil }
	if len(mounts) == 1 {
		m := mounts[0]
		switch m.Type {
		case "bind", "rbind":
			if h.snapName == "overlay" {
				return m.Source, archive.WhiteoutOverlay, nop, nil
			}
			return m.Source, archive.WhiteoutDelete, nop, nil
		case "overlay":
			for _, o := range m.Options {
				if up, ok := strings.CutPrefix(o, "upperdir="); ok {
					return up, archive.WhiteoutOverlay, nop, nil
				}
			}
		}
	}
	dir, done, err = h.mountTemp(mounts)
	return dir, archive.WhiteoutDelete, done, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
