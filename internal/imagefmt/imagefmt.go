// Package imagefmt loads and saves image archives: OCI image layouts (a
// directory or a tar of one) and docker-archive tars as `docker save` writes
// them. It works against any content store with the small [Store] interface,
// so it does not depend on how dock keeps its images.
//
// Archives are untrusted: member names may not leave the archive, JSON
// documents are size-bounded, every blob is verified against its digest on
// its way into the store, and nothing is tagged unless the whole archive
// loaded.
package imagefmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is the content store Load writes to and the Save functions read
// from; internal/store satisfies it, as do oras-go targets with a Tag.
type Store interface {
	// Fetch opens the blob desc describes.
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
	// Exists reports whether the blob desc describes is stored.
	Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	// Push stores the content of r as desc. It must verify size and digest
	// before the blob becomes visible, and may return nil without reading
	// r when the blob is already stored.
	Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error
	// Tag names the stored manifest or index desc.
	Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error
	// Resolve returns the descriptor a name or digest stands for.
	Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error)
}

// NamedDesc is an image by name and top-level descriptor (a manifest or an
// index). An empty Name means the image has none.
type NamedDesc struct {
	Name string
	Desc ocispec.Descriptor
}

// LoadedImage is an image Load stored. Name is as the archive spells it
// (an annotation or a RepoTags entry), not normalized.
type LoadedImage = NamedDesc

// Limits on what an archive may hold.
const (
	// MaxManifestSize bounds a manifest, an index and index.json.
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds an image config and docker's manifest.json.
	MaxConfigSize = 8 << 20
	// MaxEntries bounds the number of tar members.
	MaxEntries = 1 << 16
	// MaxArchiveSize bounds a compressed archive once decompressed.
	MaxArchiveSize = 1 << 40
	// maxDepth bounds nested indexes.
	maxDepth = 4
	// maxDescriptors bounds the blobs one archive may reference.
	maxDescriptors = 1 << 14
)

// Annotation keys that carry an image's name.
const (
	// AnnotationImageName is containerd's (and docker's) full image name.
	AnnotationImageName = "io.containerd.image.name"
)

// Docker image media types.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// LoadOption changes what Load does.
type LoadOption func(*loadConfig)

type loadConfig struct {
	tag func(name string) (string, error)
}

// WithTag makes Load tag each named image it loaded with ref(name), once the
// whole archive is stored. A ref error fails Load before anything is tagged;
// an empty result leaves that image untagged.
func WithTag(ref func(name string) (string, error)) LoadOption {
	return func(c *loadConfig) { c.tag = ref }
}

