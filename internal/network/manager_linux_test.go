package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const holderEnv = "DOCK_NETWORK_TEST_NETNS_HOLDER"

// TestMain lets the test binary serve as a process that holds a new network
// namespace until its stdin closes.
func TestMain(m *testing.M) {
	if os.Getenv(holderEnv) == "1" {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func randName(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// forwarding tells whether the tests may rely on IPv4 forwarding: it is on,
// or DOCK_TEST_IP_FORWARD=1 lets Connect turn it on (in a throw-away VM).
func forwarding() bool {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return strings.TrimSpace(string(b)) == "1" || os.Getenv("DOCK_TEST_IP_FORWARD") == "1"
}

// hostSnapshot is what a test may leave behind on the host: dock links,
// routes into dock's pools, and rules of dock's table.
type hostSnapshot struct {
	links, routes, rules map[string]bool
}

func snapshot(t *testing.T) hostSnapshot {
	t.Helper()
	s := hostSnapshot{map[string]bool{}, map[string]bool{}, map[string]bool{}}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasPrefix(n, "dock") || strings.HasPrefix(n, "vd") {
			s.links[n] = true
		}
	}
	prefixes, err := hostPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes {
		for _, pool := range subnetPools {
			if pool.Overlaps(p) {
				s.routes[p.String()] = true
			}
		}
	}
	tags, err := listTags()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		s.rules[tag.String()] = true
	}
	return s
}

// checkNoLeaks registers a cleanup, run after all others, that fails the
// test if a dock link, route or rule is left that was not there before.
func checkNoLeaks(t *testing.T) {
	before := snapshot(t)
	t.Cleanup(func() {
		var after hostSnapshot
		// The kernel deletes the veths of a dead netns asynchronously.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			after = snapshot(t)
			if len(after.links) <= len(before.links) || time.Now().After(deadline) {
				break
			}
		}
		for what, m := range map[string][2]map[string]bool{
			"link": {before.links, after.links}, "route": {before.routes, after.routes}, "rule": {before.rules, after.rules},
		} {
			for k := range m[1] {
				if !m[0][k] {
					t.Errorf("left behind: %s %s", what, k)
				}
			}
		}
	})
}

func newManager(t *testing.T, root string, opts ...Option) *Manager {
	t.Helper()
	opts = append([]Option{WithIPForward(forwarding())}, opts...)
	m, err := Open(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newNetwork(t *testing.T, m *Manager, opts CreateOptions) Network {
	t.Helper()
	name := randName(t)
	n, err := m.Create(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(name); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("remove %s: %v", name, err)
		}
	})
	return n
}

// holder is a process in a new network namespace with lo up.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	path  string
}

