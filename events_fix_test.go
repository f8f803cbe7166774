package dock

import (
	"fmt"
	"testing"
	"time"
)

// TestEventsUntilWithoutSince dumps the log's history as `docker events
// --until <now>` does: the events recorded so far, then the channel closes.
func TestEventsUntilWithoutSince(t *testing.T) {
	h := newHost(t)
	ctx := ctxT(t, 30*time.Second)
	h.event(EventCreated, "c1", "history-test", nil)
	h.event(EventRemoved, "c1", "history-test", nil)
	evs, err := h.Events(ctx, EventsUntil(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ev := range evs {
		got = append(got, ev.Type+" "+ev.ContainerName)
	}
	if ctx.Err() != nil {
		t.Fatal("the channel did not close")
	}
	if want := "[created history-test removed history-test]"; fmt.Sprint(got) != want {
		t.Errorf("events %q, want %s", got, want)
	}
}
