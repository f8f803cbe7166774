package dock

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
