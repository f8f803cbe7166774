package dock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/dockkit/dock/internal/runtime"
	"github.com/dockkit/dock/internal/store"
)

// DefaultRoot is the state root used when Open is given no WithRoot.
const DefaultRoot = "/var/lib/dock"

// Host is one dock state root: its image store, snapshots and containers.
// Several Hosts, in one program or in several, may open the same root at
// once. A Host is safe for concurrent use.
type Host struct {
	root      string
	store     *store.Store
	snap      Snapshotter
	snapName  string
	cgroups   Cgroups
	ns        Namespaces
	insecure  map[string]bool
	registry  map[string]*Registry
	cgParent  string   // the cgroup that holds the containers' groups
	standbys  sync.Map // container ID -> *runtime.Standby, its monitor started ahead
	closeOnce sync.Once
}

// OpenOption configures Open.
type OpenOption func(*openConfig) error

type openConfig struct {
	root       string
	snap       Snapshotter
	snapName   string
	cgroups    Cgroups
	ns         Namespaces
	insecure   []string
	registries []*Registry
	cgParent   string
}

// WithRoot sets the state root directory; it is created if absent.
func WithRoot(dir string) OpenOption {
	return func(c *openConfig) error {
		if dir == "" {
			return fmt.Errorf("WithRoot(%q): %w", dir, ErrInvalidArgument)
		}
		c.root = dir
		return nil
	}
}

// WithSnapshotter replaces the probed snapshotter (overlay where the host
// supports it, native copies otherwise). The name keys its snapshots on disk.
func WithSnapshotter(name string, s Snapshotter) OpenOption {
	return func(c *openConfig) error {
		if s == nil || name == "" {
			return fmt.Errorf("WithSnapshotter(%q): %w", name, ErrInvalidArgument)
		}
		c.snap, c.snapName = s, name
		return nil
	}
}

// WithSnapshotterName picks one of the built-in snapshotters, "overlay" or
// "native", instead of probing.
func WithSnapshotterName(name string) OpenOption {
	return func(c *openConfig) error {
		if name != "overlay" && name != "native" {
			return fmt.Errorf("WithSnapshotterName(%q): want overlay or native: %w", name, ErrInvalidArgument)
		}
		c.snapName = name
		return nil
	}
}

// WithCgroups replaces the probed cgroup manager for the calls made in this
// program. Containers' own groups are made by their monitors with the
// built-in manager, so Create refuses resource limits and devices
// (WithDevice) when one is given, and its containers run without Docker's
// device rules.
func WithCgroups(cg Cgroups) OpenOption {
	return func(c *openConfig) error {
		if cg == nil {
			return fmt.Errorf("WithCgroups(nil): %w", ErrInvalidArgument)
		}
		c.cgroups = cg
		return nil
	}
}

// WithNamespaces replaces DefaultNamespaces for every container of the host.
func WithNamespaces(ns Namespaces) OpenOption {
	return func(c *openConfig) error {
		if ns == nil {
			return fmt.Errorf("WithNamespaces(nil): %w", ErrInvalidArgument)
		}
		c.ns = ns
		return nil
	}
}

// WithInsecureRegistry lets the host talk plain HTTP to the registry at
// host[:port], as docker's --insecure-registry. Loopback registries are
// reached over plain HTTP without it.
func WithInsecureRegistry(hostport string) OpenOption {
	return func(c *openConfig) error {
		if hostport == "" {
			return fmt.Errorf("WithInsecureRegistry(%q): %w", hostport, ErrInvalidArgument)
		}
		c.insecure = append(c.insecure, hostport)
		return nil
	}
}

// WithRegistries registers how to reach registries; a reference whose domain
// matches one of them uses it unless the call names another.
func WithRegistries(regs ...*Registry) OpenOption {
	return func(c *openConfig) error {
		for _, r := range regs {
			if r == nil {
				return fmt.Errorf("WithRegistries(nil): %w", ErrInvalidArgument)
			}
		}
		c.registries = append(c.registries, regs...)
		return nil
	}
}

// Open opens the state root, creating it if needed, and repairs what a crash
// left behind in it.
func Open(ctx context.Context, opts ...OpenOption) (*Host, error) {
	c := openConfig{root: DefaultRoot, cgParent: "dock"}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return nil, fmt.Errorf("root %q: %w", c.root, err)
	}
	for _, d := range []string{"", "containers", "volumes", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			return nil, fmt.Errorf("root %s: %w", root, err)
		}
	}
	// One spelling of the root for every program that opens it: paths
	// under it are recorded, and compared.
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, fmt.Errorf("root %s: %w", c.root, err)
	}
	st, err := store.Open(filepath.Join(root, "images"))
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	h := &Host{
		root:     root,
		store:    st,
		snap:     c.snap,
		snapName: c.snapName,
		cgroups:  c.cgroups,
		ns:       c.ns,
		insecure: map[string]bool{},
		registry: map[string]*Registry{},
		cgParent: c.cgParent,
	}
	for _, hp := range c.insecure {
		h.insecure[hp] = true
	}
	for _, r := range c.registries {
		h.registry[r.host] = r
	}
	if h.ns == nil {
		h.ns = DefaultNamespaces()
	}
	if err := h.openPlatform(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := h.reconcile(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// Root is the host's state root directory.
func (h *Host) Root() string { return h.root }

// Snapshotter is the snapshotter holding the host's unpacked layers and
// container filesystems.
func (h *Host) Snapshotter() Snapshotter { return h.snap }

// Close releases the host's open files. Containers keep running.
func (h *Host) Close() error {
	var err error
	h.closeOnce.Do(func() {
		h.standbys.Range(func(id, _ any) bool {
			h.dropMonitor(id.(string))
			return true
		})
		if h.snap != nil {
			err = h.snap.Close()
		}
		if e := h.store.Close(); err == nil {
			err = e
		}
	})
	return err
}

// prepareMonitor decides the namespaces of container id and starts its
// monitor on standby, for its start to take. A standby that cannot start
// costs the start nothing: it starts a monitor of its own.
func (h *Host) prepareMonitor(id string, c *createConfig) (NamespaceSet, error) {
	nss, err := c.ns.For(id)
	if err != nil {
		return nss, err
	}
	nss = c.applyNamespaceOptions(nss)
	sb, err := runtime.NewStandby(h.containerDir(id))
	if err != nil {
		return nss, nil
	}
	h.standbys.Store(id, sb)
	// Unused, it ends by itself; so does its entry.
	go func() {
		<-sb.Gone()
		h.standbys.CompareAndDelete(id, sb)
	}()
	return nss, nil
}

// takeMonitor returns the monitor on standby for container id, if any.
func (h *Host) takeMonitor(id string) *runtime.Standby {
	if sb, ok := h.standbys.LoadAndDelete(id); ok {
		return sb.(*runtime.Standby)
	}
	return nil
}

// dropMonitor ends the monitor on standby for container id, if any.
func (h *Host) dropMonitor(id string) {
	if sb := h.takeMonitor(id); sb != nil {
		sb.Close()
	}
}
