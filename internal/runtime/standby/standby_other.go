//go:build !linux

package standby

// Prestart does nothing off Linux.
func Prestart(root, namespaces string) {}

// ClaimID returns "" off Linux.
func ClaimID(root string) string { return "" }
