package dock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dockkit/dock/internal/runtime"
	digest "github.com/opencontainers/go-digest"
)

// Container is a handle on one container of the host: its identity and the
// configuration it was created with, read once. Its state is read afresh by
// State, Wait and the other calls, from whichever program made it.
type Container struct {
	ID      string            // 64 hex digits
	Name    string            // unique on the host
	Image   string            // the reference it was created from
	ImageID digest.Digest     // the image manifest's digest
	Created time.Time         // when Create made it
	Labels  map[string]string // the image's, under those given to Create

	h   *Host
	rec *containerRecord

	mu    sync.Mutex
	owner func() // releases the auto-remove owner lock, when held
}

// containerRecord is what Create stores in <root>/containers/<id>/dock.json.
type containerRecord struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	ImageID     digest.Digest     `json:"imageId"`
	Created     time.Time         `json:"created"`
	Labels      map[string]string `json:"labels,omitempty"`
	SnapshotKey string            `json:"snapshotKey"`
	StopTimeout time.Duration     `json:"stopTimeout"`
	AutoRemove  bool              `json:"autoRemove,omitempty"`
	// ExposedPorts are the image's, as "80/tcp": what the container is
	// meant to serve, for a caller to publish.
	ExposedPorts []string `json:"exposedPorts,omitempty"`
	// AnonymousVolumes are the volumes Create made for the image's VOLUMEs:
	// removed with an auto-remove container, or with WithVolumes.
	AnonymousVolumes []string `json:"anonymousVolumes,omitempty"`
	// GroupAdd are the groups WithGroupAdd added, which an exec'd
	// process's user gets too.
	GroupAdd  []string     `json:"groupAdd,omitempty"`
	Resources *Resources   `json:"resources,omitempty"`
	Spec      runtime.Spec `json:"spec"`
	BootID    string       `json:"bootId,omitempty"` // the host's boot it was created in
}

// Status is where a container is in its life.
type Status string

// Container statuses.
const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusPaused  Status = "paused"
	StatusExited  Status = "exited"
)

// State is a container's state as last recorded by its monitor.
type State struct {
	Status     Status
	Pid        int // the container's first process, in the host's pid namespace
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	Signal     syscall.Signal // the signal that ended it, if any
	OOMKilled  bool
	Error      string // why it failed to start, or how the monitor lost it

	Restarting   bool    // exited; its restart policy starts it again after a back-off
	RestartCount int     // restarts by the policy since a caller last started it
	Health       *Health // nil without a health check
}

// ExitStatus is how a container or process ended. A non-zero exit is a
// status, not an error.
type ExitStatus struct {
	ExitCode   int            // as Docker: the exit code, or 128+N for signal N
	Signal     syscall.Signal // the signal that killed it, or 0
	OOMKilled  bool           // the kernel's OOM killer ended it
	FinishedAt time.Time
}

func (h *Host) containersDir() string { return filepath.Join(h.root, "containers") }
func (h *Host) namesDir() string      { return filepath.Join(h.root, "containers", ".names") }

// containerDir is the state directory of container id.
func (h *Host) containerDir(id string) string { return filepath.Join(h.containersDir(), id) }

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Container finds a container by ID, name, or unique ID prefix, in that
// order, as docker does.
func (h *Host) Container(ctx context.Context, nameOrID string) (*Container, error) {
	if nameOrID == "" {
		return nil, fmt.Errorf("container %q: %w", nameOrID, ErrInvalidArgument)
	}
	if len(nameOrID) == 64 && isHexID(nameOrID) {
		c, err := h.loadContainer(nameOrID)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %q: %w", nameOrID, err)
		}
		// Not an ID: a name may look like one.
	}
	id := ""
	if !validName(nameOrID) {
		return nil, fmt.Errorf("container %q: %w", nameOrID, ErrNotFound)
	}
	if target, err := os.Readlink(filepath.Join(h.namesDir(), nameOrID)); err == nil {
		id = target
	} else if isHexID(nameOrID) {
		ents, err := os.ReadDir(h.containersDir())
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), nameOrID) {
				continue
			}
			if _, err := os.Stat(filepath.Join(h.containersDir(), e.Name(), "dock.json")); err != nil {
				continue // being created
			}
			if id != "" {
				return nil, fmt.Errorf("container %q: ambiguous ID prefix: %w", nameOrID, ErrInvalidArgument)
			}
			id = e.Name()
		}
	}
	if id == "" {
		return nil, fmt.Errorf("container %q: %w", nameOrID, ErrNotFound)
	}
	c, err := h.loadContainer(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %q: %w", nameOrID, ErrNotFound)
		}
		return nil, fmt.Errorf("container %q: %w", nameOrID, err)
	}
	return c, nil
}

