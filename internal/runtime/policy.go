package runtime

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

// Event is one line of a state root's events log: something that happened
// to a container, recorded by its monitor or by the program that acted.
type Event struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"` // "created", "started", "died", "oom", "paused", ...
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Event types the runtime records.
const (
	EventStarted   = "started"
	EventDied      = "died"
	EventOOM       = "oom"
	EventPaused    = "paused"
	EventUnpaused  = "unpaused"
	EventRestarted = "restarting"
	EventHealth    = "health_status"
)

// ParseRestartPolicy reads docker's --restart spelling: no, always,
// unless-stopped, on-failure or on-failure:N.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, n, hasN := cutString(s, ":")
	p := RestartPolicy{Name: name}
	switch name {
	case "", "no", "always", "unless-stopped":
		if hasN {
			return p, fmt.Errorf("restart policy %q: only on-failure takes a count: %w", s, errdefs.ErrInvalidArgument)
		}
	case "on-failure":
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return p, fmt.Errorf("restart policy %q: bad count: %w", s, errdefs.ErrInvalidArgument)
			}
			p.MaxRetries = v
		}
	default:
		return p, fmt.Errorf("restart policy %q: want no, always, unless-stopped or on-failure[:N]: %w", s, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

func cutString(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}
