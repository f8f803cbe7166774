//go:build linux

// Package seccomp compiles docker's seccomp profiles into classic BPF
// programs and loads them, in pure Go: no cgo and no libseccomp, so that
// dock builds as a static binary.
//
// A profile (moby's profile type, as docker reads it from JSON) is first
// resolved for one container: rules are kept or dropped by the container's
// capabilities, the architecture and the kernel version, as docker does.
// The resolved rules are then compiled for the native architecture and the
// sub-architectures the profile lists (on amd64: x86_64, i386 and x32),
// with libseccomp's meaning:
//
//   - a system call with an unconditional rule takes that rule's action;
//   - otherwise its conditional rules are tried in order and the first whose
//     argument conditions all hold decides (a rule comparing the same
//     argument twice is split into one rule per comparison, as runc does);
//   - a system call numbered above every call this package knows of returns
//     ENOSYS when the default action is not "allow", so that a C library
//     falls back from a call newer than the profile (runc does the same);
//   - everything else takes the default action;
//   - an architecture the filter does not cover kills the process.
//
// x32 calls are matched by x86_64's numbers with the x32 bit set; the few
// x32-only variants (512 and up) take the default action.
package seccomp

//go:generate go run mksysnum.go

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
)

// Profile is a docker seccomp profile: moby's type, which reads docker's
// JSON profiles.
type Profile = seccomp.Seccomp

// DefaultProfile returns docker's default profile: system calls are denied
// with EPERM unless listed, and some are allowed only with a capability.
func DefaultProfile() *Profile {
	return seccomp.DefaultProfile()
}

// archInfo describes one architecture a filter can cover.
type archInfo struct {
	audit uint32 // AUDIT_ARCH_* in seccomp_data.arch
	table string // see sysnumTable
	x32   bool   // numbers carry __X32_SYSCALL_BIT
}

const x32Bit = 0x40000000

// specArches maps the profile's architecture names to what the compiler
// knows; other architectures in a profile are ignored.
var specArches = map[specs.Arch]archInfo{
	specs.ArchX86_64:  {audit: unix.AUDIT_ARCH_X86_64, table: "amd64"},
	specs.ArchX32:     {audit: unix.AUDIT_ARCH_X86_64, table: "amd64", x32: true},
	specs.ArchX86:     {audit: unix.AUDIT_ARCH_I386, table: "386"},
	specs.ArchAARCH64: {audit: unix.AUDIT_ARCH_AARCH64, table: "arm64"},
	specs.ArchARM:     {audit: unix.AUDIT_ARCH_ARM, table: "arm"},
}

// goArches maps a GOARCH to the profile's name for it and to the name the
// profile's includes and excludes use.
var goArches = map[string]struct {
	spec   specs.Arch
	filter string
}{
	"amd64": {specs.ArchX86_64, "amd64"},
	"arm64": {specs.ArchAARCH64, "arm64"},
}

// resolved is a profile after its conditions were applied for one
// container.
type resolved struct {
	defaultAction specs.LinuxSeccompAction
	defaultErrno  *uint
	arches        []specs.Arch // native first
	syscalls      []specs.LinuxSyscall
}

