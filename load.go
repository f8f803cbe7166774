package dock

import (
	"context"
	"fmt"
	"io"

	"github.com/dockkit/dock/internal/imagefmt"
	"github.com/dockkit/dock/internal/registry"
	"github.com/dockkit/dock/internal/store"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ArchiveFormat names a tar format for Save.
type ArchiveFormat int

// Archive formats.
const (
	// DockerArchive is what `docker save` writes and `docker load` reads.
	DockerArchive ArchiveFormat = iota
	// OCIArchive is a tar of an OCI image layout.
	OCIArchive
)

// Load stores the images of the archive at path: an OCI image layout
// directory, a tar of one, or a `docker save` tar (plain, gzip or zstd).
// Images are named from their io.containerd.image.name or
// org.opencontainers.image.ref.name annotations, or docker's RepoTags. From
// a multi-platform index, the host's platform (or WithPlatform's) is kept.
// On error nothing is tagged.
func (h *Host) Load(ctx context.Context, path string, opts ...LoadOption) ([]*Image, error) {
	var c loadConfig
	for _, o := range opts {
		if err := o.applyLoad(&c); err != nil {
			return nil, err
		}
	}
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	loaded, err := imagefmt.Load(ctx, h.store, path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	want := registry.HostPlatform()
	if c.platform != nil {
		want = *c.platform
	}
	type named struct {
		name string
		desc ocispec.Descriptor
	}
	var todo []named
	for _, l := range loaded {
		desc := l.Desc
		if store.IsIndexType(desc.MediaType) {
			idx, err := h.store.ReadIndex(ctx, desc)
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", path, err)
			}
			if desc, err = registry.PickPlatform(idx.Manifests, want, l.Name); err != nil {
				return nil, fmt.Errorf("load %s: %w", path, err)
			}
		}
		name := ""
		if l.Name != "" {
			r, err := ParseReference(l.Name)
			if err != nil {
				return nil, fmt.Errorf("load %s: image name %q: %w", path, l.Name, err)
			}
			name = r.String()
		}
		todo = append(todo, named{name, desc})
	}
	var out []*Image
	for _, t := range todo {
		img, err := h.loadImage(ctx, t.name, t.desc)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		if !c.noUnpack {
			if err := h.Unpack(ctx, img); err != nil {
				return nil, fmt.Errorf("load %s: %w", path, err)
			}
		}
		out = append(out, img)
	}
	for _, t := range todo {
		if t.name == "" {
			continue
		}
		if err := h.store.Tag(ctx, t.desc, t.name); err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
	}
	return out, nil
}

// Save writes the images named by refs to w as one tar in format f.
func (h *Host) Save(ctx context.Context, w io.Writer, f ArchiveFormat, refs ...string) error {
	if len(refs) == 0 {
		return fmt.Errorf("save: no image named: %w", ErrInvalidArgument)
	}
	var imgs []imagefmt.NamedDesc
	for _, ref := range refs {
		name, desc, err := h.resolveLocal(ctx, ref)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		imgs = append(imgs, imagefmt.NamedDesc{Name: name, Desc: desc})
	}
	var err error
	switch f {
	case DockerArchive:
		err = imagefmt.SaveDocker(ctx, h.store, w, imgs)
	case OCIArchive:
		err = imagefmt.SaveOCI(ctx, h.store, w, imgs)
	default:
		return fmt.Errorf("save: format %d: %w", f, ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}
