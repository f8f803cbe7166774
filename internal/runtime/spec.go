// Package runtime turns a container Spec into a running, isolated process.
//
// Three processes cooperate; the monitor is the calling binary re-executed:
//
//   - the caller makes the container's cgroup, then, in [Start], writes the
//     spec to the state directory and starts a monitor, detached from
//     itself;
//   - the monitor (one per container) starts the container's init in new
//     namespaces and its cgroup, owns its stdio, writes the log, records
//     the exit status in state.json and answers on monitor.sock;
//   - the init builds the root filesystem, pivots into it, drops
//     privileges and execs the user's command. It is a raw clone of the
//     monitor, made from a thread that entered the new namespaces and
//     built the root first (threadinit_linux.go); in a user namespace,
//     which no thread of a Go program may enter, it is the binary
//     re-executed once more.
//
// [Handle.Exec] asks the monitor to start a further process in a running
// container: a raw clone of the monitor enters the container's namespaces
// and cgroup, drops privileges and execs.
//
// The monitor runs from a sealed copy of the binary on a read-only mount of
// its own, as do the processes it clones until they execute, so that nothing
// inside a container can write to the host's executable through
// /proc/PID/exe. A binary that uses this package must call [MaybeReexec]
// first thing, from an init function or TestMain.
//
// The monitor and init start as soon as this package is initialised, before
// the rest of the binary's packages: a start costs one Go runtime start
// plus the initialisation of what this package imports and of the packages
// the binary initialises before it. A binary initialises its packages in
// import path order among those whose imports are initialised, so a
// dependency such as path/filepath, os/exec or net, ready early but sorted
// late, would hold this package back behind most of the binary. That is why
// it imports none of them, nothing heavier than x/sys, and leaves making
// cgroups (with containerd's managers) to the caller.
//
// Device nodes are usable only at /dev's standard nodes: every other mount
// of a container (the rootfs, /dev itself, binds, tmpfs) is nodev, which
// stands in for a device cgroup.
package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/errdefs"
)

// Spec is everything the monitor and init need to run one container. It is
// stored as JSON in <StateDir>/config.json.
type Spec struct {
	ID       string
	Name     string
	StateDir string // <root>/containers/<id>; the sealed binary goes to <root>/exe

	// Rootfs are applied in order at the container's root: typically one
	// overlay mount from a snapshotter, or a bind of a directory.
	Rootfs         []Mount
	ReadonlyRootfs bool

	Process  Process
	Hostname string

	Namespaces Namespaces

	// Mounts are put over the rootfs, in order, at container paths.
	Mounts []MountSpec
	// MaskedPaths are hidden (/dev/null over files, an empty read-only tmpfs
	// over directories); ReadonlyPaths are remounted read-only. Docker's
	// lists are DefaultMaskedPaths and DefaultReadonlyPaths.
	MaskedPaths   []string
	ReadonlyPaths []string
	// Sysctls are written under /proc/sys in the container's namespaces,
	// "net.ipv4.ip_forward" to /proc/sys/net/ipv4/ip_forward; the caller
	// allows only those the namespaces hold (ValidSysctl).
	Sysctls map[string]string `json:",omitempty"`
	// ShmSize is the size of /dev/shm in bytes; 64 MiB when zero.
	ShmSize int64 `json:",omitempty"`
	// Devices are host device nodes bound into the container; the
	// caller's cgroup allows them.
	Devices []Device `json:",omitempty"`

	// Cgroup is the control group the container runs in, made by the
	// caller before Start (internal/cgroups.Make); nil runs it in the
	// monitor's own group. The monitor moves the init in and removes the
	// group once the container has stopped, unless its restart policy is
	// to start it again: then the group is kept for the new run, and
	// whoever cancels the restart or deletes the container removes it.
	Cgroup *cgroupfs.Group `json:",omitempty"`

	Log LogConfig

	StopSignal int  // signal Stop sends first; SIGTERM when zero
	AutoRemove bool // recorded for the owner of the state root, which deletes the container after exit

	// Restart is enforced by the monitor, with no caller alive.
	Restart RestartPolicy `json:",omitzero"`
	// Healthcheck, when set, is run by the monitor by exec.
	Healthcheck *Healthcheck `json:",omitempty"`
}

