//go:build linux

package caps

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"NET_ADMIN", "CAP_NET_ADMIN"},
		{"CAP_NET_ADMIN", "CAP_NET_ADMIN"},
		{"net_admin", "CAP_NET_ADMIN"},
		{"cap_sys_admin", "CAP_SYS_ADMIN"},
		{" Chown ", "CAP_CHOWN"},
		{"checkpoint_restore", "CAP_CHECKPOINT_RESTORE"},
		{"NET_ADMINS", ""},
		{"ALL", ""},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.want == "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Parse(%q) = %q, %v; want ErrInvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	all := All()
	without := func(drop ...string) []string {
		var out []string
		for _, c := range all {
			keep := true
			for _, d := range drop {
				keep = keep && c != d
			}
			if keep {
				out = append(out, c)
			}
		}
		return out
	}
	sorted := func(list ...string) []string { return mustSet(list).Names() }
	for _, tc := range []struct {
		name       string
		add, drop  []string
		want       []string
		wantErrSub string
	}{
		{name: "defaults", want: sorted(defaults...)},
		{name: "add one", add: []string{"net_admin"},
			want: sorted(append(Default(), "CAP_NET_ADMIN")...)},
		{name: "add present", add: []string{"CHOWN"}, want: sorted(defaults...)},
		{name: "drop one", drop: []string{"cap_mknod", "NET_RAW"},
			want: sorted("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
				"CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")},
		{name: "drop all add one", add: []string{"NET_BIND_SERVICE"}, drop: []string{"all"},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "add all", add: []string{"ALL"}, want: all},
		{name: "add all drop some", add: []string{"ALL"}, drop: []string{"SYS_ADMIN", "cap_net_admin"},
			want: without("CAP_SYS_ADMIN", "CAP_NET_ADMIN")},
		{name: "add and drop same", add: []string{"NET_ADMIN"}, drop: []string{"NET_ADMIN"},
			want: sorted(append(Default(), "CAP_NET_ADMIN")...)},
		{name: "unknown add", add: []string{"NET_ADMINS"}, wantErrSub: `cap-add: unknown capability "NET_ADMINS"`},
		{name: "unknown drop", drop: []string{"FOO"}, wantErrSub: `cap-drop: unknown capability "FOO"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Merge(Default(), tc.add, tc.drop)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("Merge error %v, want one containing %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Merge = %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	s, err := NewSet([]string{"CHOWN", "CAP_SYS_ADMIN", "checkpoint_restore"})
	if err != nil {
		t.Fatal(err)
	}
	if want := Set(1<<0 | 1<<21 | 1<<40); s != want {
		t.Fatalf("set %#x, want %#x", uint64(s), uint64(want))
	}
	if got := s.Names(); !reflect.DeepEqual(got, []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"}) {
		t.Fatalf("names %v", got)
	}
	if _, err := NewSet([]string{"bogus"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("NewSet(bogus): %v", err)
	}
	if got := ForUser(s, 1000); got != (State{Bounding: s}) {
		t.Fatalf("ForUser non-root: %+v", got)
	}
	if got := ForUser(s, 0); got != (State{Bounding: s, Effective: s, Permitted: s}) {
		t.Fatalf("ForUser root: %+v", got)
	}
}

const childEnv = "DOCK_CAPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild applies a state and prints what the kernel says the thread
// holds. mode is "apply:<uid>:<set>" or "exec:<set>" (apply as root, then
// exec "dump") or "dump".
func runChild(mode string) error {
	parts := strings.Split(mode, ":")
	if parts[0] == "dump" {
		return dump("/proc/self/status")
	}
	runtime.LockOSThread()
	uid := 0
	if parts[0] == "apply" {
		var err error
		if uid, err = strconv.Atoi(parts[1]); err != nil {
			return err
		}
		parts = parts[1:]
	}
	set, err := strconv.ParseUint(parts[1], 16, 64)
	if err != nil {
		return err
	}
	st := ForUser(Set(set), uid)
	if uid == 0 {
		if err := Apply(st); err != nil {
			return err
		}
	} else {
		if err := ApplyBounding(st.Bounding); err != nil {
			return err
		}
		// A raw setresuid changes only this thread, like the container's
		// init does on its locked thread.
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			return e
		}
		if err := ApplyThread(st); err != nil {
			return err
		}
	}
	if parts[0] == "exec" {
		var env []string
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, childEnv+"=") {
				env = append(env, e)
			}
		}
		env = append(env, childEnv+"=dump")
		return syscall.Exec("/proc/self/exe", []string{os.Args[0], "-test.run=^$"}, env)
	}
	return dump("/proc/thread-self/status")
}

func dump(status string) error {
	f, err := os.Open(status)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Cap") {
			fmt.Println(sc.Text())
		}
	}
	return sc.Err()
}

func readChild(t *testing.T, mode string) map[string]uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	got := map[string]uint64{}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			t.Fatalf("child output %q", line)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("child output %q: %v", line, err)
		}
		got[k] = n
	}
	return got
}

func TestApply(t *testing.T) {
	testutil.RequireRoot(t)
	set := func(add, drop []string) Set {
		names, err := Merge(Default(), add, drop)
		if err != nil {
			t.Fatal(err)
		}
		return mustSet(names) & Available()
	}
	def := set(nil, nil)
	for _, tc := range []struct {
		name string
		mode string
		want map[string]Set
	}{
		{"root defaults", fmt.Sprintf("apply:0:%x", uint64(def)),
			map[string]Set{"CapBnd": def, "CapEff": def, "CapPrm": def, "CapInh": 0, "CapAmb": 0}},
		{"root net_bind_service only", fmt.Sprintf("apply:0:%x", uint64(set([]string{"NET_BIND_SERVICE"}, []string{"ALL"}))),
			map[string]Set{"CapBnd": 1 << unix.CAP_NET_BIND_SERVICE, "CapEff": 1 << unix.CAP_NET_BIND_SERVICE,
				"CapPrm": 1 << unix.CAP_NET_BIND_SERVICE, "CapInh": 0, "CapAmb": 0}},
		{"root all but sys_admin", fmt.Sprintf("apply:0:%x", uint64(set([]string{"ALL"}, []string{"SYS_ADMIN"}))),
			map[string]Set{"CapBnd": set([]string{"ALL"}, []string{"SYS_ADMIN"}), "CapEff": set([]string{"ALL"}, []string{"SYS_ADMIN"}),
				"CapPrm": set([]string{"ALL"}, []string{"SYS_ADMIN"}), "CapInh": 0, "CapAmb": 0}},
		{"user 1000 defaults", fmt.Sprintf("apply:1000:%x", uint64(def)),
			map[string]Set{"CapBnd": def, "CapEff": 0, "CapPrm": 0, "CapInh": 0, "CapAmb": 0}},
		{"root defaults across exec", fmt.Sprintf("exec:%x", uint64(def)),
			map[string]Set{"CapBnd": def, "CapEff": def, "CapPrm": def, "CapInh": 0, "CapAmb": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readChild(t, tc.mode)
			for k, want := range tc.want {
				v, ok := got[k]
				if !ok {
					t.Fatalf("no %s in the child's status: %v", k, got)
				}
				if Set(v) != want {
					t.Errorf("%s = %v, want %v", k, Set(v).Names(), want.Names())
				}
			}
		})
	}
}
