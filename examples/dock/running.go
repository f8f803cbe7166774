package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/dockkit/dock"
)

// runningCmds are the commands on running containers: attach, pause,
// unpause, stats, events, restart.
func (c *cli) runningCmds() []*cobra.Command {
	each := func(use, short string, fn func(context.Context, *dock.Container) error) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME...", Short: short, Args: minArgs(1),
			RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
				if err := fn(ctx, ctr); err != nil {
					return err
				}
				fmt.Println(ctr.Name)
				return nil
			}),
		}
	}
	pause := each("pause", "Freeze every process of containers", func(ctx context.Context, ctr *dock.Container) error { return ctr.Pause(ctx) })
	unpause := each("unpause", "Thaw paused containers", func(ctx context.Context, ctr *dock.Container) error { return ctr.Resume(ctx) })
	var restartSecs int
	restart := each("restart", "Stop and start containers again", func(ctx context.Context, ctr *dock.Container) error {
		timeout := time.Duration(-1)
		if restartSecs >= 0 {
			timeout = time.Duration(restartSecs) * time.Second
		}
		return ctr.Restart(ctx, timeout)
	})
	restart.Flags().IntVarP(&restartSecs, "time", "t", -1, "seconds to wait before killing")
	return []*cobra.Command{c.attachCmd(), pause, unpause, restart, c.statsCmd(), c.eventsCmd()}
}

