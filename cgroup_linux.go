package dock

import (
	"fmt"
	"math"

	"github.com/dockkit/dock/internal/cgroups"
	"github.com/dockkit/dock/internal/runtime"
)

type defaultCgroup struct{ g *cgroups.Group }

// defaultCgroups manages cgroups through the cgroup filesystem, v1 or v2 as
// the host mounts them.
type defaultCgroups struct{}

// resourcesTo converts res, resolving CPUs into a quota and period.
func resourcesTo(res *Resources) *cgroups.Resources {
	if res == nil {
		return &cgroups.Resources{}
	}
	r := &cgroups.Resources{
		MemoryMax: res.MemoryMax, MemorySwapMax: res.MemorySwapMax, MemoryReservation: res.MemoryReservation,
		CPUQuota: res.CPUQuota, CPUPeriod: res.CPUPeriod, CPUShares: res.CPUShares,
		CPUSetCPUs: res.CPUSetCPUs, CPUSetMems: res.CPUSetMems, PidsMax: res.PidsMax, IOWeight: res.IOWeight,
	}
	if res.CPUs > 0 && r.CPUQuota == 0 {
		if r.CPUPeriod == 0 {
			r.CPUPeriod = 100000
		}
		r.CPUQuota = int64(math.Round(res.CPUs * float64(r.CPUPeriod)))
	}
	return r
}

// cgroupSpec has the container's monitor make its cgroup when the host
// uses the built-in manager. The monitor outlives the calling program, so it
// cannot call a manager given to Open: limits with one are refused rather
// than dropped.
func (h *Host) cgroupSpec(id string, res *Resources, spec *runtime.Spec) error {
	if _, ok := h.cgroups.(defaultCgroups); ok {
		spec.Cgroup = h.cgParent + "/" + id
		spec.Resources = resourcesTo(res)
		return nil
	}
	if *res != (Resources{}) {
		return fmt.Errorf("resource limits need the built-in cgroup manager: %w", ErrNotSupported)
	}
	return nil
}

var (
	_ Cgroups = defaultCgroups{}
	_ Cgroup  = defaultCgroup{}
)

func (defaultCgroups) Create(name string, res *Resources) (Cgroup, error) {
	g, err := cgroups.New(name, resourcesTo(res))
	if err != nil {
		return nil, err
	}
	return defaultCgroup{g}, nil
}

func (defaultCgroups) Load(name string) (Cgroup, error) {
	g, err := cgroups.Load(name)
	if err != nil {
		return nil, err
	}
	return defaultCgroup{g}, nil
}

func (c defaultCgroup) Add(pid int) error           { return c.g.Add(pid) }
func (c defaultCgroup) Update(res *Resources) error { return c.g.Update(resourcesTo(res)) }
func (c defaultCgroup) Freeze() error               { return c.g.Freeze() }
func (c defaultCgroup) Thaw() error                 { return c.g.Thaw() }
func (c defaultCgroup) Kill() error                 { return c.g.Kill() }
func (c defaultCgroup) Delete() error               { return c.g.Delete() }

func (c defaultCgroup) Stats() (*CgroupStats, error) {
	s, err := c.g.Stats()
	if err != nil {
		return nil, err
	}
	return (*CgroupStats)(s), nil
}
