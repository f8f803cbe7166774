//go:build linux

package seccomp

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/moby/profiles/seccomp"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// Load installs filter on every thread of the calling process
// (SECCOMP_FILTER_FLAG_TSYNC), so that it holds whichever thread execs.
// The caller must have set no_new_privs (prctl PR_SET_NO_NEW_PRIVS) first,
// unless it holds CAP_SYS_ADMIN, and should call Load last before exec,
// on the locked OS thread that execs: after it, every system call the
// caller still makes is filtered. Load allocates nothing.
func Load(filter []unix.SockFilter) error {
	if len(filter) == 0 || len(filter) > unix.BPF_MAXINSNS {
		return fmt.Errorf("seccomp: filter of %d instructions: %w", len(filter), errdefs.ErrInvalidArgument)
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter: %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive result names a thread that could not be
		// synchronised (it has a diverging filter).
		return fmt.Errorf("seccomp: load filter: thread %d cannot take it: %w", r, errdefs.ErrWrongState)
	}
	return nil
}

// kernelVersion reads the running kernel's version for minKernel rules.
func kernelVersion() (seccomp.KernelVersion, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return seccomp.KernelVersion{}, fmt.Errorf("seccomp: uname: %w", err)
	}
	return parseRelease(unix.ByteSliceToString(u.Release[:]))
}

// parseRelease reads "6.1.0-18-amd64" as 6.1.
func parseRelease(rel string) (seccomp.KernelVersion, error) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return seccomp.KernelVersion{}, fmt.Errorf("seccomp: kernel release %q: %w", rel, errdefs.ErrInvalidArgument)
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	k, err1 := strconv.ParseUint(parts[0], 10, 32)
	m, err2 := strconv.ParseUint(minor, 10, 32)
	if err1 != nil || err2 != nil {
		return seccomp.KernelVersion{}, fmt.Errorf("seccomp: kernel release %q: %w", rel, errdefs.ErrInvalidArgument)
	}
	return seccomp.KernelVersion{Kernel: k, Major: m}, nil
}
