package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/dockkit/dock"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// runFlags are the flags shared by run and create.
type runFlags struct {
	rm, detach, interactive, tty bool
	name, workdir, user          string
	entrypoint                   string
	env                          []string
	memory                       string
	cpus                         float64
	pidsLimit                    int64
	network                      string
	publish                      []string
	volumes                      []string
	tmpfs                        []string
	readOnly                     bool
	hostname                     string
	capAdd, capDrop              []string
	privileged                   bool
	platform                     string
	labels                       []string
	keep                         keepFlags // --restart and --health-*: running.go

	envFiles                  []string
	memorySwap, memoryReserve string
	cpuShares, cpuQuota       int64
	cpuPeriod                 uint64
	cpusetCPUs, cpusetMems    string
	blkioWeight               uint16
	pidNS, ipcNS, utsNS       string
	cgroupNS                  string
	mounts                    []string
	stopSignal, stopTimeout   string
	logOpts                   []string
	ulimits                   []string
	securityOpts, groupAdd    []string
	sysctls, devices          []string
	addHosts, dns             []string
	dnsSearch, dnsOptions     []string
	oomScoreAdj               int
	init                      bool
	shmSize                   string
}

func (f *runFlags) register(cmd *cobra.Command, run bool) {
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after IMAGE belong to the command
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	}
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.StringVar(&f.name, "name", "", "container name")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable KEY=VALUE")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user: name, uid, or uid:gid")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit: bytes or 64m, 1g")
	fl.Float64Var(&f.cpus, "cpus", 0, "number of CPUs")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of tasks")
	fl.StringVar(&f.network, "network", "none", "network: none or host")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port [IP:]HOST:CTR[/udp]")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind or volume SRC:DST[:ro]")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs at DST")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fl.StringVar(&f.hostname, "hostname", "", "container hostname")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability")
	fl.BoolVar(&f.privileged, "privileged", false, "give the container every capability, no seccomp")
	fl.StringVar(&f.platform, "platform", "", "platform to pull if the image is missing")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label KEY=VALUE")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file of KEY=VALUE lines")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit: bytes or 64m, 1g; -1 for unlimited swap")
	fl.StringVar(&f.memoryReserve, "memory-reservation", "", "memory soft limit: bytes or 64m, 1g")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "CPU time per period, in microseconds")
	fl.Uint64Var(&f.cpuPeriod, "cpu-period", 0, "CPU period, in microseconds")
	fl.StringVar(&f.cpusetCPUs, "cpuset-cpus", "", "CPUs the container may use (0-3, 0,1)")
	fl.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes the container may use (0-3, 0,1)")
	fl.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "block IO weight, 10 to 1000")
	fl.StringVar(&f.cgroupNS, "cgroupns", "", "cgroup namespace: private (the default) or host")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,tmpfs-size=N][,tmpfs-mode=M]")
	fl.StringVar(&f.pidNS, "pid", "", "pid namespace: host, or container:NAME to share another's")
	fl.StringVar(&f.ipcNS, "ipc", "", "IPC namespace: host, or container:NAME to share another's")
	fl.StringVar(&f.utsNS, "uts", "", "UTS namespace: host")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container (default the image's, or SIGTERM)")
	fl.StringVar(&f.stopTimeout, "stop-timeout", "", "seconds stop waits before it kills (default 10)")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "log option: max-size=SIZE or max-file=N")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "resource limit NAME=SOFT[:HARD], as nofile=1024:2048; -1 for none")
	fl.StringArrayVar(&f.securityOpts, "security-opt", nil, "seccomp=unconfined|FILE, no-new-privileges[=true|false], systempaths=unconfined")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "add a supplementary group, by name or number")
	fl.BoolVar(&f.init, "init", false, "run an init that passes signals on and reaps orphans")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "add a line NAME:IP to /etc/hosts")
	fl.StringArrayVar(&f.dns, "dns", nil, "set a name server of /etc/resolv.conf")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "set a search domain of /etc/resolv.conf (\".\" for none)")
	fl.StringArrayVar(&f.dnsOptions, "dns-option", nil, "set an option of /etc/resolv.conf")
	fl.StringArrayVar(&f.devices, "device", nil, "give a host device HOST[:CONTAINER[:PERMS]], as /dev/fuse or /dev/sdb:/dev/xvdb:r")
	fl.StringArrayVar(&f.sysctls, "sysctl", nil, "set a namespaced kernel parameter NAME=VALUE, as net.ipv4.ip_unprivileged_port_start=0")
	fl.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "the container's OOM score adjustment, -1000 to 1000")
	fl.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm: bytes or 64m, 1g (default 64m)")
	f.keep.register(fl)
}

// sizeRE is docker's spelling of a size: a number, then an optional unit
// (k, m, g, t, p; binary multiples), an optional "i" after it, an
// optional "b".
var sizeRE = regexp.MustCompile(`^([0-9]+)(\.[0-9]+)? ?(?:([kmgtp])i?)?b?$`)

// parseBytes reads a size as docker's -m does: "67108864", "64m", "1g",
// "512k", "1.5g", "64MiB", "100b".
func parseBytes(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("size %q: want bytes or a number with k, m, g, t or p: %w", s, dock.ErrInvalidArgument)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}[m[3]]
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q: too large: %w", s, dock.ErrInvalidArgument)
	}
	n <<= shift
	if m[2] != "" {
		frac, _ := strconv.ParseFloat("0"+m[2], 64)
		n += int64(frac * float64(int64(1)<<shift))
	}
	return n, nil
}

