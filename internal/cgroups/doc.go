// Package cgroups makes, updates, reads and removes the control groups that
// hold containers, on cgroup v1 (including the hybrid layout, where a cgroup2
// hierarchy without controllers sits at /sys/fs/cgroup/unified) and on the
// unified cgroup v2 hierarchy. The layout is chosen by probing the host once.
//
// It builds on github.com/containerd/cgroups/v3 for hierarchy discovery,
// making groups, moving processes and statistics, and writes the limits
// itself so that docker's conventions hold on both versions: --memory-swap
// is memory plus swap, -1 means unlimited, CPU shares become a v2 weight,
// and so on. Freezing, killing and removing are plain file operations of
// internal/cgroupfs, which a container's monitor uses on the group's
// directories (Group.Paths) without linking this package.
//
// Group names are relative to the cgroup root, such as "dock/<id>": on v1 the
// group is made in every mounted hierarchy, on v2 at /sys/fs/cgroup/<name>
// with the controllers it needs enabled in each parent's subtree_control.
package cgroups
