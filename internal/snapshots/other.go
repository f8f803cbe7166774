//go:build !linux

package snapshots

import (
	"context"
	"fmt"

	"github.com/dockkit/dock/internal/errdefs"
)

// Overlay is the overlayfs snapshotter; it exists on Linux only.
type Overlay struct{ Snapshotter }

// Native is the copying snapshotter; it exists on Linux only.
type Native struct{ Snapshotter }

// NewOverlay reports ErrNotSupported off Linux.
func NewOverlay(root string) (*Overlay, error) {
	return nil, fmt.Errorf("overlay snapshotter: %w", errdefs.ErrNotSupported)
}

// NewNative reports ErrNotSupported off Linux.
func NewNative(root string) (*Native, error) {
	return nil, fmt.Errorf("native snapshotter: %w", errdefs.ErrNotSupported)
}

// SupportsOverlay reports ErrNotSupported off Linux.
func SupportsOverlay(root string) error {
	return fmt.Errorf("overlay: %w", errdefs.ErrNotSupported)
}

// Probe names "native" off Linux, where neither snapshotter works.
func Probe(root string) string { return "native" }

// MountAll reports ErrNotSupported off Linux.
func MountAll(mounts []Mount, target string) error {
	return fmt.Errorf("mount: %w", errdefs.ErrNotSupported)
}

// UnmountAll reports ErrNotSupported off Linux.
func UnmountAll(target string) error {
	return fmt.Errorf("unmount: %w", errdefs.ErrNotSupported)
}

// CopyTree reports ErrNotSupported off Linux.
func CopyTree(ctx context.Context, dst, src string) error {
	return fmt.Errorf("copy tree: %w", errdefs.ErrNotSupported)
}
