// This file lets forkexec_linux.go declare the runtime's fork hooks, which
// it links by name, without bodies.
