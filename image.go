package dock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dockkit/dock/internal/store"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a handle on an image in the host's store: what its manifest and
// configuration say, read once when the handle was made.
type Image struct {
	Name     string        // the normalized reference it is stored under; "" when untagged
	Digest   digest.Digest // the image manifest's digest
	Platform ocispec.Platform
	Config   ocispec.Image // the image configuration: entrypoint, env, rootfs diff IDs, history
	Layers   []Layer       // bottom first
	Size     int64         // bytes of manifest, config and compressed layers
	Created  time.Time

	manifest ocispec.Descriptor
	h        *Host
}

// Layer is one filesystem diff of an image.
type Layer struct {
	Digest    digest.Digest // of the blob as stored (usually compressed)
	DiffID    digest.Digest // of the uncompressed tar
	MediaType string
	Size      int64 // bytes of the blob
	ChainID   digest.Digest

	h *Host
}

// Open returns the layer's blob as stored, usually compressed.
func (l Layer) Open(ctx context.Context) (io.ReadCloser, error) {
	return l.h.store.Fetch(ctx, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
}

// Manifest is the descriptor of the image's manifest.
func (img *Image) Manifest() ocispec.Descriptor { return img.manifest }

// Reference is img.Name parsed; the zero Reference for an untagged image.
func (img *Image) Reference() Reference {
	r, _ := ParseReference(img.Name)
	return r
}

// ID is the image's ID as docker prints it: the digest of its configuration.
func (img *Image) ID() digest.Digest {
	if img.manifest.Digest == "" {
		return ""
	}
	m, _ := img.h.store.ReadManifest(context.Background(), img.manifest)
	return m.Config.Digest
}

// chainIDs returns the chain ID of each layer: the identity of the layer
// stacked on all those below it.
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// loadImage reads the manifest desc and its configuration.
func (h *Host) loadImage(ctx context.Context, name string, desc ocispec.Descriptor) (*Image, error) {
	m, err := h.store.ReadManifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	cfg, err := h.store.ReadConfig(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s: config has %d diff IDs for %d layers: %w",
			desc.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers), ErrInvalidArgument)
	}
	img := &Image{
		Name:     name,
		Digest:   desc.Digest,
		Platform: cfg.Platform,
		Config:   cfg,
		Size:     desc.Size + m.Config.Size,
		manifest: desc,
		h:        h,
	}
	if cfg.Created != nil {
		img.Created = *cfg.Created
	}
	chains := chainIDs(cfg.RootFS.DiffIDs)
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{
			Digest: l.Digest, DiffID: cfg.RootFS.DiffIDs[i], MediaType: l.MediaType,
			Size: l.Size, ChainID: chains[i], h: h,
		})
		img.Size += l.Size
	}
	return img, nil
}

// Image finds an image in the store by reference ("alpine", a full
// reference, or a manifest digest "sha256:…"), or fails with ErrNotFound.
func (h *Host) Image(ctx context.Context, ref string) (*Image, error) {
	name, desc, err := h.resolveLocal(ctx, ref)
	if err != nil {
		return nil, err
	}
	return h.loadImage(ctx, name, desc)
}

func (h *Host) resolveLocal(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	if d, err := digest.Parse(ref); err == nil {
		desc, err := h.store.Resolve(ctx, d.String())
		if err != nil {
			return "", desc, fmt.Errorf("image %s: %w", ref, err)
		}
		return "", desc, nil
	}
	r, err := ParseReference(ref)
	if err != nil {
		// An ID prefix, as docker accepts.
		if desc, name, ok := h.resolvePrefix(ctx, ref); ok {
			return name, desc, nil
		}
		return "", ocispec.Descriptor{}, err
	}
	desc, err := h.store.Resolve(ctx, r.String())
	if err != nil {
		if desc, name, ok := h.resolvePrefix(ctx, ref); ok {
			return name, desc, nil
		}
		return "", desc, fmt.Errorf("image %s: %w", r.Familiar(), ErrNotFound)
	}
	return r.String(), desc, nil
}

// resolvePrefix finds the one image whose manifest or config digest starts
// with the hex prefix s (at least 4 characters).
func (h *Host) resolvePrefix(ctx context.Context, s string) (ocispec.Descriptor, string, bool) {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) < 4 || strings.Trim(s, "0123456789abcdef") != "" {
		return ocispec.Descriptor{}, "", false
	}
	entries, err := h.store.List(ctx)
	if err != nil {
		return ocispec.Descriptor{}, "", false
	}
	var found []store.Entry
	for _, e := range entries {
		if strings.HasPrefix(e.Descriptor.Digest.Encoded(), s) {
			found = append(found, e)
			continue
		}
		if m, err := h.store.ReadManifest(ctx, e.Descriptor); err == nil && strings.HasPrefix(m.Config.Digest.Encoded(), s) {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return ocispec.Descriptor{}, "", false
	}
	for _, f := range found[1:] {
		if f.Descriptor.Digest != found[0].Descriptor.Digest {
			return ocispec.Descriptor{}, "", false
		}
	}
	return found[0].Descriptor, found[0].Name, true
}

// Images lists the images in the store, one entry per name.
func (h *Host) Images(ctx context.Context) ([]*Image, error) {
	entries, err := h.store.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, e := range entries {
		if !isManifest(e.Descriptor.MediaType) {
			continue
		}
		img, err := h.loadImage(ctx, e.Name, e.Descriptor)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", e.Name, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == store.MediaTypeDockerManifest
}

// Tag gives the image found by src the additional name dst.
func (h *Host) Tag(ctx context.Context, src, dst string) error {
	_, desc, err := h.resolveLocal(ctx, src)
	if err != nil {
		return err
	}
	r, err := ParseReference(dst)
	if err != nil {
		return err
	}
	if r.Digest != "" {
		return fmt.Errorf("tag %s: a tag cannot carry a digest: %w", dst, ErrInvalidArgument)
	}
	return h.store.Tag(ctx, desc, r.String())
}

// RemoveImage removes the name ref from the store. When no other name refers
// to the same image, its blobs and the snapshots no other image or container
// uses are removed too. A digest removes every name of that image.
func (h *Host) RemoveImage(ctx context.Context, ref string) error {
	name, desc, err := h.resolveLocal(ctx, ref)
	if err != nil {
		return err
	}
	entries, err := h.store.List(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Descriptor.Digest != desc.Digest || (name != "" && e.Name != name) {
			continue
		}
		if err := h.store.Untag(ctx, e.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return h.Prune(ctx)
}

// Prune removes blobs and snapshots that no image and no container uses.
func (h *Host) Prune(ctx context.Context) error {
	keep, chains, err := h.inUse(ctx)
	if err != nil {
		return err
	}
	if _, err := h.store.GC(ctx, keep); err != nil {
		return err
	}
	return h.pruneSnapshots(ctx, chains)
}
