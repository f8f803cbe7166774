package dock

import (
	"errors"
	"strings"
	"testing"
)

// TestEtcFiles checks a container's hosts and resolv.conf against what
// Docker writes for the same host files and options.
func TestEtcFiles(t *testing.T) {
	hostResolv := "# made by a tool\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example lan\noptions edns0 trust-ad\nsortlist 130.155.160.0/255.255.240.0\n"
	tests := []struct {
		name        string
		hostNet     bool
		opts        []CreateOption
		hosts, conf string
	}{
		{"defaults", false, nil,
			"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox\n",
			"nameserver 10.0.0.2\nsearch corp.example lan\noptions edns0 trust-ad\nsortlist 130.155.160.0/255.255.240.0\n"},
		{"host network keeps loopback servers", true, nil,
			"10.1.1.1 hosthost\n",
			"nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example lan\noptions edns0 trust-ad\nsortlist 130.155.160.0/255.255.240.0\n"},
		{"options", false, []CreateOption{WithExtraHosts("db:10.0.0.5", "v6=fd00::1", "v6b:[fd00::2]"), WithDNS("192.0.2.1", "2001:db8::1"),
			WithDNSSearch("."), WithDNSOptions("ndots:2")},
			"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox\n10.0.0.5\tdb\nfd00::1\tv6\nfd00::2\tv6b\n",
			"nameserver 192.0.2.1\nnameserver 2001:db8::1\noptions ndots:2\nsortlist 130.155.160.0/255.255.240.0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c createConfig
			for _, o := range tt.opts {
				if err := o(&c); err != nil {
					t.Fatal(err)
				}
			}
			f := etcFiles("box", tt.hostNet, &c.dns, "10.1.1.1 hosthost", hostResolv, "nameserver 10.9.9.9\n")
			if f["hosts"] != tt.hosts || f["resolv.conf"] != tt.conf || f["hostname"] != "box\n" {
				t.Errorf("hosts %q\nresolv.conf %q\nwant %q\nand %q", f["hosts"], f["resolv.conf"], tt.hosts, tt.conf)
			}
		})
	}
	// Only systemd-resolved's stub on the host: the servers behind it, as
	// Docker reads them; with none, Docker's fallback.
	stub := "nameserver 127.0.0.53\nsearch lan\n"
	if got := etcFiles("box", false, &dnsConfig{}, "", stub, "nameserver 10.9.9.9\nsearch corp\n")["resolv.conf"]; got != "nameserver 10.9.9.9\nsearch corp\n" {
		t.Errorf("resolv.conf behind systemd-resolved: %q", got)
	}
	if got := etcFiles("box", false, &dnsConfig{}, "", stub, "")["resolv.conf"]; got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\n" {
		t.Errorf("resolv.conf with loopback servers only: %q", got)
	}
	if got := etcFiles("box", true, &dnsConfig{}, "", stub, "nameserver 10.9.9.9\n")["resolv.conf"]; got != stub {
		t.Errorf("resolv.conf on the host's network: %q, want the host's", got)
	}
	if err := WithExtraHosts("gw:host-gateway")(&createConfig{}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("WithExtraHosts host-gateway: %v, want ErrNotSupported", err)
	}
	for _, o := range []CreateOption{WithExtraHosts("nohost"), WithExtraHosts("db:10.0.0.300"), WithExtraHosts(":10.0.0.1"),
		WithDNS("dns.example"), WithDNSSearch("a b"), WithDNSOptions("")} {
		if err := o(&createConfig{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("a bad option: %v, want ErrInvalidArgument", err)
		}
	}
}

// TestContainerEtcFiles checks that a container sees the hosts and
// resolv.conf its options ask for.
func TestContainerEtcFiles(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, stdout, stderr := runContainer(t, h, img, WithExtraHosts("db:10.0.0.5"), WithDNS("192.0.2.1"), WithDNSSearch("example.org"),
		WithCmd("sh", "-c", "grep db /etc/hosts; cat /etc/resolv.conf"))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, stderr)
	}
	out := stdout.String()
	for _, want := range []string{"10.0.0.5\tdb\n", "nameserver 192.0.2.1\nsearch example.org\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
