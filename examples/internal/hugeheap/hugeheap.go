// Package hugeheap backs the Go heap of the dock command, a short-lived
// process, with transparent huge pages, where the host hands them out on
// request (transparent_hugepage/enabled set to madvise, most distributions'
// default).
//
// A command that starts, allocates a few MiB and exits spends a large share
// of its time in page faults on fresh heap memory: one per 4 KiB page, each
// with its page-table update, which a paravirtualised guest pays for dearly
// (25 µs here). A 2 MiB huge page costs about as much as ten small ones and
// serves 512. The price is memory: a heap of 3 MiB holds 4. That suits a
// command; it does not suit a process that stays, which is why a
// container's monitor, the same binary re-executed, is left alone. The
// collapse of blocks in use may compact memory first, as a huge page fault
// does where the host allows it (transparent_hugepage/defrag); a host that
// turned huge pages off is left alone.
//
// Importing the package advises the heap as it is when the package is
// initialised, which is before most others are; Advise covers what the heap
// has grown since. A container's init, the same binary re-executed, is
// advised too: it lives until it executes the container's command.
package hugeheap

// monitorArg0 is argv[0] of a container's monitor, as the runtime starts
// it (runtime.MonitorArg0, which this package does not import: it would be
// initialised after all of the runtime's imports).
const monitorArg0 = "dock-monitor"

func init() {
	if !isMonitor() {
		Advise()
	}
}
