// Package cgroupfs works on control groups that exist, through their files
// alone: it moves processes in, freezes and thaws, kills, counts OOM kills
// and removes groups, on cgroup v1 and v2.
//
// It depends on nothing heavier than x/sys because a container's monitor,
// a re-executed copy of the caller's binary, uses it: every package the
// monitor links is initialised before it runs, and containerd's cgroup
// managers bring protobuf, eBPF and D-Bus with them. For the same reason
// it uses package path rather than path/filepath, which a binary
// initialises late (see internal/runtime). internal/cgroups makes
// the groups, applies their limits and reads their statistics with
// containerd/cgroups, and hands the directories over as a Group.
package cgroupfs
