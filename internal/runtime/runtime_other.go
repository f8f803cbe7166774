//go:build !linux

package runtime

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

var errNotSupported = fmt.Errorf("containers need Linux: %w", errdefs.ErrNotSupported)

// MaybeReexec does nothing off Linux.
func MaybeReexec() {}

// Stdio connects a foreground container to the caller.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Handle is one container.
type Handle struct{}

// Start fails with ErrNotSupported off Linux.
func Start(context.Context, *Spec, *Stdio) (*Handle, error) { return nil, errNotSupported }

// Load fails with ErrNotSupported off Linux.
func Load(string) (*Handle, error) { return nil, errNotSupported }

// State returns a zero state.
func (h *Handle) State() State { return State{} }

// Wait fails with ErrNotSupported.
func (h *Handle) Wait(context.Context) (ExitStatus, error) { return ExitStatus{}, errNotSupported }

// Kill fails with ErrNotSupported.
func (h *Handle) Kill(syscall.Signal) error { return errNotSupported }

// Stop fails with ErrNotSupported.
func (h *Handle) Stop(context.Context, time.Duration) error { return errNotSupported }

// Delete fails with ErrNotSupported.
func (h *Handle) Delete(bool) error { return errNotSupported }
