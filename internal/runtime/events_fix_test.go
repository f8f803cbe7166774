package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEventsSinceAcrossRotations opens a reader from now while the log
// has a rotated file, then rotates the log twice before reading: the reader
// holds the files it opened and goes from each to the one after, so every
// event appended since it opened comes, in order.
func TestEventsSinceAcrossRotations(t *testing.T) {
	root := t.TempDir()
	// Over half the limit: no two share a file, and each appended to a
	// file holding anything rotates the log.
	filler := strings.Repeat("x", eventsMax/2)
	fill := func(id string) {
		t.Helper()
		if err := AppendEvent(root, Event{Type: EventStarted, ID: id, Attributes: map[string]string{"fill": filler}}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(id string) {
		t.Helper()
		if err := AppendEvent(root, Event{Type: EventStarted, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	fill("old-1")
	fill("old-2") // events.jsonl.1 holds old-1
	r, err := ReadEvents(root, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	add("marker")
	fill("fill-1") // rotation: the marker's file is now events.jsonl.1
	add("after-1")
	fill("fill-2") // rotation: the marker's file is gone from the root
	add("after-2")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for {
		ev, err := r.Next(ctx, false)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID)
	}
	if want := "[marker fill-1 after-1 fill-2 after-2]"; fmt.Sprint(got) != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

// TestEventsInTimeOrder has several writers append concurrently: the log's
// order is the order of the events' times, which readers stopping at a
// time rely on.
func TestEventsInTimeOrder(t *testing.T) {
	root := t.TempDir()
	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range each {
				if err := AppendEvent(root, Event{Type: EventStarted, ID: fmt.Sprintf("writer-%d", w)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, err := os.Stat(EventsPath(root) + ".1"); err == nil {
		t.Fatal("the log rotated: the test reads one file")
	}
	r, err := ReadEvents(root, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var prev time.Time
	for n := 0; ; n++ {
		ev, err := r.Next(context.Background(), false)
		if err == io.EOF {
			if n != writers*each {
				t.Errorf("read %d events, want %d", n, writers*each)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Time.Before(prev) {
			t.Fatalf("line %d: time %v before the line above's %v", n+1, ev.Time, prev)
		}
		prev = ev.Time
	}
}
