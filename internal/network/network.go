// Package network gives dock's containers Docker's bridge networking: named
// networks, each a Linux bridge with its own IPv4 subnet; a veth pair per
// container; masquerade for outbound traffic, DNAT for published ports and
// isolation between networks, all in one nftables table "dock"; and a small
// userland proxy for published ports reached over loopback.
//
// State lives under <root>/networks/ as one JSON file per network holding its
// endpoints (the IP allocations). Every change runs under a file lock and is
// written as temp file, fsync, rename, so several processes may share a root
// and a crash leaves either the old or the new state. [Open] reconciles what a
// crash or a killed container left behind.
//
// A container start uses it so: with the init process in its new network
// namespace (lo up) and before the user's command runs, [Manager.Connect]
// with "/proc/<pid>/ns/net" and the ports from [ParsePortMapping]; write
// [ResolvConf] and [Hosts] into the rootfs; the monitor runs [ServeProxy] for
// each of the returned Endpoint's ports while the container lives; when the
// container exits, [Manager.Disconnect]. "--network host" and "none" need
// none of this: the first joins the host's namespace, the second keeps the
// new one with lo alone.
package network

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

// DefaultName is the name of the network [Manager.Default] creates: Docker's "bridge".
const DefaultName = "bridge"

// DefaultBridge is the bridge device of the default network.
const DefaultBridge = "dock0"

// Network is a named bridge network.
type Network struct {
	Name     string
	ID       string
	Bridge   string       // the bridge device on the host
	Subnet   netip.Prefix // IPv4
	Gateway  netip.Addr   // the bridge's address, the containers' default route
	Internal bool         // no traffic in or out of the subnet except to the gateway
	MTU      int
	Created  time.Time
}

// CreateOptions tunes [Manager.Create]. The zero value picks everything.
type CreateOptions struct {
	// Subnet is the network's IPv4 subnet; zero picks a free /24 from
	// 172.30.0.0/15 that no dock network and no host route overlaps.
	Subnet netip.Prefix
	// Gateway is the bridge's address; zero takes the subnet's first address.
	Gateway netip.Addr
	// Bridge names the bridge device; empty derives "dock-<id[:10]>".
	Bridge string
	// Internal cuts the network off from everything but itself.
	Internal bool
	// MTU of the bridge and the veths; 0 means 1500.
	MTU int
}

// PortMapping publishes a container port on the host, as docker's -p does.
type PortMapping struct {
	HostIP        netip.Addr // invalid (zero) means every host address
	HostPort      uint16     // 0 picks a free port at Connect
	ContainerPort uint16
	Protocol      string // "tcp" or "udp"
}

// String spells m as docker's -p does, "127.0.0.1:8080:80/tcp".
func (m PortMapping) String() string {
	hp := ""
	if m.HostPort != 0 {
		hp = strconv.Itoa(int(m.HostPort))
	}
	s := hp + ":" + strconv.Itoa(int(m.ContainerPort)) + "/" + m.Protocol
	if m.HostIP.IsValid() {
		ip := m.HostIP.String()
		if m.HostIP.Is6() {
			ip = "[" + ip + "]"
		}
		s = ip + ":" + s
	}
	return s
}

// Endpoint is one container's attachment to one network.
type Endpoint struct {
	ContainerID string
	Network     string
	HostVeth    string // host side of the veth pair; the container side is eth0
	IP          netip.Addr
	Prefix      netip.Prefix // the network's subnet
	Gateway     netip.Addr   // the default route, except on an internal network
	MAC         net.HardwareAddr
	Ports       []PortMapping // with the host ports picked at Connect
}

var (
	nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`) })
	idRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`) })
)

func checkName(name string) error {
	if !nameRE().MatchString(name) {
		return fmt.Errorf("network name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 64 characters: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func checkContainerID(id string) error {
	if !idRE().MatchString(id) {
		return fmt.Errorf("container id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ParsePortMapping parses one docker -p value: "80", "8080:80",
// "127.0.0.1:8080:80/tcp", "127.0.0.1::80", "[::1]:8080:80",
// "8000-8001:80-81/udp". A range yields one mapping per port; a container
// port without a host port gets a free host port at Connect.
func ParsePortMapping(s string) ([]PortMapping, error) {
	bad := func(why string) error {
		return fmt.Errorf("port mapping %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	rest, proto := s, "tcp"
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		rest, proto = rest[:i], strings.ToLower(rest[i+1:])
		switch proto {
		case "tcp", "udp":
		case "":
			return nil, bad("empty protocol")
		default:
			return nil, bad(fmt.Sprintf("protocol %q: want tcp or udp", proto))
		}
	}
	if rest == "" {
		return nil, bad("no container port")
	}
	var ipStr, hostStr, ctrStr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return nil, bad("IPv6 host address needs \"[addr]:host:container\"")
		}
		ipStr, rest = rest[1:end], rest[end+2:]
		parts := strings.Split(rest, ":")
		if len(parts) != 2 {
			return nil, bad("want [IP]:HOST:CONTAINER")
		}
		hostStr, ctrStr = parts[0], parts[1]
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrStr = parts[0]
		case 2:
			hostStr, ctrStr = parts[0], parts[1]
		case 3:
			ipStr, hostStr, ctrStr = parts[0], parts[1], parts[2]
		default:
			return nil, bad("want [IP:]HOST:CONTAINER[/PROTO]")
		}
	}
	var hostIP netip.Addr
	if ipStr != "" {
		a, err := netip.ParseAddr(ipStr)
		if err != nil || a.Zone() != "" {
			return nil, bad(fmt.Sprintf("host address %q is not an IP address", ipStr))
		}
		hostIP = a.Unmap()
		if hostIP.IsUnspecified() && hostIP.Is4() {
			hostIP = netip.Addr{} // 0.0.0.0 is every address, as unset
		}
	}
	clo, chi, err := parsePortRange(ctrStr, false)
	if err != nil {
		return nil, bad("container port: " + err.Error())
	}
	hlo, hhi := uint16(0), uint16(0)
	if hostStr != "" {
		if hlo, hhi, err = parsePortRange(hostStr, true); err != nil {
			return nil, bad("host port: " + err.Error())
		}
		if hhi-hlo != chi-clo {
			return nil, bad(fmt.Sprintf("host range %s and container range %s differ in length", hostStr, ctrStr))
		}
		if hlo == 0 && chi != clo {
			return nil, bad("host port 0 with a container range")
		}
	}
	var out []PortMapping
	for i := 0; i <= int(chi-clo); i++ {
		m := PortMapping{HostIP: hostIP, ContainerPort: clo + uint16(i), Protocol: proto}
		if hlo != 0 {
			m.HostPort = hlo + uint16(i)
		}
		out = append(out, m)
	}
	return out, nil
}

func parsePortRange(s string, allowZero bool) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a, allowZero && !isRange); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(b, false); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return lo, hi, nil
}

func parsePort(s string, allowZero bool) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n == 0 && !allowZero {
		return 0, fmt.Errorf("port 0")
	}
	return uint16(n), nil
}
