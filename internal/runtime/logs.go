package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
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
	failing  [2]bool     // by what (writing, rotating): the last one failed, and said so
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
		// Past the size, the log goes on in the file it has rather than
		// lose the line.
		w.report(rotating, w.rotate())
	}
	n, err := w.f.Write(b)
	if err != nil {
		// A record cut short (a full disk) would run into the next one
		// and spoil both: take it back.
		if n > 0 {
			w.f.Truncate(w.size)
		}
		w.report(writing, err)
		return err
	}
	w.size += int64(n)
	w.report(writing, nil)
	return nil
}

// What a logWriter reports failing.
const (
	writing = iota
	rotating
)

// report writes to the monitor's log when writing or rotating the
// container's log starts or stops failing, once each.
func (w *logWriter) report(what int, err error) {
	name := [...]string{writing: "written", rotating: "rotated"}[what]
	switch {
	case err != nil && !w.failing[what]:
		fmt.Fprintf(os.Stderr, "container log: %v\n", err)
	case err == nil && w.failing[what]:
		fmt.Fprintf(os.Stderr, "container log: %s again\n", name)
	}
	w.failing[what] = err != nil
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

// rotate starts a new file under the log's name. The new file is made
// first and takes the name by rename, so a failure leaves the log as it
// was and the name never goes missing. Before that the older files shift
// by one (path.1 to path.2 ...) and the current one gets path.1 as a
// second name; with one file kept, the current one just goes. A reader
// holding the old file reads it to its end, then goes on with the new one.
func (w *logWriter) rotate() error {
	tmp := w.path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	if w.maxFiles > 1 {
		for i := w.maxFiles - 1; i > 1; i-- {
			os.Rename(w.path+"."+strconv.Itoa(i-1), w.path+"."+strconv.Itoa(i))
		}
		os.Remove(w.path + ".1")
		if err := os.Link(w.path, w.path+".1"); err != nil {
			// No hard links here: the name is missing until the rename
			// below, which readers wait out.
			err = os.Rename(w.path, w.path+".1")
			if err != nil {
				f.Close()
				os.Remove(tmp)
				return err
			}
		}
	}
	if err := os.Rename(tmp, w.path); err != nil {
		f.Close()
		os.Remove(tmp)
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

// TimestampFormat is the time before each line of `logs --timestamps`:
// RFC 3339 with all nine digits of the nanoseconds, as Docker prints it, so
// that the lines align and sort as text.
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool      // keep returning new entries until the container stops
	Tail       int       // only the last Tail entries already written; 0 for all
	Since      time.Time // skip entries written before
	Until      time.Time // end at the first entry written after; following ends then too
	Timestamps bool      // Copy prefixes each line with its time
}

// LogReader returns a container's log entries in order.
type LogReader struct {
	mu          sync.Mutex // held by Next and Close
	untilPassed bool       // an entry after Until was met
	ctx         context.Context
	cancel      context.CancelFunc
	stateDir    string
	path        string
	maxFiles    int
	opts        LogOptions
	backlog     []LogEntry // entries read ahead (for Tail)
	files       []*os.File // open, still to read, oldest first: files[0] is being read
	rd          *bufio.Reader
	partial     []byte
	draining    bool // the last file was rotated: read it to its end, then go on
}

// Logs opens the log of the container in stateDir. It works from any
// process, while the container runs and after it stopped. With Follow, Next
// blocks for new entries until the container has stopped (or was removed)
// and its last entries are read, ctx ends, or Close is called.
//
// The files of the log are opened at once, so a rotation while they are
// read loses none of them.
func Logs(ctx context.Context, stateDir string, opts LogOptions) (*LogReader, error) {
	spec, err := readSpec(stateDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &LogReader{ctx: ctx, cancel: cancel, stateDir: stateDir, path: spec.logPath(), maxFiles: spec.Log.MaxFiles, opts: opts}
	if r.files, err = r.openAfter(nil); err != nil {
		cancel()
		return nil, err
	}
	if opts.Tail > 0 {
		// Start at the last Tail lines, found from the end. Since and
		// Until filter those, as in Docker; entries are in time order, so
		// they are also the last Tail entries since.
		if err := r.seekTail(opts.Tail); err != nil {
			r.Close()
			return nil, err
		}
		// Read what is written so far, keep the last Tail entries, and
		// go on from the newest file's end.
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

// seekTail moves the reader to the start of the last n complete lines of
// the files it has open, reading them backwards from their ends, and
// closes the files before. A line not yet complete at the end of the
// newest file does not count.
func (r *LogReader) seekTail(n int) error {
	buf := make([]byte, 64<<10)
	for i := len(r.files) - 1; i >= 0; i-- {
		f := r.files[i]
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		// Each complete line ends with a newline: the start of the n-th
		// line from the end follows the (n+1)-th newline from the end,
		// or is the file's start.
		seen := 0
		start := int64(-1)
		for end := fi.Size(); end > 0 && start < 0; {
			off := max(end-int64(len(buf)), 0)
			b := buf[:end-off]
			if _, err := f.ReadAt(b, off); err != nil {
				return err
			}
			for j := len(b) - 1; j >= 0; j-- {
				if b[j] != '\n' {
					continue
				}
				if seen == n {
					start = off + int64(j) + 1
					break
				}
				seen++
			}
			end = off
		}
		if start < 0 && seen < n {
			n -= seen // all of this file, and more from the one before
			continue
		}
		if start < 0 {
			start = 0
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return err
		}
		closeFiles(r.files[:i])
		r.files = r.files[i:]
		return nil
	}
	return nil // fewer lines than n in all
}

// Next returns the next entry, or io.EOF at the end of the log, or at
// Until.
func (r *LogReader) Next() (LogEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.untilPassed {
		return LogEntry{}, io.EOF
	}
	var e LogEntry
	var err error
	if len(r.backlog) > 0 {
		e = r.backlog[0]
		r.backlog = r.backlog[1:]
	} else {
		e, err = r.next(r.opts.Follow)
	}
	switch {
	case errors.Is(err, errUntil):
		// Ended for good: a line written late, stamped before Until,
		// is not given after the end.
		r.untilPassed = true
		err = io.EOF
	case err == nil && !r.opts.Until.IsZero() && e.Time.After(r.opts.Until):
		r.untilPassed = true
		return LogEntry{}, io.EOF
	}
	return e, err
}

// errUntil ends a follow at Until.
var errUntil = errors.New("until")

func (r *LogReader) next(follow bool) (LogEntry, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			return LogEntry{}, err
		}
		if len(r.files) == 0 {
			// No log yet: the container has not started.
			if !follow || r.ended() {
				return LogEntry{}, io.EOF
			}
			if err := r.pause(); err != nil {
				return LogEntry{}, err
			}
			files, err := r.openAfter(nil)
			if err != nil {
				return LogEntry{}, err
			}
			r.files = files
			continue
		}
		if r.rd == nil {
			r.rd = bufio.NewReaderSize(r.files[0], 64<<10)
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
			r.advance()
			continue
		}
		// At the end of the newest file known.
		if !follow {
			return LogEntry{}, io.EOF
		}
		if r.draining {
			// The rotated file was read to its end: go on with the files
			// made since.
			fi, err := r.files[0].Stat()
			if err != nil {
				return LogEntry{}, err
			}
			files, err := r.openAfter(fi)
			if err != nil {
				return LogEntry{}, err
			}
			if len(files) == 0 {
				// The new file has no name yet.
				if err := r.pause(); err != nil {
					return LogEntry{}, err
				}
				continue
			}
			r.files = append(r.files, files...)
			r.draining = false
			r.advance()
			continue
		}
		if r.rotated() {
			r.draining = true
			continue
		}
		if r.ended() {
			// The monitor wrote its last entry before it recorded the
			// exit: read what is left, in this file or in one after it.
			if n, _ := r.rd.Peek(1); len(n) > 0 {
				continue
			}
			if r.rotated() {
				r.draining = true
				continue
			}
			return LogEntry{}, io.EOF
		}
		if err := r.pause(); err != nil {
			return LogEntry{}, err
		}
	}
}

// openAfter opens the log's files newer than last (all of them when last
// is nil), oldest first.
func (r *LogReader) openAfter(last os.FileInfo) ([]*os.File, error) {
	names := []string{r.path}
	for i := 1; i < r.maxFiles; i++ {
		names = append(names, r.path+"."+strconv.Itoa(i))
	}
	return openRotated(names, last)
}

// openRotated opens the files of a log rotated by name, given newest first
// (its live name, then name.1 ...), up to last (all of them when last is
// nil), skipping a file met twice, and returns them oldest first. A
// rotation shifts the names towards the older while they are opened; one
// that ends meanwhile changes the file the live name holds, and then they
// are opened again.
func openRotated(names []string, last os.FileInfo) ([]*os.File, error) {
	for tries := 0; ; tries++ {
		before, _ := os.Stat(names[0])
		files, err := scanRotated(names, last)
		if err != nil {
			return nil, err
		}
		after, _ := os.Stat(names[0])
		stable := before == nil && after == nil || before != nil && after != nil && os.SameFile(before, after)
		if stable || tries == 10 {
			return files, nil
		}
		closeFiles(files)
	}
}

func scanRotated(names []string, last os.FileInfo) ([]*os.File, error) {
	var files []*os.File
	var infos []os.FileInfo
	for _, name := range names {
		f, err := os.Open(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			closeFiles(files)
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			closeFiles(files)
			return nil, err
		}
		if last != nil && os.SameFile(fi, last) {
			f.Close()
			break
		}
		if slices.ContainsFunc(infos, func(o os.FileInfo) bool { return os.SameFile(o, fi) }) {
			f.Close()
			continue
		}
		files, infos = append(files, f), append(infos, fi)
	}
	slices.Reverse(files)
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// advance closes the file read to its end and goes on with the next.
func (r *LogReader) advance() {
	r.files[0].Close()
	r.files = r.files[1:]
	r.rd = nil
	r.partial = r.partial[:0]
}

// rotated tells whether the log's name now holds another file than the
// newest one open, or none.
func (r *LogReader) rotated() bool { return movedOn(r.files[len(r.files)-1], r.path) }

// movedOn tells whether the live name of a log now holds another file than
// f, or none: f was rotated away.
func movedOn(f *os.File, live string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(live)
	return err == nil && !os.SameFile(a, b) || os.IsNotExist(err)
}

// ended tells whether the container will write no more: it stopped, its
// monitor died without recording that, or it was removed.
func (r *LogReader) ended() bool {
	if _, err := os.Stat(path.Join(r.stateDir, configFile)); os.IsNotExist(err) {
		return true
	}
	st, err := ReadState(r.stateDir)
	return err == nil && st.Status != Running && st.Status != Created
}

func (r *LogReader) pause() error {
	wait := 25 * time.Millisecond
	if until := r.opts.Until; !until.IsZero() {
		// What is written by Until has been read: a follow ends there.
		left := time.Until(until)
		if left <= 0 {
			return errUntil
		}
		wait = min(wait, left)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close ends the reader; a Next blocked in another goroutine returns.
func (r *LogReader) Close() error {
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	closeFiles(r.files)
	r.files, r.rd = nil, nil
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
			if _, err := fmt.Fprintf(w, "%s ", e.Time.Format(TimestampFormat)); err != nil {
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
