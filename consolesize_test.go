package dock

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A terminal has its first size before the command runs: stty reads it once.
func TestConsoleSize(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	c, err := h.Create(ctx, img, WithTTY(), WithCmd("stty", "size"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(ctx, true) })
	var out syncBuffer
	if err := c.Start(ctx, WithOutput(&out, nil), WithConsoleSize(40, 120)); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 0 || strings.TrimSpace(out.String()) != "40 120" {
		t.Errorf("container: exit %d, stty size printed %q, want \"40 120\"", st.ExitCode, out.String())
	}

	r, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	got, code := execOut(t, r, []string{"stty", "size"}, WithExecTerminal(), WithConsoleSize(40, 120))
	if code != 0 || strings.TrimSpace(got) != "40 120" {
		t.Errorf("exec: exit %d, stty size printed %q, want \"40 120\"", code, got)
	}
	if _, err := r.Exec(ctx, []string{"true"}, WithConsoleSize(0, 80)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("WithConsoleSize(0, 80): %v, want ErrInvalidArgument", err)
	}
}