func newHolder(t *testing.T) *holder {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, stdin: stdin, path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	t.Cleanup(h.kill)
	ns, err := netns.GetFromPath(h.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *holder) kill() {
	if h.cmd.ProcessState != nil {
		return
	}
	h.stdin.Close()
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// in runs fn on a locked OS thread inside the holder's netns; sockets fn
// opens stay in that netns.
func (h *holder) in(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(h.path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread() // else the thread dies with the goroutine
		}
		errc <- err
	}()
	return <-errc
}

func connect(t *testing.T, m *Manager, n Network, h *holder, ports []PortMapping) *Endpoint {
	t.Helper()
	id := randName(t) + "c0ffee"
	ep, err := m.Connect(context.Background(), n.Name, id, h.path, ports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Disconnect(context.Background(), n.Name, id); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	return ep
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func rulesOf(t *testing.T, m *Manager, net, ctr string) int {
	t.Helper()
	tags, err := listTags()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tag := range tags {
		if tag.root == m.rid && tag.net == net && (ctr == "" || tag.ctr == ctr) {
			n++
		}
	}
	return n
}

func TestCreateRemove(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	if !linkExists(n.Bridge) || !strings.HasPrefix(n.Bridge, "dock-") {
		t.Fatalf("bridge %q missing", n.Bridge)
	}
	if n.Subnet.Bits() != 24 || !n.Subnet.Contains(n.Gateway) || n.Gateway != n.Subnet.Addr().Next() {
		t.Fatalf("subnet %s gateway %s", n.Subnet, n.Gateway)
	}
	br, _ := netlink.LinkByName(n.Bridge)
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IP.String() != n.Gateway.String() {
		t.Fatalf("bridge addresses %v, %v", addrs, err)
	}
	if rulesOf(t, m, n.Name, "") == 0 {
		t.Fatal("no rules for the network")
	}
	if _, err := m.Create(n.Name, CreateOptions{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := m.Create(randName(t), CreateOptions{Subnet: n.Subnet}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("overlapping subnet: %v", err)
	}
	if _, err := m.Create(randName(t), CreateOptions{Bridge: n.Bridge}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("same bridge: %v", err)
	}
	for _, bad := range []string{"", "-x", "a/b", strings.Repeat("a", 65)} {
		if _, err := m.Create(bad, CreateOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("create %q: %v", bad, err)
		}
	}
	n2 := newNetwork(t, m, CreateOptions{Internal: true})
	if n2.Subnet.Overlaps(n.Subnet) {
		t.Fatalf("picked overlapping subnets %s and %s", n.Subnet, n2.Subnet)
	}
	list, err := m.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if got, err := m.Get(n.Name); err != nil || got.ID != n.ID || got.Subnet != n.Subnet {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// Another root cannot take a subnet this host routes to a bridge.
	if _, err := newManager(t, t.TempDir()).Create(randName(t), CreateOptions{Subnet: n.Subnet}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("subnet of another root: %v", err)
	}
	// A second manager on the same root sees the same networks.
	m2 := newManager(t, m.root)
	if got, err := m2.Get(n2.Name); err != nil || !got.Internal {
		t.Fatalf("other manager Get = %+v, %v", got, err)
	}
	if err := m.Remove(n.Name); err != nil {
		t.Fatal(err)
	}
	if linkExists(n.Bridge) || rulesOf(t, m, n.Name, "") != 0 {
		t.Fatal("bridge or rules left after Remove")
	}
	if _, err := m.Get(n.Name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if err := m.Remove(n.Name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestConnect(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{MTU: 1400})
	a, b := newHolder(t), newHolder(t)
	epA := connect(t, m, n, a, nil)
	epB := connect(t, m, n, b, nil)
	if epA.IP == epB.IP || !n.Subnet.Contains(epA.IP) || epA.IP == n.Gateway {
		t.Fatalf("addresses %s %s in %s", epA.IP, epB.IP, n.Subnet)
	}
	if epA.MAC.String() != fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", epA.IP.As4()[0], epA.IP.As4()[1], epA.IP.As4()[2], epA.IP.As4()[3]) {
		t.Fatalf("mac %s for %s", epA.MAC, epA.IP)
	}
	host, err := netlink.LinkByName(epA.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if br, _ := netlink.LinkByName(n.Bridge); host.Attrs().MasterIndex != br.Attrs().Index || host.Attrs().MTU != 1400 {
		t.Fatalf("host veth master %d mtu %d", host.Attrs().MasterIndex, host.Attrs().MTU)
	}
	// Inside: eth0 with the address, MTU and MAC, and the default route.
	err = a.in(func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if eth0.Attrs().MTU != 1400 || eth0.Attrs().HardwareAddr.String() != epA.MAC.String() || eth0.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("eth0 %+v", eth0.Attrs())
		}
		routes, err := netlink.RouteList(eth0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.String() == n.Gateway.String() {
				return nil
			}
		}
		return fmt.Errorf("no default route via %s: %v", n.Gateway, routes)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A server in b, a client in a: TCP and UDP across the bridge.
	var tcpPort, udpPort uint16
	if err := b.in(func() error { tcpPort, udpPort = echoServers(t, epB.IP.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	err = a.in(func() error {
		if err := roundTrip("tcp", net.JoinHostPort(epB.IP.String(), strconv.Itoa(int(tcpPort))), "over tcp"); err != nil {
			return err
		}
		return roundTrip("udp", net.JoinHostPort(epB.IP.String(), strconv.Itoa(int(udpPort))), "over udp")
	})
	if err != nil {
		t.Fatalf("a to b: %v", err)
	}
	// The gateway (the host side of the bridge) is reachable from a.
	gwTCP, _ := echoServers(t, n.Gateway.String())
	if err := a.in(func() error {
		return roundTrip("tcp", net.JoinHostPort(n.Gateway.String(), strconv.Itoa(int(gwTCP))), "to gateway")
	}); err != nil {
		t.Fatalf("a to gateway: %v", err)
	}
	// The host reaches the container directly.
	if err := roundTrip("tcp", net.JoinHostPort(epB.IP.String(), strconv.Itoa(int(tcpPort))), "from host"); err != nil {
		t.Fatalf("host to b: %v", err)
	}
	if _, err := m.Connect(context.Background(), n.Name, epA.ContainerID, a.path, nil); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second connect: %v", err)
	}
	if err := m.Remove(n.Name); !errors.Is(err, errdefs.ErrWrongState) {
		t.Fatalf("Remove with endpoints: %v", err)
	}
	eps, err := m.Endpoints(n.Name)
	if err != nil || len(eps) != 2 {
		t.Fatalf("Endpoints = %v, %v", eps, err)
	}
}

// TestConnectTwoNetworks puts one container on two networks: eth0 and eth1.
func TestConnectTwoNetworks(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n1, n2 := newNetwork(t, m, CreateOptions{}), newNetwork(t, m, CreateOptions{Internal: true})
	a := newHolder(t)
	id := randName(t)
	for _, n := range []Network{n1, n2} {
		if _, err := m.Connect(context.Background(), n.Name, id, a.path, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Disconnect(context.Background(), n.Name, id) })
	}
	if err := a.in(func() error {
		_, err := netlink.LinkByName("eth1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Connect(context.Background(), n2.Name, randName(t), a.path, []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("ports on an internal network: %v", err)
	}
}

func TestPublish(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	a := newHolder(t)
	lo := netip.MustParseAddr("127.0.0.1")
	ports := []PortMapping{
		{HostIP: lo, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: lo, ContainerPort: 53, Protocol: "udp"},
		// Published on the gateway address: served by DNAT alone (output chain).
		{HostIP: n.Gateway, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: n.Gateway, ContainerPort: 53, Protocol: "udp"},
	}
	ep := connect(t, m, n, a, ports)
	for i, p := range ep.Ports {
		if p.HostPort == 0 || p.ContainerPort != ports[i].ContainerPort {
			t.Fatalf("port %d: %+v", i, p)
		}
	}
	if rulesOf(t, m, n.Name, ep.ContainerID) == 0 {
		t.Fatal("no DNAT rules")
	}
	// Echo servers on the container's ports 80 and 53.
	err := a.in(func() error {
		l, err := net.Listen("tcp4", ":80")
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		u, err := net.ListenPacket("udp4", ":53")
		if err != nil {
			return err
		}
		t.Cleanup(func() { u.Close() })
		go func() {
			b := make([]byte, 2048)
			for {
				n, from, err := u.ReadFrom(b)
				if err != nil {
					return
				}
				u.WriteTo(b[:n], from)
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range ep.Ports[:2] {
		px, err := ListenProxy(p)
		if err != nil {
			t.Fatal(err)
		}
		go px.Serve(ctx, ep.IP)
	}
	for i, p := range ep.Ports {
		t.Run(p.String(), func(t *testing.T) {
			addr := net.JoinHostPort(p.HostIP.String(), strconv.Itoa(int(p.HostPort)))
			if err := roundTrip(p.Protocol, addr, "published "+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// After Disconnect, the DNAT'd port answers no more.
	if err := m.Disconnect(context.Background(), n.Name, ep.ContainerID); err != nil {
		t.Fatal(err)
	}
	if rulesOf(t, m, n.Name, ep.ContainerID) != 0 {
		t.Fatal("DNAT rules left after Disconnect")
	}
	if err := roundTrip("tcp", net.JoinHostPort(n.Gateway.String(), strconv.Itoa(int(ep.Ports[2].HostPort))), "gone"); err == nil {
		t.Fatal("published port still answers after Disconnect")
	}
}

func TestPortConflicts(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	a, b := newHolder(t), newHolder(t)
	lo := netip.MustParseAddr("127.0.0.1")
	p := freeLoopbackPort(t, "tcp")
	connect(t, m, n, a, []PortMapping{{HostIP: lo, HostPort: p, ContainerPort: 80, Protocol: "tcp"}})
	for _, tc := range []struct {
		name string
		m    PortMapping
		err  error
	}{
		{"same", PortMapping{HostIP: lo, HostPort: p, ContainerPort: 81, Protocol: "tcp"}, errdefs.ErrAlreadyExists},
		{"all addresses", PortMapping{HostPort: p, ContainerPort: 81, Protocol: "tcp"}, errdefs.ErrAlreadyExists},
		{"ipv6", PortMapping{HostIP: netip.MustParseAddr("::1"), HostPort: p, ContainerPort: 81, Protocol: "tcp"}, errdefs.ErrNotSupported},
		{"no container port", PortMapping{HostIP: lo, Protocol: "tcp"}, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Connect(context.Background(), n.Name, randName(t), b.path, []PortMapping{tc.m}); !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
	// Another protocol on the same port is fine.
	connect(t, m, n, b, []PortMapping{{HostIP: lo, HostPort: p, ContainerPort: 80, Protocol: "udp"}})
}

func TestIsolation(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n1, n2 := newNetwork(t, m, CreateOptions{}), newNetwork(t, m, CreateOptions{})
	a, b := newHolder(t), newHolder(t)
	epA := connect(t, m, n1, a, nil)
	epB := connect(t, m, n2, b, nil)
	_ = epA
	var tcpPort uint16
	if err := b.in(func() error { tcpPort, _ = echoServers(t, epB.IP.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	if !forwarding() {
		t.Log("ip_forward is off: networks are apart by routing too; set DOCK_TEST_IP_FORWARD=1 to test the rules alone")
	}
	dst := net.JoinHostPort(epB.IP.String(), strconv.Itoa(int(tcpPort)))
	if err := a.in(func() error { return roundTrip("tcp", dst, "across") }); err == nil {
		t.Fatal("a container on another network reached b")
	}
	// The host still reaches b, and b its own gateway.
	if err := roundTrip("tcp", dst, "from host"); err != nil {
		t.Fatal(err)
	}
	if forwarding() {
		// Without the isolation rules the same connection goes through:
		// the test above could fail.
		if err := removeRules(func(tag ruleTag) bool { return tag.root == m.rid && tag.ctr == "" }, false); err != nil {
			t.Fatal(err)
		}
		err := a.in(func() error { return roundTrip("tcp", dst, "across") })
		for _, n := range []Network{n1, n2} {
			if err := m.setUp(n); err != nil {
				t.Fatal(err)
			}
		}
		if err != nil {
			t.Fatalf("without isolation rules: %v", err)
		}
		if err := a.in(func() error { return roundTrip("tcp", dst, "across") }); err == nil {
			t.Fatal("rules restored, yet a reached b")
		}
	}
}

func TestDisconnect(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	a := newHolder(t)
	id := randName(t)
	ep, err := m.Connect(context.Background(), n.Name, id, a.path, []PortMapping{{ContainerPort: 80, Protocol: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if !linkExists(ep.HostVeth) || rulesOf(t, m, n.Name, id) == 0 {
		t.Fatal("veth or rules missing after Connect")
	}
	for i := range 2 { // idempotent
		if err := m.Disconnect(context.Background(), n.Name, id); err != nil {
			t.Fatalf("Disconnect %d: %v", i, err)
		}
	}
	if linkExists(ep.HostVeth) || rulesOf(t, m, n.Name, id) != 0 {
		t.Fatal("veth or rules left after Disconnect")
	}
	if err := a.in(func() error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return errors.New("eth0 left in the netns")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eps, err := m.Endpoints(n.Name)
	if err != nil || len(eps) != 0 {
		t.Fatalf("Endpoints = %v, %v", eps, err)
	}
	// The address is free again.
	ep2 := connect(t, m, n, a, nil)
	if ep2.IP != ep.IP {
		t.Fatalf("address %s not reused (got %s)", ep.IP, ep2.IP)
	}
	if err := m.Disconnect(context.Background(), "nosuchnet", id); err != nil {
		t.Fatalf("Disconnect from a missing network: %v", err)
	}
}

// TestReconcile kills a container's owner with SIGKILL and leaves a veth and
// a rule no record owns, as a crash inside Connect would; Open removes all.
func TestReconcile(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	root := t.TempDir()
	m := newManager(t, root)
	n := newNetwork(t, m, CreateOptions{})
	owner, survivor := newHolder(t), newHolder(t)
	dead, err := m.Connect(context.Background(), n.Name, randName(t), owner.path, []PortMapping{{ContainerPort: 80, Protocol: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	alive := connect(t, m, n, survivor, nil)
	// An orphan veth on the bridge and an orphan rule.
	br, _ := netlink.LinkByName(n.Bridge)
	orphan := "vd" + randName(t)[1:]
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: orphan, MasterIndex: br.Attrs().Index}, PeerName: orphan + "p"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delLink(orphan) })
	if err := setRules(ruleTag{m.rid, n.Name, "ghost"}, endpointRules(n, Endpoint{IP: dead.IP, Ports: dead.Ports})); err != nil {
		t.Fatal(err)
	}

	owner.stdin.Close()
	owner.cmd.Process.Signal(syscall.SIGKILL)
	owner.cmd.Wait()

	m2 := newManager(t, root)
	eps, err := m2.Endpoints(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ContainerID != alive.ContainerID {
		t.Fatalf("endpoints after reconcile: %+v", eps)
	}
	if linkExists(dead.HostVeth) || linkExists(orphan) {
		t.Fatal("veths left after reconcile")
	}
	if rulesOf(t, m2, n.Name, dead.ContainerID) != 0 || rulesOf(t, m2, n.Name, "ghost") != 0 {
		t.Fatal("rules left after reconcile")
	}
	if !linkExists(alive.HostVeth) || rulesOf(t, m2, n.Name, "") == 0 {
		t.Fatal("reconcile removed what is alive")
	}

	// A liveness function overrides the owner check.
	m3 := newManager(t, root, WithLiveness(func(id string) bool { return id != alive.ContainerID }))
	if eps, _ := m3.Endpoints(n.Name); len(eps) != 0 || linkExists(alive.HostVeth) {
		t.Fatalf("liveness func ignored: %+v", eps)
	}
}

// TestTableLifetime: dock's table goes with the last network unless rules
// of others (another root) are in it.
func TestTableLifetime(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	before, err := listTags()
	if err != nil {
		t.Fatal(err)
	}
	m1 := newManager(t, t.TempDir())
	m2 := newManager(t, t.TempDir())
	n1 := newNetwork(t, m1, CreateOptions{})
	n2 := newNetwork(t, m2, CreateOptions{})
	if err := m1.Remove(n1.Name); err != nil {
		t.Fatal(err)
	}
	if rulesOf(t, m2, n2.Name, "") == 0 {
		t.Fatal("removing one root's last network removed another root's rules")
	}
	if err := m2.Remove(n2.Name); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	if tb, err := c.ListTableOfFamily(tableName, nftables.TableFamilyIPv4); err == nil && tb != nil {
		// Others (tests of other packages, a dock on this host) may hold rules.
		if tags, err := listTags(); err != nil || len(tags) == 0 {
			t.Fatalf("table %s left empty after the last network (%v)", tableName, err)
		}
		t.Logf("table %s holds rules of others (%d before this test)", tableName, len(before))
	}
}

// TestDefault creates the default network in a test root, on a bridge of
// the test's own instead of dock0.
func TestDefault(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	m.defaultBridge = "dock" + randName(t)
	n, err := m.Default()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(DefaultName) })
	if n.Name != DefaultName || n.Bridge != m.defaultBridge || !linkExists(n.Bridge) {
		t.Fatalf("Default = %+v", n)
	}
	again, err := m.Default()
	if err != nil || again.ID != n.ID {
		t.Fatalf("second Default = %+v, %v", again, err)
	}
}

// TestConcurrentConnect connects containers from two managers (two lock
// holders) at once: every address is handed out once.
func TestConcurrentConnect(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	root := t.TempDir()
	ms := []*Manager{newManager(t, root), newManager(t, root)}
	n := newNetwork(t, ms[0], CreateOptions{})
	const each = 4
	type result struct {
		ep  *Endpoint
		err error
	}
	res := make(chan result, 2*each)
	for i := range 2 * each {
		h := newHolder(t)
		m := ms[i%2]
		id := randName(t)
		t.Cleanup(func() { m.Disconnect(context.Background(), n.Name, id) })
		go func() {
			ep, err := m.Connect(context.Background(), n.Name, id, h.path, nil)
			res <- result{ep, err}
		}()
	}
	seen := map[netip.Addr]bool{}
	for range 2 * each {
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		if seen[r.ep.IP] {
			t.Fatalf("address %s handed out twice", r.ep.IP)
		}
		seen[r.ep.IP] = true
	}
	if eps, err := ms[1].Endpoints(n.Name); err != nil || len(eps) != 2*each {
		t.Fatalf("Endpoints = %d, %v", len(eps), err)
	}
}

func TestConnectBadNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	_, err := m.Connect(context.Background(), n.Name, randName(t), "/nonexistent/ns", nil)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing netns: %v", err)
	}
	if _, err := m.Connect(context.Background(), randName(t), randName(t), "/proc/self/ns/net", nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing network: %v", err)
	}
	if eps, _ := m.Endpoints(n.Name); len(eps) != 0 {
		t.Fatalf("endpoints after failed connects: %v", eps)
	}
}

// newNamedNetNS makes a network namespace held by a bind mount under
// /var/run/netns, as `ip netns add` does, and returns an open handle on it.
func newNamedNetNS(t *testing.T) (name string, handle *netns.NsHandle) {
	t.Helper()
	name = randName(t)
	var ns netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err = netns.NewNamed(name)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ns != -1 {
			ns.Close()
		}
		netns.DeleteNamed(name)
	})
	return name, &ns
}

// TestConnectByFd connects a namespace given as an open fd
// (/proc/self/fd/N) that no process runs in; with the namespace gone, its
// endpoint is gone at the next Open.
func TestConnectByFd(t *testing.T) {
	testutil.RequireRoot(t)
	checkNoLeaks(t)
	root := t.TempDir()
	m := newManager(t, root)
	n := newNetwork(t, m, CreateOptions{})
	name, ns := newNamedNetNS(t)
	id := randName(t)
	ep, err := m.Connect(context.Background(), n.Name, id, fmt.Sprintf("/proc/self/fd/%d", int(*ns)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Disconnect(context.Background(), n.Name, id) })
	h, err := netlink.NewHandleAt(*ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("eth0"); err != nil {
		t.Fatalf("eth0 in the namespace: %v", err)
	}
	// Still alive: a new Open keeps it.
	if eps, _ := newManager(t, root).Endpoints(n.Name); len(eps) != 1 {
		t.Fatalf("live endpoint dropped: %v", eps)
	}
	// Drop the last references; the kernel then deletes the netns and the veth.
	h.Close()
	ns.Close()
	if err := netns.DeleteNamed(name); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); linkExists(ep.HostVeth); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("veth outlived its netns")
		}
	}
	m2 := newManager(t, root)
	if eps, _ := m2.Endpoints(n.Name); len(eps) != 0 {
		t.Fatalf("endpoint of a gone netns kept: %v", eps)
	}
	if rulesOf(t, m2, n.Name, id) != 0 {
		t.Fatal("rules of a gone netns kept")
	}
}

// TestOutside plays a machine outside the host with a netns on a plain veth
// pair (198.51.100.0/30): it reaches a published port through the
// prerouting DNAT, and the container's traffic to it is masqueraded. Both
// need IPv4 forwarding.
func TestOutside(t *testing.T) {
	testutil.RequireRoot(t)
	if !forwarding() {
		t.Skip("needs ip_forward on, or DOCK_TEST_IP_FORWARD=1 to turn it on")
	}
	checkNoLeaks(t)
	m := newManager(t, t.TempDir())
	n := newNetwork(t, m, CreateOptions{})
	ctr, outside := newHolder(t), newHolder(t)
	ep := connect(t, m, n, ctr, []PortMapping{{ContainerPort: 80, Protocol: "tcp"}})

	hostAddr, outAddr := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	name := "vdx" + randName(t)[1:]
	ns, err := netns.GetFromPath(outside.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delLink(name) })
	hl, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: hostAddr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	if err := outside.in(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: outAddr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}

	// Outside to the published port on the host's address.
	if err := ctr.in(func() error {
		l, err := net.Listen("tcp4", ":80")
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	published := net.JoinHostPort(hostAddr.String(), strconv.Itoa(int(ep.Ports[0].HostPort)))
	if err := outside.in(func() error { return roundTrip("tcp", published, "from outside") }); err != nil {
		t.Fatalf("outside to published port: %v", err)
	}

	// The container to outside: masqueraded to the host's address.
	var l net.Listener
	if err := outside.in(func() (err error) { l, err = net.Listen("tcp4", outAddr.String()+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		peer <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	if err := ctr.in(func() error {
		c, err := net.DialTimeout("tcp4", l.Addr().String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("container to outside: %v", err)
	}
	if got := <-peer; got != hostAddr.String() {
		t.Fatalf("outside saw the container as %s, want the masqueraded %s", got, hostAddr)
	}
}
