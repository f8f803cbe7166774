package runtime

import (
	"encoding/binary"
	"sync"
)

// An attached client gets the container's output on its connection as
// frames: one byte for the stream (1 stdout, 2 stderr, 3 an error that ends
// the attachment), four bytes of length (big endian), the bytes. What the
// client writes goes to the container's stdin. The end of the connection
// is the client's going: at the end of its input a client just stops
// writing, since the monitor cannot tell a half-close from a close until
// it next writes, which a silent container may never do.

// subscribers are the attached clients of one container.
type subscribers struct {
	mu     sync.Mutex
	set    map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch      chan []byte // frames
	dropped bool        // set before ch is closed: the client fell behind
	done    chan struct{}
	once    sync.Once
}

// frame returns data framed for stream (1, 2 or 3).
func frame(stream byte, data []byte) []byte {
	f := make([]byte, 5+len(data))
	f[0] = stream
	binary.BigEndian.PutUint32(f[1:], uint32(len(data)))
	copy(f[5:], data)
	return f
}

func (s *subscriber) stop() { s.once.Do(func() { close(s.done) }) }

func (ss *subscribers) add() *subscriber {
	sub := &subscriber{ch: make(chan []byte, 256), done: make(chan struct{})}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		close(sub.ch)
		return sub
	}
	if ss.set == nil {
		ss.set = map[*subscriber]struct{}{}
	}
	ss.set[sub] = struct{}{}
	return sub
}

func (ss *subscribers) remove(sub *subscriber) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.set[sub]; ok {
		delete(ss.set, sub)
		close(sub.ch)
	}
}

// send gives each client a frame of data; a client that falls 256 frames
// behind is dropped rather than allowed to hold the container up, and told
// so after the frames it still has.
func (ss *subscribers) send(stream string, data []byte) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.set) == 0 {
		return
	}
	var n byte = 1
	if stream == "stderr" {
		n = 2
	}
	f := frame(n, data)
	for sub := range ss.set {
		select {
		case sub.ch <- f:
		default:
			delete(ss.set, sub)
			sub.dropped = true
			close(sub.ch)
		}
	}
}

// close ends every client's stream: the container's output is over.
func (ss *subscribers) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for sub := range ss.set {
		close(sub.ch)
	}
	ss.set = nil
}
