//go:build !linux

package runtime

// Resources are the limits of the container's cgroup; cgroups exist only on
// Linux.
type Resources struct{}
