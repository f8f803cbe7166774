//go:build linux

package runtime

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.Kill(syscall.SIGKILL)
		h.Wait(context.Background())
	}()
	proc := func(args ...string) *Process {
		p := spec.Process
		p.Args = args
		return &p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("namespaces", func(t *testing.T) {
		var out, errb syncBuffer
		p, err := h.Exec(ctx, proc("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; echo cg=$(grep -cv ':/$' /proc/self/cgroup); grep -E '^(Seccomp|CapEff):' /proc/self/status | tr -d '\\t'; echo err >&2; exit 4"), &Stdio{Stdout: &out, Stderr: &errb})
		if err != nil {
			t.Fatal(err)
		}
		es, err := p.Wait(ctx)
		if err != nil || es.ExitCode != 4 {
			t.Fatalf("%+v %v", es, err)
		}
		for _, want := range []string{"sleep 100", spec.Hostname, "cg=0", "Seccomp:2", "CapEff:" + capMask(t, spec.Process.Caps)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q: %q", want, out.String())
			}
		}
		if errb.String() != "err\n" {
			t.Errorf("stderr %q", errb.String())
		}
	})
	t.Run("stdin-and-user", func(t *testing.T) {
		var out syncBuffer
		pr := proc("sh", "-c", "read x; echo $x $(id -u)")
		pr.User = User{UID: 1000, GID: 1000}
		p, err := h.Exec(ctx, pr, &Stdio{Stdin: strings.NewReader("hello\n"), Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 || out.String() != "hello 1000\n" {
			t.Fatalf("%+v %v %q", es, err, out.String())
		}
	})
	t.Run("not-found", func(t *testing.T) {
		_, err := h.Exec(ctx, proc("nosuch"), nil)
		var se *StartError
		if !errors.As(err, &se) || se.ExitCode != 127 {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		var out syncBuffer
		pr := proc("sh", "-c", "[ -t 1 ] && echo tty")
		pr.Terminal = true
		p, err := h.Exec(ctx, pr, &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 0 || !strings.Contains(out.String(), "tty") {
			t.Fatalf("%+v %v %q", es, err, out.String())
		}
	})
	t.Run("kill", func(t *testing.T) {
		p, err := h.Exec(ctx, proc("sleep", "100"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(ctx); err != nil || es.ExitCode != 137 {
			t.Fatalf("%+v %v", es, err)
		}
	})
	t.Run("root-is-the-container's", func(t *testing.T) {
		// /work exists on the host only; /bin/busybox in the container.
		var out syncBuffer
		p, err := h.Exec(ctx, proc("sh", "-c", "[ -e /work ] && echo host-root; [ -e /bin/busybox ] && echo container-root; readlink /proc/self/ns/mnt"), &Stdio{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		p.Wait(ctx)
		want, _ := os.Readlink("/proc/" + itoa(h.State().Pid) + "/ns/mnt")
		if strings.Contains(out.String(), "host-root") || !strings.Contains(out.String(), "container-root") || !strings.Contains(out.String(), want) {
			t.Fatalf("%q (container's mount namespace %s)", out.String(), want)
		}
	})
}
