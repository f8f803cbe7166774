package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Manager creates networks and connects containers to them. One Manager per
// state root and process is enough; several processes may open the same root.
type Manager struct {
	root          string
	rid           string // this root's id in rule tags
	defaultBridge string
	cfg           config
	mu            sync.Mutex
}

// Open opens the network state under root/networks and reconciles it with
// the host: endpoints whose container is gone are disconnected (veth, rules,
// address), rules and veths that no record owns are removed, and bridges of
// known networks are recreated if missing.
func Open(root string, opts ...Option) (*Manager, error) {
	m := &Manager{root: root, cfg: config{ipForward: true}, defaultBridge: DefaultBridge}
	for _, o := range opts {
		o(&m.cfg)
	}
	if err := os.MkdirAll(m.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	if err := m.loadRootID(); err != nil {
		return nil, err
	}
	if err := m.reconcile(); err != nil {
		return nil, err
	}
	return m, nil
}

// List returns all networks, sorted by name.
func (m *Manager) List() ([]Network, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	rs, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	out := make([]Network, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Network)
	}
	return out, nil
}

// Get returns the network called name.
func (m *Manager) Get(name string) (Network, error) {
	if err := checkName(name); err != nil {
		return Network{}, err
	}
	unlock, err := m.lock()
	if err != nil {
		return Network{}, err
	}
	defer unlock()
	r, err := m.load(name)
	if err != nil {
		return Network{}, err
	}
	return r.Network, nil
}

// Endpoints returns the endpoints of network name, sorted by container id.
func (m *Manager) Endpoints(name string) ([]Endpoint, error) {
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := m.load(name)
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, ep := range r.Endpoints {
		out = append(out, ep.Endpoint)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ContainerID, b.ContainerID) })
	return out, nil
}

// Default returns Docker's default network "bridge" (device dock0), creating
// it on first use.
func (m *Manager) Default() (Network, error) {
	n, err := m.Get(DefaultName)
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return n, err
	}
	n, err = m.Create(DefaultName, CreateOptions{Bridge: m.defaultBridge})
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return m.Get(DefaultName) // another process was first
	}
	return n, err
}

// Create makes network name: its record, bridge and rules. It fails with
// ErrAlreadyExists when the name is taken, when the subnet overlaps another
// network of this root, or when the bridge device exists (another root's, say).
func (m *Manager) Create(name string, opts CreateOptions) (Network, error) {
	if err := checkName(name); err != nil {
		return Network{}, err
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.MTU < 68 || opts.MTU > 65535 {
		return Network{}, fmt.Errorf("network %q: mtu %d: %w", name, opts.MTU, errdefs.ErrInvalidArgument)
	}
	unlock, err := m.lock()
	if err != nil {
		return Network{}, err
	}
	defer unlock()
	if _, err := m.load(name); err == nil {
		return Network{}, fmt.Errorf("network %q: %w", name, errdefs.ErrAlreadyExists)
	}
	all, err := m.loadAll()
	if err != nil {
		return Network{}, err
	}
	idb := make([]byte, 32)
	rand.Read(idb)
	n := Network{Name: name, ID: hex.EncodeToString(idb), Internal: opts.Internal, MTU: opts.MTU, Created: time.Now().UTC().Truncate(time.Second)}
	n.Bridge = opts.Bridge
	if n.Bridge == "" {
		n.Bridge = bridgePrefix + "-" + n.ID[:10]
	}
	if len(n.Bridge) > unix.IFNAMSIZ-1 || len(n.Bridge) <= len(bridgePrefix) || n.Bridge[:len(bridgePrefix)] != bridgePrefix {
		return Network{}, fmt.Errorf("network %q: bridge %q: want %q followed by at most %d characters: %w",
			name, n.Bridge, bridgePrefix, unix.IFNAMSIZ-1-len(bridgePrefix), errdefs.ErrInvalidArgument)
	}
	for _, r := range all {
		if r.Network.Bridge == n.Bridge {
			return Network{}, fmt.Errorf("network %q: bridge %s is network %q's: %w", name, n.Bridge, r.Network.Name, errdefs.ErrAlreadyExists)
		}
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		return Network{}, fmt.Errorf("network %q: device %s exists: %w", name, n.Bridge, errdefs.ErrAlreadyExists)
	}
	if n.Subnet, err = pickSubnet(opts.Subnet, all); err != nil {
		return Network{}, fmt.Errorf("network %q: %w", name, err)
	}
	n.Gateway = opts.Gateway
	if !n.Gateway.IsValid() {
		n.Gateway = n.Subnet.Addr().Next()
	}
	if !n.Gateway.Is4() || !n.Subnet.Contains(n.Gateway) || n.Gateway == n.Subnet.Addr() || n.Gateway == lastAddr(n.Subnet) {
		return Network{}, fmt.Errorf("network %q: gateway %s not a host address of %s: %w", name, n.Gateway, n.Subnet, errdefs.ErrInvalidArgument)
	}
	r := &record{Network: n, Endpoints: map[string]*epRecord{}}
	// Record first: a crash after it leaves a network that Connect completes
	// and Remove removes; a crash before it leaves nothing the record lacks.
	if err := m.save(r); err != nil {
		return Network{}, err
	}
	if err := m.setUp(n); err != nil {
		m.tearDownNetwork(n)
		m.drop(name)
		return Network{}, err
	}
	return n, nil
}

// setUp makes sure n's bridge, address and rules exist; it is idempotent.
func (m *Manager) setUp(n Network) error {
	if _, err := ensureBridge(n); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	if err := setRules(ruleTag{root: m.rid, net: n.Name}, networkRules(n)); err != nil {
		return fmt.Errorf("network %q: %w", n.Name, err)
	}
	return nil
}

// tearDownNetwork removes n's bridge and rules, and dock's table when no
// rule is left in it.
func (m *Manager) tearDownNetwork(n Network) error {
	var errs []error
	if l, err := netlink.LinkByName(n.Bridge); err == nil {
		if _, ok := l.(*netlink.Bridge); ok {
			if err := netlink.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("bridge %s: %w", n.Bridge, err))
			}
		}
	}
	if err := removeRules(func(t ruleTag) bool { return t.root == m.rid && t.net == n.Name }, true); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove deletes network name with its bridge and rules; the nftables table
