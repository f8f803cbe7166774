package dock

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dockkit/dock/internal/runtime"
)

// runOpts are the create options about how a running container is kept:
// its terminal, restart policy and health check.
type runOpts struct {
	restart runtime.RestartPolicy
	health  *Healthcheck
}

// WithTTY gives the container a pseudo-terminal, held by its monitor: the
// command sees a terminal on stdin, stdout and stderr, and its output is
// one stream. Resize it with Container.Resize.
func WithTTY() CreateOption {
	return func(c *createConfig) error { c.tty = true; return nil }
}

// WithRestartPolicy sets when the container's monitor starts it again after
// it exits on its own, in docker's spelling: "no", "on-failure",
// "on-failure:N", "always" or "unless-stopped". Stop, Kill and Remove never
// cause a restart. Restarts back off from 100ms up to a minute; the count
// is in State.RestartCount.
func WithRestartPolicy(policy string) CreateOption {
	return func(c *createConfig) error {
		p, err := runtime.ParseRestartPolicy(policy)
		if err != nil {
			return fmt.Errorf("WithRestartPolicy(%q): %w", policy, err)
		}
		c.run.restart = p
		return nil
	}
}

// Healthcheck is Docker's HEALTHCHECK: Test is ["CMD", args...],
// ["CMD-SHELL", "command"] or ["NONE"]; zero fields take the image's
// values, then Docker's defaults (30s interval and timeout, 3 retries).
type Healthcheck struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// WithHealthcheck sets the container's health check, merged into the
// image's HEALTHCHECK as Docker does: an empty Test keeps the image's
// test, so that only the non-zero fields change it; Test ["NONE"] turns
// the image's off. The monitor runs the check by exec while the container
// runs and records the status in State.Health.
func WithHealthcheck(hc Healthcheck) CreateOption {
	return func(c *createConfig) error {
		if len(hc.Test) > 0 && (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL" && hc.Test[0] != "NONE" ||
			hc.Test[0] != "NONE" && len(hc.Test) < 2) {
			return fmt.Errorf("WithHealthcheck(%q): want CMD args..., CMD-SHELL command or NONE: %w", hc.Test, ErrInvalidArgument)
		}
		if hc.Interval < 0 || hc.Timeout < 0 || hc.StartPeriod < 0 || hc.Retries < 0 {
			return fmt.Errorf("WithHealthcheck: negative duration or retries: %w", ErrInvalidArgument)
		}
		c.run.health = &hc
		return nil
	}
}

// imageHealthcheck reads the HEALTHCHECK of a Docker image's configuration,
// which the OCI structure drops.
func (h *Host) imageHealthcheck(img *Image) *Healthcheck {
	if img == nil || img.ID == "" {
		return nil
	}
	b, err := os.ReadFile(h.store.BlobPath(img.ID))
	if err != nil {
		return nil
	}
	var cfg struct {
		Config struct {
			Healthcheck *struct {
				Test        []string
				Interval    time.Duration
				Timeout     time.Duration
				StartPeriod time.Duration
				Retries     int
			}
		} `json:"config"`
	}
	if json.Unmarshal(b, &cfg) != nil || cfg.Config.Healthcheck == nil {
		return nil
	}
	hc := Healthcheck(*cfg.Config.Healthcheck)
	return &hc
}

// applyRun puts the run options into the spec Create builds.
func (h *Host) applyRun(c *createConfig, img *Image, spec *runtime.Spec) {
	spec.Restart = c.run.restart
	spec.Process.OpenStdin = c.stdin
	hc := h.imageHealthcheck(img)
	switch o := c.run.health; {
	case o == nil:
	case hc == nil:
		hc = o
	default:
		if len(o.Test) > 0 {
			hc.Test = o.Test
		}
		hc.Interval = cmp.Or(o.Interval, hc.Interval)
		hc.Timeout = cmp.Or(o.Timeout, hc.Timeout)
		hc.StartPeriod = cmp.Or(o.StartPeriod, hc.StartPeriod)
		hc.Retries = cmp.Or(o.Retries, hc.Retries)
	}
	if hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		spec.Healthcheck = &runtime.Healthcheck{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout,
			StartPeriod: hc.StartPeriod, Retries: hc.Retries}
	}
}

// Pause freezes every process of the running container (the freezer
// cgroup); they make no progress until Resume.
func (c *Container) Pause(ctx context.Context) error {
	hd, err := c.handle()
	if err != nil {
		return fmt.Errorf("pause %s: not running: %w", c.Name, ErrWrongState)
	}
	if err := hd.Pause(); err != nil {
		return fmt.Errorf("pause %s: %w", c.Name, err)
	}
	return nil
}

// Resume thaws a paused container.
func (c *Container) Resume(ctx context.Context) error {
	hd, err := c.handle()
	if err != nil {
		return fmt.Errorf("resume %s: not running: %w", c.Name, ErrWrongState)
	}
	if err := hd.Resume(); err != nil {
		return fmt.Errorf("resume %s: %w", c.Name, err)
	}
	return nil
}

