package dock

import (
	"context"
	"fmt"
	"time"

	"github.com/dockkit/dock/internal/runtime"
)

// Event types: what happened to a container.
const (
	EventCreated    = "created"
	EventStarted    = runtime.EventStarted
	EventDied       = runtime.EventDied // Attributes["exitCode"], and ["signal"] when a signal ended it
	EventOOM        = runtime.EventOOM
	EventPaused     = runtime.EventPaused
	EventUnpaused   = runtime.EventUnpaused
	EventRestarting = runtime.EventRestarted // the restart policy starts it again after a back-off
	EventHealth     = runtime.EventHealth    // Attributes["status"]: starting, healthy or unhealthy
	EventRemoved    = "removed"
)

// Event is something that happened to a container of a host, as recorded in
// the root's events log by the container's monitor or by the program that
// acted. Every program opening the root sees the same events in the same
// order.
type Event struct {
	Time          time.Time
	Type          string
	ContainerID   string
	ContainerName string
	Attributes    map[string]string
}

// EventsOption configures Host.Events.
type EventsOption func(*eventsConfig) error

type eventsConfig struct {
	since, until time.Time
	containers   map[string]bool
	types        map[string]bool
}

// EventsSince replays the recorded events from t on before following new
// ones; without it (and without EventsUntil) only events from the call on
// are returned. The log keeps the last few megabytes of events.
func EventsSince(t time.Time) EventsOption {
	return func(c *eventsConfig) error { c.since = t; return nil }
}

// EventsUntil ends the stream (the channel closes) at the first event after t,
// or when the log has nothing newer and t has passed. Without EventsSince
// the stream starts at the oldest event the log keeps, as `docker events
// --until` does.
func EventsUntil(t time.Time) EventsOption {
	return func(c *eventsConfig) error { c.until = t; return nil }
}

// EventsFor keeps only events of the containers named, by ID or name.
func EventsFor(nameOrID ...string) EventsOption {
	return func(c *eventsConfig) error {
		if c.containers == nil {
			c.containers = map[string]bool{}
		}
		for _, n := range nameOrID {
			c.containers[n] = true
		}
		return nil
	}
}

// EventsOfType keeps only events of the types given (EventDied, ...).
func EventsOfType(types ...string) EventsOption {
	return func(c *eventsConfig) error {
		if c.types == nil {
			c.types = map[string]bool{}
		}
		for _, t := range types {
			c.types[t] = true
		}
		return nil
	}
}

// Events streams the host's container events, oldest first, until ctx ends
// (or EventsUntil's time passes); then the channel is closed. It works
// without any other program of the caller alive: monitors record deaths,
// restarts and health changes themselves.
func (h *Host) Events(ctx context.Context, opts ...EventsOption) (<-chan Event, error) {
	var ec eventsConfig
	for _, o := range opts {
		if err := o(&ec); err != nil {
			return nil, err
		}
	}
	if ec.since.IsZero() && ec.until.IsZero() {
		ec.since = time.Now()
	}
	r, err := runtime.ReadEvents(h.root, ec.since)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		defer r.Close()
		rctx, follow := ctx, true
		if !ec.until.IsZero() {
			var cancel context.CancelFunc
			rctx, cancel = context.WithDeadline(ctx, ec.until.Add(50*time.Millisecond))
			defer cancel()
		}
		for {
			ev, err := r.Next(rctx, follow)
			if err != nil {
				if follow && rctx.Err() != nil && ctx.Err() == nil {
					// Until has passed, perhaps while a long log was
					// replayed: read the rest of it, then stop.
					rctx, follow = ctx, false
					continue
				}
				return
			}
			if !ec.until.IsZero() && ev.Time.After(ec.until) {
				return
			}
			if ec.containers != nil && !ec.containers[ev.ID] && !ec.containers[ev.Name] {
				continue
			}
			if ec.types != nil && !ec.types[ev.Type] {
				continue
			}
			select {
			case out <- Event{Time: ev.Time, Type: ev.Type, ContainerID: ev.ID, ContainerName: ev.Name, Attributes: ev.Attributes}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// event records what this program did to a container; a lost event never
// fails the operation.
func (h *Host) event(typ, id, name string, attrs map[string]string) {
	runtime.AppendEvent(h.root, runtime.Event{Type: typ, ID: id, Name: name, Attributes: attrs})
}
