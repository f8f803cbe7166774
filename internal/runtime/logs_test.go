package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTestLog makes a state directory whose log holds the given lines,
// one second apart, alternating stdout and stderr.
func writeTestLog(t *testing.T, cfg LogConfig, lines []string) (string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	spec := Spec{ID: "x", StateDir: dir, Log: cfg}
	b, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, configFile), b, 0o600)
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"status":"stopped"}`), 0o600)
	w, err := openLogWriter(cfg, spec.logPath())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, l := range lines {
		stream := "stdout"
		if i%2 == 1 {
			stream = "stderr"
		}
		if err := w.write(stream, t0.Add(time.Duration(i)*time.Second), []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return dir, t0
}

func readAll(t *testing.T, dir string, opts LogOptions) []string {
	t.Helper()
	r, err := Logs(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Stream[:3]+":"+string(e.Data))
	}
}

func TestLogOptions(t *testing.T) {
	lines := []string{"a\n", "b\n", "c\n", "d\n", "e\n"}
	dir, t0 := writeTestLog(t, LogConfig{}, lines)
	tests := []struct {
		name string
		opts LogOptions
		want string
	}{
		{"all", LogOptions{}, "std:a\n std:b\n std:c\n std:d\n std:e\n"},
		{"tail", LogOptions{Tail: 2}, "std:d\n std:e\n"},
		{"tail-more-than-all", LogOptions{Tail: 10}, "std:a\n std:b\n std:c\n std:d\n std:e\n"},
		{"since", LogOptions{Since: t0.Add(3 * time.Second)}, "std:d\n std:e\n"},
		{"follow-stopped", LogOptions{Follow: true}, "std:a\n std:b\n std:c\n std:d\n std:e\n"},
		{"until", LogOptions{Until: t0.Add(1500 * time.Millisecond)}, "std:a\n std:b\n"},
		{"since-until", LogOptions{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, "std:b\n std:c\n std:d\n"},
		{"tail-until", LogOptions{Tail: 3, Until: t0.Add(3 * time.Second)}, "std:c\n std:d\n"},
		{"tail-since", LogOptions{Tail: 2, Since: t0.Add(time.Second)}, "std:d\n std:e\n"},
		{"tail-before-since", LogOptions{Tail: 4, Since: t0.Add(3 * time.Second)}, "std:d\n std:e\n"},
		{"follow-until", LogOptions{Follow: true, Until: t0.Add(2 * time.Second)}, "std:a\n std:b\n std:c\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(readAll(t, dir, tc.opts), " "); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("copy-timestamps", func(t *testing.T) {
		r, err := Logs(context.Background(), dir, LogOptions{Tail: 2, Timestamps: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out, errs strings.Builder
		if err := r.Copy(&out, &errs); err != nil {
			t.Fatal(err)
		}
		if out.String() != "2026-01-02T03:04:09.000000000Z e\n" || errs.String() != "2026-01-02T03:04:08.000000000Z d\n" {
			t.Fatalf("stdout %q stderr %q", out.String(), errs.String())
		}
	})
}

// TestLogFollowUntil follows the log of a running container until a time
// to come: following ends then, though the container goes on.
func TestLogFollowUntil(t *testing.T) {
	dir, _ := writeTestLog(t, LogConfig{}, []string{"a\n"})
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"status":"running"}`), 0o600)
	start := time.Now()
	got := readAll(t, dir, LogOptions{Follow: true, Until: start.Add(300 * time.Millisecond)})
	if strings.Join(got, " ") != "std:a\n" {
		t.Errorf("got %q, want a", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("following ended after %v, before its end", d)
	}
}

func TestLogRotationAndLongLines(t *testing.T) {
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, strings.Repeat("x", 90)+"\n")
	}
	dir, _ := writeTestLog(t, LogConfig{MaxSize: 2000, MaxFiles: 2}, lines)
	got := readAll(t, dir, LogOptions{})
	if len(got) == 0 || len(got) >= 100 {
		t.Fatalf("%d entries kept", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, logFile+".2")); err == nil {
		t.Fatal("a third file kept")
	}
	for _, f := range []string{logFile, logFile + ".1"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() > 2000 {
			t.Fatalf("%s: %v %v", f, fi.Size(), err)
		}
	}

	// A line longer than 16 KiB is split, and a last line without newline
	// is kept.
	dir2 := t.TempDir()
	w, err := openLogWriter(LogConfig{}, filepath.Join(dir2, "log"))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("y", maxLogLine+10) + "\nend"
	w.copyStream("stdout", strings.NewReader(long), nil)
	w.Close()
	b, _ := os.ReadFile(filepath.Join(dir2, "log"))
	recs := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	var last logRecord
	json.Unmarshal([]byte(recs[2]), &last)
	if last.Log != "end" {
		t.Fatalf("last record %q", last.Log)
	}
}

