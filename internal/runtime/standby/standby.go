// Package standby starts a container's monitor ahead of its container, on
// standby: the runtime does so when a container is created, and a program
// that knows from its arguments that it will create one (dock run) may do
// so from its package initialisation, before its own start-up is done.
//
// It depends on package syscall and a few packages below it alone, so that
// Go initialises it among the first packages of a program; the runtime
// builds on it.
package standby

// The monitor's command line: argv[0] tells its role; the state directory
// follows, which tells whose monitor it is to any program that looks;
// then Arg, and how long to wait for the container, in milliseconds.
const (
	MonitorArg0 = "dock-monitor"
	Arg         = "-standby"
)

// How long a monitor on standby waits for its container. A caller that
// prepares a container and starts it at once (dock run) needs
// milliseconds; past this, the start spawns a monitor of its own. One
// started from a program's package initialisation waits longer: the
// program may first have to pull the image, or share two CPUs with many
// others starting at once, and the monitor ends with the program anyway.
const (
	IdleMillis         = 1000
	PrestartIdleMillis = 10000
)

// MonitorEnv is a monitor's whole environment. The monitor mostly waits on
// its container: one P keeps its threads and memory few, and a collection
// at 40% of growth over the live heap (at least 1.6 MiB rather than 4)
// keeps what its periodic work allocates (health checks, exec'd processes,
// requests) from piling up to the collector's default first goal in a
// process that lives as long as its container. A lower floor is too close
// to what the start-up leaves in use, counted in whole spans (about
// 0.9 MiB): a collection then runs as the container starts, and costs the
// monitor some 550 KiB of memory for good (GOGC=25: 1.8 MiB of PSS anon
// against 1.3).
var MonitorEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1", "GOGC=40"}
