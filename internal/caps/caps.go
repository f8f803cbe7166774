//go:build linux

package caps

import (
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// names lists every capability this package knows, by number.
var names = [...]string{
	unix.CAP_CHOWN:              "CAP_CHOWN",
	unix.CAP_DAC_OVERRIDE:       "CAP_DAC_OVERRIDE",
	unix.CAP_DAC_READ_SEARCH:    "CAP_DAC_READ_SEARCH",
	unix.CAP_FOWNER:             "CAP_FOWNER",
	unix.CAP_FSETID:             "CAP_FSETID",
	unix.CAP_KILL:               "CAP_KILL",
	unix.CAP_SETGID:             "CAP_SETGID",
	unix.CAP_SETUID:             "CAP_SETUID",
	unix.CAP_SETPCAP:            "CAP_SETPCAP",
	unix.CAP_LINUX_IMMUTABLE:    "CAP_LINUX_IMMUTABLE",
	unix.CAP_NET_BIND_SERVICE:   "CAP_NET_BIND_SERVICE",
	unix.CAP_NET_BROADCAST:      "CAP_NET_BROADCAST",
	unix.CAP_NET_ADMIN:          "CAP_NET_ADMIN",
	unix.CAP_NET_RAW:            "CAP_NET_RAW",
	unix.CAP_IPC_LOCK:           "CAP_IPC_LOCK",
	unix.CAP_IPC_OWNER:          "CAP_IPC_OWNER",
	unix.CAP_SYS_MODULE:         "CAP_SYS_MODULE",
	unix.CAP_SYS_RAWIO:          "CAP_SYS_RAWIO",
	unix.CAP_SYS_CHROOT:         "CAP_SYS_CHROOT",
	unix.CAP_SYS_PTRACE:         "CAP_SYS_PTRACE",
	unix.CAP_SYS_PACCT:          "CAP_SYS_PACCT",
	unix.CAP_SYS_ADMIN:          "CAP_SYS_ADMIN",
	unix.CAP_SYS_BOOT:           "CAP_SYS_BOOT",
	unix.CAP_SYS_NICE:           "CAP_SYS_NICE",
	unix.CAP_SYS_RESOURCE:       "CAP_SYS_RESOURCE",
	unix.CAP_SYS_TIME:           "CAP_SYS_TIME",
	unix.CAP_SYS_TTY_CONFIG:     "CAP_SYS_TTY_CONFIG",
	unix.CAP_MKNOD:              "CAP_MKNOD",
	unix.CAP_LEASE:              "CAP_LEASE",
	unix.CAP_AUDIT_WRITE:        "CAP_AUDIT_WRITE",
	unix.CAP_AUDIT_CONTROL:      "CAP_AUDIT_CONTROL",
	unix.CAP_SETFCAP:            "CAP_SETFCAP",
	unix.CAP_MAC_OVERRIDE:       "CAP_MAC_OVERRIDE",
	unix.CAP_MAC_ADMIN:          "CAP_MAC_ADMIN",
	unix.CAP_SYSLOG:             "CAP_SYSLOG",
	unix.CAP_WAKE_ALARM:         "CAP_WAKE_ALARM",
	unix.CAP_BLOCK_SUSPEND:      "CAP_BLOCK_SUSPEND",
	unix.CAP_AUDIT_READ:         "CAP_AUDIT_READ",
	unix.CAP_PERFMON:            "CAP_PERFMON",
	unix.CAP_BPF:                "CAP_BPF",
	unix.CAP_CHECKPOINT_RESTORE: "CAP_CHECKPOINT_RESTORE",
}

// defaults is docker's default set for a container.
var defaults = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// all is the keyword docker accepts in --cap-add and --cap-drop.
const all = "ALL"

// Default returns docker's default capability set, as "CAP_X" names.
func Default() []string {
	return append([]string(nil), defaults...)
}

// Parse normalizes a capability name: case is ignored and the "CAP_"
// prefix is optional, so "net_admin" and "CAP_NET_ADMIN" are the same. It
// fails with errdefs.ErrInvalidArgument for a name it does not know; "ALL"
// is not a capability here (see [Merge]).
func Parse(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for _, k := range names {
		if k == n {
			return n, nil
		}
	}
	return "", fmt.Errorf("unknown capability %q: %w", name, errdefs.ErrInvalidArgument)
}

// All returns every capability that both this package and the running
// kernel know, in number order.
func All() []string {
	var out []string
	last := lastCap()
	for c, n := range names {
		if c <= last {
			out = append(out, n)
		}
	}
	return out
}

// Merge works out a container's capabilities from a base set (usually
// [Default]) and docker's --cap-add and --cap-drop lists, as docker does:
// adding "ALL" grants every capability except those dropped; dropping
// "ALL" keeps only those added; otherwise drops come off the base and adds
// go on. Names are parsed with [Parse]; an unknown one is an error naming
// it. The result is in capability-number order, without duplicates.
func Merge(base, add, drop []string) ([]string, error) {
	norm := func(list []string, what string) ([]string, bool, error) {
		var out []string
		hasAll := false
		for _, n := range list {
			if strings.EqualFold(strings.TrimSpace(n), all) {
				hasAll = true
				continue
			}
			p, err := Parse(n)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", what, err)
			}
			out = append(out, p)
		}
		return out, hasAll, nil
	}
	b, bAll, err := norm(base, "base set")
	if err != nil {
		return nil, err
	}
	if bAll {
		return nil, fmt.Errorf("base set: %q is not a capability: %w", all, errdefs.ErrInvalidArgument)
	}
	a, addAll, err := norm(add, "cap-add")
	if err != nil {
		return nil, err
	}
	d, dropAll, err := norm(drop, "cap-drop")
	if err != nil {
		return nil, err
	}
	var set Set
	switch {
	case addAll:
		set = mustSet(All()).Without(mustSet(d))
	case dropAll:
		set = mustSet(a)
	default:
		set = mustSet(b).Without(mustSet(d)).With(mustSet(a))
	}
	return set.Names(), nil
}

