//go:build !linux

package standby

// Prestart does nothing off Linux.
func Prestart(root string) {}

// ClaimID returns "" off Linux.
func ClaimID(root string) string { return "" }
