//go:build linux

package cgroups

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/dockkit/dock/internal/errdefs"
)

// Resources are the limits a group enforces. A zero field leaves the
// kernel's setting alone; -1 in MemoryMax, MemorySwapMax, CPUQuota or
// PidsMax lifts the limit. The fields match dock.Resources; docker's --cpus
// is converted to CPUQuota and CPUPeriod by the caller.
type Resources struct {
	MemoryMax         int64  // bytes
	MemorySwapMax     int64  // bytes of memory plus swap, as docker's --memory-swap; needs MemoryMax
	MemoryReservation int64  // bytes; soft limit (v1 soft_limit_in_bytes, v2 memory.low)
	CPUQuota          int64  // microseconds of CPU time per CPUPeriod
	CPUPeriod         uint64 // microseconds; 100000 when CPUQuota is set and this is zero
	CPUShares         uint64 // v1 shares (2..262144); converted to a weight on v2
	CPUSetCPUs        string // "0-1,3"
	CPUSetMems        string // "0"
	PidsMax           int64  // tasks
	IOWeight          uint16 // 10..1000; v1 blkio weight, v2 io.weight (or io.bfq.weight)
}

// Stats is a snapshot of a group's counters. The fields match
// dock.CgroupStats.
type Stats struct {
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

// defaultCPUPeriod is the CFS period the kernel and docker use, in
// microseconds.
const defaultCPUPeriod = 100000

// unlimited is the threshold above which a kernel limit reads as "none":
// v1 reports an unset memory limit as a page-rounded LONG_MAX.
const unlimited = 1 << 62

// validName checks that name is a relative path inside the cgroup root.
func validName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name ||
		name == "." || strings.HasPrefix(name, "../") || name == ".." {
		return fmt.Errorf("cgroup name %q: must be a clean relative path: %w", name, errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return fmt.Errorf("cgroup name %q: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Validate checks r for values and combinations that docker rejects too.
func (r *Resources) Validate() error {
	switch {
	case r.MemoryMax < -1 || r.MemorySwapMax < -1 || r.MemoryReservation < 0 || r.PidsMax < -1 || r.CPUQuota < -1:
		return fmt.Errorf("resources: negative limit: %w", errdefs.ErrInvalidArgument)
	case r.MemorySwapMax > 0 && r.MemoryMax <= 0:
		return fmt.Errorf("resources: a memory+swap limit needs a memory limit: %w", errdefs.ErrInvalidArgument)
	case r.MemorySwapMax > 0 && r.MemorySwapMax < r.MemoryMax:
		return fmt.Errorf("resources: memory+swap limit %d is below the memory limit %d: %w",
			r.MemorySwapMax, r.MemoryMax, errdefs.ErrInvalidArgument)
	case r.IOWeight != 0 && (r.IOWeight < 10 || r.IOWeight > 1000):
		return fmt.Errorf("resources: io weight %d out of 10..1000: %w", r.IOWeight, errdefs.ErrInvalidArgument)
	case r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000):
		return fmt.Errorf("resources: cpu period %d out of 1000..1000000: %w", r.CPUPeriod, errdefs.ErrInvalidArgument)
	case r.CPUQuota > 0 && r.CPUQuota < 1000:
		return fmt.Errorf("resources: cpu quota %d below 1000: %w", r.CPUQuota, errdefs.ErrInvalidArgument)
	}
	return nil
}

// write is one value for one control file. On v1, ctrl names the
// hierarchy; on v2 it is empty. Alt is a file tried when File is missing;
// an optional write is skipped when neither exists (a kernel without swap
// accounting or without IO weights).
type write struct {
	ctrl, file, alt, value string
	optional               bool
}

func limit(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func cpuPeriod(r *Resources) uint64 {
	if r.CPUPeriod == 0 {
		return defaultCPUPeriod
	}
	return r.CPUPeriod
}

// v2Writes turns r into the unified hierarchy's files, in order.
func v2Writes(r *Resources) []write {
	var w []write
	if r.CPUShares != 0 {
		w = append(w, write{file: "cpu.weight", value: strconv.FormatUint(cgroup2.ConvertCPUSharesToCgroupV2Value(r.CPUShares), 10)})
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		q := "max"
		if r.CPUQuota > 0 {
			q = strconv.FormatInt(r.CPUQuota, 10)
		}
		w = append(w, write{file: "cpu.max", value: q + " " + strconv.FormatUint(cpuPeriod(r), 10)})
	}
	if r.CPUSetCPUs != "" {
		w = append(w, write{file: "cpuset.cpus", value: r.CPUSetCPUs})
	}
	if r.CPUSetMems != "" {
		w = append(w, write{file: "cpuset.mems", value: r.CPUSetMems})
	}
	if r.MemoryReservation > 0 {
		w = append(w, write{file: "memory.low", value: limit(r.MemoryReservation)})
	}
	if r.MemoryMax != 0 {
		w = append(w, write{file: "memory.max", value: limit(r.MemoryMax)})
	}
	switch {
	case r.MemorySwapMax < 0:
		w = append(w, write{file: "memory.swap.max", value: "max", optional: true})
	case r.MemorySwapMax > 0:
		// v2 limits swap alone; docker's figure is memory plus swap.
		w = append(w, write{file: "memory.swap.max", value: limit(r.MemorySwapMax - r.MemoryMax), optional: true})
	}
	if r.PidsMax != 0 {
		w = append(w, write{file: "pids.max", value: limit(r.PidsMax)})
	}
	if r.IOWeight != 0 {
		v := strconv.FormatUint(uint64(r.IOWeight), 10)
		w = append(w, write{file: "io.weight", alt: "io.bfq.weight", value: "default " + v, optional: true})
	}
	return w
}

// v1Writes turns r into the v1 hierarchies' files, in order. The memory
// limit and the memory+swap limit are ordered by the caller at write time,
// because the kernel insists that memsw never be below the memory limit.
func v1Writes(r *Resources) []write {
	var w []write
	if r.CPUShares != 0 {
		w = append(w, write{ctrl: "cpu", file: "cpu.shares", value: strconv.FormatUint(r.CPUShares, 10)})
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		w = append(w, write{ctrl: "cpu", file: "cpu.cfs_period_us", value: strconv.FormatUint(cpuPeriod(r), 10)})
		if r.CPUQuota != 0 {
			w = append(w, write{ctrl: "cpu", file: "cpu.cfs_quota_us", value: strconv.FormatInt(r.CPUQuota, 10)})
		}
	}
	if r.CPUSetCPUs != "" {
		w = append(w, write{ctrl: "cpuset", file: "cpuset.cpus", value: r.CPUSetCPUs})
	}
	if r.CPUSetMems != "" {
		w = append(w, write{ctrl: "cpuset", file: "cpuset.mems", value: r.CPUSetMems})
	}
	if r.MemoryReservation > 0 {
		w = append(w, write{ctrl: "memory", file: "memory.soft_limit_in_bytes", value: strconv.FormatInt(r.MemoryReservation, 10)})
	}
	if r.MemoryMax != 0 {
		w = append(w, write{ctrl: "memory", file: "memory.limit_in_bytes", value: strconv.FormatInt(r.MemoryMax, 10)})
	}
	if r.MemorySwapMax != 0 {
		w = append(w, write{ctrl: "memory", file: "memory.memsw.limit_in_bytes", value: strconv.FormatInt(r.MemorySwapMax, 10), optional: true})
	}
	if r.PidsMax != 0 {
		w = append(w, write{ctrl: "pids", file: "pids.max", value: limit(r.PidsMax)})
	}
	if r.IOWeight != 0 {
		v := strconv.FormatUint(uint64(r.IOWeight), 10)
		w = append(w, write{ctrl: "blkio", file: "blkio.weight", alt: "blkio.bfq.weight", value: v, optional: true})
	}
	return w
}