// goes with the last network. It fails with ErrWrongState while a live
// container is connected (endpoints of gone containers are disconnected first).
func (m *Manager) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := m.load(name)
	if err != nil {
		return err
	}
	if m.pruneDead(r) {
		if err := m.save(r); err != nil {
			return err
		}
	}
	if len(r.Endpoints) > 0 {
		ids := make([]string, 0, len(r.Endpoints))
		for id := range r.Endpoints {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return fmt.Errorf("network %q has %d connected containers (%s): %w", name, len(ids), ids[0], errdefs.ErrWrongState)
	}
	if err := m.tearDownNetwork(r.Network); err != nil {
		return fmt.Errorf("network %q: %w", name, err)
	}
	return m.drop(name)
}

// Connect attaches the container whose network namespace is at netnsPath
// (/proc/<pid>/ns/net, a bind mount, or /proc/self/fd/N for an open fd) to
// network: a veth pair with its host side on the bridge and its other side,
// eth0 (eth1... when taken), in the namespace with an address, the bridge's
// MTU and a default route via the gateway; and DNAT rules for ports, whose
// zero host ports are picked here. The returned Endpoint holds the picked
// ports; run [ServeProxy] for each to serve loopback. Connect does no
// thread switching: it configures the namespace through a netlink handle
// bound to it.
func (m *Manager) Connect(ctx context.Context, network, containerID, netnsPath string, ports []PortMapping, opts ...ConnectOption) (*Endpoint, error) {
	if err := checkName(network); err != nil {
		return nil, err
	}
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	var cc connectConfig
	for _, o := range opts {
		o(&cc)
	}
	if cc.ownerPID == 0 {
		cc.ownerPID = pidFromNetNSPath(netnsPath)
	}
	for _, p := range ports {
		switch {
		case p.Protocol != "tcp" && p.Protocol != "udp":
			return nil, fmt.Errorf("port %s: protocol %q: %w", p, p.Protocol, errdefs.ErrInvalidArgument)
		case p.ContainerPort == 0:
			return nil, fmt.Errorf("port %s: no container port: %w", p, errdefs.ErrInvalidArgument)
		case p.HostIP.IsValid() && !p.HostIP.Is4():
			return nil, fmt.Errorf("port %s: IPv6 host address: %w", p, errdefs.ErrNotSupported)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := m.load(network)
	if err != nil {
		return nil, err
	}
	n := r.Network
	if _, ok := r.Endpoints[containerID]; ok {
		return nil, fmt.Errorf("container %s on network %q: %w", containerID, network, errdefs.ErrAlreadyExists)
	}
	if n.Internal && len(ports) > 0 {
		return nil, fmt.Errorf("network %q is internal: no published ports: %w", network, errdefs.ErrInvalidArgument)
	}
	all, err := m.loadAll()
	if err != nil {
		return nil, err
	}
	ip, err := allocIP(r)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", network, err)
	}
	picked, err := pickPorts(ports, all)
	if err != nil {
		return nil, err
	}
	if err := m.setUp(n); err != nil {
		return nil, err
	}
	if !n.Internal && m.cfg.ipForward {
		if err := enableForwarding(); err != nil {
			return nil, err
		}
	}
	ep := &epRecord{
		Endpoint: Endpoint{
			ContainerID: containerID,
			Network:     network,
			HostVeth:    vethName(n, containerID),
			IP:          ip,
			Prefix:      n.Subnet,
			Gateway:     n.Gateway,
			MAC:         macFor(ip),
			Ports:       picked,
		},
		NetNS:    netnsPath,
		OwnerPID: cc.ownerPID,
	}
	if cc.ownerPID != 0 {
		if ep.OwnerStart, err = procStart(cc.ownerPID); err != nil {
			return nil, fmt.Errorf("container %s: owner %d: %w", containerID, cc.ownerPID, errdefs.ErrNotFound)
		}
	}
	if err := plugVeth(n, &ep.Endpoint, netnsPath); err != nil {
		return nil, fmt.Errorf("container %s on network %q: %w", containerID, network, err)
	}
	if err := setRules(ruleTag{root: m.rid, net: network, ctr: containerID}, endpointRules(n, ep.Endpoint)); err != nil {
		delLink(ep.HostVeth)
		return nil, fmt.Errorf("container %s on network %q: %w", containerID, network, err)
	}
	r.Endpoints[containerID] = ep
	if err := m.save(r); err != nil {
		delLink(ep.HostVeth)
		removeRules(func(t ruleTag) bool { return t == ruleTag{m.rid, network, containerID} }, false)
		return nil, err
	}
	out := ep.Endpoint
	return &out, nil
}

// Disconnect detaches the container from network: veth, rules and address.
// It is idempotent: a container not connected, or a network gone, is no error.
func (m *Manager) Disconnect(ctx context.Context, network, containerID string) error {
	if err := checkName(network); err != nil {
		return err
	}
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := m.load(network)
	if errors.Is(err, errdefs.ErrNotFound) {
		return removeRules(func(t ruleTag) bool { return t == ruleTag{m.rid, network, containerID} }, false)
	}
	if err != nil {
		return err
	}
	ep, ok := r.Endpoints[containerID]
	if !ok {
		ep = &epRecord{Endpoint: Endpoint{ContainerID: containerID, Network: network, HostVeth: vethName(r.Network, containerID)}}
	}
	if err := m.tearDownEndpoint(ep); err != nil {
		return err
	}
	if ok {
		delete(r.Endpoints, containerID)
		return m.save(r)
	}
	return nil
}

func (m *Manager) tearDownEndpoint(ep *epRecord) error {
	var errs []error
	if err := delLink(ep.HostVeth); err != nil {
		errs = append(errs, err)
	}
	tag := ruleTag{m.rid, ep.Network, ep.ContainerID}
	if err := removeRules(func(t ruleTag) bool { return t == tag }, false); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s on network %q: %w", ep.ContainerID, ep.Network, err)
	}
	return nil
}

