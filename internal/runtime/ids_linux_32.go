//go:build linux && (386 || arm)

package runtime

import "golang.org/x/sys/unix"

const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)
