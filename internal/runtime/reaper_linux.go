package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaperEnv comes first in the reaper's environment, ahead of the
// container's: the Go runtime takes the first of each variable, so the
// container's settings for its own Go programs do not reach the reaper
// (its GODEBUG=gctrace=1 would print to the container's stderr). The
// reaper gives the command the container's environment alone.
var reaperEnv = []string{"GOMAXPROCS=1", "GOGC=100", "GOMEMLIMIT=off", "GODEBUG=", "GOTRACEBACK=single"}

// reaperMain is the first process of a container started with
// Process.Init: args are "--", the command's path, then its arguments.
// It starts the command, passes on every signal it gets, reaps each
// process that ends orphaned in the container, and returns the command's
// exit code, 128 and the signal's number when a signal ended it. The
// init's sync socket, open as initSyncFD, tells the monitor that it is
// ready or why the command could not start.
func reaperMain(args []string) int {
	syncF := os.NewFile(initSyncFD, "sync")
	fail := func(code int, format string, a ...any) int {
		b, _ := json.Marshal(initMsg{Code: code, Msg: fmt.Sprintf(format, a...)})
		syncF.Write(b)
		return code
	}
	if len(args) < 3 || args[0] != "--" {
		return fail(125, "reaper: usage: %s -- PATH ARGV0 [ARG...]", reaperArg0)
	}
	// As executed: the os package drops the container's variables that
	// reaperEnv shadows.
	raw, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		return fail(125, "reaper: %v", err)
	}
	env := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if len(env) < len(reaperEnv) || !slices.Equal(env[:len(reaperEnv)], reaperEnv) {
		return fail(125, "reaper: environment without its own settings first")
	}
	unix.CloseOnExec(initSyncFD)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	attr := &syscall.ProcAttr{Env: env[len(reaperEnv):], Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{}}
	if term, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil && term != nil {
		// Its own process group, in the foreground of the terminal: keys
		// such as ^C signal the command alone, as they would with no
		// init in between.
		attr.Sys.Setpgid, attr.Sys.Foreground, attr.Sys.Ctty = true, true, 0
	}
	child, err := syscall.ForkExec(args[1], args[2:], attr)
	if err != nil {
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		return fail(code, "exec: %q: %v", args[2], err)
	}
	syncF.Close()
	for sig := range sigs {
		switch sig {
		case unix.SIGCHLD:
		case unix.SIGURG:
			// The Go runtime's own, to preempt goroutines.
			continue
		default:
			unix.Kill(child, sig.(syscall.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			if pid != child {
				continue // an orphan, reaped
			}
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
	return 125
}
