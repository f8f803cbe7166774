//go:build linux && (amd64 || arm64)

package nofile

// getNofile is the system call; it returns 0 or a negated errno.
//
//go:noescape
func getNofile(old *rlimit) uintptr

func prlimitNofile(l *rlimit) bool { return getNofile(l) == 0 }
