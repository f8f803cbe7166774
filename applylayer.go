package dock

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/dockkit/dock/internal/archive"
	digest "github.com/opencontainers/go-digest"
)

// ApplyLayer applies one image layer, read from r, onto the directory dir
// the way unpacking an image does, but into a plain directory rather than a
// snapshot: the layer may be gzip, zstd or uncompressed (its first bytes
// tell), its deletions (whiteouts) remove what earlier layers wrote, and its
// entries may not reach outside dir. Applying an image's layers in order
// onto an empty directory gives its root filesystem. It returns the layer's
// diffID, the digest of the uncompressed stream. Run as root, files get the
// owners the layer records; otherwise they belong to the caller. Nothing is
// synced to disk. On an error dir holds part of the layer.
func ApplyLayer(ctx context.Context, dir string, r io.Reader) (digest.Digest, error) {
	d, err := archive.ApplyLayer(ctx, dir, r, "", "", archive.ApplyOptions{
		Whiteouts:   archive.WhiteoutDelete,
		NoSameOwner: os.Geteuid() != 0,
	})
	if err != nil {
		return "", fmt.Errorf("apply layer to %s: %w", dir, err)
	}
	return d, nil
}
