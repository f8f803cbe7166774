//go:build !linux

package archive

import (
	"context"
	"fmt"
	"io"

	"github.com/dockkit/dock/internal/errdefs"
)

// Apply extracts a layer; it needs Linux (openat2).
func Apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	return 0, fmt.Errorf("apply layer: %w", errdefs.ErrNotSupported)
}

// DiffOverlay writes the changes of an overlayfs upper directory; Linux only.
func DiffOverlay(ctx context.Context, upper string, w io.Writer, opts DiffOptions) error {
	return fmt.Errorf("diff: %w", errdefs.ErrNotSupported)
}

// DiffTrees writes the changes between two trees; Linux only.
func DiffTrees(ctx context.Context, lower, upper string, w io.Writer, opts DiffOptions) error {
	return fmt.Errorf("diff: %w", errdefs.ErrNotSupported)
}

// OverlayLowerDir finds nothing off Linux.
func OverlayLowerDir(lowers []string) func(rel string) (DirAttrs, bool) {
	return func(string) (DirAttrs, bool) { return DirAttrs{}, false }
}

// SetDirAttrs needs Linux.
func SetDirAttrs(ctx context.Context, root string, dirs []string, attrs func(rel string) (DirAttrs, bool), noSameOwner bool) error {
	return fmt.Errorf("set directory attributes: %w", errdefs.ErrNotSupported)
}
