// Package nofile records the process's open-file limit as it started.
//
// Package syscall raises the soft RLIMIT_NOFILE of every Go program to the
// hard limit in its initialisation, and restores the original only in the
// processes os.StartProcess and syscall.ForkExec start; it keeps that value
// to itself. A container's init that the monitor clones itself is none of
// those, and should still start with the limit the monitor was given. This
// package imports nothing, so Go initialises it before package syscall, and
// reads the limit then.
package nofile

// Soft and Hard are RLIMIT_NOFILE as the process started; Known is false where it
// could not be read (an architecture this package has no system call for).
var (
	Soft, Hard uint64
	Known      bool
)

type rlimit struct{ cur, max uint64 }

func init() {
	var l rlimit
	if prlimitNofile(&l) {
		Soft, Hard, Known = l.cur, l.max, true
	}
}