// passEnv completes -e flags: KEY alone passes dock's own value of KEY, or
// nothing when it has none, as docker does.
func passEnv(flags []string) []string {
	var env []string
	for _, e := range flags {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		env = append(env, e)
	}
	return env
}

// readEnvFile reads a file of docker's --env-file: a KEY=VALUE a line,
// blank lines and lines starting with # skipped, a KEY alone passing dock's
// own value as -e does.
func readEnvFile(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a byte order mark
	var env []string
	for i, line := range strings.Split(string(b), "\n") {
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("%s:%d: not UTF-8: %w", name, i+1, dock.ErrInvalidArgument)
		}
		line = strings.TrimLeft(strings.TrimSuffix(line, "\r"), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, _ := strings.Cut(line, "="); k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: variable %q has white space or no name: %w", name, i+1, k, dock.ErrInvalidArgument)
		}
		env = append(env, line)
	}
	return passEnv(env), nil
}

// resources reads the cgroup flags beyond -m, --cpus and --pids-limit.
func (f *runFlags) resources() (dock.Resources, error) {
	var r dock.Resources
	for _, b := range []struct {
		flag, v string
		dst     *int64
	}{{"--memory-swap", f.memorySwap, &r.MemorySwapMax}, {"--memory-reservation", f.memoryReserve, &r.MemoryReservation}} {
		switch b.v {
		case "":
		case "-1":
			*b.dst = -1
		default:
			n, err := parseBytes(b.v)
			if err != nil {
				return r, fmt.Errorf("%s: %w", b.flag, err)
			}
			*b.dst = n
		}
	}
	if r.MemorySwapMax == -1 && f.memory == "" {
		r.MemorySwapMax = 0 // unlimited swap with no memory limit: the default
	}
	if f.cpuShares < 0 {
		return r, fmt.Errorf("--cpu-shares %d: %w", f.cpuShares, dock.ErrInvalidArgument)
	}
	if f.cpuQuota < -1 {
		return r, fmt.Errorf("--cpu-quota %d: %w", f.cpuQuota, dock.ErrInvalidArgument)
	}
	if f.cpus != 0 && (f.cpuQuota != 0 || f.cpuPeriod != 0) {
		return r, fmt.Errorf("--cpus and --cpu-quota or --cpu-period: set one or the other: %w", dock.ErrInvalidArgument)
	}
	r.CPUShares, r.CPUQuota, r.CPUPeriod = uint64(f.cpuShares), f.cpuQuota, f.cpuPeriod
	r.CPUSetCPUs, r.CPUSetMems, r.IOWeight = f.cpusetCPUs, f.cpusetMems, f.blkioWeight
	return r, nil
}

// joins returns the options of --network, --pid and --ipc container:NAME.
func (f *runFlags) joins(ctx context.Context, h *dock.Host) ([]dock.CreateOption, error) {
	var opts []dock.CreateOption
	for _, ns := range []struct {
		flag, v string
		kind    dock.Namespace
	}{{"--network", f.network, dock.NetNamespace}, {"--pid", f.pidNS, dock.PIDNamespace}, {"--ipc", f.ipcNS, dock.IPCNamespace}} {
		name, ok := strings.CutPrefix(ns.v, "container:")
		if !ok {
			continue
		}
		other, err := h.Container(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", ns.flag, ns.v, err)
		}
		opts = append(opts, dock.WithJoinNamespace(ns.kind, other))
	}
	return opts, nil
}

// logRotation reads --log-opt max-size and max-file, docker's json-file
// options.
func logRotation(opts []string) (dock.CreateOption, error) {
	size, files := int64(0), 1
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "max-size":
			// Decimal units, as docker's json-file reads them.
			n, err := units.FromHumanSize(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("--log-opt %s: want a size such as 10m: %w", o, dock.ErrInvalidArgument)
			}
			size = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--log-opt %s: want a count of at least 1: %w", o, dock.ErrInvalidArgument)
			}
			files = n
		default:
			return nil, fmt.Errorf("--log-opt %s: want max-size or max-file: %w", o, dock.ErrInvalidArgument)
		}
	}
	if size == 0 {
		return nil, nil // max-file alone does nothing, as in docker
	}
	return dock.WithLogRotation(size, files), nil
}

// checkUser checks the spelling of -u: a name or uid, then optionally ":"
// and a group name or gid. The image's /etc/passwd and /etc/group resolve
// the names when the container is created.
func checkUser(u string) error {
	user, group, hasGroup := strings.Cut(u, ":")
	if user == "" || (hasGroup && group == "") || strings.ContainsAny(u, " \t\n/") || strings.Count(u, ":") > 1 {
		return fmt.Errorf("-u %q: want name, uid, name:group or uid:gid: %w", u, dock.ErrInvalidArgument)
	}
	return nil
}

// minMemory is the smallest memory limit docker accepts.
const minMemory = 6 << 20

