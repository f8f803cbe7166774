package network

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// fallbackNameservers are the resolvers Docker puts in a container's
// resolv.conf when the host's are all on loopback.
var fallbackNameservers = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf turns the host's resolv.conf into a bridged container's: a
// nameserver on the host's loopback (systemd-resolved's 127.0.0.53, say) is
// unreachable from the container's netns and is dropped; when none is left,
// Docker's public fallbacks are written. search and options lines stay.
// Containers on the host network take the host's file as it is.
func ResolvConf(host []byte) []byte {
	var out bytes.Buffer
	kept := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.Unmap().IsLoopback() {
				continue
			}
			if a.Is6() && !a.Is4In6() {
				continue // the bridge networks are IPv4 only
			}
			kept++
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if kept == 0 {
		for _, ns := range fallbackNameservers {
			fmt.Fprintf(&out, "nameserver %s\n", ns)
		}
	}
	return out.Bytes()
}

// Hosts returns a container's /etc/hosts as Docker writes it: loopback
// entries, then hostname on each of the container's addresses.
func Hosts(hostname string, addrs []netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("ff00::0\tip6-mcastprefix\n")
	b.WriteString("ff02::1\tip6-allnodes\n")
	b.WriteString("ff02::2\tip6-allrouters\n")
	for _, a := range addrs {
		if hostname != "" && a.IsValid() {
			fmt.Fprintf(&b, "%s\t%s\n", a, hostname)
		}
	}
	return b.Bytes()
}
