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

// PrestartedID returns "" off Linux.
func PrestartedID(string) string { return "" }

// Stdio connects a foreground container to the caller.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ConsoleSize, when not zero, is the size of the caller's own
	// terminal: the process's terminal starts with it, over its
	// Process.ConsoleSize.
	ConsoleSize ConsoleSize
}

// Handle is one container.
type Handle struct{}

// Start fails with ErrNotSupported off Linux.
func Start(context.Context, *Spec, *Stdio) (*Handle, error) { return nil, errNotSupported }

// Load fails with ErrNotSupported off Linux.
func Load(string) (*Handle, error) { return nil, errNotSupported }

// ReadState fails with ErrNotSupported.
func ReadState(string) (State, error) { return State{}, errNotSupported }

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

// Pause is not supported here.
func (h *Handle) Pause() error { return errNotSupported }

// Resume is not supported here.
func (h *Handle) Resume() error { return errNotSupported }

// EventsPath returns the events log of the state root root.
func EventsPath(root string) string { return root + "/events.jsonl" }

// AppendEvent is not supported here.
func AppendEvent(string, Event) error { return errNotSupported }

// EventReader reads a root's events log.
type EventReader struct{}

// ReadEvents is not supported here.
func ReadEvents(string, time.Time) (*EventReader, error) { return nil, errNotSupported }

// Next is not supported here.
func (r *EventReader) Next(context.Context, bool) (Event, error) { return Event{}, errNotSupported }

// Close does nothing here.
func (r *EventReader) Close() error { return nil }

// Attachment is a client attached to a container.
type Attachment struct{}

// Attach is not supported here.
func (h *Handle) Attach(context.Context, *Stdio) (*Attachment, error) { return nil, errNotSupported }

// Wait is not supported here.
func (a *Attachment) Wait(context.Context) error { return errNotSupported }

// Close does nothing here.
func (a *Attachment) Close() error { return nil }

// Recover does nothing off Linux.
func (h *Handle) Recover() (bool, error) { return false, nil }

// Standby is a monitor started ahead of its container; none off Linux.
type Standby struct{}

// NewStandby fails with ErrNotSupported off Linux.
func NewStandby(string) (*Standby, error) { return nil, errNotSupported }

// Close does nothing off Linux.
func (s *Standby) Close() {}

// Gone returns a closed channel off Linux.
func (s *Standby) Gone() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Start fails with ErrNotSupported off Linux.
func (s *Standby) Start(context.Context, *Spec, *Stdio) (*Handle, error) {
	return nil, errNotSupported
}
