package dock

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dockkit/dock/internal/archive"
	"github.com/dockkit/dock/internal/runtime"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// CommitOption configures Container.Commit.
type CommitOption func(*commitConfig) error

type commitConfig struct {
	config    *ocispec.ImageConfig
	mediaType string // of the new layer
	comment   string
}

// WithCommitConfig replaces the committed image's configuration, which is
// otherwise the container's image's.
func WithCommitConfig(c ocispec.ImageConfig) CommitOption {
	return func(cc *commitConfig) error {
		cc.config = &c
		return nil
	}
}

// WithCommitCompression compresses the new layer with "gzip" (the default)
// or "zstd".
func WithCommitCompression(name string) CommitOption {
	return func(cc *commitConfig) error {
		if name == "none" || layerMediaTypes[name] == "" {
			return fmt.Errorf("WithCommitCompression(%q): want gzip or zstd: %w", name, ErrInvalidArgument)
		}
		cc.mediaType = layerMediaTypes[name]
		return nil
	}
}

// WithCommitComment records comment in the new layer's history.
func WithCommitComment(comment string) CommitOption {
	return func(cc *commitConfig) error {
		cc.comment = comment
		return nil
	}
}

// Commit makes an image from the container: its image's layers and one more
// holding what the container changed, deletions as whiteouts. Commit a
// stopped or paused container to catch a consistent tree; a running one is
// read as it is.
func (c *Container) Commit(ctx context.Context, ref string, opts ...CommitOption) (*Image, error) {
	cc := commitConfig{mediaType: ocispec.MediaTypeImageLayerGzip}
	for _, o := range opts {
		if err := o(&cc); err != nil {
			return nil, err
		}
	}
	name, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if name.Digest != "" {
		return nil, fmt.Errorf("commit %s: a name cannot carry a digest: %w", ref, ErrInvalidArgument)
	}
	img, err := c.commit(ctx, name, &cc)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c.Name, err)
	}
	return img, nil
}

func (c *Container) commit(ctx context.Context, name Reference, cc *commitConfig) (*Image, error) {
	h := c.h
	desc, err := h.store.Resolve(ctx, c.ImageID.String())
	if err != nil {
		return nil, err
	}
	base, err := h.loadImage(ctx, "", desc)
	if err != nil {
		return nil, err
	}
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()

	mt := cc.mediaType
	parent := ""
	if n := len(base.Layers); n > 0 {
		parent = base.Layers[n-1].ChainID.String()
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(h.diffSnapshot(ctx, c.rec.SnapshotKey, parent, pw, diffOptions(&c.rec.Spec)))
	}()
	layer, diffID, err := h.addLayer(ctx, pr, mt)
	pr.CloseWithError(err)
	if err != nil {
		return nil, err
	}

	cfg := base.Config
	now := time.Now().UTC()
	cfg.Created = &now
	if cc.config != nil {
		cfg.Config = *cc.config
	}
	cfg.RootFS.DiffIDs = append(append(cfg.RootFS.DiffIDs[:0:0], cfg.RootFS.DiffIDs...), diffID)
	cfg.History = append(append(cfg.History[:0:0], cfg.History...), ocispec.History{
		Created: &now, CreatedBy: strings.Join(c.Command(), " "), Comment: cc.comment,
	})
	layers := make([]ocispec.Descriptor, 0, len(base.Layers)+1)
	for _, l := range base.Layers {
		layers = append(layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	layers = append(layers, layer)
	return h.writeImage(ctx, cfg, layers, name.String())
}

// diffSnapshot writes to w the tar of the changes the active snapshot key
// holds over its parent.
func (h *Host) diffSnapshot(ctx context.Context, key, parent string, w io.Writer, opts archive.DiffOptions) error {
	mounts, err := h.snap.Mounts(ctx, key)
	if err != nil {
		return err
	}
	if len(mounts) == 1 && mounts[0].Type == "overlay" {
		for _, o := range mounts[0].Options {
			if up, ok := strings.CutPrefix(o, "upperdir="); ok {
				return archive.DiffOverlay(ctx, up, w, opts)
			}
		}
	}
	if len(mounts) == 1 && (mounts[0].Type == "bind" || mounts[0].Type == "rbind") && parent == "" && h.snapshotterName() == "overlay" {
		return archive.DiffOverlay(ctx, mounts[0].Source, w, opts)
	}
	// Any other snapshotter: compare the trees.
	upper, doneUpper, err := h.mountTemp(mounts)
	if err != nil {
		return err
	}
	defer doneUpper()
	lower := ""
	if parent != "" {
		vkey := "diff-" + randomHex(6)
		vm, err := h.snap.View(ctx, vkey, parent)
		if err != nil {
			return err
		}
		defer h.snap.Remove(context.WithoutCancel(ctx), vkey)
		l, doneLower, err := h.mountTemp(vm)
		if err != nil {
			return err
		}
		defer doneLower()
		lower = l
	} else {
		empty, err := h.emptyDir()
		if err != nil {
			return err
		}
		defer removeAll(empty)
		lower = empty
	}
	return archive.DiffTrees(ctx, lower, upper, w, opts)
}

// diffOptions writes the layer of a container with a user namespace as the
// namespace sees its files: what its root wrote, owned on the host by the
// mapped uid, goes into the image as root's.
func diffOptions(spec *runtime.Spec) archive.DiffOptions {
	var o archive.DiffOptions
	if !slices.Contains(spec.Namespaces.New, "user") {
		return o
	}
	for _, m := range spec.Namespaces.UIDMap {
		o.UIDMap = append(o.UIDMap, archive.IDMap(m))
	}
	for _, m := range spec.Namespaces.GIDMap {
		o.GIDMap = append(o.GIDMap, archive.IDMap(m))
	}
	return o
}
