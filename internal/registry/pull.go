package registry

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	oraserr "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
)

// Manifest media types of Docker's schema 2, besides the OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxManifestBytes bounds the manifests and configs read into memory.
const maxManifestBytes = 4 << 20

// defaultConcurrency is how many blobs move at once unless told otherwise.
const defaultConcurrency = 4

// PullOptions configures Pull.
type PullOptions struct {
	// Platform picks the manifest from a multi-platform index; nil means
	// the host's (GOOS/GOARCH, and the variant on arm). With a single
	// manifest it is checked against the image config when set.
	Platform *ocispec.Platform
	// Progress receives events from several goroutines at once; bytes are
	// reported as they stream.
	Progress func(Event)
	// Concurrency is how many blobs download at once; 0 means 4. A blob
	// fetched as parallel ranges (see RangeTarget) counts once.
	Concurrency int
	// OnBlob is called once for the config, each layer and last the
	// manifest, after each is stored in dst or found there already. It is
	// called from several goroutines, layers in any order; an error stops
	// the pull.
	OnBlob func(ctx context.Context, desc ocispec.Descriptor) error
	// OnManifest is called once with the chosen image manifest, before any
	// of its blobs is fetched, so that a caller can plan work on the layers
	// (unpacking them as they arrive) while they download. An error stops
	// the pull.
	OnManifest func(ctx context.Context, desc ocispec.Descriptor, m ocispec.Manifest) error
	// Stream, when set, is asked as each blob starts to download whether
	// the caller wants its bytes as they arrive rather than from dst once
	// stored (to unpack a layer while it downloads). A non-nil w receives
	// every byte in order, and a w that blocks paces the download; done is
	// then called once, with nil after the last byte of a blob of the
	// descriptor's size, or with the error that ended the stream. The
	// bytes w sees are not digest-checked (dst checks them as it stores
	// them): verify what is made of them by other means. Stream is not
	// consulted with a Concurrency of 1, where a writer waiting for its
	// reader would hold the only download.
	Stream func(desc ocispec.Descriptor) (w io.Writer, done func(error))
}

// Pull copies the image ref (a tag or a digest) of repo ("library/alpine")
// into dst: for a multi-platform index only the chosen platform's manifest,
// its config and layers, not the index itself. Blobs already in dst are not
// fetched. It returns the descriptor of the stored manifest; dst is not
// tagged, naming the image is the caller's.
func Pull(ctx context.Context, cfg Config, repo, ref string, dst Target, opts PullOptions) (ocispec.Descriptor, error) {
	desc, err := pull(ctx, cfg, repo, normalizeRef(ref), dst, opts)
	if err != nil {
		return ocispec.Descriptor{}, cfg.wrap("pull", repo, err)
	}
	return desc, nil
}