// FuzzAppendJSONString checks the log's string encoder against
// encoding/json's.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain line\n", "quote \" back \\ slash", "\x00\x01\x1f\x7f", "<a href=\"x\">&amp;</a>",
		"\b\f\r\t", "h\xe9llo \xff\xfe", "\u2028\u2029", "日本語 ✓", "\xed\xa0\x80 surrogate", "trailing \xe2\x82"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		want, err := json.Marshal(string(s))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("%q: %s, encoding/json %s", s, got[1:], want)
		}
	})
}

// TestLogWriteAllocatesNothing checks that a line costs no allocation once
// the writer's buffer has grown: the monitor's heap must not grow with what
// a container writes.
func TestLogWriteAllocatesNothing(t *testing.T) {
	w, err := openLogWriter(LogConfig{}, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := []byte("a line of output, with \"quotes\" and <tags> & a tab\t\n")
	now := time.Now()
	w.write("stdout", now, line)
	if n := testing.AllocsPerRun(100, func() { w.write("stdout", now, line) }); n != 0 {
		t.Errorf("%v allocations per line", n)
	}
}

// rotatingLog is a state directory whose log rotates every few lines, with
// a writer the test drives line by line.
type rotatingLog struct {
	t   *testing.T
	dir string
	w   *logWriter
	n   int // lines written
}

func newRotatingLog(t *testing.T, cfg LogConfig) *rotatingLog {
	t.Helper()
	dir := t.TempDir()
	spec := Spec{ID: "x", StateDir: dir, Log: cfg}
	b, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, configFile), b, 0o600)
	l := &rotatingLog{t: t, dir: dir}
	l.setState(`{"status":"running"}`)
	w, err := openLogWriter(cfg, spec.logPath())
	if err != nil {
		t.Fatal(err)
	}
	l.w = w
	t.Cleanup(func() { w.Close() })
	return l
}

func (l *rotatingLog) setState(st string) {
	if err := writeFileAtomic(filepath.Join(l.dir, stateFile), []byte(st), false); err != nil {
		l.t.Fatal(err)
	}
}

// write writes n more lines, numbered from where the last call ended.
func (l *rotatingLog) write(n int) {
	for range n {
		if err := l.w.write("stdout", time.Now(), fmt.Appendf(nil, "%02d %s\n", l.n, strings.Repeat("x", 80))); err != nil {
			l.t.Fatal(err)
		}
		l.n++
	}
}

// numbers returns the line numbers of entries, in the order read.
func numbers(t *testing.T, r *LogReader, first []int) []int {
	t.Helper()
	got := first
	for {
		e, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		var n int
		fmt.Sscanf(string(e.Data), "%d", &n)
		got = append(got, n)
	}
}

func next(t *testing.T, r *LogReader) int {
	t.Helper()
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscanf(string(e.Data), "%d", &n)
	return n
}

func wantRange(t *testing.T, got []int, from, to int) {
	t.Helper()
	var want []int
	for i := from; i < to; i++ {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read lines %v, want %d to %d", got, from, to-1)
	}
}