// alive tells whether ep's container still runs.
func (m *Manager) alive(ep *epRecord) bool {
	if m.cfg.alive != nil {
		return m.cfg.alive(ep.ContainerID)
	}
	if ep.OwnerPID != 0 {
		st, err := procStart(ep.OwnerPID)
		return err == nil && st == ep.OwnerStart
	}
	_, err := netlink.LinkByName(ep.HostVeth)
	return err == nil
}

// pruneDead disconnects r's endpoints whose container is gone and tells
// whether any was.
func (m *Manager) pruneDead(r *record) bool {
	changed := false
	for id, ep := range r.Endpoints {
		if m.alive(ep) {
			continue
		}
		if m.tearDownEndpoint(ep) == nil {
			delete(r.Endpoints, id)
			changed = true
		}
	}
	return changed
}

func (m *Manager) reconcile() error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	all, err := m.loadAll()
	if err != nil {
		return err
	}
	nets := map[string]*record{}
	bridges := map[int]bool{}
	veths := map[string]bool{}
	var errs []error
	for _, r := range all {
		nets[r.Network.Name] = r
		if m.pruneDead(r) {
			if err := m.save(r); err != nil {
				errs = append(errs, err)
			}
		}
		for _, ep := range r.Endpoints {
			veths[ep.HostVeth] = true
		}
		if l, err := netlink.LinkByName(r.Network.Bridge); err == nil {
			bridges[l.Attrs().Index] = true
		} else if len(r.Endpoints) == 0 {
			// After a reboot: bring the network back as it was.
			if err := m.setUp(r.Network); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// veths on dock bridges that no endpoint owns: a crash inside Connect.
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if _, ok := l.(*netlink.Veth); ok && bridges[l.Attrs().MasterIndex] && !veths[l.Attrs().Name] {
				delLink(l.Attrs().Name)
			}
		}
	}
	// Rules that no network or endpoint owns.
	err = removeRules(func(t ruleTag) bool {
		if t.root != m.rid {
			return false
		}
		r, ok := nets[t.net]
		if !ok {
			return true
		}
		if t.ctr == "" {
			return false
		}
		_, ok = r.Endpoints[t.ctr]
		return !ok
	}, true)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconcile networks: %w", err)
	}
	return nil
}

