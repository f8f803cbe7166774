//go:build linux

package seccomp

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/testutil"
)

const childEnv = "DOCK_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// probes are system calls chosen so that the kernel, for root outside any
// filter, answers differently from the default profile's EPERM.
var probes = []struct {
	name string
	call func() unix.Errno
}{
	{"getpid", func() unix.Errno { return raw(unix.SYS_GETPID) }},
	{"openat", func() unix.Errno {
		fd, err := unix.Open("/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			return 0
		}
		return err.(unix.Errno)
	}},
	{"unshare-user", func() unix.Errno { return raw(unix.SYS_UNSHARE, unix.CLONE_NEWUSER) }},
	{"unshare-uts", func() unix.Errno { return raw(unix.SYS_UNSHARE, unix.CLONE_NEWUTS) }},
	{"mount", func() unix.Errno {
		src, _ := unix.BytePtrFromString("none")
		dst, _ := unix.BytePtrFromString("/nonexistent-dock-seccomp-test")
		fs, _ := unix.BytePtrFromString("tmpfs")
		return raw(unix.SYS_MOUNT, uintptr(unsafe.Pointer(src)), uintptr(unsafe.Pointer(dst)), uintptr(unsafe.Pointer(fs)))
	}},
	// A wrong magic number: the kernel says EINVAL, the filter EPERM.
	{"reboot", func() unix.Errno { return raw(unix.SYS_REBOOT, 1, 2, 3) }},
	{"keyctl", func() unix.Errno {
		return raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd) /* session */, 0)
	}},
	{"personality-query", func() unix.Errno { return raw(unix.SYS_PERSONALITY, 0xffffffff) }},
	{"personality-no-randomize", func() unix.Errno { return raw(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */) }},
	{"socket-inet", func() unix.Errno {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			return 0
		}
		return err.(unix.Errno)
	}},
	{"socket-vsock", func() unix.Errno {
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			return 0
		}
		return err.(unix.Errno)
	}},
	// clone3 with a NULL argument: the kernel says EFAULT or EINVAL.
	{"clone3", func() unix.Errno { return raw(unix.SYS_CLONE3, 0, 0) }},
}

func raw(nr uintptr, args ...uintptr) unix.Errno {
	var a [3]uintptr
	copy(a[:], args)
	_, _, e := unix.RawSyscall(nr, a[0], a[1], a[2])
	return e
}

// runChild loads the default profile compiled for mode's capabilities and
// prints each probe's errno.
func runChild(mode string) int {
	runtime.LockOSThread()
	caps := dockerCaps
	if mode == "admin" {
		caps = append(slices.Clone(caps), "CAP_SYS_ADMIN")
	}
	filter, err := Compile(DefaultProfile(), caps, "")
	if err != nil {
		fmt.Println("compile:", err)
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 2
	}
	if mode != "none" {
		if err := Load(filter); err != nil {
			fmt.Println("load:", err)
			return 2
		}
	}
	for _, p := range probes {
		fmt.Printf("%s %d\n", p.name, int(p.call()))
	}
	return 0
}

func runProbes(t *testing.T, mode string) map[string]unix.Errno {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := map[string]unix.Errno{}
	for line := range strings.Lines(string(out)) {
		var name string
		var e int
		if _, err := fmt.Sscanf(line, "%s %d", &name, &e); err != nil {
			t.Fatalf("child output %q", line)
		}
		got[name] = unix.Errno(e)
	}
	return got
}

func TestLoadDefaultProfile(t *testing.T) {
	testutil.RequireRoot(t)
	if err := unix.Prctl(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err == unix.EINVAL {
		t.Skip("kernel without seccomp")
	}
	// Without the filter, the probes must not already fail with the
	// answers expected under it, or the test would prove nothing.
	bare := runProbes(t, "none")
	for _, name := range []string{"unshare-uts", "mount", "reboot", "keyctl", "personality-no-randomize", "clone3"} {
		if bare[name] == unix.EPERM || bare[name] == unix.ENOSYS {
			t.Fatalf("without a filter %s already fails with %v", name, bare[name])
		}
	}
	for _, tc := range []struct {
		mode string
		want map[string]unix.Errno
	}{
		{"default", map[string]unix.Errno{
			"getpid": 0, "openat": 0, "socket-inet": 0, "personality-query": 0,
			"unshare-user": unix.EPERM, "unshare-uts": unix.EPERM, "mount": unix.EPERM, "reboot": unix.EPERM,
			"keyctl": unix.EPERM, "personality-no-randomize": unix.EPERM, "socket-vsock": unix.EPERM,
			"clone3": unix.ENOSYS,
		}},
		{"admin", map[string]unix.Errno{
			"getpid": 0, "unshare-uts": 0, "mount": bare["mount"], "reboot": unix.EPERM,
			"keyctl": unix.EPERM, "clone3": bare["clone3"],
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			got := runProbes(t, tc.mode)
			for name, want := range tc.want {
				if got[name] != want {
					t.Errorf("%s: errno %d (%v), want %d (%v)", name, got[name], got[name], want, want)
				}
			}
		})
	}
}
