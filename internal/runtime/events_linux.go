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
// rotation; one JSON line is written in a single call. An event without a
// time is stamped under the lock, so that the log is in time order.
func AppendEvent(root string, ev Event) error {
	stamp := ev.Time.IsZero()
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
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(p, &b) != nil || a.Ino != b.Ino {
			f.Close()
			continue
		}
		if stamp {
			ev.Time = time.Now().UTC()
		}
		line, err := json.Marshal(ev)
		if err != nil {
			f.Close()
			return err
		}
		line = append(line, '\n')
		if a.Size > 0 && a.Size+int64(len(line)) > eventsMax {
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
				line = append([]byte{'\n'}, line...)
			}
		}
		_, err = f.Write(line)
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
	since time.Time
	// files are open, still to read, oldest first: files[0] is being read.
	// A rotation renames a file but leaves it whole, so a reader that
	// holds it and goes from it to the file after loses nothing.
	files    []*os.File
	rd       *bufio.Reader
	partial  []byte // a line whose end is not yet read
	draining bool   // the newest file was rotated: read it to its end, then go on
}

// ReadEvents opens root's events log: the live file and the rotated one,
// at once, so that rotations while they are read lose no event. Events
// before since are skipped; Next with follow waits for new ones.
func ReadEvents(root string, since time.Time) (*EventReader, error) {
	r := &EventReader{path: EventsPath(root), since: since}
	var err error
	if r.files, err = r.openAfter(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Next returns the next event; with follow it waits for one until ctx
// ends, otherwise it returns io.EOF at the end of the log.
func (r *EventReader) Next(ctx context.Context, follow bool) (Event, error) {
	delay := 10 * time.Millisecond
	for {
		if len(r.files) > 0 {
			if r.rd == nil {
				r.rd = bufio.NewReader(r.files[0])
			}
			line, err := r.rd.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				line = append(r.partial, line...)
				r.partial = nil
				var ev Event
				if json.Unmarshal(line, &ev) != nil || ev.Time.Before(r.since) {
					continue
				}
				return ev, nil
			}
			r.partial = append(r.partial, line...)
			if err != nil && err != io.EOF {
				return Event{}, err
			}
			if len(r.files) > 1 {
				// A rotated file is complete: go on with the next.
				r.advance()
				continue
			}
		}
		// At the end of the newest file open.
		switch {
		case len(r.files) == 0 || r.draining:
			// Open what came after it: the log's first file, or those
			// made since the rotation, now read to its end.
			var last os.FileInfo
			if len(r.files) > 0 {
				fi, err := r.files[0].Stat()
				if err != nil {
					return Event{}, err
				}
				last = fi
			}
			files, err := r.openAfter(last)
			if err != nil {
				return Event{}, err
			}
			if len(files) > 0 {
				r.files = append(r.files, files...)
				r.draining = false
				if last != nil {
					r.advance()
				}
				continue
			}
			// None yet: the live file is made by the next append.
		case r.rotated():
			// Lines may have reached the file between our last read and
			// the rotation: read it to its end once more first.
			r.draining = true
			continue
		}
		if !follow {
			return Event{}, io.EOF
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return Event{}, err
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// openAfter opens the log's files newer than last (both when last is nil),
// oldest first.
func (r *EventReader) openAfter(last os.FileInfo) ([]*os.File, error) {
	return openRotated([]string{r.path, r.path + ".1"}, last)
}

// advance closes the file read to its end and goes on with the next.
func (r *EventReader) advance() {
	r.files[0].Close()
	r.files = r.files[1:]
	r.rd, r.partial = nil, nil
}

// rotated tells whether the live name now holds another file than the
// newest one open, or none.
func (r *EventReader) rotated() bool { return movedOn(r.files[len(r.files)-1], r.path) }

// Close releases the log.
func (r *EventReader) Close() error {
	closeFiles(r.files)
	r.files, r.rd = nil, nil
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
