package dock

import (
	"context"
	"errors"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// inUse returns the manifests the store must keep besides its tagged images
// (those of containers) and the chain IDs of every snapshot still needed.
func (h *Host) inUse(ctx context.Context) ([]digest.Digest, map[string]bool, error) {
	chains := map[string]bool{}
	imgs, err := h.Images(ctx)
	if err != nil {
		return nil, nil, err
	}
	keep, err := h.containerImages(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range keep {
		desc, err := h.store.Resolve(ctx, d.String())
		if err != nil {
			continue
		}
		if img, err := h.loadImage(ctx, "", desc); err == nil {
			imgs = append(imgs, img)
		}
	}
	for _, img := range imgs {
		for _, l := range img.Layers {
			chains[l.ChainID.String()] = true
		}
	}
	return keep, chains, nil
}

// pruneSnapshots removes committed layer snapshots whose chain no image
// needs, leaves first. Snapshots with children still in use stay.
func (h *Host) pruneSnapshots(ctx context.Context, keep map[string]bool) error {
	for {
		parents := map[string]bool{}
		var committed []string
		err := h.snap.Walk(ctx, func(_ context.Context, info SnapshotInfo) error {
			if info.Parent != "" {
				parents[info.Parent] = true
			}
			if info.Kind == KindCommitted && strings.HasPrefix(info.Name, "sha256:") {
				committed = append(committed, info.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		removed := 0
		for _, name := range committed {
			if keep[name] || parents[name] {
				continue
			}
			if err := h.snap.Remove(ctx, name); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrWrongState) {
				return err
			}
			removed++
		}
		if removed == 0 {
			return nil
		}
	}
}

// UnpackedSize is the size of the image's unpacked layers, as the bytes of
// their uncompressed tars, or 0 when they are not all unpacked.
func (h *Host) UnpackedSize(ctx context.Context, img *Image) int64 {
	var n int64
	for _, l := range img.Layers {
		info, err := h.snap.Stat(ctx, l.ChainID.String())
		if err != nil {
			return 0
		}
		size, err := strconv.ParseInt(info.Labels[sizeLabel], 10, 64)
		if err != nil {
			// Unpacked by another tool: measure the tree.
			u, err := h.snap.Usage(ctx, l.ChainID.String())
			if err != nil {
				return 0
			}
			size = u.Size
		}
		n += size
	}
	return n
}