// enableForwarding turns on IPv4 forwarding, which routed traffic out of a
// bridge network needs.
func enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err == nil && len(b) > 0 && b[0] == '1' {
		return nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding: %w", err)
	}
	return nil
}

func ensureBridge(n Network) (netlink.Link, error) {
	l, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.MTU}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		if l, err = netlink.LinkByName(n.Bridge); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("device %s is a %s, not a bridge: %w", n.Bridge, l.Type(), errdefs.ErrAlreadyExists)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.Gateway.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return nil, fmt.Errorf("bridge %s: address %s: %w", n.Bridge, n.Gateway, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("bridge %s: up: %w", n.Bridge, err)
	}
	return l, nil
}

func delLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// vethName names the host side of a container's veth on n: "vd", then the
// container id's start, then the network id's, so that one container may join
// several networks.
func vethName(n Network, containerID string) string {
	id := containerID
	if len(id) > 9 {
		id = id[:9]
	}
	return "vd" + id + n.ID[:4]
}

func macFor(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// plugVeth creates ep's veth pair with its peer directly inside the netns at
// path and configures the peer through a netlink handle bound to that netns.
func plugVeth(n Network, ep *Endpoint, path string) (err error) {
	ns, err := netns.GetFromPath(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer h.Close()
	peer, err := freeEthName(h)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	// No record owns a veth of this name (the caller holds the lock and the
	// container is not connected): it is a crash's leftover.
	if err := delLink(ep.HostVeth); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MTU: n.MTU, MasterIndex: br.Attrs().Index},
		PeerName:         peer,
		PeerMTU:          uint32(n.MTU),
		PeerHardwareAddr: ep.MAC,
		PeerNamespace:    netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	defer func() {
		if err != nil {
			delLink(ep.HostVeth)
		}
	}()
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s: up: %w", ep.HostVeth, err)
	}
	in, err := h.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("netns %s: %s: %w", path, peer, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ep.IP.AsSlice(), Mask: net.CIDRMask(ep.Prefix.Bits(), 32)}}
	if err := h.AddrAdd(in, addr); err != nil {
		return fmt.Errorf("netns %s: %s: address %s: %w", path, peer, ep.IP, err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("netns %s: %s: up: %w", path, peer, err)
	}
	if !n.Internal {
		route := &netlink.Route{LinkIndex: in.Attrs().Index, Gw: ep.Gateway.AsSlice()}
		if err := h.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netns %s: default route via %s: %w", path, ep.Gateway, err)
		}
	}
	return nil
}

func freeEthName(h *netlink.Handle) (string, error) {
	links, err := h.LinkList()
	if err != nil {
		return "", err
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("eth%d", i)
		if !slices.ContainsFunc(links, func(l netlink.Link) bool { return l.Attrs().Name == name }) {
			return name, nil
		}
	}
}