// RestartPolicy says when the monitor starts a container again after it
// exits on its own: Name is "no" (or empty), "on-failure" (a non-zero exit,
// at most MaxRetries times when positive), "always" or "unless-stopped". A
// stop or kill through the monitor never restarts. Restarts back off from
// 100ms, doubling up to a minute, reset after 10s of running.
type RestartPolicy struct {
	Name       string `json:"name,omitempty"`
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// Healthcheck is Docker's HEALTHCHECK: Test is ["CMD", args...] or
// ["CMD-SHELL", "command"], run every Interval; a run longer than Timeout
// fails; Retries consecutive failures make the container unhealthy;
// failures during StartPeriod do not count.
type Healthcheck struct {
	Test        []string      `json:"test"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Health is the outcome of a container's health checks so far.
type Health struct {
	Status        string      `json:"status"`
	FailingStreak int         `json:"failingStreak"`
	Log           []HealthLog `json:"log,omitempty"` // the last five runs
}

// HealthLog is one run of a health check.
type HealthLog struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output"`
}

// Mount is one mount(2) call: the filesystem type, its source and mount(8)
// style options ("ro", "rbind", "lowerdir=...").
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// MountSpec puts a filesystem at Destination, a path inside the container.
// Type is "bind" (Source a host file or directory, a named volume's
// directory included) or "tmpfs"; Options take "ro", "rbind", "size=64m",
// "mode=1777", "nosuid", "nodev", "noexec" and the like.
type MountSpec struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Process is the user's command and the credentials and limits it runs with.
type Process struct {
	Args     []string
	Env      []string
	Cwd      string // inside the container; created when missing; "/" when empty
	User     User
	Terminal bool
	// ConsoleSize is the terminal's window size as the process starts;
	// zero leaves it 0x0 until a resize.
	ConsoleSize ConsoleSize `json:",omitzero"`
	// OpenStdin gives the container a stdin pipe held by its monitor, fed
	// by the caller of Start (whose EOF closes it) and by attached clients.
	OpenStdin bool `json:",omitempty"`
	Rlimits   []Rlimit
	// Caps are the capability names ("CAP_CHOWN") the process keeps in its
	// bounding, permitted, effective and inheritable sets; already merged
	// from the defaults and the caller's add and drop lists.
	Caps       []string
	NoNewPrivs bool
	// Seccomp applies a seccomp profile: SeccompProfile, a profile in
	// Docker's JSON format, or else Docker's default one. Privileged turns
	// off seccomp, masked and read-only paths.
	Seccomp        bool
	SeccompProfile []byte `json:",omitempty"`
	Privileged     bool
	OOMScoreAdj    *int
	// Init runs the command as the child of a small init, the process
	// the container's pid namespace starts with: it passes the signals
	// it gets on to the command, reaps the processes orphaned in the
	// container and exits as the command does, as docker's --init.
	Init bool `json:",omitempty"`
}

// Device is a host device node given to a container, as docker's
// --device.
type Device struct {
	Path     string `json:"path"`     // in the container
	HostPath string `json:"hostPath"` // the node on the host
	// Type ("c" or "b"), Major and Minor are the node's, read at create;
	// Access is what the container may do with it, of "rwm".
	Type         string `json:"type"`
	Major, Minor int64
	Access       string `json:"access"`
}

// ConsoleSize is a terminal's window size in characters.
type ConsoleSize struct {
	Rows, Cols uint16
}

// User holds numeric ids; names are resolved by the caller against the
// image's /etc/passwd and /etc/group.
type User struct {
	UID            uint32
	GID            uint32
	AdditionalGIDs []uint32
}

// Rlimit is one setrlimit(2) call; Type is "RLIMIT_NOFILE" and the like.
type Rlimit struct {
	Type string
	Hard uint64
	Soft uint64
}

// Namespaces says which namespaces the container gets. New ones are
// created ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user"); Join maps a
// kind to a path to enter (a named network namespace). JoinContainer maps a
// kind to the state directory of another container whose namespace is
// entered: its init is looked up at each start, as it may have started
// again since. Kinds in none are shared with the host. UIDMap and GIDMap
// apply to a new user namespace.
type Namespaces struct {
	New           []string
	Join          map[string]string
	JoinContainer map[string]string `json:",omitempty"`
	UIDMap        []IDMap
	GIDMap        []IDMap
}

// IDMap maps Size ids from ContainerID inside a user namespace to HostID.
type IDMap struct {
	ContainerID uint32
	HostID      uint32
	Size        uint32
}

// DefaultNamespaces are those Docker creates for a container.
var DefaultNamespaces = []string{"pid", "mnt", "uts", "ipc", "net", "cgroup"}

// LogConfig says where the monitor writes the container's output and how it
// rotates: after MaxSize bytes the file is renamed to Path.1 (Path.1 to
// Path.2 ...), keeping MaxFiles files in all. Path defaults to
// <StateDir>/container.log; MaxSize zero never rotates.
type LogConfig struct {
	Path     string
	MaxSize  int64
	MaxFiles int
}

// DefaultMaskedPaths are the paths Docker hides from unprivileged
// containers.
var DefaultMaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are the paths Docker makes read-only in unprivileged
// containers.
var DefaultReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// Status is the phase a container is in.
type Status string

// Container statuses.
const (
	Created Status = "created" // config written, not started (or start failed before exec)
	Running Status = "running"
	Stopped Status = "stopped"
)

// State is what state.json records about a container.
type State struct {
	Status     Status    `json:"status"`
	Pid        int       `json:"pid,omitempty"`        // the container's init, in the host's pid namespace
	MonitorPid int       `json:"monitorPid,omitempty"` // the monitor
	PidStart   uint64    `json:"pidStart,omitempty"`   // the init's start, in clock ticks after boot: with Pid, the process
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"` // the signal that killed the process, if any
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	Error      string    `json:"error,omitempty"` // why the container failed to start or the monitor lost it

	Paused       bool    `json:"paused,omitempty"`       // frozen by Pause
	Restarting   bool    `json:"restarting,omitempty"`   // stopped, to be started again by its restart policy
	RestartCount int     `json:"restartCount,omitempty"` // restarts by the policy since the last start by a caller
	Health       *Health `json:"health,omitempty"`
}

// ExitStatus is how a container ended. ExitCode follows Docker: the process's
// exit code, or 128+N when it died of signal N.
type ExitStatus struct {
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// StartError reports that the user's command could not be started, with the
// exit code Docker gives that failure: 127 when the executable is not found,
// 126 when it cannot be executed, 125 for anything that went wrong in dock.
type StartError struct {
	ExitCode int
	Msg      string
}

func (e *StartError) Error() string { return e.Msg }

// Unwrap lets errors.Is match ErrNotFound for a missing command.
func (e *StartError) Unwrap() error {
	if e.ExitCode == 127 {
		return errdefs.ErrNotFound
	}
	return nil
}

// File names inside a state directory.
const (
	configFile = "config.json"
	stateFile  = "state.json"
	socketFile = "monitor.sock"
	logFile    = "container.log"
	monitorLog = "monitor.log"
	rootfsDir  = "rootfs"
	idmapDir   = "idmap"       // the idmapped layers of a user namespace's rootfs, in the monitor's mount namespace
	hostsFile  = "hosts"       // bound at /etc/hosts when present
	hostnameF  = "hostname"    // bound at /etc/hostname when present
	resolvFile = "resolv.conf" // bound at /etc/resolv.conf when present
	exeDirName = "exe"         // under the state root
)

func (s *Spec) logPath() string {
	if s.Log.Path != "" {
		return s.Log.Path
	}
	return path.Join(s.StateDir, logFile)
}

func (s *Spec) stopSignal() syscall.Signal {
	if s.StopSignal > 0 {
		return syscall.Signal(s.StopSignal)
	}
	return syscall.SIGTERM
}

func (s *Spec) hasNew(ns string) bool {
	for _, n := range s.Namespaces.New {
		if n == ns {
			return true
		}
	}
	return false
}

func readSpec(stateDir string) (*Spec, error) {
	b, err := os.ReadFile(path.Join(stateDir, configFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("container %s: %w", stateDir, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("container %s: config: %w", stateDir, err)
	}
	return &s, nil
}

// sysctlPath is the file of sysctl name under /proc/sys: dots separate
// its parts, unless it is spelled with slashes, which leave dots in a
// part (an interface's name) alone.
func sysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return strings.ReplaceAll(name, ".", "/")
}

// ValidSysctl reports whether name is a sysctl a container's own
// namespaces hold, as Docker allows them: the network namespace's net.*,
// the IPC namespace's System V IPC and POSIX message queue settings, and
// the UTS namespace's domain name. It returns the namespace ("net", "ipc"
// or "uts") that must be the container's own.
func ValidSysctl(name string) (ns string, ok bool) {
	p := sysctlPath(name)
	if slices.Contains(strings.Split(p, "/"), "..") || strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return "", false
	}
	switch {
	case strings.HasPrefix(p, "net/"):
		return "net", true
	case strings.HasPrefix(p, "fs/mqueue/"):
		return "ipc", true
	case slices.Contains(ipcSysctls, p):
		return "ipc", true
	case p == "kernel/domainname":
		return "uts", true
	}
	return "", false
}

// ipcSysctls are the IPC namespace's settings under kernel/.
var ipcSysctls = []string{"kernel/msgmax", "kernel/msgmnb", "kernel/msgmni", "kernel/sem",
	"kernel/shmall", "kernel/shmmax", "kernel/shmmni", "kernel/shm_rmid_forced"}
