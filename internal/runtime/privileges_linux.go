package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/caps"
	"github.com/dockkit/dock/internal/seccomp"
)

// dropPrivileges turns the init into the user's process: bounding set,
// groups and ids, capabilities, no_new_privs, and seccomp as late as it can
// go. Capabilities and seccomp filters are per thread; the init's thread is
// locked and execs.
func dropPrivileges(spec *Spec, filter []unix.SockFilter) error {
	p := &spec.Process
	loadSeccomp := func() error { return seccomp.Load(filter) }
	if filter != nil && !p.NoNewPrivs {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
		// the process may be about to lose.
		if err := loadSeccomp(); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	keep, err := caps.NewSet(p.Caps)
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	if !p.Privileged {
		if err := caps.ApplyBounding(keep); err != nil {
			return fmt.Errorf("capabilities: bounding set: %w", err)
		}
	}
	// Keep the permitted set across the change of user, so the final sets
	// can be chosen afterwards.
	if err := caps.KeepOnSetuid(true); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := caps.KeepOnSetuid(false); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	if !p.Privileged {
		// Inheritable stays empty (CVE-2022-24769); a user other than root
		// loses these at exec anyway, as with Docker.
		if err := caps.ApplyThread(caps.State{Effective: keep, Permitted: keep}); err != nil {
			return fmt.Errorf("capabilities: %w", err)
		}
	}
	if p.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if filter != nil && p.NoNewPrivs {
		if err := loadSeccomp(); err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
	}
	return nil
}

// setUser changes groups and ids of this thread only. The Go runtime's own
// setuid family changes every thread by signalling each, which costs
// milliseconds; the init execs from this thread, so the others do not
// matter.
func setUser(u User) error {
	groups := append([]uint32(nil), u.AdditionalGIDs...)
	var ptr unsafe.Pointer
	if len(groups) > 0 {
		ptr = unsafe.Pointer(&groups[0])
	}
	if _, _, e := unix.RawSyscall(sysSetgroups, uintptr(len(groups)), uintptr(ptr), 0); e != 0 {
		return fmt.Errorf("setgroups %v: %w", groups, e)
	}
	g := uintptr(u.GID)
	if _, _, e := unix.RawSyscall(sysSetresgid, g, g, g); e != 0 {
		return fmt.Errorf("setresgid %d: %w", u.GID, e)
	}
	id := uintptr(u.UID)
	if _, _, e := unix.RawSyscall(sysSetresuid, id, id, id); e != 0 {
		return fmt.Errorf("setresuid %d: %w", u.UID, e)
	}
	return nil
}

// seccompFile holds the compiled filter, written by Start and loaded by
// init: compiling Docker's profile once per capability set in the caller
// costs less than once in every init.
const seccompFile = "seccomp.bpf"

var filterCache sync.Map // sorted caps joined by "," -> []byte

// writeFilter compiles Docker's default profile for caps into dir.
func writeFilter(dir string, caps []string) error {
	key := slices.Clone(caps)
	slices.Sort(key)
	k := strings.Join(key, ",")
	b, ok := filterCache.Load(k)
	if !ok {
		prog, err := seccomp.Compile(seccomp.DefaultProfile(), caps, "")
		if err != nil {
			return fmt.Errorf("seccomp: %w", err)
		}
		buf := make([]byte, 0, 8*len(prog))
		for _, ins := range prog {
			buf = binary.NativeEndian.AppendUint16(buf, ins.Code)
			buf = append(buf, ins.Jt, ins.Jf)
			buf = binary.NativeEndian.AppendUint32(buf, ins.K)
		}
		b, _ = filterCache.LoadOrStore(k, buf)
	}
	return os.WriteFile(filepath.Join(dir, seccompFile), b.([]byte), 0o600)
}

// readFilter reads the filter Start wrote, if the spec asks for one.
func readFilter(spec *Spec) ([]byte, error) {
	if !spec.Process.Seccomp || spec.Process.Privileged {
		return nil, nil
	}
	return os.ReadFile(filepath.Join(spec.StateDir, seccompFile))
}

func decodeFilter(b []byte) ([]unix.SockFilter, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("seccomp: %d bytes is no filter", len(b))
	}
	prog := make([]unix.SockFilter, len(b)/8)
	for i := range prog {
		r := b[8*i:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(r), Jt: r[2], Jf: r[3], K: binary.NativeEndian.Uint32(r[4:])}
	}
	return prog, nil
}
