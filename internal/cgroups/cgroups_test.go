//go:build linux

package cgroups

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/dockkit/dock/internal/errdefs"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"dock/abc", true},
		{"docktest-1", true},
		{"", false},
		{"/dock/abc", false},
		{"dock/../x", false},
		{"..", false},
		{"../x", false},
		{"dock//x", false},
		{"dock/x/", false},
		{".", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("validName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  Resources
		ok   bool
	}{
		{"empty", Resources{}, true},
		{"docker swap", Resources{MemoryMax: 64 << 20, MemorySwapMax: 128 << 20}, true},
		{"no swap", Resources{MemoryMax: 64 << 20, MemorySwapMax: 64 << 20}, true},
		{"unlimited swap", Resources{MemoryMax: 64 << 20, MemorySwapMax: -1}, true},
		{"swap without memory", Resources{MemorySwapMax: 64 << 20}, false},
		{"swap below memory", Resources{MemoryMax: 64 << 20, MemorySwapMax: 32 << 20}, false},
		{"io weight low", Resources{IOWeight: 5}, false},
		{"io weight", Resources{IOWeight: 500}, true},
		{"period low", Resources{CPUQuota: 50000, CPUPeriod: 10}, false},
		{"quota low", Resources{CPUQuota: 10}, false},
		{"pids negative", Resources{PidsMax: -2}, false},
		{"pids unlimited", Resources{PidsMax: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.res.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
		})
	}
}

// plan flattens writes into "ctrl:file=value" for comparison.
func plan(ws []write) []string {
	var out []string
	for _, w := range ws {
		s := w.file + "=" + w.value
		if w.ctrl != "" {
			s = w.ctrl + ":" + s
		}
		out = append(out, s)
	}
	return out
}

func TestWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		res    Resources
		v1, v2 []string
	}{
		{
			name: "empty",
			res:  Resources{},
		},
		{
			name: "memory with docker swap",
			res:  Resources{MemoryMax: 64 << 20, MemorySwapMax: 96 << 20, MemoryReservation: 16 << 20},
			v1: []string{"memory:memory.soft_limit_in_bytes=16777216", "memory:memory.limit_in_bytes=67108864",
				"memory:memory.memsw.limit_in_bytes=100663296"},
			v2: []string{"memory.low=16777216", "memory.max=67108864", "memory.swap.max=33554432"},
		},
		{
			name: "unlimited",
			res:  Resources{MemoryMax: -1, MemorySwapMax: -1, PidsMax: -1, CPUQuota: -1},
			v1: []string{"cpu:cpu.cfs_period_us=100000", "cpu:cpu.cfs_quota_us=-1", "memory:memory.limit_in_bytes=-1",
				"memory:memory.memsw.limit_in_bytes=-1", "pids:pids.max=max"},
			v2: []string{"cpu.max=max 100000", "memory.max=max", "memory.swap.max=max", "pids.max=max"},
		},
		{
			name: "cpu",
			res:  Resources{CPUQuota: 50000, CPUPeriod: 200000, CPUShares: 1024, CPUSetCPUs: "0-1", CPUSetMems: "0"},
			v1: []string{"cpu:cpu.shares=1024", "cpu:cpu.cfs_period_us=200000", "cpu:cpu.cfs_quota_us=50000",
				"cpuset:cpuset.cpus=0-1", "cpuset:cpuset.mems=0"},
			v2: []string{"cpu.weight=100", "cpu.max=50000 200000", "cpuset.cpus=0-1", "cpuset.mems=0"},
		},
		{
			name: "quota default period",
			res:  Resources{CPUQuota: 20000},
			v1:   []string{"cpu:cpu.cfs_period_us=100000", "cpu:cpu.cfs_quota_us=20000"},
			v2:   []string{"cpu.max=20000 100000"},
		},
		{
			name: "shares extremes",
			res:  Resources{CPUShares: 2},
			v1:   []string{"cpu:cpu.shares=2"},
			v2:   []string{"cpu.weight=1"},
		},
		{
			name: "pids and io",
			res:  Resources{PidsMax: 100, IOWeight: 300},
			v1:   []string{"pids:pids.max=100", "blkio:blkio.weight=300"},
			v2:   []string{"pids.max=100", "io.weight=default 300"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan(v1Writes(&tc.res)); !reflect.DeepEqual(got, tc.v1) {
				t.Errorf("v1 writes:\n got %q\nwant %q", got, tc.v1)
			}
			if got := plan(v2Writes(&tc.res)); !reflect.DeepEqual(got, tc.v2) {
				t.Errorf("v2 writes:\n got %q\nwant %q", got, tc.v2)
			}
		})
	}
}

// TestV1DeviceRules checks Docker's device rules as the v1 controller
// reads them.
func TestV1DeviceRules(t *testing.T) {
	var got []string
	for _, r := range DefaultDevices {
		got = append(got, v1DeviceRule(r))
	}
	want := []string{"a *:* rwm", "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
		"c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules %q, want %q", got, want)
	}
	if DefaultDevices[0].Allow {
		t.Error("the first rule allows every device")
	}
}

// TestWholeAccess checks that the v2 filter matches a rule only for a
// request its access covers whole: each partial-access rule's check is
// rewritten, and the full-access ones have none to rewrite.
func TestWholeAccess(t *testing.T) {
	major, minor := int64(10), int64(229)
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Type: "a", Major: &wildcard, Minor: &wildcard, Access: "rwm"}}
	for _, acc := range []string{"r", "w", "rw", "m", "rwm"} {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: acc})
	}
	insts, _, err := cgroup2.DeviceFilter(rules)
	if err != nil {
		t.Fatal(err)
	}
	count := func(op asm.OpCode) int {
		n := 0
		for _, ins := range insts {
			if ins.OpCode == op && ins.Dst == asm.R1 {
				n++
			}
		}
		return n
	}
	if n := count(asm.JEq.Op(asm.ImmSource)); n != 4 {
		t.Fatalf("%d access checks before, want 4 (r, w, rw, m)", n)
	}
	if err := wholeAccess(insts); err != nil {
		t.Fatal(err)
	}
	if n, m := count(asm.JEq.Op(asm.ImmSource)), count(asm.JNE.Op(asm.RegSource)); n != 0 || m != 4 {
		t.Errorf("after: %d partial checks, %d whole ones; want 0 and 4", n, m)
	}
}

var wildcard = int64(-1)
