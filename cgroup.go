package dock

// Resources are the limits a container's cgroup enforces. A zero field
// leaves the kernel's default (no limit, the default weight); -1 in
// MemoryMax, MemorySwapMax, CPUQuota or PidsMax lifts a limit set before.
type Resources struct {
	MemoryMax         int64   // bytes; memory.max / memory.limit_in_bytes
	MemorySwapMax     int64   // bytes of memory plus swap, as docker's --memory-swap; -1 unlimited
	MemoryReservation int64   // bytes; soft limit
	CPUQuota          int64   // microseconds of CPU time per CPUPeriod
	CPUPeriod         uint64  // microseconds; 100000 when CPUQuota is set and this is zero
	CPUShares         uint64  // v1 shares (2..262144); converted to a weight on v2
	CPUSetCPUs        string  // "0-1,3"
	CPUSetMems        string  // "0"
	PidsMax           int64   // tasks
	IOWeight          uint16  // 10..1000 (v2) or blkio weight 10..1000 (v1)
	CPUs              float64 // convenience: docker's --cpus; sets CPUQuota/CPUPeriod
}

// CgroupStats is a snapshot of a cgroup's counters.
type CgroupStats struct {
	CPUUsageNanos  uint64 // total CPU time consumed
	CPUUserNanos   uint64
	CPUSystemNanos uint64
	CPUThrottled   uint64 // periods in which the group was throttled
	MemoryUsage    uint64 // bytes in use now, less the inactive file cache (as docker stats)
	MemoryMax      uint64 // bytes; 0 when unlimited
	MemoryPeak     uint64 // bytes; highest usage seen where the kernel reports it
	OOMKills       uint64 // processes the kernel's OOM killer killed in this group
	Pids           uint64 // tasks now
	PidsMax        uint64 // 0 when unlimited
	IOReadBytes    uint64
	IOWriteBytes   uint64
}

// Cgroups makes and finds the control groups that hold containers. The
// default implementation is chosen by probing the host: cgroup v2 where the
// unified hierarchy is mounted with controllers, v1 (including the hybrid
// layout) otherwise. A platform may supply its own, for example one that asks
// systemd for scopes.
type Cgroups interface {
	// Create makes the cgroup name with resources applied, or fails with
	// ErrAlreadyExists.
	Create(name string, res *Resources) (Cgroup, error)
	// Load finds the existing cgroup name, or fails with ErrNotFound.
	Load(name string) (Cgroup, error)
}

// Cgroup is one control group.
type Cgroup interface {
	// Add moves the process pid into the group.
	Add(pid int) error
	// Update applies new resources to the group.
	Update(res *Resources) error
	// Stats reads the group's counters.
	Stats() (*CgroupStats, error)
	// Freeze stops every process in the group until Thaw; it returns once
	// they are frozen.
	Freeze() error
	// Thaw lets a frozen group run again.
	Thaw() error
	// Kill sends SIGKILL to every process in the group.
	Kill() error
	// Delete removes the group; it must hold no process.
	Delete() error
}
