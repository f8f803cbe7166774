package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// LogEntry is one line (or a piece of a line over 16 KiB) that the container
// wrote.
type LogEntry struct {
	Stream string    `json:"stream"` // "stdout" or "stderr"
	Time   time.Time `json:"time"`
	Data   []byte    `json:"-"`
}

// logRecord is the on-disk form: one JSON object a line, as Docker's
// json-file driver writes it.
type logRecord struct {
	Stream string `json:"stream"`
	Time   string `json:"time"`
	Log    string `json:"log"`
}

// maxLogLine is the longest piece written as one entry; longer lines are
// split, as Docker does.
const maxLogLine = 16 << 10

// logWriter appends entries to the log file and rotates it by size.
type logWriter struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	buf      []byte
	subs     subscribers // attached clients, fed the raw output
}

func openLogWriter(cfg LogConfig, path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logWriter{path: path, maxSize: cfg.MaxSize, maxFiles: cfg.MaxFiles, f: f, size: fi.Size()}, nil
}

func (w *logWriter) write(stream string, t time.Time, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf[:0]
	b = append(b, `{"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","log":`...)
	b = appendJSONString(b, data)
	b = append(b, "}\n"...)
	w.buf = b
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return err
}

// appendJSONString appends s to b as a JSON string, exactly as
// json.Marshal(string(s)) spells it (HTML characters escaped, invalid UTF-8
// as U+FFFD), without the two allocations of each call: the monitor logs a
// line at a time, and a container that writes a lot would grow the
// monitor's heap to the collector's first goal.
func appendJSONString(b, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			var esc string
			switch {
			case c == '"':
				esc = `\"`
			case c == '\\':
				esc = `\\`
			case c == '\n':
				esc = `\n`
			case c == '\r':
				esc = `\r`
			case c == '\t':
				esc = `\t`
			case c == '\b':
				esc = `\b`
			case c == '\f':
				esc = `\f`
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(append(b, s[done:i]...), '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				i++
				done = i
				continue
			default:
				i++
				continue
			}
			b = append(append(b, s[done:i]...), esc...)
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[done:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[done:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}

// rotate shifts path.N-1 to path.N ... path to path.1 and starts a new file.
func (w *logWriter) rotate() error {
	keep := w.maxFiles
	if keep < 1 {
		keep = 1
	}
	if keep == 1 {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		w.size = 0
		return nil
	}
	for i := keep - 1; i > 1; i-- {
		os.Rename(w.path+"."+strconv.Itoa(i-1), w.path+"."+strconv.Itoa(i))
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.f.Close()
	w.f, w.size = f, 0
	return nil
}

func (w *logWriter) Close() error {
	w.subs.close()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// copyStream reads r until EOF, logs each line under stream and copies the
// raw bytes to tee while tee accepts them.
func (w *logWriter) copyStream(stream string, r io.Reader, tee io.Writer) {
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			chunk := buf[:n]
			if tee != nil {
				if _, werr := tee.Write(chunk); werr != nil {
					tee = nil // the caller went away; the log goes on
				}
			}
			w.subs.send(stream, chunk)
			for len(chunk) > 0 {
				i := bytes.IndexByte(chunk, '\n')
				if i < 0 {
					pending = append(pending, chunk...)
					chunk = nil
					for len(pending) >= maxLogLine {
						w.write(stream, now, pending[:maxLogLine])
						pending = append(pending[:0], pending[maxLogLine:]...)
					}
					break
				}
				line := chunk[:i+1]
				if len(pending) > 0 {
					pending = append(pending, line...)
					line = pending
				}
				for len(line) > maxLogLine {
					w.write(stream, now, line[:maxLogLine])
					line = line[maxLogLine:]
				}
				w.write(stream, now, line)
				pending = pending[:0]
				chunk = chunk[i+1:]
			}
		}
		if err != nil {
			if len(pending) > 0 {
				w.write(stream, time.Now(), pending)
			}
			return
		}
	}
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool      // keep returning new entries until the container stops
	Tail       int       // only the last Tail entries already written; 0 for all
	Since      time.Time // skip entries written before
	Timestamps bool      // Copy prefixes each line with its time
}

// LogReader returns a container's log entries in order.
type LogReader struct {
	ctx      context.Context
	cancel   context.CancelFunc
	stateDir string
	path     string
	opts     LogOptions
	backlog  []LogEntry // entries read ahead (for Tail)
	files    []string   // rotated files still to read, oldest first
	cur      *os.File
	rd       *bufio.Reader
	partial  []byte
	draining bool
}

// Logs opens the log of the container in stateDir. It works from any
// process, while the container runs and after it stopped. With Follow, Next
// blocks for new entries until the container has stopped and its last
// entries are read, ctx ends, or Close is called.
func Logs(ctx context.Context, stateDir string, opts LogOptions) (*LogReader, error) {
	spec, err := readSpec(stateDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &LogReader{ctx: ctx, cancel: cancel, stateDir: stateDir, path: spec.logPath(), opts: opts}
	max := spec.Log.MaxFiles
	for i := max - 1; i >= 1; i-- {
		p := r.path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			r.files = append(r.files, p)
		}
	}
	r.files = append(r.files, r.path)
	if opts.Tail > 0 {
		// Read everything written so far, keep the last Tail entries, and
		// go on from the current file's end.
		var ring []LogEntry
		for {
			e, err := r.next(false)
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return nil, err
			}
			ring = append(ring, e)
			if len(ring) > opts.Tail {
				ring = ring[1:]
			}
		}
		r.backlog = ring
	}
	return r, nil
}

// Next returns the next entry, or io.EOF at the end of the log.
func (r *LogReader) Next() (LogEntry, error) {
	if len(r.backlog) > 0 {
		e := r.backlog[0]
		r.backlog = r.backlog[1:]
		return e, nil
	}
	return r.next(r.opts.Follow)
}

func (r *LogReader) next(follow bool) (LogEntry, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			return LogEntry{}, err
		}
		if r.cur == nil {
			if len(r.files) == 0 {
				return LogEntry{}, io.EOF
			}
			f, err := os.Open(r.files[0])
			if err != nil {
				if os.IsNotExist(err) && len(r.files) > 1 {
					r.files = r.files[1:]
					continue
				}
				if os.IsNotExist(err) && !follow {
					return LogEntry{}, io.EOF
				}
				if !os.IsNotExist(err) {
					return LogEntry{}, err
				}
				if err := r.pause(); err != nil {
					return LogEntry{}, err
				}
				continue
			}
			r.cur, r.rd = f, bufio.NewReaderSize(f, 64<<10)
		}
		line, err := r.rd.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			r.partial = append(r.partial, line...)
			continue
		}
		if err == nil {
			if len(r.partial) > 0 {
				line = append(r.partial, line...)
				r.partial = r.partial[:0]
			}
			e, ok := parseLogLine(line)
			if !ok || (!r.opts.Since.IsZero() && e.Time.Before(r.opts.Since)) {
				continue
			}
			return e, nil
		}
		if err != io.EOF {
			return LogEntry{}, err
		}
		r.partial = append(r.partial, line...)
		if len(r.files) > 1 {
			// A rotated file is complete; go on with the next one.
			r.closeCur()
			r.files = r.files[1:]
			continue
		}
		if !follow {
			return LogEntry{}, io.EOF
		}
		if r.draining {
			// The old file was read to its end after it was rotated.
			r.draining = false
			r.closeCur()
			continue
		}
		if r.rotated() {
			r.draining = true
			continue
		}
		if st, _ := readState(r.stateDir); st.Status != Running && st.Status != Created {
			// Stopped: the monitor wrote its last entry before recording
			// the exit. Read what is left, then end.
			if n, _ := r.rd.Peek(1); len(n) == 0 && !r.rotated() {
				return LogEntry{}, io.EOF
			}
			continue
		}
		if err := r.pause(); err != nil {
			return LogEntry{}, err
		}
	}
}

