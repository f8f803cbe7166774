//go:build linux

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// dockerCaps is docker's default capability set.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

var kernel61 = seccomp.KernelVersion{Kernel: 6, Major: 1}

// seccompData is the kernel's struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run interprets prog on d: a small classic BPF machine covering what the
// kernel's seccomp checker accepts and the compiler emits.
func run(t *testing.T, prog []unix.SockFilter, d seccompData) uint32 {
	t.Helper()
	ret, _ := execute(t, prog, d)
	return ret
}

// execute is run, also counting the instructions executed.
func execute(t *testing.T, prog []unix.SockFilter, d seccompData) (ret uint32, steps int) {
	t.Helper()
	data := d.bytes()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				t.Fatalf("pc %d: load at %d", pc, in.K)
			}
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += int(cond(a == in.K, in.Jt, in.Jf))
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			pc += int(cond(a > in.K, in.Jt, in.Jf))
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += int(cond(a >= in.K, in.Jt, in.Jf))
		case unix.BPF_RET | unix.BPF_K:
			return in.K, steps
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	t.Fatalf("program fell off its end")
	return 0, steps
}

func cond(b bool, jt, jf uint8) uint8 {
	if b {
		return jt
	}
	return jf
}

// model says what the resolved profile means, independently of the
// compiler's layout, for checking the program against.
func model(r *resolved, d seccompData) uint32 {
	def, _ := encodeAction(r.defaultAction, r.defaultErrno)
	var info archInfo
	found := false
	for _, a := range r.arches {
		i, ok := specArches[a]
		if !ok || i.audit != d.arch {
			continue
		}
		if i.audit == unix.AUDIT_ARCH_X86_64 && i.x32 != (d.nr >= x32Bit) {
			continue
		}
		info, found = i, true
	}
	if !found {
		return retKillProcess
	}
	nr := d.nr
	if info.x32 {
		nr &^= x32Bit
	}
	name := ""
	for _, s := range sysnumTable(info.table) {
		if s.nr == nr {
			name = s.name
		}
	}
	if name != "" {
		for _, s := range r.syscalls {
			if slices.Contains(s.Names, name) && len(s.Args) == 0 {
				act, _ := encodeAction(s.Action, s.ErrnoRet)
				return act
			}
		}
		for _, s := range r.syscalls {
			if !slices.Contains(s.Names, name) || len(s.Args) == 0 {
				continue
			}
			act, _ := encodeAction(s.Action, s.ErrnoRet)
			idx := map[uint]int{}
			for _, c := range s.Args {
				idx[c.Index]++
			}
			split := len(idx) < len(s.Args)
			all := true
			for _, c := range s.Args {
				ok := holds(c, d.args[c.Index])
				if split && ok {
					return act
				}
				all = all && ok
			}
			if !split && all {
				return act
			}
		}
	}
	if r.defaultAction != specs.ActAllow && !info.x32 && nr > maxNr(info.table) {
		return retErrno | uint32(unix.ENOSYS)
	}
	return def
}

func holds(c specs.LinuxSeccompArg, v uint64) bool {
	switch c.Op {
	case specs.OpEqualTo:
		return v == c.Value
	case specs.OpNotEqual:
		return v != c.Value
	case specs.OpMaskedEqual:
		return v&c.Value == c.ValueTwo
	case specs.OpGreaterThan:
		return v > c.Value
	case specs.OpGreaterEqual:
		return v >= c.Value
	case specs.OpLessThan:
		return v < c.Value
	case specs.OpLessEqual:
		return v <= c.Value
	}
	return false
}

func compileFor(t *testing.T, p *Profile, caps []string, arch string) (*resolved, []unix.SockFilter) {
	t.Helper()
	r, err := resolve(p, caps, arch, kernel61)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := r.compile()
	if err != nil {
		t.Fatal(err)
	}
	return r, prog
}

const (
	eperm  = retErrno | uint32(unix.EPERM)
	enosys = retErrno | uint32(unix.ENOSYS)
)

