//go:build !linux

package shortlived

// Advise does nothing off Linux.
func Advise() {}

func isReexec() bool { return false }
