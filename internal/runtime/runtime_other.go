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

// ID returns an empty ID off Linux.
func (h *Handle) ID() string { return "" }

// Spec returns nil off Linux.
func (h *Handle) Spec() *Spec { return nil }

// StateDir returns "" off Linux.
func (h *Handle) StateDir() string { return "" }

// Resize fails with ErrNotSupported.
func (h *Handle) Resize(rows, cols uint16) error { return errNotSupported }

// ExecProcess is a further process running in a container.
type ExecProcess struct{ Pid int }

// Exec fails with ErrNotSupported off Linux.
func (h *Handle) Exec(context.Context, *Process, *Stdio) (*ExecProcess, error) {
	return nil, errNotSupported
}

// Wait fails with ErrNotSupported.
func (p *ExecProcess) Wait(context.Context) (ExitStatus, error) { return ExitStatus{}, errNotSupported }

// Kill fails with ErrNotSupported.
func (p *ExecProcess) Kill(syscall.Signal) error { return errNotSupported }

// Resize fails with ErrNotSupported.
func (p *ExecProcess) Resize(rows, cols uint16) error { return errNotSupported }
