//go:build !unix

package store

import (
	"context"
	"fmt"
	"os"

	"github.com/dockkit/dock/internal/errdefs"
)

const (
	lockShared    = 1
	lockExclusive = 2
)

func lockFile(context.Context, *os.File, int) error {
	return fmt.Errorf("file locks: %w", errdefs.ErrNotSupported)
}

func tryLockFile(*os.File) (bool, error) {
	return false, fmt.Errorf("file locks: %w", errdefs.ErrNotSupported)
}

func openLock(context.Context, string, int) (*os.File, error) {
	return nil, fmt.Errorf("file locks: %w", errdefs.ErrNotSupported)
}