// Set is a set of capabilities, bit n standing for capability n.
type Set uint64

// NewSet parses names (see [Parse]) into a Set.
func NewSet(list []string) (Set, error) {
	var s Set
	for _, n := range list {
		p, err := Parse(n)
		if err != nil {
			return 0, err
		}
		s |= 1 << number(p)
	}
	return s, nil
}

func mustSet(list []string) Set {
	s, err := NewSet(list)
	if err != nil {
		panic(err) // names were parsed already
	}
	return s
}

func number(name string) int {
	for c, n := range names {
		if n == name {
			return c
		}
	}
	return -1
}

// Has reports whether s holds capability number c.
func (s Set) Has(c int) bool { return c >= 0 && c < 64 && s&(1<<c) != 0 }

// With returns s plus o.
func (s Set) With(o Set) Set { return s | o }

// Without returns s less o.
func (s Set) Without(o Set) Set { return s &^ o }

// Names returns the names in s, in number order.
func (s Set) Names() []string {
	out := make([]string, 0, bits.OnesCount64(uint64(s)))
	for c, n := range names {
		if s.Has(c) {
			out = append(out, n)
		}
	}
	return out
}

// State is what a thread holds: the five capability sets.
type State struct {
	Bounding, Effective, Permitted, Inheritable, Ambient Set
}

// ForUser gives the state docker gives a container with capabilities caps
// whose process runs as uid: root holds caps in its bounding, permitted
// and effective sets; any other user gets caps as its bounding set only,
// as execve would leave a non-root process. Inheritable and ambient sets
// are empty in both cases.
func ForUser(caps Set, uid int) State {
	if uid == 0 {
		return State{Bounding: caps, Effective: caps, Permitted: caps}
	}
	return State{Bounding: caps}
}

// Available returns the calling thread's bounding set: the most a
// container started from it can hold. A caller granting "ALL" in a
// restricted environment (itself inside a container) intersects with it,
// since [Apply] fails rather than grant less than asked.
func Available() Set {
	var s Set
	for c := 0; c < 64; c++ {
		r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			break
		}
		if r == 1 {
			s |= 1 << c
		}
	}
	return s
}

// Last returns the highest capability the running kernel knows.
func Last() int { return lastCap() }

// lastCap finds, once, the highest capability the running kernel knows,
// probing the bounding set (which answers EINVAL past it): some forty
// system calls.
var lastCap = sync.OnceValue(probeLastCap)

func probeLastCap() int {
	last := -1
	for c := 0; c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			break
		}
		last = c
	}
	return last
}

// Apply sets the calling thread's capabilities to st: it drops from the
// bounding set what st.Bounding lacks, then sets the effective, permitted
// and inheritable sets, then clears the ambient set and raises
// st.Ambient. Capabilities the kernel does not know are ignored. The
// thread must hold CAP_SETPCAP and a permitted set covering st's; a
// process that changes user calls [ApplyBounding], then sets
// PR_SET_KEEPCAPS and changes user, then [ApplyThread] instead.
func Apply(st State) error {
	if err := ApplyBounding(st.Bounding); err != nil {
		return err
	}
	return ApplyThread(st)
}

// ApplyBounding drops from the calling thread's bounding set every
// capability not in keep. It needs CAP_SETPCAP.
func ApplyBounding(keep Set) error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if keep.Has(c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// ApplyThread sets the calling thread's effective, permitted and
// inheritable sets to st's with capset(2), then replaces its ambient set
// with st.Ambient.
func ApplyThread(st State) error {
	known := Set(1)<<(lastCap()+1) - 1
	eff, prm, inh := st.Effective&known, st.Permitted&known, st.Inheritable&known
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(prm), Inheritable: uint32(inh)},
		{Effective: uint32(eff >> 32), Permitted: uint32(prm >> 32), Inheritable: uint32(inh >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	amb := st.Ambient & known
	for c := 0; amb != 0 && c < 64; c++ {
		if !amb.Has(c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d: %w", c, err)
		}
	}
	return nil
}

// KeepOnSetuid sets or clears PR_SET_KEEPCAPS, which keeps the permitted
// set across a change from root to another user.
func KeepOnSetuid(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, v, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	return nil
}
