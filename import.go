package dock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/dockkit/dock/internal/archive"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportOption configures Host.Import.
type ImportOption func(*importConfig) error

type importConfig struct {
	config    ocispec.ImageConfig
	mediaType string
	platform  ocispec.Platform
	history   string
}

// WithImageConfig sets the configuration of the imported image: its
// entrypoint, command, environment, working directory, user and so on.
func WithImageConfig(c ocispec.ImageConfig) ImportOption {
	return func(ic *importConfig) error {
		ic.config = c
		return nil
	}
}

// WithLayerCompression compresses the new layer with "gzip" (the default),
// "zstd", or "none".
func WithLayerCompression(name string) ImportOption {
	return func(ic *importConfig) error {
		mt, ok := layerMediaTypes[name]
		if !ok {
			return fmt.Errorf("WithLayerCompression(%q): want gzip, zstd or none: %w", name, ErrInvalidArgument)
		}
		ic.mediaType = mt
		return nil
	}
}

// layerMediaTypes names the media type of a layer compressed each way.
var layerMediaTypes = map[string]string{
	"gzip": ocispec.MediaTypeImageLayerGzip,
	"zstd": ocispec.MediaTypeImageLayerZstd,
	"none": ocispec.MediaTypeImageLayer,
}

// Import makes a one-layer image from the uncompressed tar stream r, like
// `docker import`, and stores it under ref.
func (h *Host) Import(ctx context.Context, r io.Reader, ref string, opts ...ImportOption) (*Image, error) {
	c := importConfig{
		mediaType: ocispec.MediaTypeImageLayerGzip,
		platform:  ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		history:   "imported by dock",
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	name, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	layer, diffID, err := h.addLayer(ctx, r, c.mediaType)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", name.Familiar(), err)
	}
	now := time.Now().UTC()
	cfg := ocispec.Image{
		Created:  &now,
		Platform: c.platform,
		Config:   c.config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []ocispec.History{{Created: &now, CreatedBy: c.history}},
	}
	img, err := h.writeImage(ctx, cfg, []ocispec.Descriptor{layer}, name.String())
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", name.Familiar(), err)
	}
	return img, nil
}

// addLayer compresses the tar stream r into the store as a layer blob of
// mediaType, returning its descriptor and its diff ID. The blob is staged in
// the root's scratch directory, since the store needs its digest up front.
func (h *Host) addLayer(ctx context.Context, r io.Reader, mediaType string) (ocispec.Descriptor, digest.Digest, error) {
	f, err := os.CreateTemp(filepath.Join(h.root, "tmp"), "layer-")
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()

	blob := digest.Canonical.Digester()
	diff := digest.Canonical.Digester()
	cw := &countWriter{w: io.MultiWriter(f, blob.Hash())}
	zw, err := archive.Compress(cw, mediaType)
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if _, err := io.Copy(io.MultiWriter(zw, diff.Hash()), &ctxReader{ctx: ctx, r: r}); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: blob.Digest(), Size: cw.n}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := h.store.Push(ctx, desc, f); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return desc, diff.Digest(), nil
}

// writeImage stores cfg and a manifest over layers, and tags it name when
// name is not empty.
func (h *Host) writeImage(ctx context.Context, cfg ocispec.Image, layers []ocispec.Descriptor, name string) (*Image, error) {
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	if err := h.store.Push(ctx, cdesc, bytes.NewReader(cb)); err != nil {
		return nil, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cdesc,
		Layers:    layers,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := h.store.Push(ctx, mdesc, bytes.NewReader(mb)); err != nil {
		return nil, err
	}
	if name != "" {
		if err := h.store.Tag(ctx, mdesc, name); err != nil {
			return nil, err
		}
	}
	return h.loadImage(ctx, name, mdesc)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