func (f *runFlags) options() ([]dock.CreateOption, error) {
	var opts []dock.CreateOption
	if f.name != "" {
		opts = append(opts, dock.WithName(f.name))
	}
	var env []string
	for _, file := range f.envFiles {
		kv, err := readEnvFile(file)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		env = append(env, kv...)
	}
	// -e comes after --env-file, and wins, as in docker.
	env = append(env, passEnv(f.env)...)
	if len(env) > 0 {
		opts = append(opts, dock.WithEnv(env...))
	}
	if f.workdir != "" {
		opts = append(opts, dock.WithWorkdir(f.workdir))
	}
	if f.user != "" {
		if err := checkUser(f.user); err != nil {
			return nil, err
		}
		opts = append(opts, dock.WithUser(f.user))
	}
	if f.entrypoint != "" {
		opts = append(opts, dock.WithEntrypoint(f.entrypoint))
	}
	res, err := f.resources()
	if err != nil {
		return nil, err
	}
	if res != (dock.Resources{}) {
		// First: the options below set their own limits on top.
		opts = append([]dock.CreateOption{dock.WithResources(res)}, opts...)
	}
	if f.memory != "" {
		n, err := parseBytes(f.memory)
		if err != nil {
			return nil, fmt.Errorf("-m: %w", err)
		}
		switch {
		case n == 0: // no limit, as docker
		case n < minMemory:
			return nil, fmt.Errorf("-m %s: the minimum memory limit is 6MB: %w", f.memory, dock.ErrInvalidArgument)
		default:
			opts = append(opts, dock.WithMemoryLimit(n))
		}
	}
	if f.cpus != 0 {
		opts = append(opts, dock.WithCPUs(f.cpus))
	}
	if f.pidsLimit != 0 {
		opts = append(opts, dock.WithPidsLimit(f.pidsLimit))
	}
	if f.network != "" && f.network != "none" && !strings.HasPrefix(f.network, "container:") {
		opts = append(opts, dock.WithNetwork(f.network))
	}
	for _, ns := range []struct {
		flag, v string
		kind    dock.Namespace
	}{{"--pid", f.pidNS, dock.PIDNamespace}, {"--ipc", f.ipcNS, dock.IPCNamespace}, {"--uts", f.utsNS, dock.UTSNamespace}} {
		switch {
		case ns.v == "" || ns.kind == dock.IPCNamespace && (ns.v == "private" || ns.v == "shareable"):
		case strings.HasPrefix(ns.v, "container:") && ns.kind != dock.UTSNamespace:
			// Joined once the host is open (joins).
		case ns.v == "host":
			opts = append(opts, dock.WithHostNamespace(ns.kind))
		case ns.kind == dock.UTSNamespace:
			return nil, fmt.Errorf("%s %q: want host: %w", ns.flag, ns.v, dock.ErrInvalidArgument)
		default:
			return nil, fmt.Errorf("%s %q: want host or container:NAME: %w", ns.flag, ns.v, dock.ErrInvalidArgument)
		}
	}
	switch f.cgroupNS {
	case "", "private":
	case "host":
		opts = append(opts, dock.WithHostNamespace(dock.CgroupNamespace))
	default:
		return nil, fmt.Errorf("--cgroupns %q: want private or host: %w", f.cgroupNS, dock.ErrInvalidArgument)
	}
	if f.stopSignal != "" {
		sig, err := dock.ParseSignal(f.stopSignal)
		if err != nil {
			return nil, fmt.Errorf("--stop-signal: %w", err)
		}
		opts = append(opts, dock.WithStopSignal(sig))
	}
	if f.stopTimeout != "" {
		n, err := strconv.Atoi(f.stopTimeout)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("--stop-timeout %q: want whole seconds, or -1 to wait for good: %w", f.stopTimeout, dock.ErrInvalidArgument)
		}
		d := time.Duration(n) * time.Second
		if n == -1 {
			d = math.MaxInt64
		}
		opts = append(opts, dock.WithStopTimeout(d))
	}
	for _, u := range f.ulimits {
		name, v, _ := strings.Cut(u, "=")
		soft, hard, hasHard := strings.Cut(v, ":")
		if !hasHard {
			hard = soft
		}
		s, err1 := strconv.ParseInt(soft, 10, 64)
		h, err2 := strconv.ParseInt(hard, 10, 64)
		if name == "" || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--ulimit %q: want NAME=SOFT[:HARD]: %w", u, dock.ErrInvalidArgument)
		}
		if s > h && h != -1 || s == -1 && h != -1 {
			return nil, fmt.Errorf("--ulimit %q: the soft limit is above the hard one: %w", u, dock.ErrInvalidArgument)
		}
		opts = append(opts, dock.WithUlimit(name, s, h))
	}
	sec, err := securityOptions(f.securityOpts)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	if len(f.groupAdd) > 0 {
		opts = append(opts, dock.WithGroupAdd(f.groupAdd...))
	}
	for _, kv := range f.sysctls {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--sysctl %q: want NAME=VALUE: %w", kv, dock.ErrInvalidArgument)
		}
		opts = append(opts, dock.WithSysctl(k, v))
	}
	for _, o := range []struct {
		vals []string
		opt  func(...string) dock.CreateOption
	}{{f.addHosts, dock.WithExtraHosts}, {f.dns, dock.WithDNS}, {f.dnsSearch, dock.WithDNSSearch}, {f.dnsOptions, dock.WithDNSOptions}} {
		if len(o.vals) > 0 {
			opts = append(opts, o.opt(o.vals...))
		}
	}
	for _, d := range f.devices {
		o, err := deviceOption(d)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if f.init {
		opts = append(opts, dock.WithInit())
	}
	if f.oomScoreAdj != 0 {
		opts = append(opts, dock.WithOOMScoreAdj(f.oomScoreAdj))
	}
	if f.shmSize != "" {
		n, err := parseBytes(f.shmSize)
		if err != nil {
			return nil, fmt.Errorf("--shm-size: %w", err)
		}
		if n > 0 { // 0 is the default, as in docker
			opts = append(opts, dock.WithShmSize(n))
		}
	}
	if len(f.logOpts) > 0 {
		o, err := logRotation(f.logOpts)
		if err != nil {
			return nil, err
		}
		if o != nil {
			opts = append(opts, o)
		}
	}
	if len(f.publish) > 0 {
		return nil, fmt.Errorf("-p: publishing ports needs bridge networking: %w", dock.ErrNotSupported)
	}
	for _, v := range f.volumes {
		parts := strings.Split(v, ":")
		if len(parts) == 1 && strings.HasPrefix(v, "/") {
			// -v /data: an anonymous volume, as docker's.
			opts = append(opts, dock.WithMount(dock.Volume("", v)))
			continue
		}
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("-v %q: want [SRC:]DST[:ro]: %w", v, dock.ErrInvalidArgument)
		}
		var mo []dock.MountOpt
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				mo = append(mo, dock.ReadOnly)
			case "rw":
			default:
				if strings.HasPrefix(parts[2], "/") {
					// C:\dir:/x is a path with a colon, not a mode.
					return nil, fmt.Errorf("-v %q: want SRC:DST[:ro], with no colon in SRC: %w", v, dock.ErrInvalidArgument)
				}
				return nil, fmt.Errorf("-v %q: mode %q: want ro or rw: %w", v, parts[2], dock.ErrInvalidArgument)
			}
		}
		// As docker's: a source starting with / or . is a host path
		// (relative to dock's working directory), anything else a volume.
		if strings.HasPrefix(parts[0], ".") {
			abs, err := filepath.Abs(parts[0])
			if err != nil {
				return nil, fmt.Errorf("-v %q: %w", v, err)
			}
			parts[0] = abs
		}
		if strings.HasPrefix(parts[0], "/") {
			opts = append(opts, dock.WithMount(dock.Bind(parts[0], parts[1], mo...)))
		} else {
			opts = append(opts, dock.WithMount(dock.Volume(parts[0], parts[1], mo...)))
		}
	}
	for _, m := range f.mounts {
		mp, err := parseMount(m)
		if err != nil {
			return nil, err
		}
		opts = append(opts, dock.WithMount(mp))
	}
	for _, t := range f.tmpfs {
		dst, o, _ := strings.Cut(t, ":")
		var to []string
		if o != "" {
			to = strings.Split(o, ",")
		}
		opts = append(opts, dock.WithMount(dock.Tmpfs(dst, to...)))
	}
	if f.readOnly {
		opts = append(opts, dock.WithReadOnlyRootfs())
	}
	if f.hostname != "" {
		if strings.HasPrefix(f.network, "container:") || f.network == "host" {
			return nil, fmt.Errorf("--hostname with --network %s: the hostname is the network's: %w", f.network, dock.ErrInvalidArgument)
		}
		opts = append(opts, dock.WithHostname(f.hostname))
	}
	if len(f.capAdd) > 0 {
		opts = append(opts, dock.WithCapAdd(f.capAdd...))
	}
	if len(f.capDrop) > 0 {
		opts = append(opts, dock.WithCapDrop(f.capDrop...))
	}
	if f.privileged {
		opts = append(opts, dock.WithPrivileged())
	}
	if f.rm {
		// A foreground run removes the container in Wait, as its owner;
		// should dock die first, whoever next opens the root does, once
		// the container has exited.
		opts = append(opts, dock.WithAutoRemove())
	}
	if f.interactive {
		opts = append(opts, dock.WithStdin())
	}
	keep, err := f.keep.options(f.rm)
	if err != nil {
		return nil, err
	}
	opts = append(opts, keep...)
	if f.tty {
		// As docker: a terminal fed from a pipe makes no sense.
		if f.interactive && !f.detach && !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, fmt.Errorf("-t: the input device is not a TTY: %w", dock.ErrInvalidArgument)
		}
		opts = append(opts, dock.WithTTY())
	}
	if len(f.labels) > 0 {
		l := map[string]string{}
		for _, kv := range f.labels {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = v
		}
		opts = append(opts, dock.WithLabels(l))
	}
	return opts, nil
}

