// Package testutil holds helpers shared by dock's tests.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root, saying why.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts, namespaces, cgroups")
	}
}
