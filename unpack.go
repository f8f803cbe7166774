package dock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
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

// unpacker applies the layers of an image being pulled while later layers
// still download. A layer is applied from its download stream when the
// unpacker takes that stream as the download starts, so that decompressing
// it does not wait for its last byte; otherwise from the store once there.
// On overlay (window mode) several layers are applied at once and a stream
// is taken for any layer while there is room; elsewhere only for the layer
// applied next.
type unpacker struct {
	h        *Host
	ctx      context.Context
	cancel   context.CancelCauseFunc
	progress func(Progress)

	mu      sync.Mutex
	arrival map[digest.Digest]chan struct{}
	layers  map[digest.Digest]int // each layer's first index in the manifest
	next    int                   // the only layer a stream is taken for, when window is 0
	// window, when not 0, is how many layers unpackLayers decompresses at
	// once, in any order: a stream is then taken for any layer not yet
	// started while fewer than window layers are being decompressed.
	window   int
	pending  map[digest.Digest]bool // layers not started yet (window mode)
	inflight int                    // layers being decompressed (window mode)
	attach   map[digest.Digest]chan struct{}
	streams  map[digest.Digest]*io.PipeReader // attached, not yet taken
	ended    bool                             // no more streams are taken
	started  bool
	changed  chan struct{} // closed and replaced as a blob arrives or a stream attaches
	done     chan struct{}
	err      error
}

func (h *Host) newUnpacker(ctx context.Context, progress func(Progress)) *unpacker {
	ctx, cancel := context.WithCancelCause(ctx)
	return &unpacker{h: h, ctx: ctx, cancel: cancel, progress: progress,
		arrival: map[digest.Digest]chan struct{}{}, layers: map[digest.Digest]int{},
		attach: map[digest.Digest]chan struct{}{}, streams: map[digest.Digest]*io.PipeReader{},
		changed: make(chan struct{}), done: make(chan struct{})}
}

// stream is asked as the download of d starts whether the unpacker takes
// its bytes as they arrive: only for the layer it is about to apply, one
// stream at a time, so that a download waiting for its reader never waits
// for another download; in window mode for a layer not started yet while
// fewer than window layers are being decompressed or waiting to be, so
// that its reader comes at once. The pipe paces that download by the
// unpack.
func (u *unpacker) stream(d ocispec.Descriptor) (io.Writer, func(error)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i, ok := u.layers[d.Digest]
	if !ok || u.ended || u.streams[d.Digest] != nil {
		return nil, nil
	}
	if u.window > 0 {
		if !u.pending[d.Digest] || u.inflight+len(u.streams) >= u.window {
			return nil, nil
		}
	} else if i != u.next {
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
	u.signal()
	return pw, func(err error) { pw.CloseWithError(err) }
}

// signal wakes those waiting on changes; the caller holds u.mu.
func (u *unpacker) signal() {
	close(u.changed)
	u.changed = make(chan struct{})
}

// changes returns a channel closed at the next arrival or attached stream.
func (u *unpacker) changes() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.changed
}

// ready tells, without waiting, whether layer d can be read (window mode):
// its download stream when one is attached, which the caller then owns and
// which claim has counted, or arrived when the blob is in the store.
func (u *unpacker) ready(d digest.Digest) (pr *io.PipeReader, arrived bool) {
	ch := u.chanFor(d)
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-ch:
		arrived = true
	default:
	}
	if pr = u.streams[d]; pr != nil {
		delete(u.streams, d)
		delete(u.attach, d)
		if arrived {
			// A blob in the store wins: a stream attached for it was cut.
			pr.Close()
			return nil, true
		}
		// Claimed with the stream, so that stream never counts it free.
		delete(u.pending, d)
		u.inflight++
	}
	return pr, arrived
}

// claim marks layer d as started (window mode): no stream is taken for it
// any more, and it counts as being decompressed until ls is.
func (u *unpacker) claim(d digest.Digest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.pending, d)
	u.inflight++
}

// release ends what claim counted, once ls is decompressed (or failed to
// open, when ls is nil).
func (u *unpacker) release(ls *layerSource) {
	if ls != nil {
		<-ls.pf.Decompressed()
	}
	u.mu.Lock()
	u.inflight--
	u.mu.Unlock()
}

