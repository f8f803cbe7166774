package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// tableName is dock's nftables table (family ip), shared by every state root
// on the host. Every rule in it carries a comment "dock root=R net=NAME" or
// "dock root=R net=NAME ctr=ID" naming its owner; R tells state roots apart.
const tableName = "dock"

// bridgePrefix starts every dock bridge's name, so that one rule per network
// can isolate it from all other dock networks.
const bridgePrefix = "dock"

var nftTable = &nftables.Table{Family: nftables.TableFamilyIPv4, Name: tableName}

type chainSpec struct {
	name string
	typ  nftables.ChainType
	hook *nftables.ChainHook
	prio *nftables.ChainPriority
}

var (
	chPrerouting  = chainSpec{"prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest}
	chOutput      = chainSpec{"output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest}
	chPostrouting = chainSpec{"postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource}
	chForward     = chainSpec{"forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter}
	allChains     = []chainSpec{chPrerouting, chOutput, chPostrouting, chForward}
)

func (c chainSpec) chain() *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{Name: c.name, Table: nftTable, Type: c.typ, Hooknum: c.hook, Priority: c.prio, Policy: &accept}
}

// ruleTag is the owner written into a rule's comment.
type ruleTag struct{ root, net, ctr string }

func (t ruleTag) String() string {
	s := "dock root=" + t.root + " net=" + t.net
	if t.ctr != "" {
		s += " ctr=" + t.ctr
	}
	return s
}

func parseTag(ud []byte) (ruleTag, bool) {
	s, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok || !strings.HasPrefix(s, "dock ") {
		return ruleTag{}, false
	}
	var t ruleTag
	for _, f := range strings.Fields(s[len("dock "):]) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "root":
			t.root = v
		case "net":
			t.net = v
		case "ctr":
			t.ctr = v
		}
	}
	return t, t.net != "" && t.root != ""
}

type rule struct {
	chain chainSpec
	exprs []expr.Any
}

func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func matchIf(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifname(name)},
	}
}

// matchAddr matches the IPv4 source (src) or destination address against p.
func matchAddr(src bool, op expr.CmpOp, p netip.Prefix) []expr.Any {
	off := uint32(16)
	if src {
		off = 12
	}
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: a[:]},
	}
}

func matchLocalDst() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func matchPort(proto string, port uint16) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func dnatTo(ip netip.Addr, port uint16) []expr.Any {
	a := ip.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

var drop = &expr.Verdict{Kind: expr.VerdictDrop}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// networkRules are the rules a network owns: masquerade for its outbound
// traffic and isolation from other dock networks (from everything, if internal).
func networkRules(n Network) []rule {
	var rs []rule
	if n.Internal {
		rs = append(rs,
			rule{chForward, cat(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, n.Bridge), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge), []expr.Any{drop})},
			rule{chForward, cat(matchIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, n.Bridge), matchIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, n.Bridge), []expr.Any{drop})},
		)
		return rs
	}
	rs = append(rs,
		rule{chPostrouting, cat(matchAddr(true, expr.CmpOpEq, n.Subnet), matchIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, n.Bridge), []expr.Any{&expr.Masq{}})},
		rule{chForward, cat(matchIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, n.Bridge),
			[]expr.Any{
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(n.Bridge)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(bridgePrefix)},
				drop,
			})},
	)
	return rs
}

// endpointRules are the DNAT rules of one endpoint's published ports.
// Published ports on a loopback address get none: the userland proxy serves them.
func endpointRules(n Network, ep Endpoint) []rule {
	var rs []rule
	for _, m := range ep.Ports {
		if m.HostIP.IsLoopback() {
			continue
		}
		// Any local address but loopback, which DNAT cannot serve, or the one asked for.
		dst := cat(matchLocalDst(), matchAddr(false, expr.CmpOpNeq, netip.MustParsePrefix("127.0.0.0/8")))
		if m.HostIP.IsValid() {
			dst = matchAddr(false, expr.CmpOpEq, netip.PrefixFrom(m.HostIP, 32))
		}
		rs = append(rs,
			// From outside, except from the container's own bridge: hairpin
			// traffic goes through the proxy as with docker-proxy.
			rule{chPrerouting, cat(dst, matchIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, n.Bridge), matchPort(m.Protocol, m.HostPort), dnatTo(ep.IP, m.ContainerPort))},
			// From the host itself.
			rule{chOutput, cat(dst, matchPort(m.Protocol, m.HostPort), dnatTo(ep.IP, m.ContainerPort))},
		)
	}
	return rs
}