// image finds ref in the store, pulling it when it is missing, as docker run
// does.
func (c *cli) image(ctx context.Context, h *dock.Host, ref, platform string) (*dock.Image, error) {
	img, err := h.Image(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, dock.ErrNotFound) {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "Unable to find image '%s' locally\n", ref)
	var opts []dock.PullOption
	if platform != "" {
		opts = append(opts, dock.WithPlatform(platform))
	}
	pr := newProgressPrinter(os.Stderr)
	opts = append(opts, dock.WithProgress(pr.update))
	img, err = h.Pull(ctx, ref, opts...)
	pr.finish()
	return img, err
}

func (c *cli) create(cmd *cobra.Command, f *runFlags, args []string) (*dock.Host, *dock.Container, error) {
	opts, err := f.options()
	if err != nil {
		return nil, nil, err
	}
	if len(args) > 1 {
		opts = append(opts, dock.WithCmd(args[1:]...))
	}
	h, err := c.open(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	joins, err := f.joins(cmd.Context(), h)
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, joins...)
	img, err := c.image(cmd.Context(), h, args[0], f.platform)
	if err != nil {
		return nil, nil, err
	}
	ctr, err := h.Create(cmd.Context(), img, opts...)
	if err != nil {
		return nil, nil, err
	}
	return h, ctr, nil
}

