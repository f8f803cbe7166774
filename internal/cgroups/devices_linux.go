package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// DefaultDevices are Docker's device rules for a container that is not
// privileged: any device node may be made, and only the standard ones (the
// nodes a container's /dev holds, its terminals) may be opened. A node made
// on a mount that allows devices, by a process that may mount, stays
// closed.
var DefaultDevices = []specs.LinuxDeviceCgroup{
	{Allow: false, Access: "rwm"},
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	charDevice(1, 3),    // null
	charDevice(1, 5),    // zero
	charDevice(1, 7),    // full
	charDevice(1, 8),    // random
	charDevice(1, 9),    // urandom
	charDevice(5, 0),    // tty
	charDevice(5, 1),    // console
	charDevice(5, 2),    // ptmx
	charDevice(136, -1), // pts
}

func charDevice(major, minor int64) specs.LinuxDeviceCgroup {
	d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
	if minor >= 0 {
		d.Minor = &minor
	}
	return d
}

// SetDevices limits the device nodes the group's processes may open and
// make to what rules allow. A rule for every device ("a", or no type)
// comes first and sets the default; the others are exceptions to it, as
// in Docker's rules. On v1 they are written to the devices controller; on
// v2 they become a BPF program attached to the group, as runc and crun
// attach theirs.
func (g *Group) SetDevices(rules []specs.LinuxDeviceCgroup) error {
	if g.v2 != nil {
		if err := attachDeviceFilter(g.fs.Dir, rules); err != nil {
			return fmt.Errorf("cgroup %s: devices: %w", g.fs.Name, err)
		}
		return nil
	}
	dir, ok := g.fs.Dirs["devices"]
	if !ok {
		return fmt.Errorf("cgroup %s: devices: controller not mounted: %w", g.fs.Name, errdefs.ErrNotSupported)
	}
	files := map[bool]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, r := range rules {
		f := files[r.Allow]
		if f == nil {
			name := map[bool]string{true: "devices.allow", false: "devices.deny"}[r.Allow]
			var err error
			if f, err = os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0); err != nil {
				return fmt.Errorf("cgroup %s: devices: %w", g.fs.Name, err)
			}
			files[r.Allow] = f
		}
		// One rule a write, as the kernel reads them.
		if _, err := f.WriteString(v1DeviceRule(r)); err != nil {
			return fmt.Errorf("cgroup %s: devices: %q: %w", g.fs.Name, v1DeviceRule(r), err)
		}
	}
	return nil
}

// v1DeviceRule spells r as devices.allow and devices.deny take it:
// "c 1:3 rwm", "a *:* rwm".
func v1DeviceRule(r specs.LinuxDeviceCgroup) string {
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	typ := r.Type
	if typ == "" {
		typ = "a"
	}
	return typ + " " + num(r.Major) + ":" + num(r.Minor) + " " + r.Access
}

// attachDeviceFilter attaches rules, as a BPF program, to the v2 group at
// dir, in place of any attached before (a group taken over from an earlier
// run has its own). The attachment holds the program; its descriptor
// here is closed.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	// The filter takes types and numbers spelled out.
	anyNum := int64(-1)
	full := make([]specs.LinuxDeviceCgroup, len(rules))
	for i, r := range rules {
		if r.Type == "" {
			r.Type = "a"
		}
		if r.Major == nil {
			r.Major = &anyNum
		}
		if r.Minor == nil {
			r.Minor = &anyNum
		}
		full[i] = r
	}
	insts, license, err := cgroup2.DeviceFilter(full)
	if err != nil {
		return err
	}
	if err := wholeAccess(insts); err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupDevice, Instructions: insts, License: license})
	if err != nil {
		return fmt.Errorf("load filter: %w", err)
	}
	defer prog.Close()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var old []ebpf.ProgramID
	if q, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice}); err == nil {
		for _, p := range q.Programs {
			old = append(old, p.ID)
		}
	}
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: fd, Program: prog,
		Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI})
	if err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	// The new one first: a device is open to the group only if every
	// attached program allows it, so the rules hold throughout.
	for _, id := range old {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // detached meanwhile
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: p, Attach: ebpf.AttachCGroupDevice})
		p.Close()
		if err != nil {
			return fmt.Errorf("detach the filter attached before: %w", err)
		}
	}
	return nil
}

// wholeAccess makes each rule of the filter insts match only a request
// whose access it covers whole. The filter matches a rule when the
// request shares any of its access bits with it: an open for reading and
// writing (one request for both) then passed a rule that allows reading
// alone. Its check, the three instructions
//
//	r1 = (u32)r3; r1 &= ACCESS; if r1 == 0 goto next
//
// becomes "if r1 != r3 goto next": the request's bits, r3, all in ACCESS.
func wholeAccess(insts asm.Instructions) error {
	for i := 2; i < len(insts); i++ {
		mov, and, jeq := insts[i-2], insts[i-1], insts[i]
		if mov.OpCode != asm.Mov.Op32(asm.RegSource) || mov.Dst != asm.R1 || mov.Src != asm.R3 ||
			and.OpCode != asm.And.Op32(asm.ImmSource) || and.Dst != asm.R1 ||
			jeq.OpCode != asm.JEq.Op(asm.ImmSource) || jeq.Dst != asm.R1 || jeq.Constant != 0 {
			continue
		}
		if jeq.Symbol() != "" || jeq.Reference() == "" {
			return fmt.Errorf("device filter: unexpected access check at instruction %d", i)
		}
		insts[i] = asm.JNE.Reg(asm.R1, asm.R3, jeq.Reference())
	}
	return nil
}
