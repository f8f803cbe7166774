package network

import (
	"net/netip"
	"strings"
	"testing"
)

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{"resolved stub", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.internal\n",
			"options edns0 trust-ad\nsearch example.internal\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		{"real servers kept", "# c\nnameserver 192.0.2.53\nnameserver ::1\nnameserver fd00::53\n",
			"# c\nnameserver 192.0.2.53\n"},
		{"empty", "", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(ResolvConf([]byte(tt.host))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	got := string(Hosts("web", []netip.Addr{netip.MustParseAddr("172.30.0.2")}))
	if !strings.HasPrefix(got, "127.0.0.1\tlocalhost\n") || !strings.HasSuffix(got, "172.30.0.2\tweb\n") {
		t.Errorf("got %q", got)
	}
}
