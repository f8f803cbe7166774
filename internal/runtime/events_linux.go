package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	eventsFile = "events.jsonl"
	// eventsMax is the size after which the log is rotated to
	// events.jsonl.1, so that the root keeps at most twice this.
	eventsMax = 4 << 20
)

// EventsPath returns the events log of the state root root.
func EventsPath(root string) string { return path.Join(root, eventsFile) }

// rootOf returns the state root holding the state directory stateDir
// (<root>/containers/<id>).
func rootOf(stateDir string) string { return path.Dir(path.Dir(stateDir)) }

// AppendEvent adds ev to the events log of root. Appends from several
// programs are serialized by a lock on the file, which also guards the
// rotation; one JSON line is written in a single call.
func AppendEvent(root string, ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	p := EventsPath(root)
	for try := 0; try < 3; try++ {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if err := flockRetry(f, unix.LOCK_EX); err != nil {
			f.Close()
			return err
		}
		// A rotation between the open and the lock left this descriptor on
		// the old file: open again.
		var a, b2 unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(p, &b2) != nil || a.Ino != b2.Ino {
			f.Close()
			continue
		}
		if a.Size > 0 && a.Size+int64(len(b)) > eventsMax {
			// Rotate, then append to the new file, under its own lock.
			err := os.Rename(p, p+".1")
			f.Close()
			if err != nil {
				return err
			}
			try--
			continue
		}
		// A crash may have cut the last line short: this one starts on
		// a line of its own, or the reader would take both for one.
		var last [1]byte
		if a.Size > 0 {
			if _, err := unix.Pread(int(f.Fd()), last[:], a.Size-1); err == nil && last[0] != '\n' {
				b = append([]byte{'\n'}, b...)
			}
		}
		_, err = f.Write(b)
		f.Close()
		return err
	}
	return errors.New("events: log rotated under us")
}

func flockRetry(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// EventReader reads a root's events log and follows it, across rotations.
type EventReader struct {
	path  string
	f     *os.File
	rd    *bufio.Reader
	ino   uint64
	since time.Time
	// partial holds a line whose end is not yet written.
	partial []byte
	drained bool // read the old file to its end after seeing a rotation
}

// ReadEvents opens root's events log. Events before since are skipped;
// with follow set, Next blocks for new events until ctx ends.
func ReadEvents(root string, since time.Time) (*EventReader, error) {
	r := &EventReader{path: EventsPath(root), since: since}
	if !since.IsZero() {
		// Older events may still be in the rotated file.
		if f, err := os.Open(r.path + ".1"); err == nil {
			r.setFile(f)
			r.ino = 0 // not the live file: switch once drained
			return r, nil
		}
	}
	if err := r.openLive(); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return r, nil
}

func (r *EventReader) setFile(f *os.File) {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.rd, r.partial = f, bufio.NewReader(f), nil
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) == nil {
		r.ino = st.Ino
	}
}

func (r *EventReader) openLive() error {
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	r.setFile(f)
	return nil
}

// liveChanged tells whether the live log is now another file than the one
// being read (rotated, or created since).
func (r *EventReader) liveChanged() bool {
	var st unix.Stat_t
	if unix.Stat(r.path, &st) != nil {
		return false
	}
	return r.f == nil || st.Ino != r.ino
}

// Next returns the next event; with follow it waits for one until ctx
// ends, otherwise it returns io.EOF at the end of the log.
func (r *EventReader) Next(ctx context.Context, follow bool) (Event, error) {
	delay := 10 * time.Millisecond
	for {
		if r.f != nil {
			line, err := r.rd.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				line = append(r.partial, line...)
				r.partial = nil
				var ev Event
				if json.Unmarshal(line, &ev) != nil || ev.Time.Before(r.since) {
					continue
				}
				delay = 10 * time.Millisecond
				return ev, nil
			}
			r.partial = append(r.partial, line...)
			if err != nil && err != io.EOF {
				return Event{}, err
			}
		}
		// At the end of this file: move to the live one if it changed.
		if r.liveChanged() {
			// Lines may have reached the old file between our last read
			// and the rotation: read it to its end once more first.
			if r.f != nil && !r.drained {
				r.drained = true
				continue
			}
			r.drained = false
			if err := r.openLive(); err == nil {
				continue
			}
		}
		if !follow {
			return Event{}, io.EOF
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return Event{}, err
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// Close releases the log.
func (r *EventReader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// event records ev for the container of spec, logging a failure to the
// monitor's log only: an event lost never stops a container.
func (s *Spec) event(typ string, attrs map[string]string) {
	ev := Event{Type: typ, ID: s.ID, Name: s.Name, Attributes: attrs}
	if err := AppendEvent(rootOf(s.StateDir), ev); err != nil {
		os.Stderr.WriteString("event " + typ + ": " + err.Error() + "\n")
	}
}
