// Command orchestrator keeps N replicas of an image running on a dock
// host: it replaces replicas that die or turn unhealthy, reacting to the
// host's events rather than polling, and prints what it sees. It uses only
// dock's public API, as a custom orchestrator would.
//
//	orchestrator --root /var/lib/dock --replicas 3 --health-cmd 'wget -q -O- localhost:80' IMAGE [CMD...]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dockkit/dock"
)

func main() {
	var cfg config
	root := flag.String("root", "/var/lib/dock", "dock state root")
	flag.IntVar(&cfg.replicas, "replicas", 2, "replicas to keep running")
	flag.StringVar(&cfg.group, "group", "web", "name of the replica group: a label, and the replicas' name prefix")
	flag.StringVar(&cfg.healthCmd, "health-cmd", "", "shell command checking a replica's health")
	flag.DurationVar(&cfg.healthInterval, "health-interval", 2*time.Second, "time between health checks")
	keep := flag.Bool("keep", false, "leave the replicas running when stopped (a failure always leaves them)")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: orchestrator [flags] IMAGE [CMD...]")
		os.Exit(2)
	}
	cfg.image, cfg.cmd = flag.Arg(0), flag.Args()[1:]

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, err := dock.Open(ctx, dock.WithRoot(*root))
	if err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(1)
	}
	defer host.Close()
	err = supervise(ctx, host, cfg, os.Stdout)
	if err != nil && ctx.Err() == nil {
		// The replicas outlive a failing orchestrator: they go on serving,
		// and the next run adopts them.
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(1)
	}
	if !*keep {
		removeGroup(context.WithoutCancel(ctx), host, cfg.group)
	}
}

type config struct {
	image          string
	cmd            []string
	replicas       int
	group          string
	healthCmd      string
	healthInterval time.Duration
}

const groupLabel = "orchestrator.group"

// subscribe follows the host's events from since on; tests replace it.
var subscribe = func(ctx context.Context, host *dock.Host, since time.Time) (<-chan dock.Event, error) {
	return host.Events(ctx, dock.EventsSince(since))
}

// supervise keeps cfg.replicas replicas running until ctx ends.
func supervise(ctx context.Context, host *dock.Host, cfg config, out io.Writer) error {
	img, err := host.Image(ctx, cfg.image)
	if err != nil {
		return err
	}
	// Subscribe first, so that nothing happening while we start is missed.
	since := time.Now()
	events, err := subscribe(ctx, host, since)
	if err != nil {
		return err
	}
	ours := map[string]bool{} // the replicas running, by ID
	if err := reconcile(ctx, host, img, cfg, out, ours); err != nil {
		return err
	}
	// A safety net in case an event was lost; events do the work.
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// The stream ended on a read error: follow the log again
				// from the last event seen, after a pause lest the error
				// stay, and reconcile what we may have missed.
				fmt.Fprintln(out, "events ended: subscribing again")
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				if events, err = subscribe(ctx, host, since); err != nil {
					return err
				}
				break
			}
			since = ev.Time
			if !handle(ctx, host, cfg, ev, out, ours) {
				continue
			}
		}
		if err := reconcile(ctx, host, img, cfg, out, ours); err != nil {
			fmt.Fprintf(out, "reconcile: %v\n", err)
		}
	}
}

// handle acts on ev, replacing the replica it reports dead or unhealthy,
// and tells whether the group needs a reconcile.
func handle(ctx context.Context, host *dock.Host, cfg config, ev dock.Event, out io.Writer, ours map[string]bool) bool {
	c, err := host.Container(ctx, ev.ContainerID)
	if err != nil {
		// Gone already. A replica another program removed (`dock rm -f`)
		// is replaced; not one we removed ourselves, or a start that
		// failed would be retried without end.
		return ours[ev.ContainerID]
	}
	if c.Labels[groupLabel] != cfg.group {
		return false
	}
	fmt.Fprintf(out, "%s %s %s %v\n", ev.Time.Format(time.TimeOnly), ev.ContainerName, ev.Type, ev.Attributes)
	switch {
	case ev.Type == dock.EventDied:
	case ev.Type == dock.EventHealth && ev.Attributes["status"] == "unhealthy":
	default:
		return false
	}
	fmt.Fprintf(out, "replacing %s\n", c.Name)
	if err := c.Remove(ctx, true); err != nil {
		fmt.Fprintf(out, "remove %s: %v\n", c.Name, err)
	}
	return true
}

// reconcile removes the group's stopped replicas and starts new ones until
// cfg.replicas run; ours is left holding the IDs of those running.
func reconcile(ctx context.Context, host *dock.Host, img *dock.Image, cfg config, out io.Writer, ours map[string]bool) error {
	all, err := host.Containers(ctx, false)
	if err != nil {
		return err
	}
	clear(ours)
	running := 0
	for _, c := range all {
		if c.Labels[groupLabel] != cfg.group {
			continue
		}
		switch c.State().Status {
		case dock.StatusRunning, dock.StatusPaused:
			ours[c.ID] = true
			running++
		default:
			c.Remove(ctx, true)
		}
	}
	for ; running < cfg.replicas; running++ {
		opts := []dock.CreateOption{dock.WithLabels(map[string]string{groupLabel: cfg.group})}
		if len(cfg.cmd) > 0 {
			opts = append(opts, dock.WithCmd(cfg.cmd...))
		}
		if cfg.healthCmd != "" {
			opts = append(opts, dock.WithHealthcheck(dock.Healthcheck{Test: []string{"CMD-SHELL", cfg.healthCmd},
				Interval: cfg.healthInterval, Retries: 2}))
		}
		c, err := host.Create(ctx, img, opts...)
		if err != nil {
			return err
		}
		if err := c.Start(ctx); err != nil {
			c.Remove(ctx, true)
			return err
		}
		ours[c.ID] = true
		fmt.Fprintf(out, "started %s\n", c.Name)
	}
	return nil
}

func removeGroup(ctx context.Context, host *dock.Host, group string) {
	all, _ := host.Containers(ctx, false)
	for _, c := range all {
		if c.Labels[groupLabel] == group {
			c.Remove(ctx, true)
		}
	}
}
