// Package shortlived prepares the memory of the dock command, a process
// that lives for one operation, for a short life.
//
// A command that starts, runs for some tens of milliseconds and exits
// spends a large share of that time in page faults: on the code and data
// of its binary, which it touches a few MiB of for the first time, and on
// fresh heap memory. Each fault costs its entry into the kernel and a
// page-table update, which a paravirtualised guest pays for dearly (about
// 20 µs here). So, when it is initialised, which is before most other
// packages are, the package
//
//   - maps the read-only part of the binary that the page cache holds into
//     the process at once, with one madvise(MADV_POPULATE_READ) per run of
//     cached pages. That costs less than the faults it saves, and reads
//     nothing from disk: pages not cached are left to demand paging, which
//     reads only what is used.
//   - asks for transparent huge pages for the heap, where the host hands
//     them out on request (transparent_hugepage/enabled set to madvise, most
//     distributions' default). A 2 MiB huge page costs about as much as ten
//     small ones and serves 512. The price is memory: a heap of 3 MiB holds
//     4. The collapse of blocks in use may compact memory first, as a huge
//     page fault does where the host allows it
//     (transparent_hugepage/defrag); a host that turned huge pages off is
//     left alone.
//
// Advise covers what the heap has grown since. A container's init, the
// same binary re-executed, gets the same: it lives until it executes the
// container's command. A container's monitor is left alone: it lives as
// long as its container, and what suits a short life does not suit it.
package shortlived

// monitorArg0 is argv[0] of a container's monitor, as the runtime starts
// it (runtime.MonitorArg0, which this package does not import: it would be
// initialised after all of the runtime's imports).
const monitorArg0 = "dock-monitor"

func init() {
	if !isMonitor() {
		populateBinary()
		Advise()
	}
}