// Load stores the images of the archive at path into st: an OCI image
// layout directory, a tar of one (as `docker save` of docker 25+ also
// writes), or a docker-archive tar with only manifest.json; a tar may be
// gzip or zstd compressed. Docker-archive images are converted to OCI image
// manifests. It returns one LoadedImage per name (an image without a name
// once, with Name ""); names come from the io.containerd.image.name
// annotation, else org.opencontainers.image.ref.name, else RepoTags.
//
// On error, the content pushed so far stays in st unreferenced and nothing
// is tagged; the error names the archive member at fault.
func Load(ctx context.Context, st Store, path string, opts ...LoadOption) ([]LoadedImage, error) {
	var cfg loadConfig
	for _, o := range opts {
		o(&cfg)
	}
	src, err := openSource(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer src.Close()
	l := &loader{st: st, src: src, seen: map[digest.Digest]bool{}}
	var imgs []LoadedImage
	switch {
	case src.has(ocispec.ImageIndexFile):
		imgs, err = l.loadOCI(ctx)
	case src.has(dockerManifestFile):
		imgs, err = l.loadDocker(ctx)
	default:
		err = fmt.Errorf("neither %s nor %s found: %w", ocispec.ImageIndexFile, dockerManifestFile, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if cfg.tag != nil {
		refs := make([]string, len(imgs))
		for i, img := range imgs {
			if img.Name == "" {
				continue
			}
			if refs[i], err = cfg.tag(img.Name); err != nil {
				return nil, fmt.Errorf("load %s: name %q: %w", path, img.Name, err)
			}
		}
		for i, img := range imgs {
			if refs[i] == "" {
				continue
			}
			if err := st.Tag(ctx, img.Desc, refs[i]); err != nil {
				return nil, fmt.Errorf("load %s: %w", path, err)
			}
		}
	}
	return imgs, nil
}

// loader carries one Load's state.
type loader struct {
	st   Store
	src  source
	seen map[digest.Digest]bool
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

func checkDesc(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size %d: %w", d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readMember reads a whole member of at most limit bytes.
func (l *loader) readMember(name string, limit int64) ([]byte, error) {
	rc, size, err := l.src.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d: %w", name, size, limit, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", name, limit, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// readBlob reads the blob desc describes from the archive, verified.
func (l *loader) readBlob(desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, limit %d: %w", blobName(desc.Digest), desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	b, err := l.readMember(blobName(desc.Digest), limit)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("%s: %d bytes, descriptor says %d: %w", blobName(desc.Digest), len(b), desc.Size, errdefs.ErrInvalidArgument)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%s: content hashes to %s: %w", blobName(desc.Digest), got, errdefs.ErrDigestMismatch)
	}
	return b, nil
}

// pushMember streams the archive member name into the store as desc,
// unless the store has it already.
func (l *loader) pushMember(ctx context.Context, name string, desc ocispec.Descriptor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ok, err := l.st.Exists(ctx, desc); err != nil {
		return err
	} else if ok {
		return nil
	}
	rc, size, err := l.src.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size != desc.Size {
		return fmt.Errorf("%s: %d bytes, descriptor says %d: %w", name, size, desc.Size, errdefs.ErrInvalidArgument)
	}
	if err := l.st.Push(ctx, desc, newVerifier(rc, desc)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (l *loader) pushBytes(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	if ok, err := l.st.Exists(ctx, desc); err != nil {
		return err
	} else if ok {
		return nil
	}
	if err := l.st.Push(ctx, desc, bytes.NewReader(b)); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// verifier passes a blob through, failing at its end (instead of io.EOF)
// when the bytes are not what the descriptor says, so a store that trusted
// its caller still refuses them.
type verifier struct {
	r    io.Reader
	d    digest.Digester
	desc ocispec.Descriptor
	n    int64
}

func newVerifier(r io.Reader, desc ocispec.Descriptor) *verifier {
	return &verifier{r: r, d: desc.Digest.Algorithm().Digester(), desc: desc}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.d.Hash().Write(p[:n])
	if v.n > v.desc.Size {
		return n, fmt.Errorf("more than %d bytes: %w", v.desc.Size, errdefs.ErrInvalidArgument)
	}
	if errors.Is(err, io.EOF) {
		if v.n != v.desc.Size {
			return n, fmt.Errorf("%d bytes, descriptor says %d: %w", v.n, v.desc.Size, errdefs.ErrInvalidArgument)
		}
		if got := v.d.Digest(); got != v.desc.Digest {
			return n, fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrDigestMismatch)
		}
	}
	return n, err
}

// probe holds the fields that tell manifests from indexes; a document with
// the other kind's fields is refused so one blob cannot be read as both.
type probe struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	Manifests     json.RawMessage `json:"manifests"`
}

// checkDoc checks that b is a schema 2 document of media type mt.
func checkDoc(b []byte, mt string) error {
	var p probe
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("decode: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.SchemaVersion == nil || *p.SchemaVersion != 2 {
		return fmt.Errorf("schemaVersion is not 2: %w", errdefs.ErrInvalidArgument)
	}
	if p.MediaType != "" && p.MediaType != mt {
		return fmt.Errorf("mediaType %q, descriptor says %q: %w", p.MediaType, mt, errdefs.ErrInvalidArgument)
	}
	if isManifest(mt) && p.Manifests != nil {
		return fmt.Errorf("manifest has a manifests field: %w", errdefs.ErrInvalidArgument)
	}
	if isIndex(mt) && (p.Config != nil || p.Layers != nil) {
		return fmt.Errorf("index has config or layers: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func (l *loader) loadOCI(ctx context.Context) ([]LoadedImage, error) {
	if l.src.has(ocispec.ImageLayoutFile) {
		b, err := l.readMember(ocispec.ImageLayoutFile, 4096)
		if err != nil {
			return nil, err
		}
		var lay ocispec.ImageLayout
		if err := json.Unmarshal(b, &lay); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", ocispec.ImageLayoutFile, err, errdefs.ErrInvalidArgument)
		}
		if lay.Version != ocispec.ImageLayoutVersion {
			return nil, fmt.Errorf("%s: layout version %q: %w", ocispec.ImageLayoutFile, lay.Version, errdefs.ErrNotSupported)
		}
	}
	b, err := l.readMember(ocispec.ImageIndexFile, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	if err := checkDoc(b, ocispec.MediaTypeImageIndex); err != nil {
		return nil, fmt.Errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", ocispec.ImageIndexFile, err, errdefs.ErrInvalidArgument)
	}
	if len(idx.Manifests) > maxDescriptors {
		return nil, fmt.Errorf("%s: %d entries: %w", ocispec.ImageIndexFile, len(idx.Manifests), errdefs.ErrInvalidArgument)
	}
	var imgs []LoadedImage
	for _, d := range idx.Manifests {
		if err := l.importDesc(ctx, d, 0); err != nil {
			return nil, err
		}
		name := d.Annotations[AnnotationImageName]
		if name == "" {
			name = d.Annotations[ocispec.AnnotationRefName]
		}
		imgs = append(imgs, LoadedImage{Name: name, Desc: plainDesc(d)})
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%s: no images: %w", ocispec.ImageIndexFile, errdefs.ErrInvalidArgument)
	}
	return imgs, nil
}

// plainDesc is d without annotations and other decoration, as a store tags it.
func plainDesc(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// importDesc stores desc and everything it references, children first, so a
// manifest is visible only once its config and layers are.
func (l *loader) importDesc(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	if err := checkDesc(desc); err != nil {
		return err
	}
	if l.seen[desc.Digest] {
		return nil
	}
	if len(l.seen) >= maxDescriptors {
		return fmt.Errorf("more than %d blobs: %w", maxDescriptors, errdefs.ErrInvalidArgument)
	}
	l.seen[desc.Digest] = true
	name := blobName(desc.Digest)
	if !l.src.has(name) {
		// Content the store holds need not be in the archive.
		if ok, err := l.st.Exists(ctx, desc); err != nil {
			return err
		} else if ok {
			return nil
		}
		return fmt.Errorf("%s: %w", name, errdefs.ErrNotFound)
	}
	switch {
	case isManifest(desc.MediaType):
		b, err := l.readBlob(desc, MaxManifestSize)
		if err != nil {
			return err
		}
		if err := checkDoc(b, desc.MediaType); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %v: %w", name, err, errdefs.ErrInvalidArgument)
		}
		if len(m.Layers) > maxDescriptors {
			return fmt.Errorf("%s: %d layers: %w", name, len(m.Layers), errdefs.ErrInvalidArgument)
		}
		for _, c := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := checkDesc(c); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if l.seen[c.Digest] {
				continue
			}
			l.seen[c.Digest] = true
			if err := l.pushMember(ctx, blobName(c.Digest), c); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return l.pushBytes(ctx, desc, b)
	case isIndex(desc.MediaType):
		if depth >= maxDepth {
			return fmt.Errorf("%s: indexes nested deeper than %d: %w", name, maxDepth, errdefs.ErrInvalidArgument)
		}
		b, err := l.readBlob(desc, MaxManifestSize)
		if err != nil {
			return err
		}
		if err := checkDoc(b, desc.MediaType); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("%s: %v: %w", name, err, errdefs.ErrInvalidArgument)
		}
		present := 0
		for _, c := range idx.Manifests {
			if err := checkDesc(c); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			// An archive of one platform of a multi-platform image keeps
			// the whole index but only that platform's manifest.
			if !l.src.has(blobName(c.Digest)) {
				if ok, err := l.st.Exists(ctx, c); err != nil {
					return err
				} else if !ok {
					continue
				}
			}
			present++
			if err := l.importDesc(ctx, c, depth+1); err != nil {
				return err
			}
		}
		if present == 0 && len(idx.Manifests) > 0 {
			return fmt.Errorf("%s: none of its %d manifests is in the archive: %w", name, len(idx.Manifests), errdefs.ErrNotFound)
		}
		return l.pushBytes(ctx, desc, b)
	default:
		return l.pushMember(ctx, name, desc)
	}
}