// rotated tells whether the path now names another file than the one open.
func (r *LogReader) rotated() bool {
	a, err1 := r.cur.Stat()
	b, err2 := os.Stat(r.path)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}

func (r *LogReader) pause() error {
	t := time.NewTimer(25 * time.Millisecond)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *LogReader) closeCur() {
	if r.cur != nil {
		r.cur.Close()
		r.cur, r.rd = nil, nil
		r.partial = r.partial[:0]
	}
}

// Close ends the reader; a blocked Next returns.
func (r *LogReader) Close() error {
	r.cancel()
	r.closeCur()
	return nil
}

// Copy writes every entry's data to stdout or stderr by stream, prefixed
// with its RFC 3339 time when Timestamps is set, until the end of the log.
func (r *LogReader) Copy(stdout, stderr io.Writer) error {
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		w := stdout
		if e.Stream == "stderr" {
			w = stderr
		}
		if w == nil {
			continue
		}
		if r.opts.Timestamps {
			if _, err := fmt.Fprintf(w, "%s ", e.Time.Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
	}
}

func parseLogLine(line []byte) (LogEntry, bool) {
	var rec logRecord
	if err := json.Unmarshal(line, &rec); err != nil {
		return LogEntry{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, rec.Time)
	if err != nil {
		return LogEntry{}, false
	}
	return LogEntry{Stream: rec.Stream, Time: t, Data: []byte(rec.Log)}, true
}