// normalizeCaps returns caps as "CAP_X" names.
func normalizeCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// resolve applies p's includes and excludes for a container holding caps
// on arch (a GOARCH) and a kernel of version kv, as docker does.
func resolve(p *Profile, caps []string, arch string, kv seccomp.KernelVersion) (*resolved, error) {
	ga, ok := goArches[arch]
	if !ok {
		return nil, fmt.Errorf("seccomp: architecture %q: %w", arch, errdefs.ErrNotSupported)
	}
	if len(p.Architectures) != 0 && len(p.ArchMap) != 0 {
		return nil, fmt.Errorf("seccomp: profile has both architectures and archMap: %w", errdefs.ErrInvalidArgument)
	}
	if len(p.LinuxSeccomp.Syscalls) != 0 {
		return nil, fmt.Errorf("seccomp: profile sets the runtime-spec syscalls field: %w", errdefs.ErrInvalidArgument)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp: profile has no default action: %w", errdefs.ErrInvalidArgument)
	}
	caps = normalizeCaps(caps)
	r := &resolved{defaultAction: p.DefaultAction, defaultErrno: p.DefaultErrnoRet, arches: []specs.Arch{ga.spec}}
	add := func(a specs.Arch) {
		if !slices.Contains(r.arches, a) {
			r.arches = append(r.arches, a)
		}
	}
	for _, a := range p.Architectures {
		add(a)
	}
	for _, m := range p.ArchMap {
		if m.Arch == ga.spec {
			for _, a := range m.SubArches {
				add(a)
			}
		}
	}
	atLeast := func(v *seccomp.KernelVersion) bool {
		return kv.Kernel > v.Kernel || (kv.Kernel == v.Kernel && kv.Major >= v.Major)
	}
next:
	for _, call := range p.Syscalls {
		if call == nil {
			continue
		}
		s := call.LinuxSyscall
		//lint:ignore SA1019 older JSON profiles still name one call with "name"
		if name := call.Name; name != "" {
			if len(s.Names) != 0 {
				return nil, fmt.Errorf("seccomp: rule has both name and names: %w", errdefs.ErrInvalidArgument)
			}
			s.Names = []string{name}
		}
		if ex := call.Excludes; ex != nil {
			if slices.Contains(ex.Arches, ga.filter) {
				continue
			}
			for _, c := range ex.Caps {
				if slices.Contains(caps, c) {
					continue next
				}
			}
			if ex.MinKernel != nil && atLeast(ex.MinKernel) {
				continue
			}
		}
		if in := call.Includes; in != nil {
			if len(in.Arches) > 0 && !slices.Contains(in.Arches, ga.filter) {
				continue
			}
			for _, c := range in.Caps {
				if !slices.Contains(caps, c) {
					continue next
				}
			}
			if in.MinKernel != nil && !atLeast(in.MinKernel) {
				continue
			}
		}
		r.syscalls = append(r.syscalls, s)
	}
	return r, nil
}