// TestLogFollowRotations follows a log that rotates several times between
// two reads: the files in between are read too.
func TestLogFollowRotations(t *testing.T) {
	l := newRotatingLog(t, LogConfig{MaxSize: 520, MaxFiles: 5})
	l.write(3)
	r, err := Logs(context.Background(), l.dir, LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := next(t, r)
	l.write(9) // three lines a file: three rotations
	l.setState(`{"status":"stopped"}`)
	wantRange(t, numbers(t, r, []int{first}), 0, 12)
}

// TestLogReadDuringRotation reads a log without following while it
// rotates: what was written when it was opened comes whole.
func TestLogReadDuringRotation(t *testing.T) {
	l := newRotatingLog(t, LogConfig{MaxSize: 520, MaxFiles: 3})
	l.write(12)
	r, err := Logs(context.Background(), l.dir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first := next(t, r)
	l.write(4)
	wantRange(t, numbers(t, r, []int{first}), first, 12)
	if first != 3 {
		t.Errorf("the oldest line kept is %d, want 3 (three files of three lines)", first)
	}
}

// TestLogFollowOneFile follows a log kept in one file, which each
// rotation replaces: the follower goes on with each new file.
func TestLogFollowOneFile(t *testing.T) {
	l := newRotatingLog(t, LogConfig{MaxSize: 520, MaxFiles: 1})
	r, err := Logs(context.Background(), l.dir, LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lines := make(chan int)
	go func() {
		for {
			e, err := r.Next()
			if err != nil {
				close(lines)
				return
			}
			var n int
			fmt.Sscanf(string(e.Data), "%d", &n)
			lines <- n
		}
	}()
	for file := range 5 {
		l.write(3) // a file's worth: the first line of the next rotates
		for i := range 3 {
			select {
			case n, ok := <-lines:
				if want := 3*file + i; !ok || n != want {
					t.Fatalf("read line %d (%v), want %d", n, ok, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("line %d not read", 3*file+i)
			}
		}
	}
	l.setState(`{"status":"stopped"}`)
	if n, ok := <-lines; ok {
		t.Fatalf("read line %d after the last", n)
	}
}

// TestLogFollowEnds checks that following ends when no more can come:
// after the monitor died without recording the exit, after the container
// was removed, and after a start that failed before there was a log.
func TestLogFollowEnds(t *testing.T) {
	follow := func(t *testing.T, dir string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := Logs(ctx, dir, LogOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for {
			_, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("Next: %v, want io.EOF", err)
			}
		}
	}
	t.Run("monitor-gone", func(t *testing.T) {
		l := newRotatingLog(t, LogConfig{})
		l.write(2)
		// A running state whose monitor is this test: not a monitor.
		l.setState(fmt.Sprintf(`{"status":"running","pid":%d,"monitorPid":%d}`, os.Getpid(), os.Getpid()))
		follow(t, l.dir)
	})
	t.Run("removed", func(t *testing.T) {
		l := newRotatingLog(t, LogConfig{})
		l.write(2)
		go func() {
			time.Sleep(100 * time.Millisecond)
			os.Remove(filepath.Join(l.dir, configFile))
			os.Remove(filepath.Join(l.dir, stateFile))
		}()
		follow(t, l.dir)
	})
	t.Run("no-log", func(t *testing.T) {
		dir := t.TempDir()
		b, _ := json.Marshal(Spec{ID: "x", StateDir: dir})
		os.WriteFile(filepath.Join(dir, configFile), b, 0o600)
		os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"status":"stopped","exitCode":127}`), 0o600)
		follow(t, dir)
	})
}

// TestLogCloseWhileFollowing closes a reader from another goroutine while
// its Next waits for more.
func TestLogCloseWhileFollowing(t *testing.T) {
	l := newRotatingLog(t, LogConfig{})
	l.write(1)
	r, err := Logs(context.Background(), l.dir, LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	next(t, r)
	done := make(chan error)
	go func() {
		_, err := r.Next()
		done <- err
	}()
	time.Sleep(60 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next returned an entry after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still waits after Close")
	}
	if len(r.files) != 0 {
		t.Errorf("%d files still open after Close", len(r.files))
	}
}

// TestLogRotationFails makes the new file impossible: the log goes on in
// the current file, and no older file is lost.
func TestLogRotationFails(t *testing.T) {
	l := newRotatingLog(t, LogConfig{MaxSize: 520, MaxFiles: 3})
	l.write(4) // one rotation: lines 0-2 in .1
	logPath := filepath.Join(l.dir, logFile)
	if err := os.Mkdir(logPath+".new", 0o700); err != nil {
		t.Fatal(err)
	}
	l.write(8) // rotations due, all failing
	if _, err := os.Stat(logPath + ".2"); err == nil {
		t.Error("a failed rotation shifted the older files")
	}
	l.setState(`{"status":"stopped"}`)
	r, err := Logs(context.Background(), l.dir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wantRange(t, numbers(t, r, nil), 0, 12)
}

// TestLogTail takes the last lines across rotated files, and leaves out a
// line still being written.
func TestLogTail(t *testing.T) {
	l := newRotatingLog(t, LogConfig{MaxSize: 520, MaxFiles: 3})
	l.write(12) // lines 3-5, 6-8 and 9-11 kept
	f, err := os.OpenFile(filepath.Join(l.dir, logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"stream":"stdout","time":"2026-01-02T03:04:05Z","log":"half a li`)
	f.Close()
	l.setState(`{"status":"stopped"}`)
	for _, tc := range []struct{ tail, from int }{{1, 11}, {2, 10}, {3, 9}, {4, 8}, {7, 5}, {9, 3}, {100, 3}} {
		r, err := Logs(context.Background(), l.dir, LogOptions{Tail: tc.tail})
		if err != nil {
			t.Fatal(err)
		}
		got := numbers(t, r, nil)
		r.Close()
		var want []int
		for i := tc.from; i < 12; i++ {
			want = append(want, i)
		}
		if !slices.Equal(got, want) {
			t.Errorf("tail %d: %v, want %v", tc.tail, got, want)
		}
	}
}

// BenchmarkLogTail takes the last 10 lines of a log of 64 MiB.
func BenchmarkLogTail(b *testing.B) {
	dir := b.TempDir()
	spec := Spec{ID: "x", StateDir: dir}
	js, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, configFile), js, 0o600)
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"status":"stopped"}`), 0o600)
	w, err := openLogWriter(LogConfig{}, spec.logPath())
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 100) + "\n")
	now := time.Now()
	for range (64 << 20) / 160 {
		w.write("stdout", now, line)
	}
	w.Close()
	b.ResetTimer()
	for range b.N {
		r, err := Logs(context.Background(), dir, LogOptions{Tail: 10})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				break
			}
			n++
		}
		r.Close()
		if n != 10 {
			b.Fatalf("%d lines", n)
		}
	}
}
