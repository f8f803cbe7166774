//go:build !linux

package hugeheap

// Advise does nothing off Linux.
func Advise() {}

func isMonitor() bool { return false }