func nr(t *testing.T, table, name string) uint32 {
	t.Helper()
	n, ok := lookup(table, name)
	if !ok {
		t.Fatalf("%s has no %s", table, name)
	}
	return n
}

func TestDefaultProfileDecisions(t *testing.T) {
	admin := append(slices.Clone(dockerCaps), "SYS_ADMIN")
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	i386 := uint32(unix.AUDIT_ARCH_I386)
	type tc struct {
		name string
		caps []string
		arch uint32
		call string
		tbl  string
		args [6]uint64
		x32  bool
		want uint32
	}
	for _, c := range []tc{
		{name: "getpid", call: "getpid", want: retAllow},
		{name: "openat", call: "openat", want: retAllow},
		{name: "mount", call: "mount", want: eperm},
		{name: "unshare", call: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}, want: eperm},
		{name: "unshare admin", caps: admin, call: "unshare", want: retAllow},
		{name: "keyctl", call: "keyctl", want: eperm},
		{name: "add_key", call: "add_key", want: eperm},
		{name: "reboot", call: "reboot", want: eperm},
		{name: "reboot with CAP_SYS_BOOT", caps: []string{"sys_boot"}, call: "reboot", want: retAllow},
		{name: "ptrace on 4.8+", call: "ptrace", want: retAllow},
		{name: "personality query", call: "personality", args: [6]uint64{0xffffffff}, want: retAllow},
		{name: "personality linux32", call: "personality", args: [6]uint64{8}, want: retAllow},
		{name: "personality no-randomize", call: "personality", args: [6]uint64{0x0040000}, want: eperm},
		{name: "personality high bits", call: "personality", args: [6]uint64{1<<32 | 8}, want: eperm},
		{name: "socket inet", call: "socket", args: [6]uint64{unix.AF_INET}, want: retAllow},
		{name: "socket unix", call: "socket", args: [6]uint64{unix.AF_UNIX}, want: retAllow},
		{name: "socket vsock", call: "socket", args: [6]uint64{unix.AF_VSOCK}, want: eperm},
		{name: "socket alg", call: "socket", args: [6]uint64{unix.AF_ALG}, want: eperm},
		{name: "socket netlink", call: "socket", args: [6]uint64{unix.AF_NETLINK}, want: retAllow},
		{name: "clone thread", call: "clone", args: [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, want: retAllow},
		{name: "clone newuser", call: "clone", args: [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, want: eperm},
		{name: "clone newnet admin", caps: admin, call: "clone", args: [6]uint64{unix.CLONE_NEWNET}, want: retAllow},
		{name: "clone3", call: "clone3", want: enosys},
		{name: "clone3 admin", caps: admin, call: "clone3", want: retAllow},
		{name: "arch_prctl", call: "arch_prctl", want: retAllow},
		{name: "i386 getpid", arch: i386, tbl: "386", call: "getpid", want: retAllow},
		{name: "i386 mount", arch: i386, tbl: "386", call: "mount", want: eperm},
		{name: "i386 socketcall", arch: i386, tbl: "386", call: "socketcall", want: retAllow},
		{name: "x32 getpid", call: "getpid", x32: true, want: retAllow},
		{name: "x32 mount", call: "mount", x32: true, want: eperm},
	} {
		t.Run(c.name, func(t *testing.T) {
			caps := c.caps
			if caps == nil {
				caps = dockerCaps
			}
			r, prog := compileFor(t, DefaultProfile(), caps, "amd64")
			if c.arch == 0 {
				c.arch = x86
			}
			if c.tbl == "" {
				c.tbl = "amd64"
			}
			d := seccompData{nr: nr(t, c.tbl, c.call), arch: c.arch, args: c.args}
			if c.x32 {
				d.nr |= x32Bit
			}
			if got := run(t, prog, d); got != c.want {
				t.Fatalf("%s: program returns %#x, want %#x", c.call, got, c.want)
			}
			if got := model(r, d); got != c.want {
				t.Fatalf("%s: model returns %#x, want %#x", c.call, got, c.want)
			}
		})
	}
	t.Run("foreign arch", func(t *testing.T) {
		_, prog := compileFor(t, DefaultProfile(), dockerCaps, "amd64")
		if got := run(t, prog, seccompData{nr: 20, arch: unix.AUDIT_ARCH_ARM}); got != retKillProcess {
			t.Fatalf("ARM on an amd64 filter: %#x, want kill", got)
		}
	})
	t.Run("unknown call", func(t *testing.T) {
		_, prog := compileFor(t, DefaultProfile(), dockerCaps, "amd64")
		if got := run(t, prog, seccompData{nr: 1000, arch: x86}); got != enosys {
			t.Fatalf("call 1000: %#x, want ENOSYS", got)
		}
	})
}

// TestProgramMatchesModel runs every known call of every architecture, with
// argument values around those the rules compare, through the program and
// the model.
func TestProgramMatchesModel(t *testing.T) {
	for _, tc := range []struct {
		arch string
		caps []string
	}{
		{"amd64", dockerCaps},
		{"amd64", append(slices.Clone(dockerCaps), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE")},
		{"amd64", nil},
		{"arm64", dockerCaps},
	} {
		t.Run(fmt.Sprintf("%s/%d caps", tc.arch, len(tc.caps)), func(t *testing.T) {
			r, prog := compileFor(t, DefaultProfile(), tc.caps, tc.arch)
			t.Logf("%d instructions for %v", len(prog), r.arches)
			values := []uint64{0, 1, 0xffffffff, 1 << 32, ^uint64(0)}
			for _, s := range r.syscalls {
				for _, c := range s.Args {
					values = append(values, c.Value, c.Value+1, c.Value-1, c.Value|c.ValueTwo)
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			checked := 0
			for _, a := range r.arches {
				info := specArches[a]
				// Every number up to past the table's last, the gaps
				// between calls included.
				var nrs []uint32
				for n := range maxNr(info.table) + 8 {
					if info.x32 {
						n |= x32Bit
					}
					nrs = append(nrs, n)
				}
				nrs = append(nrs, 999, 0x3fffffff, x32Bit|999, 0xffffffff)
				for _, n := range nrs {
					for range 8 {
						d := seccompData{nr: n, arch: info.audit}
						for i := range d.args {
							d.args[i] = values[rng.IntN(len(values))]
						}
						if got, want := run(t, prog, d), model(r, d); got != want {
							t.Fatalf("arch %s nr %#x args %x: program %#x, model %#x", a, n, d.args, got, want)
						}
						checked++
					}
				}
			}
			t.Logf("%d inputs agree", checked)
		})
	}
}

// TestShortPaths checks that a system call is decided in a few steps
// rather than by walking a list of every call: the filter runs at every
// system call a container makes, and its length is what loading it costs.
func TestShortPaths(t *testing.T) {
	r, prog := compileFor(t, DefaultProfile(), dockerCaps, "amd64")
	if len(prog) > 800 {
		t.Errorf("docker's profile compiles to %d instructions, want at most 800", len(prog))
	}
	info := specArches[specs.ArchX86_64]
	calls, err := r.rulesFor(info)
	if err != nil {
		t.Fatal(err)
	}
	longest, sum, n := 0, 0, 0
	for _, c := range calls {
		if c.unconditional == nil {
			continue
		}
		_, steps := execute(t, prog, seccompData{nr: c.nr, arch: info.audit})
		longest, sum, n = max(longest, steps), sum+steps, n+1
	}
	t.Logf("%d instructions; x86_64 calls decided in %.1f steps on average, %d at most", len(prog), float64(sum)/float64(n), longest)
	if longest > 24 {
		t.Errorf("an x86_64 call takes %d steps to decide, want at most 24", longest)
	}
}

// TestManyEqualities compiles a call allowed for hundreds of values of
// one argument, more than one group of equality tests reaches, and checks
// every value and its neighbours against the model.
func TestManyEqualities(t *testing.T) {
	p := &Profile{}
	p.DefaultAction = specs.ActErrno
	for v := range uint64(600) {
		p.Syscalls = append(p.Syscalls, &seccomp.Syscall{LinuxSyscall: specs.LinuxSyscall{
			Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: v * 3, Op: specs.OpEqualTo}},
		}})
	}
	r, prog := compileFor(t, p, nil, "amd64")
	d := seccompData{nr: nr(t, "amd64", "personality"), arch: unix.AUDIT_ARCH_X86_64}
	for v := range uint64(1802) {
		d.args[0] = v
		if got, want := run(t, prog, d), model(r, d); got != want {
			t.Fatalf("personality(%d): program %#x, model %#x", v, got, want)
		}
	}
}

func TestOperators(t *testing.T) {
	const v = 0x1_0000_0005
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpGreaterThan,
		specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpMaskedEqual}
	for _, op := range ops {
		t.Run(string(op), func(t *testing.T) {
			p := &Profile{Syscalls: []*seccomp.Syscall{{LinuxSyscall: specs.LinuxSyscall{
				Names: []string{"getpid"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: v, ValueTwo: 5, Op: op}},
			}}}}
			p.DefaultAction = specs.ActKillProcess
			r, prog := compileFor(t, p, nil, "amd64")
			for _, x := range []uint64{0, 4, 5, 6, v - 1, v, v + 1, 0x1_0000_0000, 0x2_0000_0000, 0x2_0000_0005, ^uint64(0)} {
				d := seccompData{nr: nr(t, "amd64", "getpid"), arch: unix.AUDIT_ARCH_X86_64}
				d.args[2] = x
				want := uint32(retKillProcess)
				if holds(r.syscalls[0].Args[0], x) {
					want = retAllow
				}
				if got := run(t, prog, d); got != want {
					t.Fatalf("%s %#x against %#x: %#x, want %#x", op, x, uint64(v), got, want)
				}
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Profile
		arch string
		want error
	}{
		{"unknown arch", DefaultProfile(), "ppc64le", errdefs.ErrNotSupported},
		{"no default action", &Profile{}, "amd64", errdefs.ErrInvalidArgument},
		{"both arch lists", func() *Profile {
			p := DefaultProfile()
			p.Architectures = []specs.Arch{specs.ArchX86_64}
			return p
		}(), "amd64", errdefs.ErrInvalidArgument},
		{"notify", func() *Profile {
			p := &Profile{Syscalls: []*seccomp.Syscall{{LinuxSyscall: specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActNotify}}}}
			p.DefaultAction = specs.ActAllow
			return p
		}(), "amd64", errdefs.ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := resolve(tc.p, nil, tc.arch, kernel61)
			if err == nil {
				_, err = r.compile()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want seccomp.KernelVersion
		ok   bool
	}{
		{"6.1.0-18-amd64", seccomp.KernelVersion{Kernel: 6, Major: 1}, true},
		{"6.18.44-fc-v782", seccomp.KernelVersion{Kernel: 6, Major: 18}, true},
		{"4.8-rc5", seccomp.KernelVersion{Kernel: 4, Major: 8}, true},
		{"5.15+", seccomp.KernelVersion{Kernel: 5, Major: 15}, true},
		{"garbage", seccomp.KernelVersion{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRelease(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseRelease(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
}

func TestMinKernel(t *testing.T) {
	old := seccomp.KernelVersion{Kernel: 4, Major: 4}
	r, err := resolve(DefaultProfile(), dockerCaps, "amd64", old)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := r.compile()
	if err != nil {
		t.Fatal(err)
	}
	d := seccompData{nr: nr(t, "amd64", "ptrace"), arch: unix.AUDIT_ARCH_X86_64}
	if got := run(t, prog, d); got != eperm {
		t.Fatalf("ptrace on 4.4: %#x, want EPERM", got)
	}
}

func BenchmarkCompileDefault(b *testing.B) {
	p := DefaultProfile()
	for b.Loop() {
		if _, err := Compile(p, dockerCaps, "amd64"); err != nil {
			b.Fatal(err)
		}
	}
}