// Compile turns profile p into a BPF program for a container granted the
// capabilities caps ("CAP_SYS_ADMIN" or "SYS_ADMIN"; docker passes the
// container's bounding set, which for root is also its effective set), for
// arch, a GOARCH ("" means the running one; amd64 and arm64 are known).
// The host kernel's version decides the profile's minKernel rules.
func Compile(p *Profile, caps []string, arch string) ([]unix.SockFilter, error) {
	if p == nil {
		return nil, fmt.Errorf("seccomp: no profile: %w", errdefs.ErrInvalidArgument)
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	kv, err := kernelVersion()
	if err != nil {
		return nil, err
	}
	r, err := resolve(p, caps, arch, kv)
	if err != nil {
		return nil, err
	}
	return r.compile()
}

// Seccomp return values (linux/seccomp.h).
const (
	retKillThread  = 0x00000000
	retKillProcess = 0x80000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

func encodeAction(a specs.LinuxSeccompAction, errno *uint) (uint32, error) {
	e := uint32(unix.EPERM)
	if errno != nil {
		e = uint32(*errno) & 0xffff
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | e, nil
	case specs.ActTrace:
		if errno == nil {
			e = 0
		}
		return retTrace | e, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("seccomp: action %s needs a listener: %w", a, errdefs.ErrNotSupported)
	}
	return 0, fmt.Errorf("seccomp: action %q: %w", a, errdefs.ErrInvalidArgument)
}

// rule is one way a system call can match: all conditions hold.
type rule struct {
	conds  []specs.LinuxSeccompArg
	action uint32
}

// callRules gathers what the profile says about one system call number.
type callRules struct {
	nr            uint32
	unconditional *uint32
	conditional   []rule
}

// rulesFor builds the rules of one architecture, sorted by number.
func (r *resolved) rulesFor(a archInfo) ([]*callRules, error) {
	byNr := map[uint32]*callRules{}
	for _, s := range r.syscalls {
		act, err := encodeAction(s.Action, s.ErrnoRet)
		if err != nil {
			return nil, err
		}
		for _, c := range s.Args {
			if c.Index > 5 {
				return nil, fmt.Errorf("seccomp: %v: argument index %d: %w", s.Names, c.Index, errdefs.ErrInvalidArgument)
			}
			switch c.Op {
			case specs.OpEqualTo, specs.OpNotEqual, specs.OpMaskedEqual, specs.OpGreaterThan,
				specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual:
			default:
				return nil, fmt.Errorf("seccomp: %v: operator %q: %w", s.Names, c.Op, errdefs.ErrInvalidArgument)
			}
		}
		var rules []rule
		if len(s.Args) > 0 {
			seen := map[uint]bool{}
			repeated := false
			for _, c := range s.Args {
				repeated = repeated || seen[c.Index]
				seen[c.Index] = true
			}
			if repeated {
				for _, c := range s.Args {
					rules = append(rules, rule{conds: []specs.LinuxSeccompArg{c}, action: act})
				}
			} else {
				rules = append(rules, rule{conds: s.Args, action: act})
			}
		}
		for _, name := range s.Names {
			nr, ok := lookup(a.table, name)
			if !ok {
				continue // not on this architecture, or newer than the table
			}
			if a.x32 {
				nr |= x32Bit
			}
			cr := byNr[nr]
			if cr == nil {
				cr = &callRules{nr: nr}
				byNr[nr] = cr
			}
			if len(rules) == 0 {
				if cr.unconditional == nil {
					v := act
					cr.unconditional = &v
				}
				continue
			}
			cr.conditional = append(cr.conditional, rules...)
		}
	}
	out := make([]*callRules, 0, len(byNr))
	for _, cr := range byNr {
		out = append(out, cr)
	}
	slices.SortFunc(out, func(x, y *callRules) int { return int(x.nr) - int(y.nr) })
	return out, nil
}

// sysnum is one system call of one architecture.
type sysnum struct {
	name string
	nr   uint32
}

// lookup finds a system call's number on an architecture.
func lookup(table, name string) (uint32, bool) {
	t := sysnumTable(table)
	i, ok := slices.BinarySearchFunc(t, name, func(s sysnum, n string) int { return strings.Compare(s.name, n) })
	if !ok {
		return 0, false
	}
	return t[i].nr, true
}

// maxNr is the highest number this package knows on an architecture.
func maxNr(table string) uint32 {
	var m uint32
	for _, s := range sysnumTable(table) {
		m = max(m, s.nr)
	}
	return m
}

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func (r *resolved) compile() ([]unix.SockFilter, error) {
	def, err := encodeAction(r.defaultAction, r.defaultErrno)
	if err != nil {
		return nil, err
	}
	var (
		asm      assembler
		sections []specs.Arch
		hasX32   bool
	)
	for _, a := range r.arches {
		info, ok := specArches[a]
		if !ok {
			continue
		}
		if info.x32 {
			hasX32 = true
			continue // checked inside the x86_64 section
		}
		sections = append(sections, a)
	}
	badArch := uint32(retKillProcess)

	// Dispatch on the architecture.
	asm.ld(offArch)
	for _, a := range sections {
		asm.jeq(specArches[a].audit, "", "+1")
		asm.ja("arch:" + string(a))
	}
	asm.ret(badArch)

	for _, a := range sections {
		info := specArches[a]
		asm.label("arch:" + string(a))
		asm.ld(offNr)
		if info.audit == unix.AUDIT_ARCH_X86_64 {
			// x32 shares x86_64's audit value; its numbers carry a bit.
			asm.jge(x32Bit, "", "+1")
			if hasX32 {
				asm.ja("arch:x32")
			} else {
				asm.ret(badArch)
			}
		}
		if err := r.emitCalls(&asm, info, def); err != nil {
			return nil, err
		}
	}
	if hasX32 && slices.Contains(sections, specs.ArchX86_64) {
		asm.label("arch:x32")
		asm.ld(offNr)
		if err := r.emitCalls(&asm, specArches[specs.ArchX32], def); err != nil {
			return nil, err
		}
	}
	prog, err := asm.assemble()
	if err != nil {
		return nil, err
	}
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions exceeds %d: %w", len(prog), unix.BPF_MAXINSNS, errdefs.ErrInvalidArgument)
	}
	return prog, nil
}

// emitCalls emits the rules of one architecture, expecting the system call
// number in A and ending in returns only.
//
// The numbers are cut into runs that share an outcome (docker's profile
// allows most calls, in long runs), and the program finds the run of A by
// binary search. With docker's profile, x86_64's 67 runs take at most 13
// instructions, at every system call the container makes, where a jump
// per call took up to 315; and the program, less than half as long, loads
// faster.
func (r *resolved) emitCalls(asm *assembler, info archInfo, def uint32) error {
	calls, err := r.rulesFor(info)
	if err != nil {
		return err
	}
	emitRuns(asm, r.runs(calls, info, def), def)
	return nil
}

// callRun is a range of system call numbers with one outcome: an action, or
// the conditional rules of a single call.
type callRun struct {
	lo, hi uint32 // inclusive
	action uint32
	call   *callRules // when its rules decide
	size   int        // of its outcome's code
}

// runs cuts every number an architecture's section can see into runs,
// from calls sorted by number.
func (r *resolved) runs(calls []*callRules, info archInfo, def uint32) []callRun {
	var out []callRun
	add := func(lo, hi, action uint32, call *callRules) {
		if n := len(out); n > 0 && call == nil && out[n-1].call == nil && out[n-1].action == action && out[n-1].hi+1 == lo {
			out[n-1].hi = hi
			return
		}
		out = append(out, callRun{lo: lo, hi: hi, action: action, call: call})
	}
	next := uint32(0)
	if info.x32 {
		next = x32Bit // the section sees x32 numbers only
	}
	for _, c := range calls {
		if c.nr > next {
			add(next, c.nr-1, def, nil)
		}
		switch {
		case c.unconditional != nil:
			add(c.nr, c.nr, *c.unconditional, nil)
		case len(c.conditional) > 0:
			add(c.nr, c.nr, 0, c)
		default:
			add(c.nr, c.nr, def, nil)
		}
		next = c.nr + 1
	}
	if r.defaultAction != specs.ActAllow && !info.x32 {
		if top := maxNr(info.table); next <= top {
			add(next, top, def, nil)
			next = top + 1
		}
		add(next, ^uint32(0), retErrno|uint32(unix.ENOSYS), nil)
		return sized(out, def)
	}
	add(next, ^uint32(0), def, nil)
	return sized(out, def)
}

// sized sets the size of each run's outcome.
func sized(runs []callRun, def uint32) []callRun {
	for i := range runs {
		var asm assembler
		emitOutcome(&asm, runs[i], def)
		runs[i].size = len(asm.insns)
	}
	return runs
}

// maxJump is the furthest a conditional jump of classic BPF reaches.
const maxJump = 255

// emitRuns emits a search of runs, which cover every number A can hold
// here, each run above the one before.
func emitRuns(asm *assembler, runs []callRun, def uint32) {
	if len(runs) == 1 {
		emitOutcome(asm, runs[0], def)
		return
	}
	mid, upper := len(runs)/2, asm.newLabel()
	if runsSize(runs[:mid]) <= maxJump {
		asm.jge(runs[mid].lo, upper, "")
	} else {
		asm.jge(runs[mid].lo, "", "+1")
		asm.ja(upper)
	}
	emitRuns(asm, runs[:mid], def)
	asm.label(upper)
	emitRuns(asm, runs[mid:], def)
}

// runsSize is the length of what emitRuns emits for runs.
func runsSize(runs []callRun) int {
	if len(runs) == 1 {
		return runs[0].size
	}
	mid := len(runs) / 2
	lower := runsSize(runs[:mid])
	node := 1
	if lower > maxJump {
		node = 2
	}
	return node + lower + runsSize(runs[mid:])
}

// emitOutcome emits the outcome of one run, once A is known to be in it.
func emitOutcome(asm *assembler, ru callRun, def uint32) {
	if ru.call == nil {
		asm.ret(ru.action)
		return
	}
	rules := ru.call.conditional
	for len(rules) > 0 {
		if n := equalities(rules); n > 1 {
			emitEqualities(asm, rules[:n])
			rules = rules[n:]
			continue
		}
		fail := asm.newLabel()
		for _, cond := range rules[0].conds {
			emitCond(asm, cond, fail)
		}
		asm.ret(rules[0].action)
		asm.label(fail)
		rules = rules[1:]
	}
	asm.ret(def)
}

// equalities counts the rules at the head of rules that each compare the
// same argument for equality, with one action and the same upper half:
// docker's profile allows socket for some thirty address families so.
func equalities(rules []rule) int {
	single := func(r rule) bool { return len(r.conds) == 1 && r.conds[0].Op == specs.OpEqualTo }
	if !single(rules[0]) {
		return 0
	}
	first := rules[0].conds[0]
	n := 1
	// The test of the upper half skips the loads, a jump per value and
	// the two instructions after them: n+3 must be a jump's reach.
	for n < len(rules) && n+3 < maxJump && single(rules[n]) && rules[n].action == rules[0].action {
		c := rules[n].conds[0]
		if c.Index != first.Index || c.Value>>32 != first.Value>>32 {
			break
		}
		n++
	}
	return n
}

// emitEqualities emits rules that equalities grouped, as one test of the
// argument against each value in turn.
func emitEqualities(asm *assembler, rules []rule) {
	first := rules[0].conds[0]
	lo := offArgs + 8*uint32(first.Index)
	match, fail := asm.newLabel(), asm.newLabel()
	asm.ld(lo + 4)
	asm.jeq(uint32(first.Value>>32), "", fail)
	asm.ld(lo)
	for _, r := range rules {
		asm.jeq(uint32(r.conds[0].Value), match, "")
	}
	asm.ja(fail)
	asm.label(match)
	asm.ret(rules[0].action)
	asm.label(fail)
}

// emitCond emits a 64-bit comparison of one argument, falling through
// when it holds and jumping to fail when it does not. Arguments are
// little-endian on every architecture the package knows.
func emitCond(asm *assembler, c specs.LinuxSeccompArg, fail string) {
	lo := offArgs + 8*uint32(c.Index)
	hi := lo + 4
	vLo, vHi := uint32(c.Value), uint32(c.Value>>32)
	pass := asm.newLabel()
	switch c.Op {
	case specs.OpEqualTo:
		asm.ld(hi)
		asm.jeq(vHi, "", fail)
		asm.ld(lo)
		asm.jeq(vLo, "", fail)
	case specs.OpNotEqual:
		asm.ld(hi)
		asm.jeq(vHi, "", pass)
		asm.ld(lo)
		asm.jeq(vLo, fail, "")
	case specs.OpMaskedEqual:
		// Value is the mask, ValueTwo the expected result.
		dLo, dHi := uint32(c.ValueTwo), uint32(c.ValueTwo>>32)
		asm.ld(hi)
		asm.and(vHi)
		asm.jeq(dHi, "", fail)
		asm.ld(lo)
		asm.and(vLo)
		asm.jeq(dLo, "", fail)
	case specs.OpGreaterThan:
		asm.ld(hi)
		asm.jgt(vHi, pass, "")
		asm.jeq(vHi, "", fail)
		asm.ld(lo)
		asm.jgt(vLo, "", fail)
	case specs.OpGreaterEqual:
		asm.ld(hi)
		asm.jgt(vHi, pass, "")
		asm.jeq(vHi, "", fail)
		asm.ld(lo)
		asm.jge(vLo, "", fail)
	case specs.OpLessThan:
		asm.ld(hi)
		asm.jge(vHi, "", pass)
		asm.jeq(vHi, "", fail)
		asm.ld(lo)
		asm.jge(vLo, fail, "")
	case specs.OpLessEqual:
		asm.ld(hi)
		asm.jge(vHi, "", pass)
		asm.jeq(vHi, "", fail)
		asm.ld(lo)
		asm.jgt(vLo, fail, "")
	}
	asm.label(pass)
}

// assembler builds a classic BPF program with symbolic jump targets. A
// target "" is the next instruction, "+1" the one after it, anything else
// a label.
type assembler struct {
	insns  []insn
	labels map[string]int
	n      int
}

type insn struct {
	f      unix.SockFilter
	jt, jf string // conditional targets
	ja     string // unconditional target
}

func (a *assembler) newLabel() string {
	a.n++
	return fmt.Sprintf("L%d", a.n)
}

func (a *assembler) label(l string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[l] = len(a.insns)
}

func (a *assembler) emit(code uint16, k uint32, jt, jf string) {
	a.insns = append(a.insns, insn{f: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf})
}

func (a *assembler) ld(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off, "", "") }
func (a *assembler) and(k uint32)  { a.emit(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, k, "", "") }
func (a *assembler) ret(k uint32)  { a.emit(unix.BPF_RET|unix.BPF_K, k, "", "") }
func (a *assembler) jeq(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, jf)
}
func (a *assembler) jgt(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JGT|unix.BPF_K, k, jt, jf)
}
func (a *assembler) jge(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, k, jt, jf)
}
func (a *assembler) ja(target string) {
	a.insns = append(a.insns, insn{f: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, ja: target})
}

func (a *assembler) target(i int, t string) (int, error) {
	switch t {
	case "":
		return 0, nil
	case "+1":
		return 1, nil
	}
	at, ok := a.labels[t]
	if !ok {
		return 0, fmt.Errorf("seccomp: internal: label %s undefined", t)
	}
	off := at - (i + 1)
	if off < 0 {
		return 0, fmt.Errorf("seccomp: internal: backward jump to %s", t)
	}
	return off, nil
}

func (a *assembler) assemble() ([]unix.SockFilter, error) {
	out := make([]unix.SockFilter, len(a.insns))
	for i, in := range a.insns {
		f := in.f
		if in.ja != "" {
			off, err := a.target(i, in.ja)
			if err != nil {
				return nil, err
			}
			f.K = uint32(off)
		} else if f.Code&0x07 == unix.BPF_JMP {
			jt, err := a.target(i, in.jt)
			if err != nil {
				return nil, err
			}
			jf, err := a.target(i, in.jf)
			if err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("seccomp: internal: jump of %d/%d instructions", jt, jf)
			}
			f.Jt, f.Jf = uint8(jt), uint8(jf)
		}
		out[i] = f
	}
	return out, nil
}
