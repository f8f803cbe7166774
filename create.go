package dock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dockkit/dock/internal/atomicfile"
	"github.com/dockkit/dock/internal/runtime"
	"github.com/moby/sys/user"
)

// CreateOption configures Host.Create.
type CreateOption func(*createConfig) error

type createConfig struct {
	name        string
	cmd         []string
	cmdSet      bool
	entrypoint  []string
	entrySet    bool
	env         []string
	workdir     string
	user        string
	hostname    string
	labels      map[string]string
	res         Resources
	mounts      []MountPoint
	anonymous   []string // volumes made for the image's VOLUMEs
	readOnly    bool
	capAdd      []string
	ulimits     []runtime.Rlimit
	capDrop     []string
	privileged  bool
	network     string
	autoRemove  bool
	tty         bool
	stdin       bool
	stopSignal  syscall.Signal
	stopTimeout time.Duration
	ns          Namespaces
	logMax      int64
	logFiles    int
	run         runOpts // terminal, restart policy, health check: running.go
	hostNS      []Namespace
	join        map[Namespace]string // kind to the state directory of the container whose namespace is entered
	// security options, Docker's --security-opt
	seccompProfile []byte
	noSeccomp      bool
	newPrivileges  bool
	unmaskedPaths  bool
	groupAdd       []string
	oomScoreAdj    *int
	shmSize        int64
	sysctls        map[string]string
	devices        []runtime.Device
	dns            dnsConfig
	init           bool
}

// dnsConfig is what a container's /etc/hosts and /etc/resolv.conf get
// beyond the defaults: docker's --add-host, --dns, --dns-search and
// --dns-option.
type dnsConfig struct {
	extraHosts                  [][2]string // name, address
	servers, search, dnsOptions []string
}

// WithName names the container; names are unique on a host.
func WithName(name string) CreateOption {
	return func(c *createConfig) error {
		if !validName(name) {
			return fmt.Errorf("WithName(%q): want [a-zA-Z0-9][a-zA-Z0-9_.-]*: %w", name, ErrInvalidArgument)
		}
		c.name = name
		return nil
	}
}

