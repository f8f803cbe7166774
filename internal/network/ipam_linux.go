package network

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/vishvananda/netlink"
)

// subnetPools are where Create picks a network's /24 when none is given.
var subnetPools = []netip.Prefix{
	netip.MustParsePrefix("172.30.0.0/16"),
	netip.MustParsePrefix("172.31.0.0/16"),
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// hostPrefixes returns the destinations of the host's IPv4 routes (all
// tables), default routes left out.
func hostPrefixes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("host routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), ones).Masked())
	}
	return out, nil
}

// pickSubnet checks want, or picks a free /24 from the pools: one that no
// dock network holds and no host route overlaps.
func pickSubnet(want netip.Prefix, nets []*record) (netip.Prefix, error) {
	if want.IsValid() {
		if !want.Addr().Is4() || want.Bits() > 30 || want.Bits() < 8 {
			return netip.Prefix{}, fmt.Errorf("subnet %s: want IPv4 /8 to /30: %w", want, errdefs.ErrInvalidArgument)
		}
		want = want.Masked()
		for _, r := range nets {
			if r.Network.Subnet.Overlaps(want) {
				return netip.Prefix{}, fmt.Errorf("subnet %s overlaps network %q's %s: %w", want, r.Network.Name, r.Network.Subnet, errdefs.ErrAlreadyExists)
			}
		}
		routes, err := hostPrefixes()
		if err != nil {
			return netip.Prefix{}, err
		}
		for _, p := range routes {
			// Host routes inside the subnet (local, broadcast) count too:
			// another bridge, or an interface of the host, has it.
			if p.Overlaps(want) && p.Bits() >= 8 {
				return netip.Prefix{}, fmt.Errorf("subnet %s overlaps the host's route to %s: %w", want, p, errdefs.ErrAlreadyExists)
			}
		}
		return want, nil
	}
	routes, err := hostPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	taken := routes
	for _, r := range nets {
		taken = append(taken, r.Network.Subnet)
	}
	for _, pool := range subnetPools {
		for p := netip.PrefixFrom(pool.Addr(), 24); pool.Contains(p.Addr()); p = netip.PrefixFrom(lastAddr(p).Next(), 24) {
			free := true
			for _, t := range taken {
				if t.Overlaps(p) {
					free = false
					break
				}
			}
			if free {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 left in %v: %w", subnetPools, errdefs.ErrNotFound)
}

// allocIP returns the lowest host address of r's subnet that is neither the
// gateway nor any endpoint's.
func allocIP(r *record) (netip.Addr, error) {
	used := map[netip.Addr]bool{r.Network.Gateway: true}
	for _, ep := range r.Endpoints {
		used[ep.IP] = true
	}
	last := lastAddr(r.Network.Subnet)
	for a := r.Network.Subnet.Masked().Addr().Next(); a.IsValid() && a != last; a = a.Next() {
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s: no free address: %w", r.Network.Subnet, errdefs.ErrNotFound)
}

func portsClash(a, b PortMapping) bool {
	return a.Protocol == b.Protocol && a.HostPort == b.HostPort &&
		(!a.HostIP.IsValid() || !b.HostIP.IsValid() || a.HostIP == b.HostIP)
}

// pickPorts checks the wanted host ports against the ports other endpoints
// publish and picks free ones for those that are 0.
func pickPorts(want []PortMapping, nets []*record) ([]PortMapping, error) {
	var used []PortMapping
	for _, r := range nets {
		for _, ep := range r.Endpoints {
			used = append(used, ep.Ports...)
		}
	}
	var out []PortMapping
	for _, m := range want {
		if m.HostPort != 0 {
			for _, u := range used {
				if portsClash(m, u) {
					return nil, fmt.Errorf("port %s: host port %d/%s is already allocated: %w", m, m.HostPort, m.Protocol, errdefs.ErrAlreadyExists)
				}
			}
		} else {
			p, err := freePort(m, used)
			if err != nil {
				return nil, err
			}
			m.HostPort = p
		}
		used = append(used, m)
		out = append(out, m)
	}
	return out, nil
}

// freePort asks the kernel for a free port on m's host address and checks
// that no endpoint publishes it.
func freePort(m PortMapping, used []PortMapping) (uint16, error) {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	for range 64 {
		var port int
		switch m.Protocol {
		case "udp":
			c, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
			if err != nil {
				return 0, fmt.Errorf("port %s: %w", m, err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		default:
			l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
			if err != nil {
				return 0, fmt.Errorf("port %s: %w", m, err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		c := m
		c.HostPort = uint16(port)
		clash := false
		for _, u := range used {
			clash = clash || portsClash(c, u)
		}
		if !clash {
			return uint16(port), nil
		}
	}
	return 0, fmt.Errorf("port %s: no free host port: %w", m, errdefs.ErrNotFound)
}
