package dock

import (
	"context"
	"errors"
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

// UnpackedSize is the disk the image's unpacked layers use, or 0 when they
// are not unpacked.
func (h *Host) UnpackedSize(ctx context.Context, img *Image) int64 {
	var n int64
	for _, l := range img.Layers {
		u, err := h.snap.Usage(ctx, l.ChainID.String())
		if err != nil {
			return 0
		}
		n += u.Size
	}
	return n
}