func pull(ctx context.Context, cfg Config, repo, ref string, dst Target, opts PullOptions) (ocispec.Descriptor, error) {
	s, err := newSession(cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer s.close()
	r, err := s.repository(repo)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	progress := progressFunc(opts.Progress)
	name := cfg.host() + "/" + repo + refSuffix(ref)

	// One GET answers for the reference: its descriptor and content, with
	// no HEAD before it.
	root, rc, err := r.FetchReference(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if !isIndex(root.MediaType) && !isManifest(root.MediaType) {
		rc.Close()
		return ocispec.Descriptor{}, fmt.Errorf("%s: media type %q: %w", name, root.MediaType, errdefs.ErrNotSupported)
	}
	rootBytes, err := readVerified(ctx, rc, root, maxManifestBytes)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	src := &pullSource{repo: r, progress: progress, cached: map[digest.Digest][]byte{root.Digest: rootBytes}, verify: true}
	if vt, ok := dst.(VerifyingTarget); ok && vt.VerifiesContent() {
		src.verify = false // sizes are still checked as bytes stream
	}
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	if concurrency > 1 {
		src.stream = opts.Stream
	}

	want := HostPlatform()
	if opts.Platform != nil {
		want = *opts.Platform
	}
	desc, b := root, rootBytes
	if isIndex(root.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("index %s: %v: %w", root.Digest, err, errdefs.ErrInvalidArgument)
		}
		if desc, err = PickPlatform(idx.Manifests, want, name); err != nil {
			return ocispec.Descriptor{}, err
		}
		if !isManifest(desc.MediaType) {
			return ocispec.Descriptor{}, fmt.Errorf("%s: media type %q: %w", name, desc.MediaType, errdefs.ErrNotSupported)
		}
		if b, err = src.fetchBytes(ctx, desc); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if opts.Platform != nil && desc.Digest == root.Digest && isImageConfig(m.Config.MediaType) {
		if err := checkConfigPlatform(ctx, src, m.Config, want, name); err != nil {
			return ocispec.Descriptor{}, err
		}
	}

	if opts.OnManifest != nil {
		if err := opts.OnManifest(ctx, desc, m); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	children := uniqueBlobs(append([]ocispec.Descriptor{m.Config}, m.Layers...))
	for _, c := range children {
		progress.emit(c, Waiting, 0)
	}
	stored := func(ctx context.Context, d ocispec.Descriptor, st State) error {
		progress.emit(d, st, d.Size)
		if opts.OnBlob != nil {
			return opts.OnBlob(ctx, d)
		}
		return nil
	}
	pd := &pullDest{Target: dst, root: desc, children: children}
	whole, err := pd.Exists(ctx, desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if whole {
		for _, c := range children {
			if err := stored(ctx, c, Exists); err != nil {
				return ocispec.Descriptor{}, err
			}
		}
		if err := stored(ctx, desc, Exists); err != nil {
			return ocispec.Descriptor{}, err
		}
		return desc, nil
	}
	if err := copyBlobs(ctx, src, pd, downloadOrder(children, src.stream != nil), concurrency, progress, stored); err != nil {
		return ocispec.Descriptor{}, err
	}
	// The manifest goes last, so that it is stored only once everything it
	// names is.
	if err := pd.Push(ctx, desc, bytes.NewReader(b)); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := stored(ctx, desc, Done); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// uniqueBlobs drops repeated digests, keeping the first of each.
func uniqueBlobs(descs []ocispec.Descriptor) []ocispec.Descriptor {
	seen := make(map[digest.Digest]bool, len(descs))
	out := descs[:0:0]
	for _, d := range descs {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d)
		}
	}
	return out
}

// downloadOrder is the order in which blobs claim download slots. When a
// caller streams layers as they arrive it wants them in manifest order (the
// config first); otherwise the largest go first, so that the longest
// download does not wait for a slot and end last, alone.
func downloadOrder(blobs []ocispec.Descriptor, streaming bool) []ocispec.Descriptor {
	order := slices.Clone(blobs)
	if !streaming {
		slices.SortStableFunc(order, func(a, b ocispec.Descriptor) int { return cmp.Compare(b.Size, a.Size) })
	}
	return order
}

// copyBlobs stores each of blobs in dst that it lacks, concurrency at a
// time, claiming slots in the order given. stored is called for each blob
// once it is stored or found present; the first error stops the others.
func copyBlobs(ctx context.Context, src *pullSource, dst *pullDest, blobs []ocispec.Descriptor, concurrency int, progress progressFunc,
	stored func(context.Context, ocispec.Descriptor, State) error) error {
	// Workers take blobs from a queue, so that slots go in order rather
	// than to whichever goroutine the scheduler runs first.
	queue := make(chan ocispec.Descriptor, len(blobs))
	var missing []ocispec.Descriptor
	for _, d := range blobs {
		ok, err := dst.Target.Exists(ctx, d)
		if err != nil {
			return err
		}
		if ok {
			if err := stored(ctx, d, Exists); err != nil {
				return err
			}
			continue
		}
		missing = append(missing, d)
	}
	for _, d := range missing {
		queue <- d
	}
	close(queue)
	parts := map[digest.Digest]int{}
	for i, n := range splitParts(missing) {
		parts[missing[i].Digest] = n
	}
	g, ctx := errgroup.WithContext(ctx)
	for range min(concurrency, len(missing)) {
		g.Go(func() error {
			for d := range queue {
				if err := copyBlob(ctx, src, dst, d, parts[d.Digest], progress); err != nil {
					return err
				}
				if err := stored(ctx, d, Done); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// copyBlob stores d in dst, in parts (Range requests at once) when parts is
// above 1, the destination can take them and no caller streams d.
func copyBlob(ctx context.Context, src *pullSource, dst *pullDest, d ocispec.Descriptor, parts int, progress progressFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	progress.emit(d, Downloading, 0)
	var tee io.Writer
	var teeDone func(error)
	if src.stream != nil {
		tee, teeDone = src.stream(d)
	}
	if rt, ok := dst.Target.(RangeTarget); ok && tee == nil && parts > 1 && !src.verify {
		return copyRanges(ctx, src, dst, rt, d, parts)
	}
	rc, err := src.fetch(ctx, d, tee, teeDone)
	if err != nil {
		return err
	}
	defer rc.Close()
	return dst.Push(ctx, d, rc)
}

func refSuffix(ref string) string {
	if strings.Contains(ref, ":") {
		return "@" + ref
	}
	return ":" + ref
}

// pullSource reads from the registry, verifying (unless the destination
// does) and reporting each stream, and serves manifests already read from
// memory.
type pullSource struct {
	repo     *remote.Repository
	progress progressFunc
	verify   bool
	stream   func(ocispec.Descriptor) (io.Writer, func(error))
	mu       sync.Mutex
	cached   map[digest.Digest][]byte
}

// fetch opens desc for reading from memory or the registry; tee, when not
// nil, receives the bytes as they are read and teeDone is called once as
// the stream ends (also when it fails to open).
func (s *pullSource) fetch(ctx context.Context, desc ocispec.Descriptor, tee io.Writer, teeDone func(error)) (io.ReadCloser, error) {
	s.mu.Lock()
	b, ok := s.cached[desc.Digest]
	s.mu.Unlock()
	var rc io.ReadCloser
	if ok {
		rc = io.NopCloser(bytes.NewReader(b))
	} else {
		var err error
		if rc, err = s.repo.Fetch(ctx, desc); err != nil {
			if teeDone != nil {
				teeDone(err)
			}
			return nil, err
		}
	}
	sr := newStreamReader(ctx, rc, desc, s.verify, Downloading, s.progress)
	sr.tee, sr.teeDone = tee, teeDone
	return sr, nil
}

// fetchBytes reads a manifest or config into memory, verified, and keeps it
// for the copy that follows.
func (s *pullSource) fetchBytes(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := s.repo.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	b, err := readVerified(ctx, rc, desc, maxManifestBytes)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached[desc.Digest] = b
	s.mu.Unlock()
	return b, nil
}

// pullDest is the destination as Pull sees it. The manifest counts as
// present only when its config and layers are too, so that an image left
// half-stored by an interrupted pull is completed rather than skipped; and
// "already exists" from a store that checks on Push is success.
type pullDest struct {
	Target
	root     ocispec.Descriptor
	children []ocispec.Descriptor
}

func (d *pullDest) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ok, err := d.Target.Exists(ctx, desc)
	if err != nil || !ok || desc.Digest != d.root.Digest {
		return ok, err
	}
	for _, c := range d.children {
		if ok, err := d.Target.Exists(ctx, c); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (d *pullDest) Push(ctx context.Context, expected ocispec.Descriptor, content io.Reader) error {
	err := d.Target.Push(ctx, expected, content)
	if sr, ok := content.(*streamReader); ok && err != nil && sr.err != nil {
		// The stream failed (digest, size, cancel): that is the cause,
		// whatever the store made of it.
		return sr.err
	}
	if errors.Is(err, errdefs.ErrAlreadyExists) || errors.Is(err, oraserr.ErrAlreadyExists) {
		return nil
	}
	return err
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isImageConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == "application/vnd.docker.container.image.v1+json"
}

// HostPlatform is the platform Pull picks by default: the running
// program's GOOS and GOARCH, with the variant on arm.
func HostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm":
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.TrimSuffix(strings.TrimSuffix(s.Value, ",softfloat"), ",hardfloat")
				}
			}
		}
	case "arm64":
		p.Variant = "v8"
	}
	return p
}

// normalizePlatform spells architectures and variants as Go and the OCI
// spec do, so that "aarch64" matches "arm64" and arm64 "" matches "v8".
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	switch strings.ToLower(p.Architecture) {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "8" || p.Variant == "v8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		p.Architecture = "arm"
		if p.Variant == "" {
			p.Variant = "v7"
		}
	case "i386", "i686":
		p.Architecture = "386"
	default:
		p.Architecture = strings.ToLower(p.Architecture)
	}
	return p
}

// platformMatches reports whether have satisfies want; an empty variant in
// want accepts any.
func platformMatches(want, have ocispec.Platform) bool {
	w, h := normalizePlatform(want), normalizePlatform(have)
	if w.OS != h.OS || w.Architecture != h.Architecture {
		return false
	}
	return want.Variant == "" || w.Variant == h.Variant
}

// FormatPlatform writes p as os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// noMatchError is a missing platform; it matches errdefs.ErrNotFound.
type noMatchError struct{ msg string }

func (e *noMatchError) Error() string        { return e.msg }
func (e *noMatchError) Is(target error) bool { return target == errdefs.ErrNotFound }

// PickPlatform returns the manifest of manifests (an index's) that runs on
// want; when none does, the error lists the platforms on offer in the image
// name.
func PickPlatform(manifests []ocispec.Descriptor, want ocispec.Platform, name string) (ocispec.Descriptor, error) {
	var offered []string
	for _, m := range manifests {
		if m.Platform == nil || !isManifest(m.MediaType) {
			continue
		}
		if platformMatches(want, *m.Platform) {
			return m, nil
		}
		if m.Platform.OS == "unknown" {
			continue // attestations and other non-images
		}
		offered = append(offered, FormatPlatform(*m.Platform))
	}
	has := "has none"
	if len(offered) > 0 {
		has = "has " + strings.Join(offered, ", ")
	}
	return ocispec.Descriptor{}, &noMatchError{fmt.Sprintf("no manifest for %s in %s (%s)", FormatPlatform(want), name, has)}
}

func checkConfigPlatform(ctx context.Context, src *pullSource, config ocispec.Descriptor, want ocispec.Platform, name string) error {
	b, err := src.fetchBytes(ctx, config)
	if err != nil {
		return err
	}
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return fmt.Errorf("config %s: %v: %w", config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if !platformMatches(want, img.Platform) {
		return &noMatchError{fmt.Sprintf("no manifest for %s in %s (has %s)", FormatPlatform(want), name, FormatPlatform(img.Platform))}
	}
	return nil
}