// nftLockPath is a host-wide lock for changes to dock's table: state roots
// have locks of their own, but share the table, and removing it when empty
// must not race another root adding rules.
const nftLockPath = "/run/dock/nftables.lock"

func nftLock() (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(nftLockPath), 0o700); err != nil {
		return nil, fmt.Errorf("nftables lock: %w", err)
	}
	f, err := os.OpenFile(nftLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nftables lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("nftables lock: %w", err)
	}
	return func() { f.Close() }, nil
}

func nftConn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// setRules replaces, in one transaction, the rules tagged tag (all of a
// network's endpoint rules too when tag has no container and all is set)
// with rs. It creates the table and chains as needed.
func setRules(tag ruleTag, rs []rule) error {
	unlock, err := nftLock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := nftConn()
	if err != nil {
		return err
	}
	c.AddTable(nftTable)
	for _, ch := range allChains {
		c.AddChain(ch.chain())
	}
	if err := delTagged(c, func(t ruleTag) bool { return t == tag }); err != nil {
		return err
	}
	for _, r := range rs {
		c.AddRule(&nftables.Rule{
			Table:    nftTable,
			Chain:    r.chain.chain(),
			Exprs:    r.exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, tag.String()),
		})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", tableName, err)
	}
	return nil
}

// delTagged queues the deletion of every rule whose tag matches.
func delTagged(c *nftables.Conn, match func(ruleTag) bool) error {
	for _, ch := range allChains {
		rules, err := c.GetRules(nftTable, &nftables.Chain{Name: ch.name, Table: nftTable})
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("nftables chain %s: %w", ch.name, err)
		}
		for _, r := range rules {
			if t, ok := parseTag(r.UserData); ok && match(t) {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("nftables chain %s: %w", ch.name, err)
				}
			}
		}
	}
	return nil
}

// removeRules deletes the rules that match; with dropTable it deletes the
// whole table instead when no other rule would be left in it.
func removeRules(match func(ruleTag) bool, dropTable bool) error {
	unlock, err := nftLock()
	if err != nil {
		return err
	}
	defer unlock()
	c, err := nftConn()
	if err != nil {
		return err
	}
	if t, err := c.ListTableOfFamily(tableName, nftables.TableFamilyIPv4); err != nil || t == nil {
		return nil // no table, no rules
	}
	left := 0
	for _, ch := range allChains {
		rules, err := c.GetRules(nftTable, &nftables.Chain{Name: ch.name, Table: nftTable})
		if err != nil {
			continue
		}
		for _, r := range rules {
			if t, ok := parseTag(r.UserData); !ok || !match(t) {
				left++
			}
		}
	}
	if dropTable && left == 0 {
		c.DelTable(nftTable)
	} else if err := delTagged(c, match); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", tableName, err)
	}
	return nil
}

// listTags returns the tags of all rules in dock's table.
func listTags() ([]ruleTag, error) {
	c, err := nftConn()
	if err != nil {
		return nil, err
	}
	if t, err := c.ListTableOfFamily(tableName, nftables.TableFamilyIPv4); err != nil || t == nil {
		return nil, nil
	}
	var tags []ruleTag
	for _, ch := range allChains {
		rules, err := c.GetRules(nftTable, &nftables.Chain{Name: ch.name, Table: nftTable})
		if err != nil {
			continue
		}
		for _, r := range rules {
			if t, ok := parseTag(r.UserData); ok {
				tags = append(tags, t)
			}
		}
	}
	return tags, nil
}
