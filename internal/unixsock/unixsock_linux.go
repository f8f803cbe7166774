// Package unixsock is a Unix stream socket built on x/sys alone: listen,
// accept, dial, and messages carrying file descriptors, all through the Go
// runtime's poller.
//
// A container's monitor uses it instead of package net. The monitor is a
// re-executed copy of the caller's binary that starts running as soon as
// internal/runtime is initialised, and package net is initialised late in
// any binary, after most of its other packages, because it depends on a
// vendored package and initialisation goes in import path order.
package unixsock

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one end of a connected stream socket. Read and Write honour
// deadlines, and Close from another goroutine ends a blocked Read.
type Conn struct {
	f *os.File
}

// Listener accepts connections on a socket bound to a path.
type Listener struct {
	f *os.File
}

// Listen binds a stream socket to path, which must not exist, and listens.
func Listen(path string) (*Listener, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return &Listener{f: os.NewFile(uintptr(fd), path)}, nil
}

// Accept waits for the next connection. It fails once the listener is
// closed.
func (l *Listener) Accept() (*Conn, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				return aerr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, &os.PathError{Op: "accept", Path: l.f.Name(), Err: err}
	}
	return &Conn{f: os.NewFile(uintptr(nfd), l.f.Name())}, nil
}

// Close stops listening; a blocked Accept returns. The socket's path stays.
func (l *Listener) Close() error { return l.f.Close() }

// Dial connects to the socket at path. A path with nothing listening fails
// with an error matching unix.ECONNREFUSED or unix.ENOENT.
func Dial(path string) (*Conn, error) {
	// Connected while blocking, then made non-blocking: a Unix socket's
	// connect only blocks while the listener's backlog is full.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dial", Path: path, Err: err}
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "dial", Path: path, Err: err}
	}
	return &Conn{f: os.NewFile(uintptr(fd), path)}, nil
}

// Read reads what the peer wrote; at the peer's end of writing, io.EOF.
func (c *Conn) Read(b []byte) (int, error) { return c.f.Read(b) }

// Write writes b whole unless an error (a deadline, a closed peer) stops it.
func (c *Conn) Write(b []byte) (int, error) { return c.f.Write(b) }

// Close closes the connection; blocked calls on it return.
func (c *Conn) Close() error { return c.f.Close() }

// CloseWrite shuts down the writing side: the peer reads EOF, and this side
// can still read.
func (c *Conn) CloseWrite() error {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}

// SetReadDeadline bounds Read and ReadMsg; the zero time lifts the bound.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// SetWriteDeadline bounds Write and WriteMsg; the zero time lifts the bound.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// ReadMsg reads data into b and ancillary data into oob. Descriptors
// received are close-on-exec.
func (c *Conn) ReadMsg(b, oob []byte) (n, oobn int, err error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, oob, unix.MSG_CMSG_CLOEXEC)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return n, oobn, &os.PathError{Op: "read", Path: c.f.Name(), Err: err}
	}
	return n, oobn, nil
}

// WriteMsg writes b with the ancillary data oob (descriptors from
// unix.UnixRights) in one message; b must be short enough for one send,
// which is the case for the requests the monitor takes.
func (c *Conn) WriteMsg(b, oob []byte) (int, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.SendmsgN(int(fd), b, oob, nil, 0)
			if werr != unix.EINTR {
				return werr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, &os.PathError{Op: "write", Path: c.f.Name(), Err: err}
	}
	if n < len(b) {
		// The descriptors went with the first part; the rest is plain.
		m, err := c.Write(b[n:])
		return n + m, err
	}
	return n, nil
}
