package main

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/internal/testutil"
	"github.com/dockkit/dock/internal/testutil/imagetest"
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running returns the group's running replicas.
func running(t *testing.T, h *dock.Host, group string) []*dock.Container {
	all, err := h.Containers(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var out []*dock.Container
	for _, c := range all {
		if c.Labels[groupLabel] == group && c.State().Status == dock.StatusRunning {
			out = append(out, c)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 30*time.Second, what, cond)
}

func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startSupervise opens a host with the busybox image and supervises cfg's
// group on it until the test ends; done is closed when supervise returns.
func startSupervise(t *testing.T, cfg config) (ctx context.Context, h *dock.Host, out *syncBuf, done <-chan struct{}) {
	testutil.RequireRoot(t)
	imagetest.RequireBusybox(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := dock.Open(ctx, dock.WithRoot(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	dir := t.TempDir()
	imagetest.Busybox(t, dir, imagetest.Name("test.local/busybox:latest"))
	if _, err := h.Load(ctx, dir); err != nil {
		t.Fatal(err)
	}
	out = &syncBuf{}
	stopped := make(chan struct{})
	go func() {
		if err := supervise(ctx, h, cfg, out); err != nil && ctx.Err() == nil {
			t.Errorf("supervise: %v", err)
		}
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		removeGroup(context.Background(), h, cfg.group)
	})
	return ctx, h, out, stopped
}

func TestSupervise(t *testing.T) {
	// Replicas are healthy while /tmp/sick is absent.
	cfg := config{image: "test.local/busybox:latest", cmd: []string{"sleep", "1000"}, replicas: 2, group: "t",
		healthCmd: "test ! -e /tmp/sick", healthInterval: 200 * time.Millisecond}
	ctx, h, out, _ := startSupervise(t, cfg)
	waitFor(t, "two replicas", func() bool { return len(running(t, h, "t")) == 2 })

	// A replica killed is replaced.
	victim := running(t, h, "t")[0]
	victim.Kill(syscall.SIGKILL)
	waitFor(t, "a replacement of the killed replica", func() bool {
		rs := running(t, h, "t")
		return len(rs) == 2 && rs[0].ID != victim.ID && rs[1].ID != victim.ID
	})

	// A replica turning unhealthy is replaced.
	sick := running(t, h, "t")[0]
	p, err := sick.Exec(ctx, []string{"touch", "/tmp/sick"})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait(ctx)
	waitFor(t, "a replacement of the unhealthy replica", func() bool {
		rs := running(t, h, "t")
		return len(rs) == 2 && rs[0].ID != sick.ID && rs[1].ID != sick.ID
	})
	for _, want := range []string{"died", "health_status map[status:unhealthy]", "replacing " + sick.Name} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A replica another program removes (`dock rm -f`) is replaced on its
	// events, well before the 30 s safety tick.
	h2, err := dock.Open(ctx, dock.WithRoot(h.Root()))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	gone, err := h2.Container(ctx, running(t, h, "t")[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := gone.Remove(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 5*time.Second, "a replacement of the removed replica", func() bool {
		rs := running(t, h, "t")
		return len(rs) == 2 && rs[0].ID != gone.ID && rs[1].ID != gone.ID
	})
}

// TestSuperviseResubscribes ends the first events stream as a read error
// would: the supervisor follows the log again, and still replaces a replica
// killed, well before the 30 s safety tick.
func TestSuperviseResubscribes(t *testing.T) {
	var calls atomic.Int32
	orig := subscribe
	subscribe = func(ctx context.Context, host *dock.Host, since time.Time) (<-chan dock.Event, error) {
		if calls.Add(1) == 1 {
			ch := make(chan dock.Event)
			close(ch)
			return ch, nil
		}
		return orig(ctx, host, since)
	}
	t.Cleanup(func() { subscribe = orig })
	cfg := config{image: "test.local/busybox:latest", cmd: []string{"sleep", "1000"}, replicas: 2, group: "r"}
	_, h, _, done := startSupervise(t, cfg)
	waitFor(t, "two replicas and a second subscription", func() bool {
		select {
		case <-done:
			t.Fatal("supervise returned when its events ended")
		default:
		}
		return len(running(t, h, "r")) == 2 && calls.Load() == 2
	})
	victim := running(t, h, "r")[0]
	victim.Kill(syscall.SIGKILL)
	waitWithin(t, 5*time.Second, "a replacement of the killed replica", func() bool {
		rs := running(t, h, "r")
		return len(rs) == 2 && rs[0].ID != victim.ID && rs[1].ID != victim.ID
	})
}