func (c *cli) attachCmd() *cobra.Command {
	var noStdin, sigProxy bool
	cmd := &cobra.Command{
		Use: "attach NAME", Short: "Attach to a running container's output and input (detach with Ctrl-P Ctrl-Q)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ctr, err := c.container(ctx, args[0])
			if err != nil {
				return err
			}
			detached := make(chan struct{})
			opts := []dock.AttachOption{dock.WithOutput(os.Stdout, os.Stderr)}
			var restore func()
			if !noStdin {
				// Raw mode only for a container's terminal, as docker.
				if ctr.Config().TTY && term.IsTerminal(int(os.Stdin.Fd())) {
					if restore, err = makeRaw(); err != nil {
						return err
					}
					defer restore()
				}
				opts = append(opts, dock.WithInput(newDetachReader(os.Stdin, func() { close(detached) })))
			}
			wctx := ctx
			if sigProxy && !ctr.Config().TTY {
				// As docker: without a terminal, Ctrl-C and the signals
				// dock gets are the container's, and dock waits for the
				// end they cause.
				p := newSignalProxy(ctr.Kill)
				p.forward()
				defer p.stop()
				wctx = context.WithoutCancel(ctx)
			}
			a, err := ctr.Attach(ctx, opts...)
			if err != nil {
				return err
			}
			stopResize := trackWindowSize(ctr.Resize)
			defer stopResize()
			done := make(chan error, 1)
			go func() { done <- a.Wait(wctx) }()
			select {
			case <-detached:
				a.Close()
				if restore != nil {
					restore()
				}
				fmt.Fprintln(os.Stderr, "\r\nread escape sequence")
				return nil
			case err := <-done:
				if restore != nil {
					restore()
				}
				if err != nil {
					return err
				}
			}
			// The container stopped: exit with its status, as docker does.
			st, err := ctr.Wait(context.WithoutCancel(ctx))
			if err != nil {
				return err
			}
			if st.ExitCode != 0 {
				return exitError{st.ExitCode}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "send the signals dock gets to the container (without a terminal)")
	return cmd
}

// detachReader passes input through until the user types Ctrl-P Ctrl-Q,
// docker's detach keys; then it calls onDetach and reports EOF. A Ctrl-P
// not followed by Ctrl-Q is passed on.
type detachReader struct {
	r        io.Reader
	onDetach func()
	once     sync.Once
	held     bool // a Ctrl-P is held back
	out      []byte
	done     bool
}

// newDetachReader wraps r for Ctrl-P Ctrl-Q detaching.
func newDetachReader(r io.Reader, onDetach func()) io.Reader {
	return &detachReader{r: r, onDetach: onDetach}
}

func (d *detachReader) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.done {
			return 0, io.EOF
		}
		buf := make([]byte, len(p))
		n, err := d.r.Read(buf)
		for _, b := range buf[:n] {
			switch {
			case d.held && b == 0x11: // Ctrl-Q after Ctrl-P
				d.held, d.done = false, true
				d.once.Do(d.onDetach)
			case d.done:
			case b == 0x10: // Ctrl-P
				if d.held {
					d.out = append(d.out, 0x10)
				}
				d.held = true
			default:
				if d.held {
					d.out = append(d.out, 0x10)
					d.held = false
				}
				d.out = append(d.out, b)
			}
		}
		if err != nil && d.held {
			// The input ended: a Ctrl-P held for a Ctrl-Q is the user's.
			d.out, d.held = append(d.out, 0x10), false
		}
		if err != nil && len(d.out) == 0 {
			return 0, err
		}
		if d.done && len(d.out) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

func (c *cli) statsCmd() *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use: "stats [NAME...]", Short: "Show containers' CPU, memory, pids, IO and network use",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := c.open(ctx)
			if err != nil {
				return err
			}
			var ctrs []*dock.Container
			if len(args) == 0 {
				if ctrs, err = h.Containers(ctx, true); err != nil {
					return err
				}
			}
			for _, a := range args {
				ctr, err := h.Container(ctx, a)
				if err != nil {
					return err
				}
				ctrs = append(ctrs, ctr)
			}
			prev := map[string]dock.Stats{}
			var hostMem float64
			var si unix.Sysinfo_t
			if unix.Sysinfo(&si) == nil {
				hostMem = float64(si.Totalram) * float64(si.Unit)
			}
			for {
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS")
				for _, ctr := range ctrs {
					s, err := ctr.Stats(ctx)
					if err != nil {
						continue
					}
					cpu := 0.0
					if p, ok := prev[ctr.ID]; ok && s.Time.After(p.Time) {
						cpu = cpuPercent(p, s)
					} else {
						// First sample (the only one with --no-stream):
						// measure over a short interval.
						time.Sleep(100 * time.Millisecond)
						if s2, err := ctr.Stats(ctx); err == nil {
							cpu = cpuPercent(s, s2)
							s = s2
						}
					}
					prev[ctr.ID] = s
					// As docker's: a limit above the host's memory, or
					// none, is the host's memory.
					limit := float64(s.MemoryMax)
					if limit == 0 || (hostMem > 0 && limit > hostMem) {
						limit = hostMem
					}
					memPct := "--"
					if limit > 0 {
						memPct = fmt.Sprintf("%.2f%%", float64(s.MemoryUsage)/limit*100)
					}
					fmt.Fprintf(w, "%s\t%s\t%.2f%%\t%s / %s\t%s\t%s / %s\t%s / %s\t%d\n", ctr.ID[:12], ctr.Name, cpu,
						units.BytesSize(float64(s.MemoryUsage)), units.BytesSize(limit), memPct,
						humanSize(int64(s.NetRxBytes)), humanSize(int64(s.NetTxBytes)),
						humanSize(int64(s.IOReadBytes)), humanSize(int64(s.IOWriteBytes)), s.Pids)
				}
				w.Flush()
				if noStream {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	return cmd
}

func (c *cli) eventsCmd() *cobra.Command {
	var since, until string
	var filters []string
	cmd := &cobra.Command{
		Use: "events", Short: "Print container events as they happen",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := c.open(ctx)
			if err != nil {
				return err
			}
			var opts []dock.EventsOption
			for _, s := range []struct {
				v  string
				fn func(time.Time) dock.EventsOption
			}{{since, dock.EventsSince}, {until, dock.EventsUntil}} {
				if s.v == "" {
					continue
				}
				t, err := parseWhen(s.v)
				if err != nil {
					return err
				}
				opts = append(opts, s.fn(t))
			}
			for _, f := range filters {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "container":
					opts = append(opts, dock.EventsFor(v))
				case "event", "type":
					opts = append(opts, dock.EventsOfType(v))
				default:
					return fmt.Errorf("--filter %q: want container=NAME or event=TYPE: %w", f, dock.ErrInvalidArgument)
				}
			}
			evs, err := h.Events(ctx, opts...)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(os.Stdout)
			for ev := range evs {
				fmt.Fprintf(out, "%s container %s %s (name=%s", ev.Time.Local().Format(time.RFC3339Nano), ev.Type, ev.ContainerID, ev.ContainerName)
				for _, k := range sortedKeys(ev.Attributes) {
					fmt.Fprintf(out, ", %s=%s", k, ev.Attributes[k])
				}
				fmt.Fprintln(out, ")")
				out.Flush()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "show events since a time (RFC 3339) or a duration ago (10m)")
	cmd.Flags().StringVar(&until, "until", "", "stop at a time or a duration ago")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "container=NAME or event=TYPE")
	return cmd
}

// cpuPercent is the CPU use between two samples, in percent of one CPU.
// The counter starts again when the container does (a restart): that
// interval shows none.
func cpuPercent(a, b dock.Stats) float64 {
	if b.CPUUsageNanos < a.CPUUsageNanos || !b.Time.After(a.Time) {
		return 0
	}
	return float64(b.CPUUsageNanos-a.CPUUsageNanos) / float64(b.Time.Sub(a.Time).Nanoseconds()) * 100
}

// parseWhen reads a time as docker's --since and --until do: a duration
// ago (10m), Unix seconds (1700000000, with a fraction if wanted), or an
// RFC 3339 time or date, in local time when it names no zone.
func parseWhen(s string) (time.Time, error) {
	// Unix seconds first: "0" is the epoch, not no time ago.
	if sec, frac, _ := strings.Cut(s, "."); sec != "" && !strings.Contains(s, "-") {
		secs, err1 := strconv.ParseInt(sec, 10, 64)
		var nsec int64
		var err2 error
		if frac != "" {
			if len(frac) > 9 {
				frac = frac[:9]
			}
			nsec, err2 = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		}
		if err1 == nil && err2 == nil {
			return time.Unix(secs, nsec), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02T15", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want a duration (10m), Unix seconds, or an RFC 3339 time or date: %w", s, dock.ErrInvalidArgument)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// makeRaw puts dock's terminal in raw mode, so that every key reaches the
// container, and returns how to restore it.
func makeRaw() (func(), error) {
	fd := int(os.Stdin.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = term.Restore(fd, old) }) }, nil
}

// trackWindowSize gives the container's terminal the size of dock's, now
// and on every SIGWINCH, until the returned function is called.
func trackWindowSize(resize func(rows, cols uint16) error) func() {
	fd := int(os.Stdout.Fd())
	if !term.IsTerminal(fd) {
		return func() {}
	}
	apply := func() {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			_ = resize(uint16(h), uint16(w))
		}
	}
	// Listen first: a change between the first size and the listening
	// would be lost.
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	apply()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				apply()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// keepFlags are run's and create's flags on how a container is kept
// running: its restart policy and health check.
type keepFlags struct {
	restart                       string
	healthCmd                     string
	healthInterval, healthTimeout time.Duration
	healthStartPeriod             time.Duration
	healthRetries                 int
	noHealthcheck                 bool
}

func (k *keepFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&k.restart, "restart", "no", "restart policy: no, on-failure[:N], always, unless-stopped")
	fl.StringVar(&k.healthCmd, "health-cmd", "", "command run in the container to check its health")
	fl.DurationVar(&k.healthInterval, "health-interval", 0, "time between health checks (default 30s)")
	fl.DurationVar(&k.healthTimeout, "health-timeout", 0, "longest a health check may run (default 30s)")
	fl.DurationVar(&k.healthStartPeriod, "health-start-period", 0, "time during which failures do not count")
	fl.IntVar(&k.healthRetries, "health-retries", 0, "failures in a row that make the container unhealthy (default 3)")
	fl.BoolVar(&k.noHealthcheck, "no-healthcheck", false, "disable the image's HEALTHCHECK")
}

