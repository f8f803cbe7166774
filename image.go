package dock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	ID       digest.Digest // the image's ID as docker prints it: its configuration's digest
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
		ID:       m.Config.Digest,
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
		if desc, err := h.store.Resolve(ctx, d.String()); err == nil && isManifest(desc.MediaType) {
			return "", desc, nil
		}
		// A full image ID: the configuration's digest.
		return h.resolvePrefix(ctx, ref)
	}
	r, err := ParseReference(ref)
	if err != nil {
		if isHexID(ref) {
			return h.resolvePrefix(ctx, ref)
		}
		return "", ocispec.Descriptor{}, err
	}
	desc, err := h.store.Resolve(ctx, r.String())
	if err != nil {
		if isHexID(ref) {
			if name, desc, err := h.resolvePrefix(ctx, ref); err == nil {
				return name, desc, nil
			}
		}
		return "", desc, fmt.Errorf("image %s: %w", r.Familiar(), ErrNotFound)
	}
	return r.String(), desc, nil
}

// resolvePrefix finds the one image whose manifest or configuration digest
// starts with the hex prefix s (at least 4 digits), as docker takes IDs. The
// name returned is "" when the image has several names.
func (h *Host) resolvePrefix(ctx context.Context, s string) (string, ocispec.Descriptor, error) {
	hex := strings.TrimPrefix(s, "sha256:")
	if len(hex) < 4 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", ocispec.Descriptor{}, fmt.Errorf("image %s: %w", s, ErrNotFound)
	}
	entries, err := h.store.List(ctx)
	if err != nil {
		return "", ocispec.Descriptor{}, err
	}
	var found []store.Entry
	for _, e := range entries {
		if !isManifest(e.Descriptor.MediaType) {
			continue
		}
		if strings.HasPrefix(e.Descriptor.Digest.Encoded(), hex) {
			found = append(found, e)
			continue
		}
		if m, err := h.store.ReadManifest(ctx, e.Descriptor); err == nil && strings.HasPrefix(m.Config.Digest.Encoded(), hex) {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return "", ocispec.Descriptor{}, fmt.Errorf("image %s: %w", s, ErrNotFound)
	}
	for _, f := range found[1:] {
		if f.Descriptor.Digest != found[0].Descriptor.Digest {
			return "", ocispec.Descriptor{}, fmt.Errorf("image %s: ambiguous ID prefix: %w", s, ErrInvalidArgument)
		}
	}
	if len(found) > 1 {
		return "", found[0].Descriptor, nil
	}
	return found[0].Name, found[0].Descriptor, nil
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

// Tag gives the image found by src the additional name dst. An image dst
// named before keeps its other names; with none left it stays unnamed
// (dangling, as Docker has it) until [Host.PruneImages] or a RemoveImage
// by ID.
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

// RemoveImage removes the name ref from the store, as docker rmi does. When
// no name is left on the image, its blobs and the snapshots no other image
// or container uses are removed too. An image ID or digest removes every
// name of the image; it is refused with ErrWrongState when the image has
// several names, unless force is set. The last name of an image that a
// container uses is refused likewise.
func (h *Host) RemoveImage(ctx context.Context, ref string, force bool) error {
	name, desc, err := h.resolveLocal(ctx, ref)
	if err != nil {
		return err
	}
	entries, err := h.store.List(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Descriptor.Digest == desc.Digest {
			names = append(names, e.Name)
		}
	}
	untag := names
	if name != "" && slices.Contains(names, name) {
		untag = []string{name}
	} else if len(names) > 1 && !force {
		return fmt.Errorf("image %s has %d names (%s); remove them by name or force: %w",
			ref, len(names), strings.Join(names, ", "), ErrWrongState)
	}
	if len(untag) == len(names) && !force {
		used, err := h.containerImages(ctx)
		if err != nil {
			return err
		}
		if slices.Contains(used, desc.Digest) {
			return fmt.Errorf("image %s is used by a container; remove the container or force: %w", ref, ErrWrongState)
		}
	}
	for _, n := range untag {
		var err error
		if n == "" {
			err = h.store.RemoveUnnamed(ctx, desc.Digest)
		} else {
			err = h.store.Untag(ctx, n)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return h.Prune(ctx)
}

// PruneImages removes the images that have lost their last name to a tag
// or pull that moved it (Docker's dangling images, listed with no name)
// and that no container uses, then the blobs and snapshots nothing uses
// any more, as docker image prune does. It returns the manifest digests of
// the images it removed.
func (h *Host) PruneImages(ctx context.Context) ([]digest.Digest, error) {
	release, err := h.lockRoot(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer release()
	entries, err := h.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	used, err := h.containerImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	var removed []digest.Digest
	for _, e := range entries {
		d := e.Descriptor.Digest
		if e.Name == "" && isManifest(e.Descriptor.MediaType) && !slices.Contains(used, d) && !slices.Contains(removed, d) {
			removed = append(removed, d)
		}
	}
	if len(removed) > 0 {
		if err := h.store.RemoveUnnamed(ctx, removed...); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("prune: %w", err)
		}
	}
	return removed, h.pruneLocked(ctx)
}

// Prune removes blobs and snapshots that no image and no container uses. It
// waits for pulls, loads and creates under way in any program on the root.
func (h *Host) Prune(ctx context.Context) error {
	release, err := h.lockRoot(ctx, true)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	defer release()
	return h.pruneLocked(ctx)
}

// pruneLocked is Prune with the root locked.
func (h *Host) pruneLocked(ctx context.Context) error {
	keep, chains, err := h.inUse(ctx)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if _, err := h.store.GC(ctx, keep); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if err := h.pruneSnapshots(ctx, chains); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}
