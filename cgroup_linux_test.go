package dock

import "testing"

// TestResourcesTo checks the conversion of a container's limits for the
// cgroup managers: --cpus as a quota, and shares brought into the kernel's
// range, as docker does.
func TestResourcesTo(t *testing.T) {
	for _, tc := range []struct {
		in            Resources
		shares        uint64
		quota         int64
		period        uint64
		memory, memsw int64
	}{
		{Resources{CPUShares: 1}, 2, 0, 0, 0, 0},
		{Resources{CPUShares: 300000}, 262144, 0, 0, 0, 0},
		{Resources{CPUShares: 512}, 512, 0, 0, 0, 0},
		{Resources{CPUs: 1.5}, 0, 150000, 100000, 0, 0},
		{Resources{CPUs: 0.5, CPUPeriod: 50000}, 0, 25000, 50000, 0, 0},
		{Resources{MemoryMax: 64 << 20, MemorySwapMax: 128 << 20}, 0, 0, 0, 64 << 20, 128 << 20},
	} {
		r := resourcesTo(&tc.in)
		if r.CPUShares != tc.shares || r.CPUQuota != tc.quota || r.CPUPeriod != tc.period || r.MemoryMax != tc.memory || r.MemorySwapMax != tc.memsw {
			t.Errorf("resourcesTo(%+v) = %+v", tc.in, *r)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("resourcesTo(%+v) does not validate: %v", tc.in, err)
		}
	}
}
