package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"golang.org/x/term"

	"github.com/dockkit/dock"
)

// progressPrinter draws one bar per blob on a terminal, redrawn in place,
// and prints one line per finished blob elsewhere.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	blobs map[string]dock.Progress
	order []string
	drawn int
	last  time.Time
}

func newProgressPrinter(f *os.File) *progressPrinter {
	return &progressPrinter{w: f, tty: term.IsTerminal(int(f.Fd())), blobs: map[string]dock.Progress{}}
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func (p *progressPrinter) update(e dock.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, seen := p.blobs[e.Digest]
	if !seen {
		p.order = append(p.order, e.Digest)
	}
	p.blobs[e.Digest] = e
	if !p.tty {
		if e.State != old.State || !seen {
			switch e.State {
			case dock.ProgressDone, dock.ProgressExists, dock.ProgressMounted, dock.ProgressUnpacked:
				fmt.Fprintf(p.w, "%s: %s (%s)\n", short(e.Digest), e.State, humanSize(e.Total))
			}
		}
		return
	}
	if time.Since(p.last) < 100*time.Millisecond && e.State == old.State {
		return
	}
	p.draw()
}

func (p *progressPrinter) draw() {
	p.last = time.Now()
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA", p.drawn)
	}
	ids := p.order
	for _, id := range ids {
		e := p.blobs[id]
		bar := ""
		if e.State == dock.ProgressTransferring && e.Total > 0 {
			n := int(30 * e.Done / e.Total)
			bar = "[" + strings.Repeat("=", n) + ">" + strings.Repeat(" ", 30-n) + "] " +
				humanSize(e.Done) + "/" + humanSize(e.Total)
		}
		fmt.Fprintf(p.w, "\x1b[2K%s: %-12s %s\n", short(id), e.State, bar)
	}
	p.drawn = len(ids)
}

func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw()
	}
}

// humanSize spells n bytes as docker does sizes: decimal units, three
// significant digits ("4.26MB").
func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

// ago says how long ago t was, as docker does: "5 minutes ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(time.Since(t)) + " ago"
}

// humanDuration spells d roughly, in docker's words.
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	default:
		return fmt.Sprintf("%d years", h/24/365)
	}
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}