// Restart stops the container (see Stop for timeout) and starts it again.
func (c *Container) Restart(ctx context.Context, timeout time.Duration) error {
	if err := c.Stop(ctx, timeout); err != nil {
		return err
	}
	return c.Start(ctx)
}

// Resize sets the window size of the container's terminal (WithTTY).
func (c *Container) Resize(rows, cols uint16) error {
	hd, err := c.handle()
	if err != nil {
		return fmt.Errorf("resize %s: not running: %w", c.Name, ErrWrongState)
	}
	if err := hd.Resize(rows, cols); err != nil {
		return fmt.Errorf("resize %s: %w", c.Name, err)
	}
	return nil
}

// Health is the outcome of a container's health checks so far.
type Health struct {
	Status        string // "starting", "healthy" or "unhealthy"
	FailingStreak int
	Log           []HealthResult // the last five runs
}

// HealthResult is one run of a health check.
type HealthResult struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Health returns the container's health, or nil when it has no check.
func (c *Container) Health() *Health {
	hd, err := c.handle()
	if err != nil {
		return nil
	}
	s := hd.State().Health
	if s == nil {
		return nil
	}
	out := &Health{Status: s.Status, FailingStreak: s.FailingStreak}
	for _, l := range s.Log {
		out.Log = append(out.Log, HealthResult{Start: l.Start, End: l.End, ExitCode: l.ExitCode, Output: l.Output})
	}
	return out
}

// RestartCount is how often the restart policy started the container again
// since a caller last started it.
func (c *Container) RestartCount() int {
	hd, err := c.handle()
	if err != nil {
		return 0
	}
	return hd.State().RestartCount
}

// Stats is a sample of a running container's counters.
type Stats struct {
	Time           time.Time
	CPUUsageNanos  uint64 // CPU time consumed since start
	CPUUserNanos   uint64
	CPUSystemNanos uint64
	MemoryUsage    uint64 // bytes now, less the inactive file cache (as docker stats)
	MemoryMax      uint64 // bytes; 0 when unlimited
	MemoryPeak     uint64
	Pids           uint64
	PidsMax        uint64
	IOReadBytes    uint64
	IOWriteBytes   uint64
	NetRxBytes     uint64 // every interface of the container but lo; 0 on the host's network
	NetTxBytes     uint64
	NetRxPackets   uint64
	NetTxPackets   uint64
}

// Stats samples the running container's cgroup and network counters once.
func (c *Container) Stats(ctx context.Context) (Stats, error) {
	st := c.State()
	if st.Status != StatusRunning && st.Status != StatusPaused {
		return Stats{}, fmt.Errorf("stats %s: container is %s: %w", c.Name, st.Status, ErrWrongState)
	}
	s := Stats{Time: time.Now()}
	if cg := c.rec.Spec.Cgroup; cg != nil {
		g, err := c.h.cgroups.Load(cg.Name)
		if err != nil {
			return Stats{}, fmt.Errorf("stats %s: %w", c.Name, err)
		}
		cs, err := g.Stats()
		if err != nil {
			return Stats{}, fmt.Errorf("stats %s: %w", c.Name, err)
		}
		s.CPUUsageNanos, s.CPUUserNanos, s.CPUSystemNanos = cs.CPUUsageNanos, cs.CPUUserNanos, cs.CPUSystemNanos
		s.MemoryUsage, s.MemoryMax, s.MemoryPeak = cs.MemoryUsage, cs.MemoryMax, cs.MemoryPeak
		s.Pids, s.PidsMax, s.IOReadBytes, s.IOWriteBytes = cs.Pids, cs.PidsMax, cs.IOReadBytes, cs.IOWriteBytes
	}
	if ns := c.rec.Spec.Namespaces; st.Pid > 0 && (slices.Contains(ns.New, "net") || ns.Join["net"] != "" || ns.JoinContainer["net"] != "") {
		// On the host's network the counters are the host's, not the
		// container's: Docker shows none.
		readNetDev(fmt.Sprintf("/proc/%d/net/dev", st.Pid), &s)
	}
	return s, nil
}

// StreamStats samples the container every interval (one second when zero)
// until ctx ends or the container stops; then the channel is closed.
func (c *Container) StreamStats(ctx context.Context, interval time.Duration) (<-chan Stats, error) {
	if interval <= 0 {
		interval = time.Second
	}
	first, err := c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan Stats, 1)
	out <- first
	go func() {
		defer close(out)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s, err := c.Stats(ctx)
			if err != nil {
				return
			}
			select {
			case out <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// readNetDev adds up the counters of /proc/PID/net/dev, which shows the
// process's network namespace.
func readNetDev(path string, s *Stats) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		s.NetRxBytes += n(0)
		s.NetRxPackets += n(1)
		s.NetTxBytes += n(8)
		s.NetTxPackets += n(9)
	}
}
