package main

import (
	"context"
	"strings"
	"sync"
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
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSupervise(t *testing.T) {
	testutil.RequireRoot(t)
	imagetest.RequireBusybox(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := dock.Open(ctx, dock.WithRoot(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dir := t.TempDir()
	imagetest.Busybox(t, dir, imagetest.Name("test.local/busybox:latest"))
	if _, err := h.Load(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// Replicas are healthy while /tmp/sick is absent.
	cfg := config{image: "test.local/busybox:latest", cmd: []string{"sleep", "1000"}, replicas: 2, group: "t",
		healthCmd: "test ! -e /tmp/sick", healthInterval: 200 * time.Millisecond}
	var out syncBuf
	done := make(chan error, 1)
	go func() { done <- supervise(ctx, h, cfg, &out) }()
	t.Cleanup(func() {
		cancel()
		<-done
		removeGroup(context.Background(), h, "t")
	})
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
}
