package runtime

import (
	"os"
	goruntime "runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/runtime/standby"
)

// argv[0] of the re-executed binary tells its role.
const (
	monitorArg0 = standby.MonitorArg0
	initArg0    = "dock-init"
	reaperArg0  = "dock-reaper"
)

// MonitorArg0, InitArg0 and ReaperArg0 are argv[0] of a container's
// monitor, init and reaper (Process.Init), for a program that tells them
// from its own processes before its main runs.
const (
	MonitorArg0 = monitorArg0
	InitArg0    = initArg0
	ReaperArg0  = reaperArg0
)

// initEnv is the init's whole environment, its Go runtime's settings (the
// monitor's are standby.MonitorEnv). The init lives only until it executes
// the container's command: one P, and no collection. Its own environment
// never reaches that command, which gets the one its spec gives.
var initEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// The monitor and the init dispatch from this package's own initialisation:
// Go initialises a package as soon as its imports are, so the packages of
// the binary that sort after this one and do not feed it (a registry
// client, net/http, the caller's main) are never initialised in them. Every
// re-exec pays for each package initialised before it returns.
func init() { MaybeReexec() }

// MaybeReexec runs the monitor, the container init or its reaper when this
// process was started as one (os.Args[0] is "dock-monitor", "dock-init" or
// "dock-reaper"), and never returns then. Otherwise it returns at once. This package calls it from its
// own init; calling it again, from an init function of the main package or
// from TestMain, is harmless.
func MaybeReexec() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[0] {
	case initArg0, monitorArg0, reaperArg0:
		// Named by role in ps and top, rather than by the sealed copy's
		// file name, which is the same for both. The name is the main
		// thread's (package initialisation runs there); threads the Go
		// runtime started before keep the file's.
		setName(os.Args[0])
	}
	switch os.Args[0] {
	case initArg0:
		// Namespaces changed with unshare, capabilities, no_new_privs and
		// seccomp are per thread: the whole init runs on this thread, which
		// is never unlocked, and execs from it.
		goruntime.LockOSThread()
		initMain()
		os.Exit(125)
	case reaperArg0:
		// Process 1 of the container runs the caller's program: no
		// process of the container may read it, or trace it, through
		// /proc/1 (which needs CAP_SYS_PTRACE once it is not dumpable).
		unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
		os.Exit(reaperMain(os.Args[1:]))
	case monitorArg0:
		monitorPrelude()
		if len(os.Args) >= 3 && os.Args[2] == standbyArg && !awaitContainer() {
			os.Exit(0)
		}
		monitorMain()
		os.Exit(0)
	}
}

// setName sets the name the kernel shows for this process (its comm).
func setName(name string) {
	b := append([]byte(name), 0)
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}