func (c *cli) containerCmds() []*cobra.Command {
	var rf, cf runFlags
	run := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [CMD...]",
		Short: "Create and start a container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, ctr, err := c.create(cmd, &rf, args)
			if err != nil {
				return err
			}
			var sopts []dock.StartOption
			detached := make(chan struct{})
			if !rf.detach {
				sopts = append(sopts, dock.WithOutput(os.Stdout, os.Stderr))
				if rf.interactive {
					var in io.Reader = os.Stdin
					if rf.tty {
						// Ctrl-P Ctrl-Q detaches, as in docker.
						in = newDetachReader(os.Stdin, func() { close(detached) })
					}
					sopts = append(sopts, dock.WithInput(in))
				}
			}
			if rf.tty {
				if sz, ok := consoleSize(); ok {
					sopts = append(sopts, sz)
				}
			}
			// Signals sent to dock go to the container, as docker's
			// --sig-proxy does, and dock waits for the exit they cause.
			// Those arriving while the container starts are held until
			// it runs; starting is not interrupted.
			var proxy *signalProxy
			if !rf.detach {
				// With a terminal, ^C and friends travel as input.
				if !rf.tty {
					proxy = newSignalProxy(ctr.Kill)
					defer proxy.stop()
				}
				ctx = context.WithoutCancel(ctx)
			}
			var restore func()
			if !rf.detach && rf.tty && rf.interactive {
				if restore, err = rawTerminal(); err != nil {
					removeQuietly(ctx, ctr)
					return err
				}
				defer restore()
			}
			if err := ctr.Start(ctx, sopts...); err != nil {
				if rf.rm {
					removeQuietly(ctx, ctr)
				}
				return startFailure(err)
			}
			if rf.detach {
				fmt.Println(ctr.ID)
				return nil
			}
			if proxy != nil {
				proxy.forward()
			}
			if rf.tty {
				stopResize := trackWindowSize(ctr.Resize)
				defer stopResize()
			}
			st, err := waitOrDetach(ctx, ctr, detached)
			if restore != nil {
				restore()
			}
			if errors.Is(err, errDetached) {
				fmt.Fprintln(os.Stderr, "\r\nread escape sequence")
				return nil
			}
			if err != nil {
				return err
			}
			if st.OOMKilled {
				fmt.Fprintln(os.Stderr, "container killed: out of memory")
			}
			if rf.rm {
				if err := ctr.Remove(context.WithoutCancel(ctx), true); err != nil && !errors.Is(err, dock.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			if st.ExitCode != 0 {
				return exitError{st.ExitCode}
			}
			return nil
		},
	}
	rf.register(run, true)

	create := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [CMD...]",
		Short: "Create a container without starting it",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, ctr, err := c.create(cmd, &cf, args)
			if err != nil {
				return err
			}
			fmt.Println(ctr.ID)
			return nil
		},
	}
	cf.register(create, false)

	start := &cobra.Command{
		Use:   "start NAME...",
		Short: "Start created or stopped containers",
		Args:  minArgs(1),
		RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
			if err := ctr.Start(ctx); err != nil {
				return err
			}
			fmt.Println(ctr.Name)
			return nil
		}),
	}

	var stopSecs int
	stop := &cobra.Command{
		Use:   "stop [-t SECS] NAME...",
		Short: "Stop containers: the stop signal, then SIGKILL after a grace period",
		Args:  minArgs(1),
		RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
			t := time.Duration(-1)
			if stopSecs >= 0 {
				t = time.Duration(stopSecs) * time.Second
			}
			if err := ctr.Stop(ctx, t); err != nil {
				return err
			}
			fmt.Println(ctr.Name)
			return nil
		}),
	}
	stop.Flags().IntVarP(&stopSecs, "time", "t", -1, "seconds to wait before killing")

	var sig string
	kill := &cobra.Command{
		Use:   "kill [-s SIG] NAME...",
		Short: "Send a signal to containers",
		Args:  minArgs(1),
		RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
			s, err := dock.ParseSignal(sig)
			if err != nil {
				return err
			}
			if err := ctr.Kill(s); err != nil {
				return err
			}
			fmt.Println(ctr.Name)
			return nil
		}),
	}
	kill.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")

	var force, volumes bool
	rm := &cobra.Command{
		Use:   "rm [-f] [-v] NAME...",
		Short: "Remove containers",
		Args:  minArgs(1),
		RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
			var ro []dock.RemoveOption
			if volumes {
				ro = append(ro, dock.WithVolumes())
			}
			if err := ctr.Remove(ctx, force, ro...); err != nil {
				return err
			}
			fmt.Println(ctr.Name)
			return nil
		}),
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	rm.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the anonymous volumes made for the image's VOLUMEs too")

	var pf psFlags
	ps := &cobra.Command{
		Use:   "ps [-a] [-q] [--filter K=V] [--format TEMPLATE]",
		Short: "List containers, the newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			match, err := pf.matcher()
			if err != nil {
				return err
			}
			tmpl, err := parseRowFormat(pf.format, psHeaders...)
			if err != nil {
				return err
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			// -n, -l and a status filter look at every container, as
			// docker's do; -n counts those the filters let through.
			last := pf.last
			if last <= 0 && pf.latest {
				last = 1
			}
			cs, err := h.Containers(cmd.Context(), !pf.all && last <= 0 && !pf.byStatus())
			if err != nil {
				return err
			}
			slices.Reverse(cs)
			rows := make([]psRow, 0, len(cs))
			for _, ctr := range cs {
				if last > 0 && len(rows) == last {
					break
				}
				if r := newPSRow(ctr, !pf.noTrunc); match(r) {
					rows = append(rows, r)
				}
			}
			switch {
			case pf.quiet:
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			case tmpl != nil:
				return printRows(tmpl, rows)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Names)
			}
			return w.Flush()
		},
	}
	pf.register(ps)

	var follow, timestamps bool
	var tail string
	var since, until string
	logs := &cobra.Command{
		Use:   "logs [-f] [--tail N] NAME",
		Short: "Print a container's output",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctr, err := c.container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var lo []dock.LogOption
			if follow {
				lo = append(lo, dock.Follow())
			}
			if timestamps {
				lo = append(lo, dock.Timestamps())
			}
			if tail != "" && tail != "all" {
				n, err := strconv.Atoi(tail)
				if err != nil || n < 0 {
					return fmt.Errorf("--tail %q: want a number or all: %w", tail, dock.ErrInvalidArgument)
				}
				lo = append(lo, dock.Tail(n))
			}
			if since != "" {
				t, err := parseWhen(since)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				lo = append(lo, dock.Since(t))
			}
			if until != "" && until != "0" { // 0 is no limit, as docker's
				t, err := parseWhen(until)
				if err != nil {
					return fmt.Errorf("--until: %w", err)
				}
				lo = append(lo, dock.Until(t))
			}
			l, err := ctr.Logs(cmd.Context(), lo...)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.WriteTo(os.Stdout, os.Stderr)
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	logs.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix lines with their time")
	logs.Flags().StringVarP(&tail, "tail", "n", "all", "only the last N lines")
	logs.Flags().StringVar(&since, "since", "", "only output since a time or a duration ago")
	logs.Flags().StringVar(&until, "until", "", "only output before a time or a duration ago")

	wait := &cobra.Command{
		Use:   "wait NAME...",
		Short: "Wait for containers to stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: c.eachContainer(func(ctx context.Context, ctr *dock.Container) error {
			// As docker's: a container never started is not running.
			if st := ctr.State(); st.Status == dock.StatusCreated {
				fmt.Println(st.ExitCode)
				return nil
			}
			st, err := ctr.Wait(ctx)
			if err != nil {
				return err
			}
			fmt.Println(st.ExitCode)
			return nil
		}),
	}
	return []*cobra.Command{run, create, start, stop, kill, rm, ps, logs, wait, c.execCmd()}
}

