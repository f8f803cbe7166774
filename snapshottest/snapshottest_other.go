//go:build !linux

// Package snapshottest is a conformance suite for implementations of
// dock.Snapshotter; it runs on Linux only.
package snapshottest

import (
	"context"
	"testing"

	"github.com/dockkit/dock"
)

// NewFunc makes a snapshotter whose state lives under root.
type NewFunc func(ctx context.Context, root string) (dock.Snapshotter, func() error, error)

// Run skips: snapshotters need Linux.
func Run(t *testing.T, name string, newSnapshotter func(ctx context.Context, root string) (dock.Snapshotter, func() error, error)) {
	t.Run(name, func(t *testing.T) { t.Skip("snapshotters need Linux") })
}
