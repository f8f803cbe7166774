//go:build linux

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

func jsonUnmarshalFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func TestExitCodes(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		signal   int
		startErr string
	}{
		{"true", []string{"true"}, 0, 0, ""},
		{"exit3", []string{"sh", "-c", "exit 3"}, 3, 0, ""},
		{"notfound", []string{"nosuchcommand"}, 127, 0, `exec: "nosuchcommand": executable file not found in $PATH`},
		{"missingpath", []string{"/bin/nosuch"}, 127, 0, "no such file or directory"},
		{"notexecutable", []string{"/etc/notexec"}, 126, 0, "permission denied"},
		{"directory", []string{"/etc"}, 126, 0, "permission denied"},
		{"relative", []string{"../bin/true"}, 0, 0, ""}, // from the working directory /tmp
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, tc.args...)
			spec.Process.Cwd = "/tmp"
			h, err := start(t, spec, nil)
			if tc.startErr != "" {
				var se *StartError
				if !errors.As(err, &se) {
					t.Fatalf("start: got %v, want a StartError", err)
				}
				if se.ExitCode != tc.code || !strings.Contains(se.Msg, tc.startErr) {
					t.Fatalf("start: got code %d %q, want %d %q", se.ExitCode, se.Msg, tc.code, tc.startErr)
				}
				if tc.code == 127 && !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("127 does not match ErrNotFound")
				}
				// The failure is recorded as the container's exit.
				h, err = Load(spec.StateDir)
				if err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ { // Wait repeats
				es, err := h.Wait(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if es.ExitCode != tc.code || es.Signal != tc.signal {
					t.Fatalf("exit: got %+v, want code %d signal %d", es, tc.code, tc.signal)
				}
			}
			if st := h.State(); st.Status != Stopped || st.ExitCode != tc.code {
				t.Fatalf("state: %+v", st)
			}
		})
	}
}

func TestStdoutStderrInLogs(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sh", "-c", "echo out1; echo err1 >&2; echo out2; printf partial")
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("exit %+v", es)
	}
	if stdout != "out1\nout2\npartial" || stderr != "err1\n" {
		t.Fatalf("caller got stdout %q stderr %q", stdout, stderr)
	}
	r, err := Logs(context.Background(), spec.StateDir, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	for {
		e, err := r.Next()
		if err != nil {
			break
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute {
			t.Errorf("entry time %v", e.Time)
		}
		got = append(got, e.Stream+":"+string(e.Data))
	}
	var outs, errs []string
	for _, g := range got {
		if strings.HasPrefix(g, "stdout:") {
			outs = append(outs, g)
		} else {
			errs = append(errs, g)
		}
	}
	if strings.Join(outs, "|") != "stdout:out1\n|stdout:out2\n|stdout:partial" || strings.Join(errs, "|") != "stderr:err1\n" {
		t.Fatalf("log entries %q", got)
	}
	// Tail.
	r2, err := Logs(context.Background(), spec.StateDir, LogOptions{Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var n int
	for {
		if _, err := r2.Next(); err != nil {
			break
		}
		n++
	}
	if n != 1 {
		t.Fatalf("tail 1 gave %d entries", n)
	}
}
