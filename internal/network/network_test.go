package network

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
)

func TestParsePortMapping(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		in   string
		want []PortMapping
		err  bool
	}{
		{in: "80", want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}},
		{in: "8080:80", want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "127.0.0.1:8080:80/tcp", want: []PortMapping{{HostIP: lo, HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "127.0.0.1::53/udp", want: []PortMapping{{HostIP: lo, ContainerPort: 53, Protocol: "udp"}}},
		{in: "0.0.0.0:80:80", want: []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "[::1]:8080:80", want: []PortMapping{{HostIP: netip.MustParseAddr("::1"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "8000-8001:80-81/udp", want: []PortMapping{
			{HostPort: 8000, ContainerPort: 80, Protocol: "udp"},
			{HostPort: 8001, ContainerPort: 81, Protocol: "udp"}}},
		{in: "80-81", want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}, {ContainerPort: 81, Protocol: "tcp"}}},
		{in: "80/TCP", want: []PortMapping{{ContainerPort: 80, Protocol: "tcp"}}},
		{in: "", err: true},
		{in: "0", err: true},
		{in: "65536", err: true},
		{in: "80/sctp", err: true},
		{in: "80/", err: true},
		{in: "http:80", err: true},
		{in: "8000-8002:80-81", err: true},
		{in: "81-80", err: true},
		{in: "1.2.3:80:80", err: true},
		{in: "a:b:c:d", err: true},
		{in: "[::1]80:80", err: true},
		{in: "8080:", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePortMapping(tt.in)
			if tt.err {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParsePortMapping(%q) = %v, %v; want ErrInvalidArgument", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("mapping %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestPortMappingString(t *testing.T) {
	for _, s := range []string{"127.0.0.1:8080:80/tcp", ":80/udp", "[::1]:1:2/tcp"} {
		ms, err := ParsePortMapping(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := ms[0].String(); got != s {
			t.Errorf("String() = %q, want %q", got, s)
		}
	}
}

// echoServers starts a TCP and a UDP echo server on ip at a free port each.
func echoServers(t *testing.T, ip string) (tcpPort, udpPort uint16) {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
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
	u, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
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
	return uint16(l.Addr().(*net.TCPAddr).Port), uint16(u.LocalAddr().(*net.UDPAddr).Port)
}

// roundTrip sends msg over network to addr and checks it comes back.
func roundTrip(network, addr, msg string) error {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return errors.New("echo: got " + strconv.Quote(string(b)))
	}
	return nil
}

func freeLoopbackPort(t *testing.T, proto string) uint16 {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// TestProxyLoopback runs the userland proxy in-process between two loopback
// ports, for TCP and UDP.
func TestProxyLoopback(t *testing.T) {
	tcpPort, udpPort := echoServers(t, "127.0.0.1")
	target := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		proto string
		ctr   uint16
	}{{"tcp", tcpPort}, {"udp", udpPort}} {
		t.Run(tc.proto, func(t *testing.T) {
			m := PortMapping{HostIP: target, HostPort: freeLoopbackPort(t, tc.proto), ContainerPort: tc.ctr, Protocol: tc.proto}
			if a := ProxyAddrs(m); len(a) != 1 || a[0].Network != tc.proto+"4" || a[0].Address != "127.0.0.1:"+strconv.Itoa(int(m.HostPort)) {
				t.Fatalf("ProxyAddrs = %v", a)
			}
			p, err := ListenProxy(m)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Serve(ctx, target) }()
			addr := "127.0.0.1:" + strconv.Itoa(int(m.HostPort))
			for i := range 3 {
				if err := roundTrip(tc.proto, addr, "hello "+strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
			if tc.proto == "tcp" {
				if err := roundTrip(tc.proto, addr, "x"); err == nil {
					t.Fatal("proxy still serves after cancel")
				}
			}
		})
	}
}

func TestListenProxyRejects(t *testing.T) {
	if _, err := ListenProxy(PortMapping{ContainerPort: 80, Protocol: "tcp"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("no host port: %v", err)
	}
	if _, err := ListenProxy(PortMapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 1, ContainerPort: 80, Protocol: "sctp"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("sctp: %v", err)
	}
}
