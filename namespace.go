package dock

import "fmt"

// Namespace names one kind of Linux namespace.
type Namespace string

// The namespaces a container can have.
const (
	PIDNamespace    Namespace = "pid"
	MountNamespace  Namespace = "mnt"
	UTSNamespace    Namespace = "uts"
	IPCNamespace    Namespace = "ipc"
	NetNamespace    Namespace = "net"
	CgroupNamespace Namespace = "cgroup"
	UserNamespace   Namespace = "user"
)

// IDMap maps a range of IDs inside a user namespace to IDs on the host.
type IDMap struct {
	ContainerID uint32
	HostID      uint32
	Size        uint32
}

// NamespaceSet says which namespaces a container gets: those in New are
// created for it, those in Join are entered by path (a /proc/PID/ns/NAME file
// or a bind mount of one), and any namespace in neither is shared with the
// host. UIDMap and GIDMap apply when a user namespace is created.
type NamespaceSet struct {
	New    []Namespace
	Join   map[Namespace]string
	UIDMap []IDMap
	GIDMap []IDMap
}

// Namespaces decides the namespaces of each container. It returns data only;
// the container's init process acts on it when it starts. A platform may
// supply its own, to place containers into pods for example.
type Namespaces interface {
	// For returns the namespaces of the container with the given ID.
	For(containerID string) (NamespaceSet, error)
}

// DefaultNamespaces gives every container new pid, mount, uts, ipc, net and
// cgroup namespaces and shares the user namespace with the host, as Docker
// does.
func DefaultNamespaces() Namespaces { return defaultNamespaces{} }

type defaultNamespaces struct{}

func (defaultNamespaces) For(string) (NamespaceSet, error) {
	return NamespaceSet{New: []Namespace{PIDNamespace, MountNamespace, UTSNamespace, IPCNamespace, NetNamespace, CgroupNamespace}}, nil
}

// RemappedNamespaces gives every container Docker's default namespaces and
// a user namespace of its own, in which ids 0 to size-1 are the host's uid
// to uid+size-1 (and gid to gid+size-1), as docker's --userns-remap: the
// container's root is an unprivileged user on the host. The image's layers
// appear owned by the container's root through idmapped mounts (overlay
// snapshots; Linux 5.19 or later), and the state root must be searchable
// by others (mode 0711, as Open makes it).
func RemappedNamespaces(uid, gid, size uint32) (Namespaces, error) {
	if size == 0 || uint64(uid)+uint64(size) > 1<<32-1 || uint64(gid)+uint64(size) > 1<<32-1 {
		return nil, fmt.Errorf("RemappedNamespaces(%d, %d, %d): %w", uid, gid, size, ErrInvalidArgument)
	}
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("RemappedNamespaces(%d, %d, %d): the host's root is not a remapped root: %w", uid, gid, size, ErrInvalidArgument)
	}
	return remappedNamespaces{uid: uid, gid: gid, size: size}, nil
}

type remappedNamespaces struct{ uid, gid, size uint32 }

func (r remappedNamespaces) For(id string) (NamespaceSet, error) {
	s, err := defaultNamespaces{}.For(id)
	s.New = append(s.New, UserNamespace)
	s.UIDMap = []IDMap{{ContainerID: 0, HostID: r.uid, Size: r.size}}
	s.GIDMap = []IDMap{{ContainerID: 0, HostID: r.gid, Size: r.size}}
	return s, err
}

// WithHostNamespace shares the host's namespaces of the given kinds with
// the container instead of creating new ones, as docker's --pid host or
// --ipc host.
func WithHostNamespace(kinds ...Namespace) CreateOption {
	return func(c *createConfig) error {
		for _, k := range kinds {
			if !knownNamespace(k) {
				return fmt.Errorf("WithHostNamespace(%q): %w", k, ErrInvalidArgument)
			}
			c.hostNS = append(c.hostNS, k)
		}
		return nil
	}
}

// WithJoinNamespace puts the container into the namespace of the given
// kind of the running container other, as docker's --network container:NAME
// (pod-style sharing). Each start of the container enters the namespace
// other's init has then, and fails unless other runs. Mount and user
// namespaces cannot be joined.
func WithJoinNamespace(kind Namespace, other *Container) CreateOption {
	return func(c *createConfig) error {
		if !knownNamespace(kind) || other == nil {
			return fmt.Errorf("WithJoinNamespace(%q): %w", kind, ErrInvalidArgument)
		}
		st := other.State()
		if st.Status != StatusRunning && st.Status != StatusPaused {
			return fmt.Errorf("WithJoinNamespace(%q, %s): container is %s: %w", kind, other.Name, st.Status, ErrWrongState)
		}
		if c.join == nil {
			c.join = map[Namespace]string{}
		}
		// The other container's init is looked up at each start: it
		// may have started again since, under another pid.
		c.join[kind] = other.stateDir()
		return nil
	}
}

func knownNamespace(k Namespace) bool {
	switch k {
	case PIDNamespace, MountNamespace, UTSNamespace, IPCNamespace, NetNamespace, CgroupNamespace, UserNamespace:
		return true
	}
	return false
}

// applyNamespaceOptions merges the create options' namespace choices into
// what the host's Namespaces decided.
func (c *createConfig) applyNamespaceOptions(set NamespaceSet) NamespaceSet {
	drop := map[Namespace]bool{}
	for _, k := range c.hostNS {
		drop[k] = true
	}
	if c.network == "host" {
		drop[NetNamespace] = true
	}
	for k := range c.join {
		drop[k] = true
		delete(set.Join, k)
	}
	var kept []Namespace
	for _, k := range set.New {
		if !drop[k] {
			kept = append(kept, k)
		}
	}
	set.New = kept
	return set
}