func (c *cli) execCmd() *cobra.Command {
	var interactive, tty, detach bool
	var user, workdir string
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] NAME CMD...",
		Short: "Run a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if tty && interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
				return fmt.Errorf("-t: the input device is not a TTY: %w", dock.ErrInvalidArgument)
			}
			if user != "" {
				if err := checkUser(user); err != nil {
					return err
				}
			}
			ctr, err := c.container(ctx, args[0])
			if err != nil {
				return err
			}
			var opts []dock.ExecOption
			if !detach {
				opts = append(opts, dock.WithOutput(os.Stdout, os.Stderr))
				if interactive {
					opts = append(opts, dock.WithInput(os.Stdin))
				}
			}
			if tty {
				opts = append(opts, dock.WithExecTerminal())
				if sz, ok := consoleSize(); ok {
					opts = append(opts, sz)
				}
			}
			if user != "" {
				opts = append(opts, dock.WithExecUser(user))
			}
			if workdir != "" {
				opts = append(opts, dock.WithExecWorkdir(workdir))
			}
			if len(env) > 0 {
				opts = append(opts, dock.WithExecEnv(passEnv(env)...))
			}
			var restore func()
			if !detach && tty && interactive {
				if restore, err = rawTerminal(); err != nil {
					return err
				}
				defer restore()
			}
			p, err := ctr.Exec(ctx, args[1:], opts...)
			if err != nil {
				if restore != nil {
					restore()
				}
				return startFailure(err)
			}
			if detach {
				return nil
			}
			ctx = context.WithoutCancel(ctx)
			if tty {
				stop := trackWindowSize(p.Resize)
				defer stop()
			} else {
				proxy := newSignalProxy(p.Kill)
				defer proxy.stop()
				proxy.forward()
			}
			st, err := p.Wait(ctx)
			if restore != nil {
				restore()
			}
			if err != nil {
				return err
			}
			if st.ExitCode != 0 {
				return exitError{st.ExitCode}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.BoolVarP(&detach, "detach", "d", false, "run the command in the background")
	fl.StringVarP(&user, "user", "u", "", "user: name, uid, or uid:gid")
	fl.StringVarP(&workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable KEY=VALUE")
	return cmd
}

// signalProxy sends the signals a user sends to dock to a container, as
// docker's --sig-proxy. It catches them from its creation and holds them
// until forward is called, so that none is lost while the container starts.
type signalProxy struct {
	ch          chan os.Signal
	start, done chan struct{}
	startOnce   sync.Once
	stopOnce    sync.Once
}

func newSignalProxy(kill func(syscall.Signal) error) *signalProxy {
	p := &signalProxy{ch: make(chan os.Signal, 16), start: make(chan struct{}), done: make(chan struct{})}
	signal.Notify(p.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		select {
		case <-p.start:
		case <-p.done:
			return
		}
		for {
			select {
			case s := <-p.ch:
				_ = kill(s.(syscall.Signal))
			case <-p.done:
				return
			}
		}
	}()
	return p
}

// forward starts sending the held and later signals to the container.
func (p *signalProxy) forward() { p.startOnce.Do(func() { close(p.start) }) }

// stop ends the proxy; signals reach dock's own handlers again.
func (p *signalProxy) stop() {
	p.stopOnce.Do(func() {
		signal.Stop(p.ch)
		close(p.done)
	})
}

// rawTerminal puts dock's terminal in raw mode when stdin is one, so
// that every key reaches the container's terminal, and returns how to
// restore it.
func rawTerminal() (func(), error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return func() {}, nil
	}
	return makeRaw()
}