func (k *keepFlags) options(rm bool) ([]dock.CreateOption, error) {
	var opts []dock.CreateOption
	if k.restart != "" && k.restart != "no" {
		if rm {
			return nil, fmt.Errorf("--restart %s: conflicts with --rm: %w", k.restart, dock.ErrInvalidArgument)
		}
		opts = append(opts, dock.WithRestartPolicy(k.restart))
	}
	// As docker: settings without --health-cmd change the image's check.
	hc := dock.Healthcheck{Interval: k.healthInterval, Timeout: k.healthTimeout,
		StartPeriod: k.healthStartPeriod, Retries: k.healthRetries}
	set := k.healthCmd != "" || hc.Interval != 0 || hc.Timeout != 0 || hc.StartPeriod != 0 || hc.Retries != 0
	if k.healthCmd != "" {
		hc.Test = []string{"CMD-SHELL", k.healthCmd}
	}
	switch {
	case k.noHealthcheck && set:
		return nil, fmt.Errorf("--no-healthcheck conflicts with --health-* options: %w", dock.ErrInvalidArgument)
	case k.noHealthcheck:
		opts = append(opts, dock.WithHealthcheck(dock.Healthcheck{Test: []string{"NONE"}}))
	case set:
		opts = append(opts, dock.WithHealthcheck(hc))
	}
	return opts, nil
}

var errDetached = errors.New("detached")

// waitOrDetach waits for the container's exit, or returns errDetached when
// the user detached first.
func waitOrDetach(ctx context.Context, ctr *dock.Container, detached <-chan struct{}) (dock.ExitStatus, error) {
	type result struct {
		st  dock.ExitStatus
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := ctr.Wait(ctx)
		ch <- result{st, err}
	}()
	select {
	case r := <-ch:
		return r.st, r.err
	case <-detached:
		return dock.ExitStatus{}, errDetached
	}
}