// skip marks layer d as not to be unpacked (window mode), dropping a stream
// attached for it: its download goes on into the store.
func (u *unpacker) skip(d digest.Digest) {
	u.mu.Lock()
	delete(u.pending, d)
	pr := u.streams[d]
	delete(u.streams, d)
	delete(u.attach, d)
	u.mu.Unlock()
	if pr != nil {
		go func() { io.Copy(io.Discard, pr); pr.Close() }()
	}
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
		u.signal()
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
	if _, ok := stackerOf(u.h.snap); ok {
		u.window = parallelUnpack
		u.pending = map[digest.Digest]bool{}
	}
	for i, l := range m.Layers {
		if _, ok := u.layers[l.Digest]; !ok {
			u.layers[l.Digest] = i
		}
		if u.pending != nil {
			u.pending[l.Digest] = true
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
	jobs := make([]layerJob, len(m.Layers))
	for i, l := range m.Layers {
		jobs[i] = layerJob{i: i, desc: l, diffID: cfg.RootFS.DiffIDs[i], chain: chains[i]}
		if i > 0 {
			jobs[i].parent = chains[i-1].String()
		}
	}
	err = u.h.unpackLayers(u.ctx, jobs, unpackerLayers{u, m}, unpackConfig{progress: u.progress, window: u.window})
	u.setNext(len(m.Layers), m)
	return err
}

// unpackerLayers serves the layers of a pull's manifest m to unpackLayers:
// from the download stream when the unpacker takes one, else from the
// store once there.
type unpackerLayers struct {
	u *unpacker
	m ocispec.Manifest
}

// nextLayer takes in order the lowest layer, from its stream or the store.
// Otherwise it takes first a layer whose download stream is attached (the
// download waits for it), else of the layers in the store the largest
// (decompressing the largest first keeps the cores busy to the end), else
// waits for one or the other.
func (ul unpackerLayers) nextLayer(ctx context.Context, pending []layerJob, inOrder bool) (int, *layerSource, error) {
	u := ul.u
	if inOrder {
		u.setNext(pending[0].i, ul.m)
		pr, err := u.source(ctx, pending[0].desc.Digest)
		if err != nil {
			return 0, nil, err
		}
		ls, err := u.h.openLayer(ctx, pending[0], pr, 1)
		return 0, ls, err
	}
	for {
		changed := u.changes()
		var pr *io.PipeReader
		best := -1
		for k, j := range pending {
			p, arrived := u.ready(j.desc.Digest)
			if p != nil {
				pr, best = p, k
				break
			}
			if arrived && (best < 0 || j.desc.Size > pending[best].desc.Size) {
				best = k
			}
		}
		if best >= 0 {
			j := pending[best]
			if pr == nil {
				u.claim(j.desc.Digest)
			}
			ls, err := u.h.openLayer(ctx, j, pr, u.window)
			if err != nil {
				u.release(nil)
				return 0, nil, err
			}
			go u.release(ls)
			return best, ls, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, nil, context.Cause(ctx)
		}
	}
}

func (ul unpackerLayers) storedLayer(ctx context.Context, d digest.Digest) error {
	return ul.u.await(d)
}

func (ul unpackerLayers) skipped(j layerJob) {
	if ul.u.window > 0 {
		ul.u.skip(j.desc.Digest)
	}
}

// storeLayers serves layers from the store alone.
type storeLayers struct{ h *Host }

// nextLayer takes the largest layer first (see unpackerLayers.nextLayer).
func (sl storeLayers) nextLayer(ctx context.Context, pending []layerJob, inOrder bool) (int, *layerSource, error) {
	best := 0
	for k, j := range pending {
		if !inOrder && j.desc.Size > pending[best].desc.Size {
			best = k
		}
	}
	window := parallelUnpack
	if inOrder {
		window = 1
	}
	ls, err := sl.h.openLayer(ctx, pending[best], nil, window)
	return best, ls, err
}

func (storeLayers) storedLayer(context.Context, digest.Digest) error { return nil }

func (storeLayers) skipped(layerJob) {}

// layerOpener is where unpackLayers finds the layers' blobs.
type layerOpener interface {
	// nextLayer chooses one of pending (in layer order; with inOrder the
	// first), waits for its blob and starts decompressing it. It returns
	// the chosen one's index in pending.
	nextLayer(ctx context.Context, pending []layerJob, inOrder bool) (int, *layerSource, error)
	// storedLayer waits until the blob d is in the store.
	storedLayer(ctx context.Context, d digest.Digest) error
	// skipped tells that layer j is unpacked already.
	skipped(j layerJob)
}

// layerJob is one layer to unpack: its blob, the diffID its uncompressed
// stream must hash to, its chain ID (the name of its snapshot) and its
// parent's ("" for the first layer).
type layerJob struct {
	i      int
	desc   ocispec.Descriptor
	diffID digest.Digest
	chain  digest.Digest
	parent string
}

// unpackConfig tunes unpackLayers.
type unpackConfig struct {
	progress func(Progress)
	// window is how many layers are decompressed at once on a snapshotter
	// that can stack a layer after writing it (0: parallelUnpack).
	// Elsewhere it is 1.
	window int
	// written and committing, when set, are called once layer i has been
	// written (err tells how that went), and before it is committed. Tests
	// use them to force an order.
	written    func(i int, err error)
	committing func(i int)
}

// parallelUnpack is how many layers a pull decompresses and writes at once
// on overlay: inflate is the slowest part of a pull and one layer's inflate
// keeps one core busy. As many as the registry downloads at once (4), so
// that every download can be unpacked from its stream.
const parallelUnpack = 4

// prefetchBytes bounds how far the layers being unpacked are decompressed
// ahead of their writes, all together.
const prefetchBytes = 16 << 20

// layerSource is a layer being decompressed, from its download stream (pr)
// or from the store (f).
type layerSource struct {
	pf *archive.Prefetcher
	pr *io.PipeReader
	f  io.Closer
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

// openLayer starts decompressing layer j from pr, or when pr is nil from
// the store.
func (h *Host) openLayer(ctx context.Context, j layerJob, pr *io.PipeReader, window int) (*layerSource, error) {
	ls := &layerSource{pr: pr}
	var r io.Reader = pr
	if pr == nil {
		f, err := h.store.Fetch(ctx, j.desc)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", j.desc.Digest, err)
		}
		r, ls.f = f, f
	}
	pf, err := archive.Prefetch(r, j.desc.MediaType, prefetchBytes/max(window, 1))
	if err != nil {
		err = fmt.Errorf("layer %s: %w", j.desc.Digest, err)
		ls.close(err)
		return nil, err
	}
	ls.pf = pf
	return ls, nil
}

// layerRun is the outcome of one layer's unpack, for the layer above.
type layerRun struct {
	done chan struct{} // closed once the layer is committed or has failed
	err  error
}

// errBelowFailed ends a layer whose parent failed; the parent's error is
// the one reported.
var errBelowFailed = errors.New("the layer below failed")

// unpackLayers unpacks jobs, each over the one before, into the snapshots
// their chain IDs name, skipping those unpacked already.
//
// On the built-in overlay snapshotter, up to cfg.window layers are
// decompressed and written at once, in the order src chooses: each is
// written into a directory the snapshotter stages for it (an overlay upper
// directory does not depend on what lies below it); once its parent is
// committed, the directories it wrote into without naming them take the
// attributes the layers below give them, and the directory is committed as
// a snapshot over its parent. So snapshots are still committed bottom up,
// each only over a complete parent. Elsewhere layers are opened in order,
// the next once the one before is decompressed (one core decompresses
// while another writes), and a layer's snapshot is prepared only once its
// parent is committed. The first error cancels the layers in flight, which
// leave no snapshot and no staged directory; the layers below it that were
// committed stay.
func (h *Host) unpackLayers(ctx context.Context, jobs []layerJob, src layerOpener, cfg unpackConfig) error {
	st, stacks := stackerOf(h.snap)
	window := 1
	if stacks {
		window = cfg.window
		if window <= 0 {
			window = parallelUnpack
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	slots := make(chan struct{}, window)
	runs := make([]*layerRun, len(jobs))
	var pending []layerJob
	for k, j := range jobs {
		runs[k] = &layerRun{done: make(chan struct{})}
		if h.hasSnapshot(ctx, j.chain) {
			close(runs[k].done)
			src.skipped(j)
			continue
		}
		pending = append(pending, j)
	}
	// pos maps a layer's index in the manifest to its place in jobs.
	pos := make(map[int]int, len(jobs))
	for k, j := range jobs {
		pos[j.i] = k
	}
	for len(pending) > 0 {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			fail(context.Cause(ctx))
		}
		if ctx.Err() != nil {
			break
		}
		n, ls, err := src.nextLayer(ctx, pending, st == nil)
		if err != nil {
			<-slots
			fail(err)
			break
		}
		j := pending[n]
		pending = slices.Delete(pending, n, n+1)
		k := pos[j.i]
		run, below := runs[k], (*layerRun)(nil)
		if k > 0 {
			below = runs[k-1]
		}
		wg.Add(2)
		go func() {
			// The slot is free once the layer is decompressed.
			defer wg.Done()
			select {
			case <-ls.pf.Decompressed():
			case <-run.done:
			}
			<-slots
		}()
		go func() {
			defer wg.Done()
			waitBelow := func() error {
				if below == nil {
					return nil
				}
				select {
				case <-below.done:
					if below.err != nil {
						return errBelowFailed
					}
					return nil
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
			run.err = h.unpackFrom(ctx, j, ls, src, st, waitBelow, cfg)
			if run.err != nil {
				fail(run.err)
			}
			close(run.done)
		}()
	}
	// Layers never started fail those above that wait for them.
	for _, j := range pending {
		run := runs[pos[j.i]]
		run.err = errBelowFailed
		close(run.done)
	}
	wg.Wait()
	return firstErr
}

// unpackFrom unpacks layer j from ls, and should that fail while ls is a
// download stream, from the store once the download has put the blob
// there (a failed download fails the pull; a blob another program stored
// meanwhile serves).
func (h *Host) unpackFrom(ctx context.Context, j layerJob, ls *layerSource, src layerOpener, st stacker, waitBelow func() error, cfg unpackConfig) error {
	progress, unpacked := cfg.progress, false
	if ls.pr != nil && progress != nil {
		// A layer unpacked from its download is reported so once the
		// download has reported it stored, not before.
		progress = func(p Progress) {
			if p.State == ProgressUnpacked {
				unpacked = true
				return
			}
			cfg.progress(p)
		}
	}
	err := h.unpackLayer(ctx, j, ls.pf, st, waitBelow, progress, cfg)
	// A failed unpack fails the download it reads.
	ls.close(err)
	if err == nil {
		if unpacked {
			if err := src.storedLayer(ctx, j.desc.Digest); err != nil {
				return err
			}
			cfg.progress(Progress{Digest: j.desc.Digest.String(), MediaType: j.desc.MediaType, State: ProgressUnpacked, Total: j.desc.Size})
		}
		return nil
	}
	if ls.pr == nil || errors.Is(err, errBelowFailed) || ctx.Err() != nil {
		return err
	}
	if err := src.storedLayer(ctx, j.desc.Digest); err != nil {
		return err
	}
	return h.unpackLayer(ctx, j, nil, st, waitBelow, cfg.progress, cfg)
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
	if err := h.unpackImage(ctx, img, unpackConfig{}); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name, err)
	}
	return nil
}

// unpackImage unpacks img's layers from the store.
func (h *Host) unpackImage(ctx context.Context, img *Image, cfg unpackConfig) error {
	jobs := make([]layerJob, len(img.Layers))
	for i, l := range img.Layers {
		jobs[i] = layerJob{i: i, desc: ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, diffID: l.DiffID, chain: l.ChainID}
		if i > 0 {
			jobs[i].parent = img.Layers[i-1].ChainID.String()
		}
	}
	return h.unpackLayers(ctx, jobs, storeLayers{h}, cfg)
}

func (h *Host) hasSnapshot(ctx context.Context, chain digest.Digest) bool {
	info, err := h.snap.Stat(ctx, chain.String())
	return err == nil && info.Kind == KindCommitted
}

// unpackLayer applies layer j, read from src or else from the store, and
// commits the result as the snapshot j.chain over j.parent. waitBelow
// returns once the parent is committed. With st (overlay), the layer is
// written into a directory staged outside any snapshot while the parent may
// still be under way, and committed over the parent once waitBelow
// returns; otherwise it waits before preparing its snapshot over the
// parent. What src yields is trusted only because its uncompressed stream
// must hash to j.diffID. A concurrent unpack of the same chain by another
// process is not an error: one of them wins.
func (h *Host) unpackLayer(ctx context.Context, j layerJob, src io.Reader, st stacker, waitBelow func() error, progress func(Progress), cfg unpackConfig) error {
	l := j.desc
	report := func(s ProgressState) {
		if progress != nil {
			progress(Progress{Digest: l.Digest.String(), MediaType: l.MediaType, State: s, Total: l.Size})
		}
	}
	report(ProgressUnpacking)
	var err error
	if st != nil {
		err = h.unpackStacked(ctx, j, src, st, waitBelow, cfg)
	} else {
		err = h.unpackOver(ctx, j, src, waitBelow, cfg)
	}
	if errors.Is(err, ErrAlreadyExists) {
		err = nil // another program committed the same layer first
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	report(ProgressUnpacked)
	return nil
}

// unpackStacked writes layer j into a staged directory, then, once the
// layer below is committed, gives the directories it wrote into without
// naming them the attributes the layers below give them, and commits it
// over its parent.
func (h *Host) unpackStacked(ctx context.Context, j layerJob, src io.Reader, st stacker, waitBelow func() error, cfg unpackConfig) error {
	dir, release, err := st.StageDir(ctx)
	if err != nil {
		return err
	}
	defer release()
	size, implicit, err := h.writeLayer(ctx, j, src, dir, archive.WhiteoutOverlay, cfg)
	if err != nil {
		return err
	}
	if err := waitBelow(); err != nil {
		return err
	}
	if j.parent != "" && len(implicit) > 0 {
		lowers, err := st.LowerDirs(ctx, j.parent)
		if err != nil {
			return err
		}
		if err := archive.SetDirAttrs(ctx, dir, implicit, archive.OverlayLowerDir(lowers), false); err != nil {
			return err
		}
	}
	if cfg.committing != nil {
		cfg.committing(j.i)
	}
	labels := map[string]string{sizeLabel: strconv.FormatInt(size, 10)}
	return st.CommitDir(ctx, j.chain.String(), j.parent, dir, optsTo([]SnapshotOpt{WithSnapshotLabels(labels)})...)
}

// unpackOver waits for the layer below, then writes layer j into a
// snapshot prepared over it and commits that.
func (h *Host) unpackOver(ctx context.Context, j layerJob, src io.Reader, waitBelow func() error, cfg unpackConfig) (err error) {
	if err := waitBelow(); err != nil {
		return err
	}
	key := "extract-" + randomHex(6) + "-" + j.chain.Encoded()[:12]
	// The lock tells other programs opening the root that this unpack is
	// alive; one left unlocked belongs to a program that died mid-unpack.
	unlock, err := h.lockScratch(key)
	if err != nil {
		return err
	}
	defer unlock()
	mounts, err := h.snap.Prepare(ctx, key, j.parent)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			h.snap.Remove(context.WithoutCancel(ctx), key)
		}
	}()
	dir, mode, done, err := h.applyTarget(mounts)
	if err != nil {
		return err
	}
	size, implicit, err := h.writeLayer(ctx, j, src, dir, mode, cfg)
	if err == nil && mode == archive.WhiteoutOverlay {
		// Written into an overlay upper directory over its parent.
		err = archive.SetDirAttrs(ctx, dir, implicit, archive.OverlayLowerDir(overlayLowers(mounts)), false)
	}
	if derr := done(); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	if cfg.committing != nil {
		cfg.committing(j.i)
	}
	labels := map[string]string{sizeLabel: strconv.FormatInt(size, 10)}
	// On an error, ErrAlreadyExists included, the deferred Remove drops key.
	return h.snap.Commit(ctx, j.chain.String(), key, WithSnapshotLabels(labels))
}

// writeLayer applies layer j, read from src or else from the store, into
// dir and syncs it. It returns the layer's tar size and the directories it
// wrote into without naming them.
func (h *Host) writeLayer(ctx context.Context, j layerJob, src io.Reader, dir string, mode archive.WhiteoutMode, cfg unpackConfig) (int64, []string, error) {
	r, rc := src, io.NopCloser(src)
	if src == nil {
		f, err := h.store.Fetch(ctx, j.desc)
		if err != nil {
			return 0, nil, err
		}
		r, rc = f, f
	}
	var size int64
	var implicit []string
	_, err := archive.ApplyLayer(ctx, dir, r, j.desc.MediaType, j.diffID, archive.ApplyOptions{
		Whiteouts:      mode,
		Progress:       func(n int64) { size = n },
		StartWriteback: true,
		ImplicitDirs:   &implicit,
	})
	if cfg.written != nil {
		cfg.written(j.i, err)
	}
	if err == nil && src != nil {
		// The rest of the blob (nothing, for a well-formed one) and how
		// its download ended.
		_, err = io.Copy(io.Discard, src)
	}
	rc.Close()
	if err == nil {
		err = syncDir(dir)
	}
	return size, implicit, err
}

// overlayLowers returns the lower directories, newest first, of an overlay
// mount among mounts.
func overlayLowers(mounts []Mount) []string {
	for _, m := range mounts {
		if m.Type != "overlay" {
			continue
		}
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				return strings.Split(v, ":")
			}
		}
	}
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
			if h.snapshotterName() == "overlay" {
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
