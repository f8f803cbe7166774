package runtime

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/caps"
	"github.com/dockkit/dock/internal/errdefs"
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

// filterFile returns the process's seccomp profile (Docker's default one
// unless p gives its own) compiled for its capabilities, as a file beside
// the sealed binary that Start passes to the monitor. Compiling costs
// milliseconds, so each profile and capability set is compiled once per
// binary and kernel, not once per container.
func filterFile(exe string, p *Process) (string, error) {
	key := slices.Clone(p.Caps)
	slices.Sort(key)
	var uts unix.Utsname
	unix.Uname(&uts)
	h := sha256.New()
	h.Write([]byte(path.Base(exe) + "\x00" + unix.ByteSliceToString(uts.Release[:]) + "\x00" + strings.Join(key, ",") + "\x00"))
	h.Write(p.SeccompProfile)
	path := path.Join(path.Dir(exe), "seccomp-"+hex.EncodeToString(h.Sum(nil)[:12])+".bpf")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	prog, err := CompileSeccomp(p.SeccompProfile, p.Caps)
	if err != nil {
		return "", err
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

// CompileSeccomp compiles profile, a seccomp profile in Docker's JSON
// format, or Docker's default one when it is empty, for a process holding
// caps. Its error names what in the profile is wrong.
func CompileSeccomp(profile []byte, caps []string) ([]unix.SockFilter, error) {
	p := seccomp.DefaultProfile()
	if len(profile) > 0 {
		p = new(seccomp.Profile)
		if err := json.Unmarshal(profile, p); err != nil {
			return nil, fmt.Errorf("seccomp: profile: %w: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	return seccomp.Compile(p, caps, "")
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