// The patterns compile on first use: every process of the binary, the
// CLI's each command among them, would pay for them at start otherwise.
var (
	nameRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`) })
	hostnameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	})
)

func validName(s string) bool { return nameRE().MatchString(s) }

// WithCmd replaces the image's command (its CMD).
func WithCmd(args ...string) CreateOption {
	return func(c *createConfig) error {
		c.cmd, c.cmdSet = args, true
		return nil
	}
}

// WithEntrypoint replaces the image's entrypoint and, unless WithCmd is
// given too, drops the image's command, as docker's --entrypoint does. With
// no arguments it clears the entrypoint and keeps the image's command, as
// --entrypoint "" does.
func WithEntrypoint(args ...string) CreateOption {
	return func(c *createConfig) error {
		c.entrypoint, c.entrySet = args, true
		return nil
	}
}

// WithEnv adds or overrides environment variables, each "KEY=VALUE".
func WithEnv(kv ...string) CreateOption {
	return func(c *createConfig) error {
		for _, e := range kv {
			if k, _, _ := strings.Cut(e, "="); k == "" || strings.ContainsRune(e, 0) {
				return fmt.Errorf("WithEnv(%q): want KEY=VALUE: %w", e, ErrInvalidArgument)
			}
		}
		c.env = append(c.env, kv...)
		return nil
	}
}

// WithWorkdir sets the working directory inside the container.
func WithWorkdir(dir string) CreateOption {
	return func(c *createConfig) error {
		if !path.IsAbs(dir) {
			return fmt.Errorf("WithWorkdir(%q): must be absolute: %w", dir, ErrInvalidArgument)
		}
		c.workdir = dir
		return nil
	}
}

// WithUser runs the command as user: "name", "uid", "name:group" or
// "uid:gid", resolved against the image's /etc/passwd and /etc/group.
func WithUser(u string) CreateOption {
	return func(c *createConfig) error {
		if u == "" {
			return fmt.Errorf("WithUser(%q): %w", u, ErrInvalidArgument)
		}
		c.user = u
		return nil
	}
}

// WithHostname sets the container's hostname; the default is the first 12
// digits of its ID.
func WithHostname(name string) CreateOption {
	return func(c *createConfig) error {
		if !hostnameRE().MatchString(name) || len(name) > 253 {
			return fmt.Errorf("WithHostname(%q): want RFC 1123 labels: %w", name, ErrInvalidArgument)
		}
		c.hostname = name
		return nil
	}
}

// WithLabels attaches labels to the container.
func WithLabels(labels map[string]string) CreateOption {
	return func(c *createConfig) error {
		if c.labels == nil {
			c.labels = map[string]string{}
		}
		for k, v := range labels {
			c.labels[k] = v
		}
		return nil
	}
}

// WithMemoryLimit caps the container's memory at n bytes.
func WithMemoryLimit(n int64) CreateOption {
	return func(c *createConfig) error {
		if n < 6<<20 {
			return fmt.Errorf("WithMemoryLimit(%d): the minimum is 6 MiB: %w", n, ErrInvalidArgument)
		}
		c.res.MemoryMax = n
		return nil
	}
}

// WithCPUs limits the container to n CPUs' worth of time, as docker's --cpus.
func WithCPUs(n float64) CreateOption {
	return func(c *createConfig) error {
		if n < 0.01 || n > 1024 {
			return fmt.Errorf("WithCPUs(%g): want 0.01 to 1024: %w", n, ErrInvalidArgument)
		}
		c.res.CPUs = n
		return nil
	}
}

// WithPidsLimit caps the number of tasks in the container.
func WithPidsLimit(n int64) CreateOption {
	return func(c *createConfig) error {
		if n <= 0 {
			return fmt.Errorf("WithPidsLimit(%d): %w", n, ErrInvalidArgument)
		}
		c.res.PidsMax = n
		return nil
	}
}

// WithResources sets every cgroup limit at once.
func WithResources(r Resources) CreateOption {
	return func(c *createConfig) error {
		c.res = r
		return nil
	}
}

// MountPoint is a filesystem put into a container at Target: a host path
// (Bind), a named volume (Volume) or a tmpfs (Tmpfs).
type MountPoint struct {
	Type     string // "bind", "volume" or "tmpfs"
	Source   string // host path for bind, volume name for volume
	Target   string // absolute path inside the container
	ReadOnly bool
	Options  []string // tmpfs: "size=64m", "mode=1777"
}

// MountOpt modifies a MountPoint.
type MountOpt func(*MountPoint)

// ReadOnly makes a mount read-only.
func ReadOnly(m *MountPoint) { m.ReadOnly = true }

// Bind mounts the host path src at dst.
func Bind(src, dst string, opts ...MountOpt) MountPoint {
	m := MountPoint{Type: "bind", Source: src, Target: dst}
	for _, o := range opts {
		o(&m)
	}
	return m
}

// Volume mounts the named volume at dst, creating it on first use and
// filling it from the image's content at dst, as Docker does. With no
// name it is an anonymous volume, as docker's -v /data makes: the
// container's own, removed with it by Remove's WithVolumes or an
// auto-remove.
func Volume(name, dst string, opts ...MountOpt) MountPoint {
	m := MountPoint{Type: "volume", Source: name, Target: dst}
	for _, o := range opts {
		o(&m)
	}
	return m
}

// Tmpfs mounts an empty tmpfs at dst.
func Tmpfs(dst string, options ...string) MountPoint {
	return MountPoint{Type: "tmpfs", Target: dst, Options: options}
}

// WithMount adds a mount. A target in /proc is refused, as runc refuses
// it, but for a bind over one of the files lxcfs serves (/proc/meminfo,
// /proc/cpuinfo, ...): a mount there could lead what the runtime writes
// through the container's proc to the host's.
func WithMount(m MountPoint) CreateOption {
	return func(c *createConfig) error {
		if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
			return fmt.Errorf("WithMount: target %q must be an absolute path other than /: %w", m.Target, ErrInvalidArgument)
		}
		if t := path.Clean(m.Target); (t == "/proc" || strings.HasPrefix(t, "/proc/")) && !(m.Type == "bind" && slices.Contains(procFiles, t)) {
			return fmt.Errorf("WithMount: target %q: in /proc only a bind over one of %s: %w", m.Target, strings.Join(procFiles, ", "), ErrInvalidArgument)
		}
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				return fmt.Errorf("WithMount: bind source %q must be absolute: %w", m.Source, ErrInvalidArgument)
			}
		case "volume":
			if m.Source != "" && !validName(m.Source) {
				return fmt.Errorf("WithMount: volume name %q: %w", m.Source, ErrInvalidArgument)
			}
		case "tmpfs":
		default:
			return fmt.Errorf("WithMount: type %q: %w", m.Type, ErrInvalidArgument)
		}
		c.mounts = append(c.mounts, m)
		return nil
	}
}

// procFiles are the files of /proc a bind may cover, as runc allows it:
// those lxcfs serves, per container.
var procFiles = []string{"/proc/cpuinfo", "/proc/diskstats", "/proc/loadavg", "/proc/meminfo",
	"/proc/slabinfo", "/proc/stat", "/proc/swaps", "/proc/uptime"}

// WithReadOnlyRootfs mounts the container's root filesystem read-only.
func WithReadOnlyRootfs() CreateOption {
	return func(c *createConfig) error { c.readOnly = true; return nil }
}

// WithCapAdd adds capabilities to Docker's default set ("NET_ADMIN",
// "CAP_SYS_TIME", "ALL").
func WithCapAdd(names ...string) CreateOption {
	return func(c *createConfig) error { c.capAdd = append(c.capAdd, names...); return nil }
}

// WithCapDrop removes capabilities from Docker's default set.
func WithCapDrop(names ...string) CreateOption {
	return func(c *createConfig) error { c.capDrop = append(c.capDrop, names...); return nil }
}

// ulimitNames are the resource limits WithUlimit takes, by docker's
// names for them.
var ulimitNames = []string{"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// WithUlimit sets a resource limit of the container's processes, as
// docker's --ulimit NAME=SOFT:HARD: name is setrlimit(2)'s without
// RLIMIT_ ("nofile", "nproc", "core", ...), and -1 is no limit. A limit
// not set is the one the container's monitor was started with.
func WithUlimit(name string, soft, hard int64) CreateOption {
	return func(c *createConfig) error {
		lim := func(v int64) uint64 {
			if v == -1 {
				return ^uint64(0) // RLIM_INFINITY
			}
			return uint64(v)
		}
		switch n := strings.ToLower(strings.TrimPrefix(strings.ToUpper(name), "RLIMIT_")); {
		case !slices.Contains(ulimitNames, n):
			return fmt.Errorf("WithUlimit(%q): want one of %s: %w", name, strings.Join(ulimitNames, ", "), ErrInvalidArgument)
		case soft < -1 || hard < -1 || lim(soft) > lim(hard):
			return fmt.Errorf("WithUlimit(%q, %d, %d): a soft limit above the hard one, or below -1: %w", name, soft, hard, ErrInvalidArgument)
		default:
			c.ulimits = slices.DeleteFunc(c.ulimits, func(r runtime.Rlimit) bool { return r.Type == "RLIMIT_"+strings.ToUpper(n) })
			c.ulimits = append(c.ulimits, runtime.Rlimit{Type: "RLIMIT_" + strings.ToUpper(n), Soft: lim(soft), Hard: lim(hard)})
		}
		return nil
	}
}

// WithPrivileged gives the container every capability and turns off
// seccomp and the masked and read-only paths, as docker's --privileged.
func WithPrivileged() CreateOption {
	return func(c *createConfig) error { c.privileged = true; return nil }
}

// WithSeccompProfile filters the container's system calls through
// profile, a seccomp profile in Docker's JSON format, in place of Docker's
// default one, as docker's --security-opt seccomp=FILE does. Create
// refuses a profile that does not compile; WithPrivileged turns seccomp
// off whatever the profile.
func WithSeccompProfile(profile []byte) CreateOption {
	return func(c *createConfig) error {
		if len(profile) == 0 {
			return fmt.Errorf("WithSeccompProfile: empty profile: %w", ErrInvalidArgument)
		}
		c.seccompProfile, c.noSeccomp = slices.Clone(profile), false
		return nil
	}
}

// WithoutSeccomp runs the container with no seccomp filter, as docker's
// --security-opt seccomp=unconfined does.
func WithoutSeccomp() CreateOption {
	return func(c *createConfig) error { c.noSeccomp, c.seccompProfile = true, nil; return nil }
}

// WithNewPrivileges lets the container's processes gain privileges
// through set-user-ID programs and file capabilities. dock sets
// no_new_privs unless given this; Docker sets it only when asked to
// (--security-opt no-new-privileges).
func WithNewPrivileges() CreateOption {
	return func(c *createConfig) error { c.newPrivileges = true; return nil }
}

// WithUnmaskedPaths leaves /proc and /sys without Docker's masked and
// read-only paths, as docker's --security-opt systempaths=unconfined
// does.
func WithUnmaskedPaths() CreateOption {
	return func(c *createConfig) error { c.unmaskedPaths = true; return nil }
}

// WithGroupAdd adds supplementary groups to the container's user and to
// the user of each process exec'd in it, as docker's --group-add: by name,
// from the image's /etc/group, or by number.
func WithGroupAdd(groups ...string) CreateOption {
	return func(c *createConfig) error {
		for _, g := range groups {
			if g == "" || strings.ContainsAny(g, ":\n") {
				return fmt.Errorf("WithGroupAdd(%q): %w", g, ErrInvalidArgument)
			}
		}
		c.groupAdd = append(c.groupAdd, groups...)
		return nil
	}
}

// WithOOMScoreAdj sets the container's oom_score_adj, from -1000 to 1000,
// as docker's --oom-score-adj: the kernel's OOM killer picks a process
// the sooner the higher it is.
func WithOOMScoreAdj(adj int) CreateOption {
	return func(c *createConfig) error {
		if adj < -1000 || adj > 1000 {
			return fmt.Errorf("WithOOMScoreAdj(%d): want -1000 to 1000: %w", adj, ErrInvalidArgument)
		}
		c.oomScoreAdj = &adj
		return nil
	}
}

// WithShmSize sets the size of the container's /dev/shm, 64 MiB unless
// given, as docker's --shm-size.
func WithShmSize(bytes int64) CreateOption {
	return func(c *createConfig) error {
		if bytes <= 0 {
			return fmt.Errorf("WithShmSize(%d): want a size above 0: %w", bytes, ErrInvalidArgument)
		}
		c.shmSize = bytes
		return nil
	}
}

// WithSysctl sets a kernel parameter of the container's own namespaces,
// as docker's --sysctl: the network namespace's net.*, the IPC namespace's
// kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall,
// kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced and fs.mqueue.*,
// and the UTS namespace's kernel.domainname. Create refuses any other, and
// one whose namespace the container shares with the host or another
// container.
func WithSysctl(name, value string) CreateOption {
	return func(c *createConfig) error {
		if _, ok := runtime.ValidSysctl(name); !ok {
			return fmt.Errorf("WithSysctl(%q): not a sysctl of a container's own namespaces: %w", name, ErrInvalidArgument)
		}
		if c.sysctls == nil {
			c.sysctls = map[string]string{}
		}
		c.sysctls[name] = value
		return nil
	}
}

// WithDevice gives the container the host's device node hostPath, at
// path in the container (hostPath when empty), as docker's --device
// HOST[:CONTAINER[:PERMS]]: the node is bound there, and the container's
// cgroup lets it read ("r"), write ("w") and make ("m") such nodes as
// access says ("rwm" when empty). A directory (/dev/snd) gives every node
// below it, at the same place below path. Create refuses a path that
// holds no device node.
func WithDevice(hostPath, path, access string) CreateOption {
	return func(c *createConfig) error {
		if path == "" {
			path = hostPath
		}
		if access == "" {
			access = "rwm"
		}
		if !filepath.IsAbs(hostPath) || !filepath.IsAbs(path) {
			return fmt.Errorf("WithDevice(%q, %q): want absolute paths: %w", hostPath, path, ErrInvalidArgument)
		}
		if strings.Trim(access, "rwm") != "" {
			return fmt.Errorf("WithDevice(%q): access %q: want letters of rwm: %w", hostPath, access, ErrInvalidArgument)
		}
		c.devices = append(c.devices, runtime.Device{Path: filepath.Clean(path), HostPath: hostPath, Access: access})
		return nil
	}
}

// WithExtraHosts adds lines to the container's /etc/hosts, as docker's
// --add-host: each is "name:address" or "name=address", the address an IP
// address ("db:10.0.0.5", "ip6=::1").
func WithExtraHosts(hosts ...string) CreateOption {
	return func(c *createConfig) error {
		for _, h := range hosts {
			name, addr, ok := strings.Cut(h, "=")
			if !ok {
				name, addr, ok = strings.Cut(h, ":")
			}
			if addr == "host-gateway" {
				return fmt.Errorf("WithExtraHosts(%q): host-gateway needs bridge networking: %w", h, ErrNotSupported)
			}
			// "[::1]", as docker takes an IPv6 address too.
			if len(addr) > 2 && addr[0] == '[' && addr[len(addr)-1] == ']' {
				addr = addr[1 : len(addr)-1]
			}
			if ip, err := netip.ParseAddr(addr); !ok || err != nil || name == "" || strings.ContainsAny(name, " \t\n#") || ip.Zone() != "" {
				return fmt.Errorf("WithExtraHosts(%q): want NAME:IP: %w", h, ErrInvalidArgument)
			}
			c.dns.extraHosts = append(c.dns.extraHosts, [2]string{name, addr})
		}
		return nil
	}
}

// WithDNS sets the name servers of the container's /etc/resolv.conf, in
// place of the host's, as docker's --dns.
func WithDNS(servers ...string) CreateOption {
	return func(c *createConfig) error {
		for _, s := range servers {
			if _, err := netip.ParseAddr(s); err != nil {
				return fmt.Errorf("WithDNS(%q): not an IP address: %w", s, ErrInvalidArgument)
			}
		}
		c.dns.servers = append(c.dns.servers, servers...)
		return nil
	}
}

// WithDNSSearch sets the search domains of the container's
// /etc/resolv.conf, in place of the host's, as docker's --dns-search; "."
// leaves none.
func WithDNSSearch(domains ...string) CreateOption {
	return resolvWords("WithDNSSearch", domains, func(d *dnsConfig) *[]string { return &d.search })
}

// WithDNSOptions sets the options of the container's /etc/resolv.conf
// ("ndots:2", "timeout:1"), in place of the host's, as docker's
// --dns-option.
func WithDNSOptions(opts ...string) CreateOption {
	return resolvWords("WithDNSOptions", opts, func(d *dnsConfig) *[]string { return &d.dnsOptions })
}

// resolvWords is the option option(words...): it adds words, each one
// word of resolv.conf, to the list of the container's that list picks.
func resolvWords(option string, words []string, list func(*dnsConfig) *[]string) CreateOption {
	return func(c *createConfig) error {
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, " \t\n") {
				return fmt.Errorf("%s(%q): want one word: %w", option, w, ErrInvalidArgument)
			}
		}
		l := list(&c.dns)
		*l = append(*l, words...)
		return nil
	}
}

// WithInit runs the container's command under a small init, as docker's
// --init: the first process of the container, it passes the signals it
// gets on to the command, reaps the processes orphaned in the container,
// and exits as the command does. A command that is the first process of
// its pid namespace gets only the signals it handles: a SIGTERM from Stop
// does nothing to one that installs no handler.
//
// The init is the calling program, run in the container: Create refuses
// it with ErrNotSupported unless the program is linked statically
// (CGO_ENABLED=0), as the container has no dynamic loader of the host's.
func WithInit() CreateOption {
	return func(c *createConfig) error { c.init = true; return nil }
}

// WithNetwork picks the container's network: "none" (its own namespace with
// loopback only, the default until bridge networking exists) or "host".
func WithNetwork(mode string) CreateOption {
	return func(c *createConfig) error {
		switch mode {
		case "none", "host", "":
			c.network = mode
			return nil
		}
		return fmt.Errorf("WithNetwork(%q): want none or host: %w", mode, ErrNotSupported)
	}
}

// WithAutoRemove removes the container once it exits: the program that
// started it removes it in Wait, or, when that program is gone, the next
// program to wait for it or to open the root. Such a container does not
// outlive a crash of the host either: its layer and records are written
// without waiting for the disk, which makes its start and removal faster,
// and the next Open removes what of it reached the disk.
func WithAutoRemove() CreateOption {
	return func(c *createConfig) error { c.autoRemove = true; return nil }
}

// WithStdin keeps the container's stdin open for WithInput.
func WithStdin() CreateOption {
	return func(c *createConfig) error { c.stdin = true; return nil }
}

// WithStopSignal sets the signal Stop sends first.
func WithStopSignal(sig syscall.Signal) CreateOption {
	return func(c *createConfig) error {
		if sig <= 0 || sig > 64 {
			return fmt.Errorf("WithStopSignal(%d): %w", sig, ErrInvalidArgument)
		}
		c.stopSignal = sig
		return nil
	}
}

// WithStopTimeout sets how long Stop waits before it kills.
func WithStopTimeout(d time.Duration) CreateOption {
	return func(c *createConfig) error {
		if d < 0 {
			return fmt.Errorf("WithStopTimeout(%v): %w", d, ErrInvalidArgument)
		}
		c.stopTimeout = d
		return nil
	}
}

// WithContainerNamespaces sets the container's namespaces, overriding the
// host's Namespaces.
func WithContainerNamespaces(ns Namespaces) CreateOption {
	return func(c *createConfig) error {
		if ns == nil {
			return fmt.Errorf("WithContainerNamespaces(nil): %w", ErrInvalidArgument)
		}
		c.ns = ns
		return nil
	}
}

// WithLogRotation rotates the container's log after maxSize bytes, keeping
// files log files in all.
func WithLogRotation(maxSize int64, files int) CreateOption {
	return func(c *createConfig) error {
		if maxSize <= 0 || files < 1 {
			return fmt.Errorf("WithLogRotation(%d, %d): %w", maxSize, files, ErrInvalidArgument)
		}
		c.logMax, c.logFiles = maxSize, files
		return nil
	}
}

// Create makes a container from img: a writable snapshot over the image's
// layers and the configuration to run it with, stored in the host's root.
// The image is unpacked first if it is not yet. The container does not run
// until Start. Its monitor process starts already, so that its start-up
// overlaps the rest of Create and a Start that follows at once; a monitor
// that no Start takes within about a second, or that Remove or Host.Close
// finds waiting, ends.
func (h *Host) Create(ctx context.Context, img *Image, opts ...CreateOption) (*Container, error) {
	c := createConfig{stopTimeout: 10 * time.Second, ns: h.ns}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if img == nil {
		return nil, fmt.Errorf("create: no image: %w", ErrInvalidArgument)
	}
	if p := c.run.restart.Name; c.autoRemove && p != "" && p != "no" {
		// Its removal would come in the back-off, before the restart.
		return nil, fmt.Errorf("create: WithAutoRemove with restart policy %q: %w", p, ErrInvalidArgument)
	}
	// Now, rather than at the start that makes the cgroup.
	if err := checkResources(&c.res); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	ctr, err := h.create(ctx, img, &c)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	return ctr, nil
}

func (h *Host) create(ctx context.Context, img *Image, c *createConfig) (_ *Container, err error) {
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := h.Unpack(ctx, img); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(h.namesDir(), 0o711); err != nil {
		return nil, err
	}
	// The create lock tells other programs this container is being made;
	// reconcile removes what a create that died left.
	var id, name, nameLink string
	var unlock func()
	for try := 0; ; try++ {
		id = newID()
		if try == 0 {
			if pre := runtime.PrestartedID(h.root); pre != "" {
				id = pre
			}
		}
		if unlock, err = h.lockScratch("create-" + id); err != nil {
			return nil, err
		}
		name = c.name
		if name == "" {
			name = generateName(id)
		}
		nameLink = filepath.Join(h.namesDir(), name)
		err = os.Symlink(id, nameLink)
		if err == nil {
			break
		}
		unlock()
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if c.name != "" || try == 4 {
			return nil, fmt.Errorf("name %q is in use: %w", name, ErrAlreadyExists)
		}
	}
	defer unlock()
	dir := h.containerDir(id)
	key := "container-" + id
	defer func() {
		if err != nil {
			h.dropMonitor(id)
			h.snap.Remove(context.WithoutCancel(ctx), key)
			os.RemoveAll(dir)
			os.Remove(nameLink)
			os.Remove(filepath.Join(h.root, "tmp", "create-"+id+".lock"))
		}
	}()
	// The container's monitor starts now, on standby, with its init when
	// the namespaces allow: their start-up overlaps the rest of the create
	// and a start that follows at once.
	nss, err := h.prepareMonitor(id, c)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o710); err != nil {
		return nil, err
	}
	// The container's lock files are made now and never again (see
	// lockExisting).
	locks := []string{runtime.LockFile}
	if c.autoRemove {
		locks = append(locks, ownerLockFile)
	}
	for _, l := range locks {
		if err := os.WriteFile(filepath.Join(dir, l), nil, 0o600); err != nil {
			return nil, err
		}
	}
	parent := ""
	if n := len(img.Layers); n > 0 {
		parent = img.Layers[n-1].ChainID.String()
	}
	labels := map[string]string{"dock.container": id}
	if c.autoRemove {
		// Nothing of an auto-remove container outlives a crash of the
		// host (reconcile removes what reached the disk), so its layer
		// and record are written without waiting for the disk: four
		// fsyncs fewer on the path of run --rm, and one at its removal.
		labels[SnapshotLabelVolatile] = "true"
	}
	mounts, err := h.snap.Prepare(ctx, key, parent, WithSnapshotLabels(labels))
	if err != nil {
		return nil, err
	}

	cfg := img.Config.Config
	spec := runtime.Spec{ID: id, Name: name, StateDir: dir, ReadonlyRootfs: c.readOnly}
	for _, m := range mounts {
		spec.Rootfs = append(spec.Rootfs, runtime.Mount{Type: m.Type, Source: m.Source, Options: m.Options})
	}

	// The command: --entrypoint drops the image's CMD, as docker does.
	entry, cmd := cfg.Entrypoint, cfg.Cmd
	if c.entrySet {
		entry = c.entrypoint
		if len(entry) > 0 {
			cmd = nil
		}
	}
	if c.cmdSet {
		cmd = c.cmd
	}
	spec.Process.Args = append(append([]string{}, entry...), cmd...)
	if len(spec.Process.Args) == 0 {
		return nil, fmt.Errorf("image %s has no command and none was given: %w", img.Name, ErrInvalidArgument)
	}

	spec.Hostname = c.hostname
	if spec.Hostname == "" && c.network == "host" {
		// On the host's network, the host's name, as Docker gives.
		spec.Hostname, _ = os.Hostname()
	}
	if spec.Hostname == "" {
		spec.Hostname = id[:12]
	}
	spec.Process.Env = mergeEnv(append([]string{"PATH=" + defaultPath, "HOSTNAME=" + spec.Hostname}, cfg.Env...), c.env)
	spec.Process.Cwd = cfg.WorkingDir
	if c.workdir != "" {
		spec.Process.Cwd = c.workdir
	}
	if spec.Process.Cwd == "" {
		spec.Process.Cwd = "/"
	}
	spec.Process.Terminal = c.tty

	u := cfg.User
	if c.user != "" {
		u = c.user
	}
	eu, err := h.resolveUser(mounts, u, c.groupAdd)
	if err != nil {
		return nil, err
	}
	spec.Process.User = runtime.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	for _, g := range eu.Sgids {
		spec.Process.User.AdditionalGIDs = append(spec.Process.User.AdditionalGIDs, uint32(g))
	}
	if !hasEnv(spec.Process.Env, "HOME") {
		spec.Process.Env = append(spec.Process.Env, "HOME="+eu.Home)
	}

	if err := securityDefaults(c, &spec); err != nil {
		return nil, err
	}
	spec.Process.OOMScoreAdj = c.oomScoreAdj
	if c.init {
		if err := reaperRuns(); err != nil {
			return nil, err
		}
		spec.Process.Init = true
	}
	spec.ShmSize = c.shmSize
	for _, d := range c.devices {
		ds, err := hostDevices(d)
		if err != nil {
			return nil, err
		}
		spec.Devices = append(spec.Devices, ds...)
	}

	for _, n := range nss.New {
		spec.Namespaces.New = append(spec.Namespaces.New, string(n))
	}
	for name := range c.sysctls {
		if ns, _ := runtime.ValidSysctl(name); !slices.Contains(nss.New, Namespace(ns)) {
			return nil, fmt.Errorf("sysctl %s: the container shares its %s namespace: %w", name, ns, ErrInvalidArgument)
		}
	}
	spec.Sysctls = maps.Clone(c.sysctls)
	if len(nss.Join) > 0 {
		spec.Namespaces.Join = map[string]string{}
		for k, v := range nss.Join {
			spec.Namespaces.Join[string(k)] = v
		}
	}
	if len(c.join) > 0 {
		spec.Namespaces.JoinContainer = map[string]string{}
		for k, dir := range c.join {
			spec.Namespaces.JoinContainer[string(k)] = dir
		}
	}
	for _, m := range nss.UIDMap {
		spec.Namespaces.UIDMap = append(spec.Namespaces.UIDMap, runtime.IDMap(m))
	}
	for _, m := range nss.GIDMap {
		spec.Namespaces.GIDMap = append(spec.Namespaces.GIDMap, runtime.IDMap(m))
	}
	rootGID := -1 // the host's gid of the container's root, in a user namespace
	if slices.Contains(nss.New, UserNamespace) {
		// The container's root reaches its state directory (the rootfs
		// mount point, the /etc files) through the group, as with
		// docker's userns-remap; the directory stays closed to others.
		for _, m := range nss.GIDMap {
			if m.ContainerID == 0 {
				rootGID = int(m.HostID)
				if err := os.Chown(dir, 0, rootGID); err != nil {
					return nil, err
				}
			}
		}
		if p := unsearchable(filepath.Dir(dir)); p != "" {
			return nil, fmt.Errorf("user namespace: %s is not searchable by others, so the container's root cannot reach its root filesystem (make it mode 0711): %w", p, ErrInvalidArgument)
		}
	}

	// A volume mount with no name gets an anonymous volume, named by a
	// random ID, as docker's -v /data.
	for i, m := range c.mounts {
		if m.Type == "volume" && m.Source == "" {
			c.mounts[i].Source = newID()
			c.anonymous = append(c.anonymous, c.mounts[i].Source)
		}
	}
	// Each of the image's VOLUMEs that no mount covers gets a volume of
	// its own, as in Docker: anonymous, filled from the image.
	for _, v := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		d := path.Clean("/" + v)
		if slices.ContainsFunc(c.mounts, func(m MountPoint) bool { return path.Clean(m.Target) == d }) {
			continue
		}
		name := newID()
		c.anonymous = append(c.anonymous, name)
		c.mounts = append(c.mounts, MountPoint{Type: "volume", Source: name, Target: d})
	}
	defer func() {
		if err != nil {
			for _, v := range c.anonymous {
				os.RemoveAll(filepath.Join(h.volumesDir(), v))
			}
		}
	}()
	// Shallower destinations first, as Docker mounts them: a mount at
	// /mnt/x given before one at /mnt stays visible.
	seen := map[string]bool{}
	for _, m := range c.mounts {
		d := path.Clean(m.Target)
		if seen[d] {
			return nil, fmt.Errorf("duplicate mount point %s: %w", d, ErrInvalidArgument)
		}
		seen[d] = true
	}
	slices.SortStableFunc(c.mounts, func(a, b MountPoint) int {
		return strings.Count(path.Clean(a.Target), "/") - strings.Count(path.Clean(b.Target), "/")
	})
	// A new volume of a container in a user namespace is its root's, as
	// with docker's userns-remap: its files are shifted into the ids the
	// container's ids map to.
	var shift func(uid, gid int) (int, int)
	if rootGID >= 0 {
		shift = func(uid, gid int) (int, int) {
			return mapID(nss.UIDMap, uid), mapID(nss.GIDMap, gid)
		}
	}
	for _, m := range c.mounts {
		ms, err := h.mountSpec(ctx, m, mounts, shift)
		if err != nil {
			return nil, err
		}
		if m.Type == "volume" && slices.Contains(c.anonymous, m.Source) {
			if err := os.WriteFile(filepath.Join(h.volumesDir(), m.Source, anonymousMark), []byte(id), 0o600); err != nil {
				return nil, err
			}
		}
		spec.Mounts = append(spec.Mounts, ms)
		if m.Type == "volume" && rootGID >= 0 {
			// Its root reaches the volume as it does its state directory.
			if err := os.Chown(filepath.Dir(ms.Source), 0, rootGID); err != nil {
				return nil, err
			}
		}
	}

	if err := h.cgroupSpec(id, &c.res, &spec); err != nil {
		return nil, err
	}
	spec.Log = runtime.LogConfig{MaxSize: c.logMax, MaxFiles: c.logFiles}
	if c.stopSignal != 0 {
		spec.StopSignal = int(c.stopSignal)
	} else if cfg.StopSignal != "" {
		if sig, ok := parseSignal(cfg.StopSignal); ok {
			spec.StopSignal = int(sig)
		}
	}
	spec.AutoRemove = c.autoRemove
	spec.Process.Rlimits = c.ulimits
	h.applyRun(c, img, &spec)

	if err := writeEtcFiles(dir, spec.Hostname, c.network == "host", &c.dns); err != nil {
		return nil, err
	}
	// The image's labels, under the create's, as Docker merges them.
	ctrLabels := maps.Clone(cfg.Labels)
	if len(c.labels) > 0 && ctrLabels == nil {
		ctrLabels = map[string]string{}
	}
	maps.Copy(ctrLabels, c.labels)
	rec := containerRecord{
		ID: id, Name: name, Image: img.Name, ImageID: img.Digest, Created: time.Now().UTC(),
		Labels: ctrLabels, SnapshotKey: key, StopTimeout: c.stopTimeout, AutoRemove: c.autoRemove,
		Resources: &c.res, Spec: spec, BootID: bootID(), AnonymousVolumes: c.anonymous, GroupAdd: slices.Clone(c.groupAdd),
		ExposedPorts: exposedPorts(cfg.ExposedPorts),
	}
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, "dock.json"), b, 0o600, !c.autoRemove); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(h.root, "tmp", "create-"+id+".lock"))
	h.event(EventCreated, id, name, map[string]string{"image": img.Name})
	return &Container{ID: id, Name: name, Image: img.Name, ImageID: img.Digest, Created: rec.Created,
		Labels: ctrLabels, h: h, rec: &rec}, nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// mergeEnv applies overrides to base, key by key, keeping base's order.
func mergeEnv(base, overrides []string) []string {
	out := []string{}
	idx := map[string]int{}
	for _, kv := range append(append([]string{}, base...), overrides...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// resolveUser finds the user spec u in the image's /etc/passwd and
// /etc/group, as docker does: numeric ids need no entry.
func (h *Host) resolveUser(mounts []Mount, u string, groupAdd []string) (*user.ExecUser, error) {
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	passwd, _ := openImageFile(mounts, "etc/passwd")
	defer closeIf(passwd)
	var pr io.Reader
	if passwd != nil {
		pr = io.LimitReader(passwd, 16<<20)
	}
	// Read once, for the user's groups and the added ones.
	var groups []byte
	if f, _ := openImageFile(mounts, "etc/group"); f != nil {
		groups, _ = io.ReadAll(io.LimitReader(f, 16<<20))
		f.Close()
	}
	var gr io.Reader
	if groups != nil {
		gr = bytes.NewReader(groups)
	}
	eu, err := user.GetExecUser(u, defaults, pr, gr)
	if err != nil {
		return nil, fmt.Errorf("user %q: %v: %w", u, err, ErrInvalidArgument)
	}
	if len(groupAdd) > 0 {
		gr = nil
		if groups != nil {
			gr = bytes.NewReader(groups)
		}
		added, err := user.GetAdditionalGroups(groupAdd, gr)
		if err != nil {
			return nil, fmt.Errorf("group-add %q: %v: %w", groupAdd, err, ErrInvalidArgument)
		}
		for _, g := range added {
			if !slices.Contains(eu.Sgids, g) {
				eu.Sgids = append(eu.Sgids, g)
			}
		}
	}
	return eu, nil
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// openImageFile opens the file at rel in the tree the snapshot mounts show,
// without mounting them: it looks through the layer directories from the
// top, honouring overlay whiteouts, and never leaves a layer directory
// (symlinks that point out of it resolve inside it).
func openImageFile(mounts []Mount, rel string) (*os.File, error) {
	var dirs []string
	for _, m := range mounts {
		switch m.Type {
		case "bind", "rbind":
			dirs = append(dirs, m.Source)
		case "overlay":
			var upper string
			var lowers []string
			for _, o := range m.Options {
				if v, ok := strings.CutPrefix(o, "upperdir="); ok {
					upper = v
				}
				if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
					lowers = strings.Split(v, ":")
				}
			}
			if upper != "" {
				dirs = append(dirs, upper)
			}
			dirs = append(dirs, lowers...)
		}
	}
	for _, d := range dirs {
		root, err := os.OpenRoot(d)
		if err != nil {
			continue
		}
		if _, err := root.Lstat(rel); err == nil {
			// The top-most layer holding the name decides: a whiteout, or
			// a link into another layer, hides what lies below.
			f, err := root.Open(rel)
			root.Close()
			if err != nil {
				return nil, os.ErrNotExist
			}
			if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
				f.Close()
				return nil, os.ErrNotExist
			}
			return f, nil
		}
		opaque := hasOpaqueAncestor(root, d, rel)
		root.Close()
		if opaque {
			return nil, os.ErrNotExist
		}
	}
	return nil, os.ErrNotExist
}

// mountSpec turns a MountPoint into what the runtime mounts.
func (h *Host) mountSpec(ctx context.Context, m MountPoint, rootfs []Mount, shift func(uid, gid int) (int, int)) (runtime.MountSpec, error) {
	ms := runtime.MountSpec{Destination: path.Clean(m.Target)}
	rw := "rw"
	if m.ReadOnly {
		rw = "ro"
	}
	switch m.Type {
	case "bind":
		if _, err := os.Stat(m.Source); err != nil {
			return ms, fmt.Errorf("bind source %s: %w", m.Source, ErrNotFound)
		}
		ms.Type, ms.Source, ms.Options = "bind", m.Source, []string{"rbind", rw}
	case "volume":
		dir, err := h.volumeDir(ctx, m.Source, rootfs, ms.Destination, shift)
		if err != nil {
			return ms, err
		}
		ms.Type, ms.Source, ms.Options = "bind", dir, []string{"rbind", rw}
	case "tmpfs":
		if err := checkTmpfs(m.Options); err != nil {
			return ms, fmt.Errorf("tmpfs on %s: %w: %w", m.Target, err, ErrInvalidArgument)
		}
		ms.Type, ms.Source = "tmpfs", "tmpfs"
		ms.Options = append([]string{"nosuid", "nodev", "noexec", rw}, m.Options...)
	}
	return ms, nil
}

// volumeDir returns the directory of the named volume. A new volume is
// first filled with what the container's image holds at target, as Docker
// does; the copy is made aside and renamed into place, under the volume's
// lock, so that a volume is never seen half filled. A volume that is empty
// is filled so again, as in Docker, each entry moved in whole; a create
// meanwhile waits for the whole.
//
// A volume's directory is closed to others (0710): what containers wrote in
// it, set-user-ID files and device nodes included, must not be reachable by
// host users. A container's root in a user namespace reaches it through the
// group, as its state directory.
//
// A new volume's files are given to the ids shift returns, when not nil.
func (h *Host) volumeDir(ctx context.Context, name string, rootfs []Mount, target string, shift func(uid, gid int) (int, int)) (string, error) {
	base := filepath.Join(h.root, "volumes", name)
	data := filepath.Join(base, "_data")
	// Create holds the root lease, which RemoveVolume takes exclusively: a
	// volume seen here stays until the container's record names it.
	// A fill is copied into _fill; refilling an empty volume renames the
	// whole copy to _move, moves its entries in one by one and removes
	// _move only once all are: until then, a create waits for it under
	// the lock, and one after a crash finishes it.
	fill, move := filepath.Join(base, "_fill"), filepath.Join(base, "_move")
	if _, err := os.Stat(data); err == nil {
		if err := os.Chmod(base, 0o710); err != nil { // one made open before
			return "", err
		}
		if !emptyDir(data) && !exists(move) {
			return data, nil
		}
	}
	unlock, err := h.lockVolume(ctx, name)
	if err != nil {
		return "", err
	}
	defer unlock()
	_, err = os.Stat(data)
	present := err == nil
	if present && !emptyDir(data) {
		if exists(move) {
			// Kept when the move fails again: the next create tries.
			if err := moveEntries(move, data); err != nil {
				return "", fmt.Errorf("volume %s: %w", name, err)
			}
			os.RemoveAll(move)
		}
		return data, nil
	}
	os.RemoveAll(fill)
	os.RemoveAll(move)
	defer os.RemoveAll(fill)
	found, err := h.fillVolume(ctx, fill, rootfs, target)
	if err == nil && shift != nil {
		err = shiftOwners(fill, shift)
	}
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	if !present {
		return data, os.Rename(fill, data)
	}
	if !found {
		return data, nil
	}
	if err := os.Rename(fill, move); err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	err = moveEntries(move, data)
	os.RemoveAll(move)
	if err != nil {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	return data, nil
}

// exists reports whether p names anything.
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// exposedPorts spells an image's EXPOSE as Docker does: "80/tcp", the
// protocol tcp where the image gives none, sorted.
func exposedPorts(ports map[string]struct{}) []string {
	var out []string
	for p := range ports {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		out = append(out, strings.ToLower(p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// emptyDir reports whether dir is a directory with nothing in it.
func emptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err == io.EOF
}

// writeEtcFiles writes the hosts, hostname and resolv.conf files the
// runtime binds over the image's, from the host's as etcFiles makes them.
func writeEtcFiles(dir, hostname string, hostNet bool, dns *dnsConfig) error {
	hostHosts, _ := os.ReadFile("/etc/hosts")
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	// systemd-resolved's stub at 127.0.0.53 is out of a container's reach;
	// the servers behind it are not.
	resolved, _ := os.ReadFile("/run/systemd/resolve/resolv.conf")
	for name, data := range etcFiles(hostname, hostNet, dns, string(hostHosts), string(hostResolv), string(resolved)) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// etcFiles returns a container's hosts, hostname and resolv.conf, as
// Docker writes them: the host's resolver settings, less loopback name
// servers that a network namespace of the container's own cannot reach
// (systemd-resolved's upstream ones, resolved, when that leaves none),
// with dns's in their place; the host's hosts file on the host's network.
func etcFiles(hostname string, hostNet bool, dns *dnsConfig, hostHosts, hostResolv, resolved string) map[string]string {
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	if hostNet && hostHosts != "" {
		hosts = hostHosts
		if !strings.HasSuffix(hosts, "\n") {
			hosts += "\n"
		}
	}
	for _, h := range dns.extraHosts {
		hosts += h[1] + "\t" + h[0] + "\n"
	}
	if !hostNet && resolved != "" && len(reachableServers(hostResolv)) == 0 && len(reachableServers(resolved)) > 0 {
		hostResolv = resolved
	}
	var servers, search, opts, other []string
	for _, l := range strings.Split(hostResolv, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "nameserver":
			if hostNet || !loopbackServer(f[1]) {
				servers = append(servers, f[1])
			}
		case len(f) >= 1 && (f[0] == "search" || f[0] == "domain"):
			search = f[1:]
		case len(f) >= 1 && f[0] == "options":
			opts = append(opts, f[1:]...)
		case len(f) > 0 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], ";"):
			other = append(other, l)
		}
	}
	if len(dns.servers) > 0 {
		servers = dns.servers
	}
	if len(servers) == 0 {
		servers = []string{"8.8.8.8", "8.8.4.4"} // Docker's fallback
	}
	if len(dns.search) > 0 {
		search = dns.search
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	if len(dns.dnsOptions) > 0 {
		opts = dns.dnsOptions
	}
	var resolv strings.Builder
	for _, s := range servers {
		resolv.WriteString("nameserver " + s + "\n")
	}
	if len(search) > 0 {
		resolv.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	if len(opts) > 0 {
		resolv.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	for _, l := range other {
		resolv.WriteString(l + "\n")
	}
	return map[string]string{"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv.String()}
}

// reachableServers returns the name servers of resolv.conf that a
// network namespace of a container's own can reach: not loopback ones.
func reachableServers(resolv string) []string {
	var out []string
	for _, l := range strings.Split(resolv, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" && !loopbackServer(f[1]) {
			out = append(out, f[1])
		}
	}
	return out
}

// loopbackServer reports whether the name server addr is the host's own.
func loopbackServer(addr string) bool { return strings.HasPrefix(addr, "127.") || addr == "::1" }

// parseSignal reads "SIGTERM", "TERM" or "15".
func parseSignal(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), true
	}
	s = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	for i := syscall.Signal(1); i < 65; i++ {
		if strings.TrimPrefix(strings.ToUpper(unixSignalName(i)), "SIG") == s {
			return i, true
		}
	}
	return 0, false
}

// ParseSignal reads a signal as docker does: "SIGTERM", "TERM" or "15".
func ParseSignal(s string) (syscall.Signal, error) {
	if sig, ok := parseSignal(s); ok {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: %w", s, ErrInvalidArgument)
}

var adjectives = []string{"brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble", "proud", "quiet", "sharp", "swift", "tender", "vivid", "witty", "zen"}
var nouns = []string{"curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler", "lovelace", "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak"}

// generateName makes a docker-like name from the container's ID.
func generateName(id string) string {
	a, _ := strconv.ParseUint(id[:4], 16, 32)
	n, _ := strconv.ParseUint(id[4:8], 16, 32)
	return adjectives[a%uint64(len(adjectives))] + "_" + nouns[n%uint64(len(nouns))] + "_" + id[8:12]
}

// unsearchable returns the deepest of dir and its parents that others may
// not search, or "" when they may search them all.
func unsearchable(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == "/" || d == "." {
			return ""
		}
	}
}

// mapID returns the host's id for a container's id, by maps; an id no map
// covers stays as it is.
func mapID(maps []IDMap, id int) int {
	for _, m := range maps {
		if id >= int(m.ContainerID) && id < int(m.ContainerID)+int(m.Size) {
			return int(m.HostID) + id - int(m.ContainerID)
		}
	}
	return id
}

// shiftOwners gives every file under dir, dir included, the owner shift
// returns for its own; symlinks themselves, not what they name.
func shiftOwners(dir string, shift func(uid, gid int) (int, int)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		uid, gid := shift(int(st.Uid), int(st.Gid))
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		// chown clears the set-id bits of what it changes: give them back.
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 && m&fs.ModeSymlink == 0 {
			return os.Chmod(p, m)
		}
		return nil
	})
}
