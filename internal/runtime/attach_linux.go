package runtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/unixsock"
)

// errFellBehind is why the monitor ends an attachment whose client did not
// keep up with the container's output.
const errFellBehind = "output dropped: the client fell behind"

// closeStdin closes the container's input.
func (m *monitor) closeStdin() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stdinW != nil && m.stdinW != m.master {
		m.stdinW.Close()
	}
	m.stdinW = nil
}

// serveAttach streams the container's output to c and c's input to the
// container until the output ends or the client goes.
func (m *monitor) serveAttach(c *unixsock.Conn, req *monitorReq) {
	if m.log == nil {
		writeResp(c, &monitorResp{Error: errNotRunning})
		return
	}
	sub := m.log.subs.add()
	defer m.log.subs.remove(sub)
	if err := writeResp(c, &monitorResp{}); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Time{})
	// The client has gone once its side ends (see attach.go).
	go func() {
		defer sub.stop()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 && req.Stdin {
				m.mu.Lock()
				w := m.stdinW
				m.mu.Unlock()
				if w != nil {
					w.Write(buf[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case f, ok := <-sub.ch:
			if !ok {
				if sub.dropped {
					c.Write(frame(3, []byte(errFellBehind)))
				}
				return
			}
			if _, err := c.Write(f); err != nil {
				return
			}
		case <-sub.done:
			return
		}
	}
}

// Attachment is a client attached to a running container's output and
// input.
type Attachment struct {
	conn *unixsock.Conn
	done chan struct{}
	err  error
}

// Attach connects stdio to the running container: its output from now on,
// split into stdout and stderr (one stream with a terminal), and, with
// stdio.Stdin, input to a container that has OpenStdin. Several clients may
// attach at once, from any program.
func (h *Handle) Attach(ctx context.Context, stdio *Stdio) (*Attachment, error) {
	if stdio == nil {
		stdio = &Stdio{}
	}
	c, err := dialMonitor(h.stateDir)
	if err != nil {
		return nil, fmt.Errorf("container %s: attach: not running: %w", h.spec.ID, errdefs.ErrWrongState)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(monitorReq{Op: "attach", Stdin: stdio.Stdin != nil})
	if _, err := c.Write(append(b, '\n')); err != nil {
		c.Close()
		return nil, fmt.Errorf("container %s: attach: %w", h.spec.ID, err)
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadBytes('\n')
	var resp monitorResp
	if err == nil {
		err = json.Unmarshal(line, &resp)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("container %s: attach: %w", h.spec.ID, err)
	}
	if resp.Error != "" {
		c.Close()
		return nil, fmt.Errorf("container %s: attach: %s: %w", h.spec.ID, resp.Error, errdefs.ErrWrongState)
	}
	a := &Attachment{conn: c, done: make(chan struct{})}
	if stdio.Stdin != nil {
		// No half-close at the end: the monitor would take it for a close.
		go io.Copy(c, stdio.Stdin)
	}
	go func() {
		defer close(a.done)
		var hdr [5]byte
		for {
			if _, err := io.ReadFull(rd, hdr[:]); err != nil {
				if err != io.EOF {
					a.err = err
				}
				return
			}
			n := int64(binary.BigEndian.Uint32(hdr[1:]))
			if hdr[0] == 3 {
				msg, err := io.ReadAll(io.LimitReader(rd, n))
				if err == nil {
					err = errors.New(string(msg))
				}
				a.err = fmt.Errorf("container %s: attach: %w", h.spec.ID, err)
				return
			}
			var dst io.Writer = io.Discard
			if hdr[0] == 1 && stdio.Stdout != nil {
				dst = stdio.Stdout
			} else if hdr[0] == 2 && stdio.Stderr != nil {
				dst = stdio.Stderr
			}
			if _, err := io.CopyN(dst, rd, n); err != nil {
				a.err = err
				return
			}
		}
	}()
	return a, nil
}

// Wait blocks until the container's output ends (it stopped) or the
// attachment is closed. It fails if the monitor dropped the client for
// falling behind the output.
func (a *Attachment) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close detaches; the container goes on.
func (a *Attachment) Close() error {
	err := a.conn.Close()
	<-a.done
	return err
}