func isHexID(s string) bool {
	return len(s) >= 4 && len(s) <= 64 && strings.Trim(s, "0123456789abcdef") == ""
}

func (h *Host) loadContainer(id string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(h.containersDir(), id, "dock.json"))
	if err != nil {
		return nil, err
	}
	var rec containerRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("container %s: corrupt record: %v", id, err)
	}
	return &Container{ID: rec.ID, Name: rec.Name, Image: rec.Image, ImageID: rec.ImageID,
		Created: rec.Created, Labels: rec.Labels, h: h, rec: &rec}, nil
}

// Containers lists the host's containers, oldest first: all of them, or with
// running set only those running.
func (h *Host) Containers(ctx context.Context, running bool) ([]*Container, error) {
	ents, err := os.ReadDir(h.containersDir())
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if len(e.Name()) != 64 || !isHexID(e.Name()) {
			continue
		}
		c, err := h.loadContainer(e.Name())
		if err != nil {
			continue // being created or removed
		}
		if running {
			if st := c.State().Status; st != StatusRunning && st != StatusPaused {
				continue
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// containerImages lists the manifests of the images containers were made
// from; they stay in the store while the containers exist. A record that
// cannot be read fails the call, so that Prune removes nothing it might
// protect.
func (h *Host) containerImages(ctx context.Context) ([]digest.Digest, error) {
	ents, err := os.ReadDir(h.containersDir())
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, e := range ents {
		if len(e.Name()) != 64 || !isHexID(e.Name()) {
			continue
		}
		c, err := h.loadContainer(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // being created: its image is held by the root lease
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c.ImageID)
	}
	return out, nil
}

func (c *Container) stateDir() string { return filepath.Join(c.h.containersDir(), c.ID) }

// handle loads the runtime's view of the container.
func (c *Container) handle() (*runtime.Handle, error) {
	return runtime.Load(c.stateDir())
}

// State reads the container's current state.
func (c *Container) State() State {
	hd, err := c.handle()
	if err != nil {
		return State{Status: StatusCreated}
	}
	s := hd.State()
	st := State{Pid: s.Pid, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, ExitCode: s.ExitCode,
		Signal: syscall.Signal(s.Signal), OOMKilled: s.OOMKilled, Error: s.Error}
	st.Restarting, st.RestartCount = s.Restarting, s.RestartCount
	if s.Health != nil {
		st.Health = c.Health()
	}
	switch s.Status {
	case runtime.Running:
		st.Status = StatusRunning
		if s.Paused {
			st.Status = StatusPaused
		}
	case runtime.Stopped:
		st.Status = StatusExited
	default:
		st.Status = StatusCreated
	}
	return st
}

// StartOption configures Container.Start. [WithOutput] and [WithInput]
// serve Container.Exec as well.
type StartOption interface{ applyStart(*startConfig) error }

type startConfig struct {
	stdio runtime.Stdio
}

// StdioOption connects a container's or an exec'd process's standard
// streams to the caller; it is both a StartOption and an ExecOption.
type StdioOption struct {
	in       io.Reader
	out, err io.Writer
	setIn    bool
}

func (o StdioOption) apply(s *runtime.Stdio) error {
	if o.setIn {
		s.Stdin = o.in
	} else {
		s.Stdout, s.Stderr = o.out, o.err
	}
	return nil
}

func (o StdioOption) applyStart(c *startConfig) error { return o.apply(&c.stdio) }

// WithOutput copies the container's stdout and stderr to the writers as
// well as to its log, for a foreground run; for Exec, the process's output
// goes to the writers only. Either may be nil.
func WithOutput(stdout, stderr io.Writer) StdioOption {
	return StdioOption{out: stdout, err: stderr}
}

// WithInput copies r to the container's stdin until r returns EOF, which
// closes the container's stdin. The container must have been created with
// WithStdin. For Exec, r feeds the process's stdin.
func WithInput(r io.Reader) StdioOption {
	return StdioOption{in: r, setIn: true}
}

// Start runs the container's command. It returns once the command is running,
// or with the reason it could not start: an error matching ErrNotFound when
// the executable does not exist. Starting a running container fails with
// ErrWrongState.
func (c *Container) Start(ctx context.Context, opts ...StartOption) error {
	var sc startConfig
	for _, o := range opts {
		if err := o.applyStart(&sc); err != nil {
			return err
		}
	}
	unlock, err := c.lock(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start %s: removed: %w", c.Name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	defer unlock()
	if c.removed() {
		return fmt.Errorf("start %s: removed: %w", c.Name, ErrNotFound)
	}
	switch st := c.State(); {
	case st.Status == StatusRunning || st.Status == StatusPaused:
		return fmt.Errorf("start %s: container is %s: %w", c.Name, st.Status, ErrWrongState)
	case st.Restarting:
		// As Docker counts it: running, between two runs.
		return fmt.Errorf("start %s: container is restarting: %w", c.Name, ErrWrongState)
	}
	spec := c.rec.Spec
	// The monitor looks again as it enters them.
	for kind, dir := range spec.Namespaces.JoinContainer {
		if st, err := runtime.ReadState(dir); err != nil || st.Status != runtime.Running {
			return fmt.Errorf("start %s: join the %s namespace of container %s: not running: %w", c.Name, kind, filepath.Base(dir), ErrWrongState)
		}
	}
	if spec.Process.Init {
		// The init is the program that starts the container.
		if err := reaperRuns(); err != nil {
			return fmt.Errorf("start %s: %w", c.Name, err)
		}
	}
	if c.rec.AutoRemove {
		c.takeOwner(ctx)
	}
	if err := makeCgroup(&spec, c.rec.Resources); err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	start := runtime.Start
	if sb := c.h.takeMonitor(c.ID); sb != nil {
		start = sb.Start
	}
	if _, err := start(ctx, &spec, &sc.stdio); err != nil {
		dropCgroup(&spec)
		var se *runtime.StartError
		if errors.As(err, &se) {
			return &StartError{Container: c.Name, Code: se.ExitCode, Err: err}
		}
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	return nil
}

// StartError is why a container's command could not be started. Code is
// the exit status Docker gives that failure: 127 when the executable does
// not exist (the error then matches ErrNotFound), 126 when it cannot be
// executed, 125 when dock itself failed.
type StartError struct {
	Container string
	Code      int
	Err       error
}

func (e *StartError) Error() string { return "start " + e.Container + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *StartError) Unwrap() error { return e.Err }

// ExitCode is Code, for callers that test for an ExitCode method.
func (e *StartError) ExitCode() int { return e.Code }

// Wait blocks until the container has exited and returns how. It may be
// called before or after Start, any number of times, from any program that
// opens the host's root. Cancelling ctx stops the wait, not the container.
func (c *Container) Wait(ctx context.Context) (ExitStatus, error) {
	for {
		hd, err := c.handle()
		if err == nil {
			es, err := hd.Wait(ctx)
			if err != nil && ctx.Err() == nil && c.removed() {
				if st, ok := c.lastExit(); ok {
					return st, nil
				}
			}
			if err != nil {
				return ExitStatus{}, fmt.Errorf("wait %s: %w", c.Name, err)
			}
			st := ExitStatus{ExitCode: es.ExitCode, Signal: syscall.Signal(es.Signal),
				OOMKilled: es.OOMKilled, FinishedAt: es.FinishedAt}
			if c.rec.AutoRemove && c.tryOwner() {
				if err := c.Remove(context.WithoutCancel(ctx), true); err != nil {
					return st, fmt.Errorf("wait %s: auto-remove: %w", c.Name, err)
				}
			}
			return st, nil
		}
		// Not started yet: wait for a start.
		select {
		case <-ctx.Done():
			return ExitStatus{}, fmt.Errorf("wait %s: %w", c.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(c.stateDir()); err != nil {
			if st, ok := c.lastExit(); ok {
				return st, nil
			}
			return ExitStatus{}, fmt.Errorf("wait %s: removed: %w", c.Name, ErrNotFound)
		}
	}
}

// lastExit finds how the container last ended in the root's events log:
// all that is left of one removed as it ended, as an auto-remove container
// is by its owner, often before another program's Wait hears of the end.
func (c *Container) lastExit() (ExitStatus, bool) {
	r, err := runtime.ReadEvents(c.h.root, c.Created)
	if err != nil {
		return ExitStatus{}, false
	}
	defer r.Close()
	var st ExitStatus
	found, oom := false, false
	for {
		ev, err := r.Next(context.Background(), false)
		if err != nil {
			return st, found
		}
		if ev.ID != c.ID {
			continue
		}
		switch ev.Type {
		case runtime.EventStarted:
			oom = false
		case runtime.EventOOM:
			oom = true
		case runtime.EventDied:
			code, err := strconv.Atoi(ev.Attributes["exitCode"])
			if err != nil {
				continue
			}
			sig, _ := strconv.Atoi(ev.Attributes["signal"])
			st = ExitStatus{ExitCode: code, Signal: syscall.Signal(sig), OOMKilled: oom, FinishedAt: ev.Time}
			found = true
		}
	}
}

// Kill sends sig to the container's first process.
func (c *Container) Kill(sig syscall.Signal) error {
	hd, err := c.handle()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotFound) {
		if c.removed() {
			return fmt.Errorf("kill %s: removed: %w", c.Name, ErrNotFound)
		}
		return fmt.Errorf("kill %s: not running: %w", c.Name, ErrWrongState)
	}
	if err != nil {
		return fmt.Errorf("kill %s: %w", c.Name, err)
	}
	if err := hd.Kill(sig); err != nil {
		return fmt.Errorf("kill %s: %w", c.Name, err)
	}
	return nil
}

// Stop sends the container's stop signal (SIGTERM unless the image or
// WithStopSignal says otherwise), waits up to timeout for it to exit, then
// kills it. A negative timeout uses the container's own (10 seconds unless
// WithStopTimeout set it). Stopping a stopped container does nothing.
func (c *Container) Stop(ctx context.Context, timeout time.Duration) error {
	if timeout < 0 {
		timeout = c.rec.StopTimeout
	}
	hd, err := c.handle()
	if err != nil {
		if c.removed() {
			return fmt.Errorf("stop %s: removed: %w", c.Name, ErrNotFound)
		}
		return nil // never started
	}
	if err := hd.Stop(ctx, timeout); err != nil {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	return nil
}

// Remove deletes the container: its state, log, writable layer and name,
// and, for an auto-remove container or with WithVolumes, the anonymous
// volumes made for its image's VOLUMEs. A running container is refused
// with ErrWrongState unless force is set, which kills it first.
func (c *Container) Remove(ctx context.Context, force bool, opts ...RemoveOption) error {
	var rc removeConfig
	for _, o := range opts {
		o(&rc)
	}
	if err := c.remove(ctx, force); err != nil {
		return err
	}
	if !rc.volumes && !c.rec.AutoRemove {
		return nil
	}
	// As docker's rm -v: a volume another container holds stays.
	for _, v := range c.rec.AnonymousVolumes {
		if err := c.h.removeAnonymous(ctx, v); err != nil && !errors.Is(err, ErrWrongState) {
			return fmt.Errorf("remove %s: %w", c.Name, err)
		}
	}
	return nil
}

// RemoveOption changes what Remove removes.
type RemoveOption func(*removeConfig)

type removeConfig struct{ volumes bool }

// WithVolumes also removes the anonymous volumes Create made for the
// image's VOLUMEs, as docker rm -v does; an auto-remove container's go
// with it anyway. Named volumes stay.
func WithVolumes() RemoveOption { return func(c *removeConfig) { c.volumes = true } }

func (c *Container) remove(ctx context.Context, force bool) error {
	unlock, err := c.lock(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return nil // removed meanwhile, by its auto-remove
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	defer unlock()
	c.h.dropMonitor(c.ID)
	if c.removed() {
		return nil // removed meanwhile
	}
	hd, herr := c.handle()
	switch st := c.State(); {
	case st.Status == StatusRunning || st.Status == StatusPaused:
		if !force {
			return fmt.Errorf("remove %s: container is %s; stop it or force: %w", c.Name, st.Status, ErrWrongState)
		}
		if herr == nil {
			// A kill that meets the monitor as it ends fails; the wait
			// tells whether the container ended all the same.
			killErr := hd.Kill(syscall.SIGKILL)
			// The record stays while the container may still run (a task
			// stuck in the kernel): without it, nothing could reach it.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeKillWait)
			_, err := hd.Wait(wctx)
			cancel()
			if err != nil {
				if killErr != nil && !errors.Is(killErr, ErrWrongState) {
					return fmt.Errorf("remove %s: %w", c.Name, killErr)
				}
				return fmt.Errorf("remove %s: still running %v after SIGKILL: %w", c.Name, removeKillWait, err)
			}
		}
	case st.Restarting:
		if !force {
			return fmt.Errorf("remove %s: container is restarting; stop it or force: %w", c.Name, ErrWrongState)
		}
		// Its monitor waits for this lock to start it again, and will
		// find it stopped by a caller.
		if herr == nil {
			hd.Kill(syscall.SIGKILL)
		}
	}
	// The record goes first, so that other programs stop seeing the
	// container; reconcile finishes a remove cut short after it.
	if err := os.Remove(filepath.Join(c.stateDir(), "dock.json")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	if err := c.h.snap.Remove(ctx, c.rec.SnapshotKey); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	if herr == nil {
		if err := hd.Delete(true); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("remove %s: %w", c.Name, err)
		}
	}
	if err := removeDir(c.stateDir()); err != nil {
		return fmt.Errorf("remove %s: %w", c.Name, err)
	}
	if target, err := os.Readlink(filepath.Join(c.h.namesDir(), c.Name)); err == nil && target == c.ID {
		os.Remove(filepath.Join(c.h.namesDir(), c.Name))
	}
	c.releaseOwner()
	c.h.event(EventRemoved, c.ID, c.Name, nil)
	return nil
}

// removeKillWait is how long a forced Remove waits for the container to
// die of its SIGKILL.
var removeKillWait = 30 * time.Second

// removed tells whether the container's record is gone.
func (c *Container) removed() bool {
	_, err := os.Stat(filepath.Join(c.stateDir(), "dock.json"))
	return os.IsNotExist(err)
}

// removeDir removes dir and what it holds. A program that knew the
// container may still write a file in it as it goes (a Kill's mark): the
// removal then tries again.
func removeDir(dir string) error {
	var err error
	for range 3 {
		if err = os.RemoveAll(dir); !errors.Is(err, syscall.ENOTEMPTY) {
			break
		}
	}
	return err
}

// lock serializes Start and Remove of this container across programs, and
// the restarts its monitor makes. It fails with an error matching
// os.ErrNotExist once the container was removed.
func (c *Container) lock(ctx context.Context) (func(), error) {
	return lockExisting(ctx, filepath.Join(c.stateDir(), runtime.LockFile), true)
}

// ownerLockFile is the lock an auto-remove container's owner holds.
const ownerLockFile = "owner.lock"

func (c *Container) ownerLock() string { return filepath.Join(c.stateDir(), ownerLockFile) }

// takeOwner marks this program as the one that removes an auto-remove
// container once it exits; while it lives, other programs leave the
// container to it.
func (c *Container) takeOwner(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		return
	}
	if release, err := lockExisting(ctx, c.ownerLock(), false); err == nil {
		c.owner = release
	}
}

// tryOwner takes the owner lock if no living program holds it.
func (c *Container) tryOwner() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		return true
	}
	release, err := lockExisting(context.Background(), c.ownerLock(), false)
	if err != nil {
		return false
	}
	c.owner = release
	return true
}

func (c *Container) releaseOwner() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		c.owner()
		c.owner = nil
	}
}

// LogEntry is one chunk of a container's output.
type LogEntry struct {
	Stream string // "stdout" or "stderr"
	Time   time.Time
	Data   []byte
}

// LogOption configures Container.Logs.
type LogOption func(*logConfig) error

type logConfig struct {
	follow     bool
	tail       int // -1: all
	since      time.Time
	until      time.Time
	timestamps bool
}

// Follow keeps the log open, returning new output until the container stops.
func Follow() LogOption { return func(o *logConfig) error { o.follow = true; return nil } }

// Tail returns only the last n entries already written; Tail(0) returns
// none of them, only what Follow brings.
func Tail(n int) LogOption {
	return func(o *logConfig) error {
		if n < 0 {
			return fmt.Errorf("Tail(%d): %w", n, ErrInvalidArgument)
		}
		o.tail = n
		return nil
	}
}

// Since skips output written before t.
func Since(t time.Time) LogOption { return func(o *logConfig) error { o.since = t; return nil } }

// Until ends the log at the first output written after t; with Follow,
// following ends at t.
func Until(t time.Time) LogOption { return func(o *logConfig) error { o.until = t; return nil } }

// Timestamps prefixes each entry read through Read or WriteTo with its time
// in RFC 3339 form.
func Timestamps() LogOption { return func(o *logConfig) error { o.timestamps = true; return nil } }

// Logs is a container's output as its monitor recorded it, stdout and stderr
// in the order written. Read gives their text merged; Next gives entries
// with their stream; WriteTo splits them into two writers.
type Logs struct {
	r          *runtime.LogReader
	buf        []byte
	timestamps bool
	none       bool // Tail(0) without Follow
}

// Logs opens the container's log.
func (c *Container) Logs(ctx context.Context, opts ...LogOption) (*Logs, error) {
	lc := logConfig{tail: -1}
	for _, o := range opts {
		if err := o(&lc); err != nil {
			return nil, err
		}
	}
	lo := runtime.LogOptions{Follow: lc.follow, Since: lc.since, Until: lc.until, Timestamps: lc.timestamps}
	switch {
	case lc.tail > 0:
		lo.Tail = lc.tail
	case lc.tail == 0 && lo.Since.Before(time.Now()):
		// Nothing already written: only what comes from now on.
		lo.Since = time.Now()
	}
	r, err := runtime.Logs(ctx, c.stateDir(), lo)
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", c.Name, err)
	}
	return &Logs{r: r, timestamps: lc.timestamps, none: lc.tail == 0 && !lc.follow}, nil
}

// Next returns the next entry, or io.EOF at the end.
func (l *Logs) Next() (LogEntry, error) {
	if l.none {
		return LogEntry{}, io.EOF
	}
	e, err := l.r.Next()
	if err != nil {
		return LogEntry{}, err
	}
	return LogEntry{Stream: e.Stream, Time: e.Time, Data: e.Data}, nil
}

// Read reads the merged text of both streams.
func (l *Logs) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		e, err := l.Next()
		if err != nil {
			return 0, err
		}
		l.buf = e.Data
		if l.timestamps {
			l.buf = append([]byte(e.Time.Format(runtime.TimestampFormat)+" "), e.Data...)
		}
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// WriteTo copies stdout entries to stdout and stderr entries to stderr until
// the end of the log.
func (l *Logs) WriteTo(stdout, stderr io.Writer) error {
	if l.none {
		return nil
	}
	return l.r.Copy(stdout, stderr)
}

// Close releases the log.
func (l *Logs) Close() error { return l.r.Close() }

// Command is the command line the container runs.
func (c *Container) Command() []string { return append([]string(nil), c.rec.Spec.Process.Args...) }

// ContainerConfig is what a container was created to run with.
type ContainerConfig struct {
	Cmd            []string
	Env            []string
	WorkingDir     string
	UID, GID       uint32
	Hostname       string
	Capabilities   []string
	Privileged     bool
	ReadOnlyRootfs bool
	Namespaces     []string
	Resources      Resources
	AutoRemove     bool
	StopSignal     syscall.Signal      // what Stop sends first
	ExposedPorts   map[string]struct{} // the image's EXPOSE, as "80/tcp", as the image config has them
	StopTimeout    time.Duration
	TTY            bool // the command runs on a pseudo-terminal (WithTTY)
	OpenStdin      bool // the container has a stdin to attach to (WithStdin)
	// Seccomp is the profile its processes run under: "default"
	// (Docker's), "custom" (WithSeccompProfile) or "unconfined".
	Seccomp         string
	NoNewPrivileges bool              // set-user-ID programs and file capabilities grant nothing
	GroupAdd        []string          // WithGroupAdd's groups
	OOMScoreAdj     int               // its init's oom_score_adj
	ShmSize         int64             // the size of its /dev/shm, in bytes
	Sysctls         map[string]string // WithSysctl's
	Devices         []DeviceMapping   // WithDevice's
	Init            bool              // the command runs under an init (WithInit)
}

// DeviceMapping is a host device node given to a container.
type DeviceMapping struct {
	PathOnHost, PathInContainer string
	Permissions                 string // of "rwm"
}

// Config returns the container's configuration.
func (c *Container) Config() ContainerConfig {
	s := c.rec.Spec
	cfg := ContainerConfig{
		Cmd: slices.Clone(s.Process.Args), Env: slices.Clone(s.Process.Env), WorkingDir: s.Process.Cwd,
		UID: s.Process.User.UID, GID: s.Process.User.GID, Hostname: s.Hostname,
		Capabilities: slices.Clone(s.Process.Caps), Privileged: s.Process.Privileged, ReadOnlyRootfs: s.ReadonlyRootfs,
		Namespaces: slices.Clone(s.Namespaces.New), AutoRemove: c.rec.AutoRemove, StopTimeout: c.rec.StopTimeout,
		TTY: s.Process.Terminal, OpenStdin: s.Process.OpenStdin, StopSignal: syscall.SIGTERM,
	}
	for _, p := range c.rec.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if s.StopSignal != 0 {
		cfg.StopSignal = syscall.Signal(s.StopSignal)
	}
	switch {
	case !s.Process.Seccomp || s.Process.Privileged:
		cfg.Seccomp = "unconfined"
	case len(s.Process.SeccompProfile) > 0:
		cfg.Seccomp = "custom"
	default:
		cfg.Seccomp = "default"
	}
	cfg.NoNewPrivileges = s.Process.NoNewPrivs
	cfg.GroupAdd = slices.Clone(c.rec.GroupAdd)
	if s.Process.OOMScoreAdj != nil {
		cfg.OOMScoreAdj = *s.Process.OOMScoreAdj
	}
	cfg.ShmSize = s.ShmSize
	if cfg.ShmSize == 0 {
		cfg.ShmSize = 64 << 20
	}
	cfg.Sysctls = maps.Clone(s.Sysctls)
	cfg.Init = s.Process.Init
	for _, d := range s.Devices {
		cfg.Devices = append(cfg.Devices, DeviceMapping{PathOnHost: d.HostPath, PathInContainer: d.Path, Permissions: d.Access})
	}
	if c.rec.Resources != nil {
		cfg.Resources = *c.rec.Resources
	}
	return cfg
}
