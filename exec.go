package dock

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/dockkit/dock/internal/runtime"
)

// ExecOption configures Container.Exec. [WithOutput], [WithInput] and
// [WithConsoleSize] serve Exec as well as Start.
type ExecOption interface{ applyExec(*execConfig) error }

type execConfig struct {
	stdio    runtime.Stdio
	env      []string
	workdir  string
	user     string
	terminal bool
}

type execOptionFunc func(*execConfig) error

func (f execOptionFunc) applyExec(c *execConfig) error { return f(c) }

func (o StdioOption) applyExec(c *execConfig) error { return o.apply(&c.stdio) }

// WithExecEnv adds or overrides environment variables of the exec'd
// process, each "KEY=VALUE", over the container's own.
func WithExecEnv(kv ...string) ExecOption {
	return execOptionFunc(func(c *execConfig) error {
		for _, e := range kv {
			if k, _, _ := strings.Cut(e, "="); k == "" || strings.ContainsRune(e, 0) {
				return fmt.Errorf("WithExecEnv(%q): want KEY=VALUE: %w", e, ErrInvalidArgument)
			}
		}
		c.env = append(c.env, kv...)
		return nil
	})
}

// WithExecWorkdir runs the exec'd process in dir instead of the container's
// working directory.
func WithExecWorkdir(dir string) ExecOption {
	return execOptionFunc(func(c *execConfig) error {
		if !path.IsAbs(dir) {
			return fmt.Errorf("WithExecWorkdir(%q): must be absolute: %w", dir, ErrInvalidArgument)
		}
		c.workdir = dir
		return nil
	})
}

// WithExecUser runs the exec'd process as u ("name", "uid", "uid:gid"),
// resolved against the container's /etc/passwd and /etc/group, instead of
// the container's user.
func WithExecUser(u string) ExecOption {
	return execOptionFunc(func(c *execConfig) error {
		if u == "" {
			return fmt.Errorf("WithExecUser(%q): %w", u, ErrInvalidArgument)
		}
		c.user = u
		return nil
	})
}

// WithExecTerminal gives the exec'd process a pseudo-terminal: its output
// and input go through it, as one stream; resize it with Process.Resize.
func WithExecTerminal() ExecOption {
	return execOptionFunc(func(c *execConfig) error { c.terminal = true; return nil })
}

// ConsoleSizeOption sets the window size a terminal starts with; it serves
// Start and Exec.
type ConsoleSizeOption struct {
	size runtime.ConsoleSize
	err  error
}

func (o ConsoleSizeOption) applyStart(c *startConfig) error {
	c.stdio.ConsoleSize = o.size
	return o.err
}

func (o ConsoleSizeOption) applyExec(c *execConfig) error {
	c.stdio.ConsoleSize = o.size
	return o.err
}

// WithConsoleSize gives the terminal of the container (WithTTY) or of the
// exec'd process (WithExecTerminal) rows and cols, the caller's own
// terminal's size typically, before the command runs: a Resize after Start
// or Exec comes too late for a command that reads the size as it starts.
// Without a terminal it does nothing.
func WithConsoleSize(rows, cols uint16) ConsoleSizeOption {
	if rows == 0 || cols == 0 {
		return ConsoleSizeOption{err: fmt.Errorf("WithConsoleSize(%d, %d): %w", rows, cols, ErrInvalidArgument)}
	}
	return ConsoleSizeOption{size: runtime.ConsoleSize{Rows: rows, Cols: cols}}
}

// Process is a further process running in a container, started by
// [Container.Exec]. It dies with the container.
type Process struct {
	Pid int // in the host's pid namespace

	c *Container
	p *runtime.ExecProcess
}

// Exec runs args in the running container: in all its namespaces, its
// cgroup and root filesystem, with its capabilities, seccomp profile,
// no_new_privs, user, environment and working directory unless options
// override them. It returns once the command runs, or with ctx's error and
// the process killed if ctx ends first; a command that cannot start fails
// with a *StartError (ErrNotFound when the executable does not exist).
// Without WithOutput the process's output is discarded; it never
// goes to the container's log.
func (c *Container) Exec(ctx context.Context, args []string, opts ...ExecOption) (*Process, error) {
	var ec execConfig
	for _, o := range opts {
		if err := o.applyExec(&ec); err != nil {
			return nil, err
		}
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec %s: no command: %w", c.Name, ErrInvalidArgument)
	}
	switch st := c.State(); st.Status {
	case StatusRunning:
	case StatusPaused:
		return nil, fmt.Errorf("exec %s: container is paused: %w", c.Name, ErrWrongState)
	default:
		return nil, fmt.Errorf("exec %s: container is %s: %w", c.Name, st.Status, ErrWrongState)
	}
	hd, err := c.handle()
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", c.Name, err)
	}
	proc := c.rec.Spec.Process
	proc.Args = slices.Clone(args)
	proc.Env = mergeEnv(proc.Env, ec.env)
	proc.Terminal = ec.terminal
	if ec.workdir != "" {
		proc.Cwd = ec.workdir
	}
	if ec.user != "" {
		var mounts []Mount
		for _, m := range c.rec.Spec.Rootfs {
			mounts = append(mounts, Mount{Type: m.Type, Source: m.Source, Options: m.Options})
		}
		eu, err := c.h.resolveUser(mounts, ec.user, c.rec.GroupAdd)
		if err != nil {
			return nil, fmt.Errorf("exec %s: %w", c.Name, err)
		}
		proc.User = runtime.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
		for _, g := range eu.Sgids {
			proc.User.AdditionalGIDs = append(proc.User.AdditionalGIDs, uint32(g))
		}
		proc.Env = mergeEnv(proc.Env, []string{"HOME=" + eu.Home})
		proc.Env = mergeEnv(proc.Env, ec.env)
	}
	p, err := hd.Exec(ctx, &proc, &ec.stdio)
	if err != nil {
		var se *runtime.StartError
		if errors.As(err, &se) {
			return nil, &StartError{Container: c.Name, Code: se.ExitCode, Err: err}
		}
		return nil, fmt.Errorf("exec %s: %w", c.Name, err)
	}
	return &Process{Pid: p.Pid, c: c, p: p}, nil
}

// Wait blocks until the process has exited and its output has been
// delivered, and returns how it ended. A non-zero exit is a status, not an
// error. Cancelling ctx stops the wait, not the process.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	es, err := p.p.Wait(ctx)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec %s: %w", p.c.Name, err)
	}
	return ExitStatus{ExitCode: es.ExitCode, Signal: syscall.Signal(es.Signal), FinishedAt: es.FinishedAt}, nil
}

// Kill sends sig to the process.
func (p *Process) Kill(sig syscall.Signal) error {
	if err := p.p.Kill(sig); err != nil {
		return fmt.Errorf("exec %s: %w", p.c.Name, err)
	}
	return nil
}

// Resize sets the window size of the process's terminal; it fails with
// ErrWrongState without WithExecTerminal.
func (p *Process) Resize(rows, cols uint16) error {
	if err := p.p.Resize(rows, cols); err != nil {
		return fmt.Errorf("exec %s: %w", p.c.Name, err)
	}
	return nil
}
