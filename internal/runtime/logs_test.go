package runtime

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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
		if out.String() != "2026-01-02T03:04:09Z e\n" || errs.String() != "2026-01-02T03:04:08Z d\n" {
			t.Fatalf("stdout %q stderr %q", out.String(), errs.String())
		}
	})
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
