package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestEventsFollowAcrossRotation has several writers append concurrently,
// enough to rotate the log twice, while a reader follows: it sees every
// event once, and each writer's in order.
func TestEventsFollowAcrossRotation(t *testing.T) {
	root := t.TempDir()
	r, err := ReadEvents(root, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const writers, each = 4, 9000 // ~150 bytes an event: over 5 MiB in all
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev := Event{Type: EventStarted, ID: fmt.Sprintf("writer-%d", w), Name: "rotation-test",
					Attributes: map[string]string{"seq": strconv.Itoa(i)}}
				if err := AppendEvent(root, ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := map[string]int{}
	for n := 0; n < writers*each; n++ {
		ev, err := r.Next(ctx, true)
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		if want := strconv.Itoa(next[ev.ID]); ev.Attributes["seq"] != want {
			t.Fatalf("%s: seq %s, want %s", ev.ID, ev.Attributes["seq"], want)
		}
		next[ev.ID]++
	}
	wg.Wait()
	if _, err := r.Next(ctx, false); err != io.EOF {
		t.Errorf("after the last event: %v", err)
	}
	// Bounded: the live log and one rotated file, each under the limit.
	for _, p := range []string{EventsPath(root), EventsPath(root) + ".1"} {
		if fi, err := os.Stat(p); err != nil || fi.Size() > eventsMax {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestEventAfterTornLine has an event appended after a last line a crash
// cut short, and one after a tail of zeros: each is read, the broken lines
// skipped.
func TestEventAfterTornLine(t *testing.T) {
	for _, tail := range []string{`{"type":"start`, "\x00\x00\x00\x00"} {
		root := t.TempDir()
		if err := AppendEvent(root, Event{Type: EventDied, ID: "first"}); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(EventsPath(root), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(tail)
		f.Close()
		if err := AppendEvent(root, Event{Type: EventStarted, ID: "after"}); err != nil {
			t.Fatal(err)
		}
		r, err := ReadEvents(root, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			ev, err := r.Next(context.Background(), false)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.ID)
		}
		r.Close()
		if fmt.Sprint(got) != "[first after]" {
			t.Errorf("tail %q: events %q, want [first after]", tail, got)
		}
	}
}

func TestParseRestartPolicy(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want RestartPolicy
		ok   bool
	}{
		{"no", RestartPolicy{Name: "no"}, true},
		{"always", RestartPolicy{Name: "always"}, true},
		{"unless-stopped", RestartPolicy{Name: "unless-stopped"}, true},
		{"on-failure", RestartPolicy{Name: "on-failure"}, true},
		{"on-failure:3", RestartPolicy{Name: "on-failure", MaxRetries: 3}, true},
		{"on-failure:x", RestartPolicy{}, false},
		{"always:2", RestartPolicy{}, false},
		{"sometimes", RestartPolicy{}, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRestartPolicy(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Errorf("got %+v, %v", got, err)
			}
		})
	}
}
