package runtime

import (
	"os"
	goruntime "runtime"
)

// argv[0] of the re-executed binary tells its role.
const (
	monitorArg0 = "dock-monitor"
	initArg0    = "dock-init"
)

// MaybeReexec runs the monitor, the container init or an exec'd process when
// this process was started as one (os.Args[0] is "dock-monitor", "dock-init"
// or "dock-exec"), and never
// returns then. Otherwise it returns at once. Call it before anything else
// runs: from an init function of the main package, or from TestMain.
func MaybeReexec() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[0] {
	case initArg0:
		// Namespaces changed with unshare, capabilities, no_new_privs and
		// seccomp are per thread: the whole init runs on this thread, which
		// is never unlocked, and execs from it.
		goruntime.LockOSThread()
		initMain()
		os.Exit(125)
	case execArg0:
		goruntime.LockOSThread()
		execMain()
		os.Exit(125)
	case monitorArg0:
		monitorMain()
		os.Exit(0)
	}
}
