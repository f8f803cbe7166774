package dock

import (
	"context"
	"fmt"

	"github.com/dockkit/dock/internal/runtime"
)

// AttachOption configures Container.Attach; [WithOutput] and [WithInput]
// are the ones there are.
type AttachOption interface{ applyAttach(*runtime.Stdio) error }

func (o StdioOption) applyAttach(s *runtime.Stdio) error { return o.apply(s) }

// Attachment is a connection to a running container's output and input.
type Attachment struct{ a *runtime.Attachment }

// Attach connects to the running container: its output from now on goes to
// WithOutput's writers (one stream with a terminal), and WithInput's reader
// to its stdin, which needs WithStdin at create. Any program opening the
// root may attach, several at once; each gets all the output. The end of
// the input does not close the container's stdin.
func (c *Container) Attach(ctx context.Context, opts ...AttachOption) (*Attachment, error) {
	var s runtime.Stdio
	for _, o := range opts {
		if err := o.applyAttach(&s); err != nil {
			return nil, err
		}
	}
	hd, err := c.handle()
	if err != nil {
		return nil, fmt.Errorf("attach %s: not running: %w", c.Name, ErrWrongState)
	}
	a, err := hd.Attach(ctx, &s)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", c.Name, err)
	}
	return &Attachment{a: a}, nil
}

// Wait blocks until the container's output ends, when it stops. It fails
// if the container's monitor dropped this attachment for falling too far
// behind the output: a slow reader does not hold the container up.
func (a *Attachment) Wait(ctx context.Context) error { return a.a.Wait(ctx) }

// Close detaches; the container goes on.
func (a *Attachment) Close() error { return a.a.Close() }