// consoleSize is the size of dock's terminal, when stdin is one, for the
// container's terminal to start with: the resizes that follow come after
// the command has started.
func consoleSize() (dock.ConsoleSizeOption, bool) {
	w, h, err := term.GetSize(int(os.Stdin.Fd()))
	if err != nil || w <= 0 || h <= 0 {
		return dock.ConsoleSizeOption{}, false
	}
	return dock.WithConsoleSize(uint16(h), uint16(w)), true
}

// removeQuietly removes a container that failed to start; dock is already
// reporting that failure.
func removeQuietly(ctx context.Context, ctr *dock.Container) {
	_ = ctr.Remove(context.WithoutCancel(ctx), true)
}

// startFailure turns a start error into docker's exit codes: 127 for a
// command not found, 126 for one that cannot be run, 125 otherwise.
func startFailure(err error) error {
	fmt.Fprintln(os.Stderr, "dock: "+oneLine(err.Error()))
	var se interface{ ExitCode() int }
	if errors.As(err, &se) {
		return exitError{se.ExitCode()}
	}
	return exitError{125}
}

func (c *cli) eachContainer(fn func(context.Context, *dock.Container) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		h, err := c.open(cmd.Context())
		if err != nil {
			return err
		}
		var firstErr error
		for _, a := range args {
			ctr, err := h.Container(cmd.Context(), a)
			if err == nil {
				err = fn(cmd.Context(), ctr)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "dock: "+oneLine(err.Error()))
				if firstErr == nil {
					firstErr = exitError{1}
				}
			}
		}
		return firstErr
	}
}

