// Package shortlived prepares the memory of the dock command, a process
// that lives for one operation, for a short life.
//
// A command that starts, runs for some tens of milliseconds and exits
// spends a large share of that time in page faults on fresh memory. Each
// fault costs its entry into the kernel and a page-table update, which a
// paravirtualised guest pays for dearly (about 20 µs here). So, when it is
// initialised, which is before most other packages are, the package asks
// for transparent huge pages for the heap, where the host hands them out
// on request (transparent_hugepage/enabled set to madvise, most
// distributions' default). A 2 MiB huge page costs about as much as ten
// small ones and serves 512. The price is memory: a heap of 3 MiB holds 4.
// The collapse of blocks in use may compact memory first, as a huge page
// fault does where the host allows it (transparent_hugepage/defrag); a
// host that turned huge pages off is left alone.
//
// The binary's own pages are left to demand paging: where the page cache
// holds them in large folios (ext4 and xfs on recent kernels), a fault
// maps many at once, and mapping every cached page of the code ahead, one
// madvise(MADV_POPULATE_READ) per run, cost more than the faults it saved
// (`run --rm` took 0.951 of the time without it, 100 pairs).
//
// Advise covers what the heap has grown since. The binary re-executed as a
// container's monitor or init is left alone. The monitor lives as long as
// its container, and what suits a short life does not suit it. The init
// lives only until it executes the container's command, but touches too
// little memory for the advice to pay: it starts while the command is
// busy, on the same two CPUs here, and `run --rm` took 0.97 of the time
// without the advice in the init.
package shortlived

// argv[0] of a container's monitor, init and reaper, as the runtime starts
// them (runtime.MonitorArg0, InitArg0 and ReaperArg0; this package does not import
// the runtime, which would be initialised after all of its imports).
const (
	monitorArg0 = "dock-monitor"
	initArg0    = "dock-init"
	reaperArg0  = "dock-reaper"
)

func init() {
	if !isReexec() {
		Advise()
	}
}
