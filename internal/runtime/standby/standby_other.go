//go:build !linux

package standby

// Prestart does nothing off Linux.
func Prestart(root, namespaces string) {}

// Peek returns "" off Linux.
func Peek(root string) string { return "" }
