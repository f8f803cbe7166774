package network

// Option configures [Open].
type Option func(*config)

type config struct {
	alive     func(containerID string) bool
	ipForward bool
}

// WithLiveness makes Open and Remove ask alive whether a container still
// runs, instead of checking the owner process recorded at Connect (or, when
// none was recorded, whether its veth still exists). Endpoints of containers
// that are gone are disconnected.
func WithLiveness(alive func(containerID string) bool) Option {
	return func(c *config) { c.alive = alive }
}

// WithIPForward says whether connecting a container to a non-internal
// network turns on the host's net.ipv4.ip_forward, as Docker does; the
// default is on. Without forwarding, containers reach only their own network
// and the host.
func WithIPForward(on bool) Option {
	return func(c *config) { c.ipForward = on }
}

// ConnectOption configures [Manager.Connect].
type ConnectOption func(*connectConfig)

type connectConfig struct {
	ownerPID int
}

// WithOwner names the process whose life is the endpoint's: when it is gone,
// Open disconnects the endpoint. By default it is <pid> of a netns path
// "/proc/<pid>/ns/net"; other paths (a bind mount, /proc/self/fd/N) have no
// owner unless this option gives one, and their endpoint lives while its veth does.
func WithOwner(pid int) ConnectOption {
	return func(c *connectConfig) { c.ownerPID = pid }
}
