package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

// ProxyAddr is one socket a published port's userland proxy listens on.
type ProxyAddr struct {
	Network string // "tcp4", "tcp6", "udp4" or "udp6"
	Address string // host:port
}

// ProxyAddrs tells where the userland proxy for m listens: HostIP:HostPort,
// or 0.0.0.0:HostPort when HostIP is unset. Traffic to a non-loopback host
// address is forwarded by nftables DNAT and never reaches the proxy; the proxy
// serves loopback (which DNAT cannot reach) and holds the port so that no
// other program takes it, as docker-proxy does.
func ProxyAddrs(m PortMapping) []ProxyAddr {
	ip, fam := "0.0.0.0", "4"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
		if m.HostIP.Is6() {
			fam = "6"
		}
	}
	return []ProxyAddr{{Network: m.Protocol + fam, Address: net.JoinHostPort(ip, strconv.Itoa(int(m.HostPort)))}}
}

// Proxy forwards one published port to a container, for traffic that DNAT
// does not catch. Make one with [ListenProxy], run it with [Proxy.Serve].
type Proxy struct {
	m   PortMapping
	tcp []net.Listener
	udp []net.PacketConn
}

// ListenProxy binds the sockets [ProxyAddrs] names for m, so that a caller
// knows the port is held before it goes on.
func ListenProxy(m PortMapping) (*Proxy, error) {
	if m.HostPort == 0 || m.ContainerPort == 0 {
		return nil, fmt.Errorf("proxy %s: host and container port needed: %w", m, errdefs.ErrInvalidArgument)
	}
	p := &Proxy{m: m}
	var lc net.ListenConfig
	for _, a := range ProxyAddrs(m) {
		switch m.Protocol {
		case "tcp":
			l, err := lc.Listen(context.Background(), a.Network, a.Address)
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("proxy %s: %w", m, err)
			}
			p.tcp = append(p.tcp, l)
		case "udp":
			c, err := lc.ListenPacket(context.Background(), a.Network, a.Address)
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("proxy %s: %w", m, err)
			}
			p.udp = append(p.udp, c)
		default:
			return nil, fmt.Errorf("proxy %s: protocol %q: %w", m, m.Protocol, errdefs.ErrInvalidArgument)
		}
	}
	return p, nil
}

// Close releases the proxy's sockets; Serve then returns.
func (p *Proxy) Close() error {
	for _, l := range p.tcp {
		l.Close()
	}
	for _, c := range p.udp {
		c.Close()
	}
	return nil
}

// Serve forwards connections and datagrams to target:ContainerPort until
// ctx is done or the proxy is closed. It returns nil when ctx ends it.
func (p *Proxy) Serve(ctx context.Context, target netip.Addr) error {
	to := net.JoinHostPort(target.String(), strconv.Itoa(int(p.m.ContainerPort)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		p.Close()
	}()
	var wg sync.WaitGroup
	errc := make(chan error, len(p.tcp)+len(p.udp))
	for _, l := range p.tcp {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- serveTCP(ctx, l, to) }()
	}
	for _, c := range p.udp {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- serveUDP(ctx, c, to) }()
	}
	wg.Wait()
	close(errc)
	if ctx.Err() != nil {
		return nil
	}
	for err := range errc {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("proxy %s: %w", p.m, err)
		}
	}
	return nil
}

// ServeProxy runs the userland proxy for m to target until ctx is done. A
// container's monitor runs it for each published port; it listens on
// [ProxyAddrs](m).
func ServeProxy(ctx context.Context, m PortMapping, target netip.Addr) error {
	p, err := ListenProxy(m)
	if err != nil {
		return err
	}
	return p.Serve(ctx, target)
}

func serveTCP(ctx context.Context, l net.Listener, to string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxyTCP(ctx, c, to)
		}()
	}
}

func proxyTCP(ctx context.Context, in net.Conn, to string) {
	defer in.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	out, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return
	}
	defer out.Close()
	stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// udpIdle is how long a UDP flow through the proxy lives without traffic.
const udpIdle = 90 * time.Second

// udpMaxFlows bounds the flows one UDP proxy keeps at once.
const udpMaxFlows = 1024

func serveUDP(ctx context.Context, c net.PacketConn, to string) error {
	var (
		mu    sync.Mutex
		flows = map[string]net.Conn{}
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, f := range flows {
			f.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		key := from.String()
		mu.Lock()
		f, ok := flows[key]
		if !ok && len(flows) < udpMaxFlows {
			var d net.Dialer
			if f, err = d.DialContext(ctx, "udp", to); err == nil {
				flows[key] = f
				ok = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := make([]byte, 65535)
					for {
						f.SetReadDeadline(time.Now().Add(udpIdle))
						n, err := f.Read(b)
						if err != nil {
							break
						}
						if _, err := c.WriteTo(b[:n], from); err != nil {
							break
						}
					}
					mu.Lock()
					delete(flows, key)
					mu.Unlock()
					f.Close()
				}()
			}
		}
		mu.Unlock()
		if ok {
			f.Write(buf[:n])
		}
	}
}
