package dock

import "github.com/dockkit/dock/internal/runtime"

// A container's monitor, and the init of one in a user namespace, are this
// very binary, re-executed; they are recognised here, before main runs,
// and never return.
func init() { runtime.MaybeReexec() }
