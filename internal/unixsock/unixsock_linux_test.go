package unixsock

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listen(t *testing.T) (*Listener, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, p
}

func TestDialAcceptEcho(t *testing.T) {
	l, p := listen(t)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := Dial(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want the echo then EOF", got, err)
	}
}

func TestPassDescriptor(t *testing.T) {
	l, p := listen(t)
	type result struct {
		msg []byte
		fds []int
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		b, oob := make([]byte, 64), make([]byte, unix.CmsgSpace(4))
		n, oobn, err := c.ReadMsg(b, oob)
		var fds []int
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil && len(msgs) == 1 {
			fds, _ = unix.ParseUnixRights(&msgs[0])
		}
		res <- result{b[:n], fds, err}
	}()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := Dial(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteMsg([]byte("take this\n"), unix.UnixRights(int(w.Fd()))); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got := <-res
	if got.err != nil || string(got.msg) != "take this\n" || len(got.fds) != 1 {
		t.Fatalf("got %q, fds %v, %v", got.msg, got.fds, got.err)
	}
	// The descriptor received is the pipe's write end, close-on-exec.
	if flags, err := unix.FcntlInt(uintptr(got.fds[0]), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received descriptor flags %#x, %v: want close-on-exec", flags, err)
	}
	passed := os.NewFile(uintptr(got.fds[0]), "passed")
	passed.Write([]byte("through"))
	passed.Close()
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, []byte("through")) {
		t.Fatalf("pipe read %q", b)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	l, p := listen(t)
	accepted := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := Dial(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := <-accepted
	defer peer.Close()

	peer.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	peer.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := peer.ReadMsg(make([]byte, 1), nil)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	peer.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ReadMsg on a closed connection succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked ReadMsg")
	}
}

func TestCloseEndsAccept(t *testing.T) {
	l, _ := listen(t)
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Accept on a closed listener succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Accept")
	}
}

func TestDialNothing(t *testing.T) {
	_, err := Dial(filepath.Join(t.TempDir(), "none.sock"))
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("dial of a missing socket: %v, want ENOENT", err)
	}
	l, p := listen(t)
	l.Close()
	if _, err := Dial(p); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("dial of a closed listener: %v, want ECONNREFUSED", err)
	}
}
