package runtime

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
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

// filterFile returns Docker's default profile compiled for caps, as a file
// beside the sealed binary that Start passes to the monitor. Compiling costs
// milliseconds, so each capability set is compiled once per binary and
// kernel, not once per container.
func filterFile(exe string, caps []string) (string, error) {
	key := slices.Clone(caps)
	slices.Sort(key)
	var uts unix.Utsname
	unix.Uname(&uts)
	sum := sha256.Sum256([]byte(path.Base(exe) + "\x00" + unix.ByteSliceToString(uts.Release[:]) + "\x00" + strings.Join(key, ",")))
	path := path.Join(path.Dir(exe), "seccomp-"+hex.EncodeToString(sum[:12])+".bpf")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	prog, err := seccomp.Compile(seccomp.DefaultProfile(), caps, "")
	if err != nil {
		return "", fmt.Errorf("seccomp: %w", err)
	}
	buf := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		buf = binary.NativeEndian.AppendUint16(buf, ins.Code)
		buf = append(buf, ins.Jt, ins.Jf)
		buf = binary.NativeEndian.AppendUint32(buf, ins.K)
	}
	if err := writeFileAtomic(path, buf, true); err != nil {
		return "", fmt.Errorf("seccomp: %w", err)
	}
	return path, nil
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