func statusText(st dock.State) string {
	switch st.Status {
	case dock.StatusRunning:
		if st.Health != nil {
			return "Up " + humanDuration(time.Since(st.StartedAt)) + " (" + st.Health.Status + ")"
		}
		return "Up " + humanDuration(time.Since(st.StartedAt))
	case dock.StatusPaused:
		return "Up (Paused)"
	case dock.StatusExited:
		if st.Restarting {
			return fmt.Sprintf("Restarting (%d) %s", st.ExitCode, ago(st.FinishedAt))
		}
		return fmt.Sprintf("Exited (%d) %s", st.ExitCode, ago(st.FinishedAt))
	}
	return "Created"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func (c *cli) inspectOne(cmd *cobra.Command, h *dock.Host, name string) (any, error) {
	if ctr, err := h.Container(cmd.Context(), name); err == nil {
		return containerInfo(ctr), nil
	}
	if img, err := h.Image(cmd.Context(), name); err == nil {
		return imageInfo(cmd, h, img), nil
	}
	if v, err := h.Volume(cmd.Context(), name); err == nil {
		return volumeInfo(v), nil
	}
	return nil, fmt.Errorf("no container, image or volume %s: %w", name, dock.ErrNotFound)
}

func containerInfo(ctr *dock.Container) any {
	st := ctr.State()
	var raw json.RawMessage
	raw, _ = json.Marshal(ctr.Config())
	return struct {
		ID           string
		Name         string
		Image        string
		ImageID      string
		Created      time.Time
		RestartCount int
		State        any
		Config       json.RawMessage
	}{ctr.ID, ctr.Name, ctr.Image, ctr.ImageID.String(), ctr.Created, st.RestartCount, struct {
		Status     string
		Running    bool
		Paused     bool
		Restarting bool
		Pid        int
		ExitCode   int
		OOMKilled  bool
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
		Health     *dock.Health `json:",omitempty"`
	}{string(st.Status), st.Status == dock.StatusRunning || st.Status == dock.StatusPaused, st.Status == dock.StatusPaused,
		st.Restarting, st.Pid, st.ExitCode, st.OOMKilled, st.Error, st.StartedAt, st.FinishedAt, st.Health}, raw}
}

// securityOptions reads docker's --security-opt values. Those naming a
// Linux security module dock does not apply (AppArmor, SELinux) are
// accepted only where they ask for none.
func securityOptions(vals []string) ([]dock.CreateOption, error) {
	var opts []dock.CreateOption
	newPrivs := false // the last no-new-privileges decides, as in docker
	for _, v := range vals {
		// docker accepts "key:value" from its older releases as well.
		key, val, ok := strings.Cut(v, "=")
		if !ok {
			key, val, ok = strings.Cut(v, ":")
		}
		switch {
		case key == "no-new-privileges":
			on := true
			if ok {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return nil, fmt.Errorf("--security-opt %q: want true or false: %w", v, dock.ErrInvalidArgument)
				}
				on = b
			}
			newPrivs = !on
		case key == "seccomp" && val == "unconfined":
			opts = append(opts, dock.WithoutSeccomp())
		case key == "seccomp" && ok && val != "":
			b, err := os.ReadFile(val)
			if err != nil {
				return nil, fmt.Errorf("--security-opt %q: %w", v, err)
			}
			opts = append(opts, dock.WithSeccompProfile(b))
		case key == "systempaths" && val == "unconfined":
			opts = append(opts, dock.WithUnmaskedPaths())
		case key == "apparmor" && val == "unconfined", key == "label" && val == "disable":
			// Neither is applied by dock.
		default:
			return nil, fmt.Errorf("--security-opt %q: want seccomp=unconfined|FILE, no-new-privileges[=BOOL], systempaths=unconfined: %w", v, dock.ErrInvalidArgument)
		}
	}
	if newPrivs {
		opts = append(opts, dock.WithNewPrivileges())
	}
	return opts, nil
}

// deviceOption reads docker's --device HOST[:CONTAINER[:PERMS]]; with two
// parts, the second is the permissions when it spells some.
func deviceOption(v string) (dock.CreateOption, error) {
	parts := strings.Split(v, ":")
	host, path, perms := parts[0], "", ""
	switch len(parts) {
	case 1:
	case 2:
		if p := parts[1]; p != "" && strings.Trim(p, "rwm") == "" {
			perms = p
		} else {
			path = p
		}
	case 3:
		path, perms = parts[1], parts[2]
	default:
		return nil, fmt.Errorf("--device %q: want HOST[:CONTAINER[:PERMS]]: %w", v, dock.ErrInvalidArgument)
	}
	return dock.WithDevice(host, path, perms), nil
}

// parseMount reads docker's --mount: comma-separated KEY=VALUE fields, as
// CSV (a value with a comma is quoted), of which type (volume when not
// given), source or src, target, destination or dst, readonly or ro
// (alone, or =true|false|1|0), tmpfs-size and tmpfs-mode.
func parseMount(v string) (dock.MountPoint, error) {
	bad := func(format string, a ...any) (dock.MountPoint, error) {
		return dock.MountPoint{}, fmt.Errorf("--mount %q: "+format+": %w", append(append([]any{v}, a...), dock.ErrInvalidArgument)...)
	}
	fields, err := csv.NewReader(strings.NewReader(v)).Read()
	if err != nil {
		return bad("%v", err)
	}
	m := dock.MountPoint{Type: "volume"}
	var tmpfsOpts []string
	for _, f := range fields {
		key, val, hasVal := strings.Cut(f, "=")
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "type":
			m.Type = strings.ToLower(val)
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			ro := true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return bad("%s: want true or false", f)
				}
				ro = b
			}
			m.ReadOnly = ro
		case "tmpfs-size":
			n, err := parseBytes(val)
			if err != nil {
				return bad("%s: %v", f, err)
			}
			tmpfsOpts = append(tmpfsOpts, "size="+strconv.FormatInt(n, 10))
		case "tmpfs-mode":
			if _, err := strconv.ParseUint(val, 8, 32); err != nil {
				return bad("%s: want an octal mode", f)
			}
			tmpfsOpts = append(tmpfsOpts, "mode="+val)
		default:
			return bad("field %q: want type, source, target, readonly, tmpfs-size or tmpfs-mode", key)
		}
	}
	switch {
	case m.Type != "bind" && m.Type != "volume" && m.Type != "tmpfs":
		return bad("type %q: want bind, volume or tmpfs", m.Type)
	case m.Target == "":
		return bad("no target")
	case m.Type != "tmpfs" && len(tmpfsOpts) > 0:
		return bad("tmpfs options for a %s mount", m.Type)
	case m.Type == "tmpfs" && m.Source != "":
		return bad("a tmpfs has no source")
	case m.Type == "bind" && m.Source == "":
		return bad("a bind needs a source")
	}
	if m.Type == "bind" && !filepath.IsAbs(m.Source) {
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return bad("%v", err)
		}
		m.Source = abs
	}
	m.Options = tmpfsOpts
	return m, nil
}
