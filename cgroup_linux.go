package dock

import (
	"fmt"
	"math"
	"slices"

	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/cgroups"
	"github.com/dockkit/dock/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	// As docker does: shares out of the kernel's range are brought into it.
	if r.CPUShares == 1 {
		r.CPUShares = 2
	}
	r.CPUShares = min(r.CPUShares, 262144)
	if res.CPUs > 0 && r.CPUQuota == 0 {
		if r.CPUPeriod == 0 {
			r.CPUPeriod = 100000
		}
		r.CPUQuota = int64(math.Round(res.CPUs * float64(r.CPUPeriod)))
	}
	return r
}

// cgroupSpec names the container's cgroup when the host uses the built-in
// manager; makeCgroup makes it at each start. The container's monitor
// outlives the calling program, so it cannot call a manager given to Open:
// limits with one are refused rather than dropped.
func (h *Host) cgroupSpec(id string, res *Resources, spec *runtime.Spec) error {
	if _, ok := h.cgroups.(defaultCgroups); ok {
		spec.Cgroup = &cgroupfs.Group{Name: h.cgParent + "/" + id}
		return nil
	}
	if *res != (Resources{}) {
		return fmt.Errorf("resource limits need the built-in cgroup manager: %w", ErrNotSupported)
	}
	if len(spec.Devices) > 0 {
		// Their access is the device rules', which the group holds.
		return fmt.Errorf("devices need the built-in cgroup manager: %w", ErrNotSupported)
	}
	return nil
}

// checkResources refuses limits no cgroup takes.
func checkResources(res *Resources) error { return resourcesTo(res).Validate() }

// makeCgroup makes the container's cgroup with its limits, or takes over
// the one an earlier run left empty, and puts its directories in spec. The
// caller makes it rather than the monitor, which works on it through plain
// files so that it starts without linking containerd's managers.
func makeCgroup(spec *runtime.Spec, res *Resources) error {
	if spec.Cgroup == nil {
		return nil
	}
	g, err := cgroups.Make(spec.Cgroup.Name, resourcesTo(res))
	if err != nil {
		return err
	}
	if !spec.Process.Privileged {
		// Docker's device rules: where a process may mount, every mount
		// of the container being nodev would not keep it from a node it
		// made.
		rules := slices.Clone(cgroups.DefaultDevices)
		for i := range spec.Devices {
			// Read again at each start, as docker does: a node's numbers
			// may change with a reboot or a replug.
			d := &spec.Devices[i]
			if err := statDevice(d); err != nil {
				g.Delete()
				return err
			}
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &d.Major, Minor: &d.Minor, Access: d.Access})
		}
		if err := g.SetDevices(rules); err != nil {
			g.Delete()
			return err
		}
	}
	p := g.Paths()
	spec.Cgroup = &p
	return nil
}

// dropCgroup removes the group makeCgroup made for a start that failed,
// unless something runs in it.
func dropCgroup(spec *runtime.Spec) {
	if spec.Cgroup == nil || !spec.Cgroup.Made() {
		return
	}
	spec.Cgroup.DeleteIfUnused()
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
