//go:build linux

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockkit/dock/internal/testutil"
)

// TestEscapes tries, from inside a default container (root, Docker's
// capabilities, seccomp, no_new_privs), what would reach the host.
func TestEscapes(t *testing.T) {
	checkLeaks(t)
	script := `
try() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=ESCAPED"; else echo "$name=refused"; fi; }
try mount mount -t tmpfs none /tmp
try remount-root mount -o remount,rw /
try sysrq sh -c 'echo h > /proc/sysrq-trigger'
try sys-write sh -c 'echo 0 > /sys/kernel/mm/ksm/run'
try sys-mount mount -t sysfs none /tmp
mknod /tmp/sda b 8 0 2>/dev/null && echo mknod-tmp=made
try dev-use-tmp head -c1 /tmp/sda
mknod /dev/sda b 8 0 2>/dev/null && echo mknod-dev=made
try dev-use-dev head -c1 /dev/sda
try mem head -c1 /dev/mem
try unshare-user unshare -U true
try unshare-mnt unshare -m true
try chroot-escape sh -c 'cd /proc/1/root/.. && ls / | grep -q dock-runtime-test'
try host-cwd sh -c 'ls /proc/1/cwd/../../.. | grep -q dock-runtime-test'
try kmsg head -c1 /dev/kmsg
try ptrace-host sh -c 'ls /proc/*/ | grep -q monitor'
echo null=$(echo ok > /dev/null && echo ok)
echo zero=$(head -c3 /dev/zero | wc -c)
`
	spec := testSpec(t, "sh", "-c", script)
	spec.ReadonlyRootfs = false
	spec.Rootfs = []Mount{{Type: "bind", Source: t.TempDir()}}
	copyTree(t, baseRootfs, spec.Rootfs[0].Source)
	f := facts(t, spec)
	for k, v := range f {
		if v == "ESCAPED" {
			t.Errorf("%s: not refused", k)
		}
	}
	for _, k := range []string{"mount", "sysrq", "sys-write", "dev-use-tmp", "dev-use-dev", "unshare-user", "kmsg"} {
		if f[k] != "refused" {
			t.Errorf("%s = %q, want refused", k, f[k])
		}
	}
	if f["null"] != "ok" || f["zero"] != "3" {
		t.Errorf("/dev/null %q, /dev/zero %q", f["null"], f["zero"])
	}
}

// TestSealedBinary runs the sealed binary itself inside a container and has
// it try to write to its own executable, directly and, after exec, through
// a descriptor kept open (CVE-2019-5736).
func TestSealedBinary(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "/proc/self/exe")
	spec.Process.Env = append(spec.Process.Env, "DOCK_RUNTIME_TEST_HELPER=sealed")
	// The test binary is dynamically linked: lend it the host's libraries.
	for _, d := range []string{"/lib", "/lib64"} {
		if _, err := os.Stat(d); err == nil {
			spec.Mounts = append(spec.Mounts, MountSpec{Destination: d, Type: "bind", Source: d, Options: []string{"rbind", "ro"}})
		}
	}
	es, stdout, stderr := run(t, spec)
	// The shell's write fails, so it exits 1.
	if es.ExitCode != 1 {
		t.Fatalf("exit %+v\nstdout:%s\nstderr:%s", es, stdout, stderr)
	}
	if !strings.Contains(stdout, "direct=refused") {
		t.Errorf("writing /proc/self/exe: %s", stdout)
	}
	if !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("writing through the kept descriptor was not refused as read-only: %q", stderr)
	}
}

// sealedHelper runs inside the container, as the sealed binary.
func sealedHelper() int {
	f, err := os.OpenFile("/proc/self/exe", os.O_WRONLY, 0)
	if err == nil {
		f.Close()
		fmt.Println("direct=ESCAPED")
	} else {
		fmt.Printf("direct=refused (%v)\n", err)
	}
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH, 0)
	if err != nil {
		fmt.Println("opath:", err)
		return 1
	}
	script := fmt.Sprintf("echo overwritten > /proc/self/fd/%d", fd)
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", script}, []string{"PATH=/bin"})
	fmt.Println("exec:", err)
	return 1
}

// TestCwdThroughDescriptor starts containers whose working directory is
// one of the descriptors the process may have held before it executed,
// through its own proc (CVE-2024-21626): none may start in a directory
// outside its root.
func TestCwdThroughDescriptor(t *testing.T) {
	checkLeaks(t)
	// A name in the host's root that the container's lacks.
	var hostOnly string
	ents, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := os.Lstat(path.Join(baseRootfs, e.Name())); e.IsDir() && errors.Is(err, fs.ErrNotExist) {
			hostOnly = e.Name()
			break
		}
	}
	if hostOnly == "" {
		t.Fatal("no directory of the host's root is missing from the container's")
	}
	for fd := 3; fd < 40; fd++ {
		spec := testSpec(t, "sh", "-c", "ls -a ../../../../../../../..")
		spec.Process.Cwd = fmt.Sprintf("/proc/self/fd/%d", fd)
		var stdout, stderr syncBuffer
		h, err := start(t, spec, &Stdio{Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			continue // refused: what is wanted
		}
		es, err := h.Wait(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		for _, name := range strings.Fields(stdout.String()) {
			if name == hostOnly {
				t.Errorf("working directory %s reached the host's root (exit %d): %q", spec.Process.Cwd, es.ExitCode, stdout.String())
				break
			}
		}
	}
}

// TestParentDeathSignal checks that a cloned init's parent, for
// PR_SET_PDEATHSIG (which tini -p sets first thing), lasts as long as the
// container: that is the monitor's thread the init was cloned from, the
// one in the container's mount namespace, and it must not end first.
func TestParentDeathSignal(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "sleep", "100")
	if !initOnThread(spec) {
		t.Fatal("the init would not be cloned")
	}
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := h.State()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Past the moment the thread would end if it did not wait.
	time.Sleep(200 * time.Millisecond)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", st.MonitorPid))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, task := range tasks {
		if tns, _ := os.Readlink(fmt.Sprintf("/proc/%d/task/%s/ns/mnt", st.MonitorPid, task.Name())); tns == ns {
			found = true
		}
	}
	if !found {
		t.Errorf("no thread of monitor %d is left in the container's mount namespace: the init's parent ended", st.MonitorPid)
	}
	if err := h.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.Wait(ctxT(t, 30*time.Second))
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// TestEscapeSyscalls runs the test binary in a default container and has it
// make system calls that Docker's seccomp profile and capabilities refuse.
func TestEscapeSyscalls(t *testing.T) {
	checkLeaks(t)
	spec := testSpec(t, "/proc/self/exe")
	spec.Process.Env = append(spec.Process.Env, "DOCK_RUNTIME_TEST_HELPER=syscalls")
	for _, d := range []string{"/lib", "/lib64"} {
		if _, err := os.Stat(d); err == nil {
			spec.Mounts = append(spec.Mounts, MountSpec{Destination: d, Type: "bind", Source: d, Options: []string{"rbind", "ro"}})
		}
	}
	es, stdout, stderr := run(t, spec)
	if es.ExitCode != 0 {
		t.Fatalf("exit %+v\n%s\n%s", es, stdout, stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasSuffix(l, "=refused") {
			t.Errorf("%s", l)
		}
	}
	if strings.Count(stdout, "=refused") < 6 {
		t.Errorf("too few attempts reported:\n%s", stdout)
	}
}

// syscallsHelper runs inside the container.
func syscallsHelper() int {
	try := func(name string, fn func() error) {
		if err := fn(); err != nil {
			fmt.Printf("%s=refused\n", name)
		} else {
			fmt.Printf("%s=ESCAPED\n", name)
		}
	}
	errno := func(_, _ uintptr, e syscall.Errno) error {
		if e != 0 {
			return e
		}
		return nil
	}
	try("keyctl", func() error {
		return errno(unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0))
	})
	try("add_key", func() error {
		_, err := unix.AddKey("user", "dock-test", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	})
	try("unshare-user", func() error { return unix.Unshare(unix.CLONE_NEWUSER) })
	try("mount", func() error { return unix.Mount("none", "/tmp", "tmpfs", 0, "") })
	try("bpf", func() error { return errno(unix.Syscall(unix.SYS_BPF, 0, 0, 0)) })
	try("open_by_handle_at", func() error {
		return errno(unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0))
	})
	try("setns-host", func() error {
		fd, err := unix.Open("/proc/1/ns/mnt", unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		return unix.Setns(fd, unix.CLONE_NEWNS)
	})
	try("reboot", func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) })
	return 0
}

// TestFIFOMountPoint gives a container an image whose /etc/hosts is a FIFO,
// with a file bound over it as Docker binds its hosts file: the start must
// mount over the FIFO, not open it and wait for a writer that never comes.
func TestFIFOMountPoint(t *testing.T) {
	checkLeaks(t)
	hosts := path.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			rootfs := path.Join(t.TempDir(), "rootfs")
			if out, err := exec.Command("cp", "-a", baseRootfs, rootfs).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
			fifo := path.Join(rootfs, "etc/hosts")
			os.Remove(fifo)
			if err := unix.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			spec := testSpec(t, "cat", "/etc/hosts")
			spec.Rootfs[0].Source = rootfs
			spec.Mounts = append(spec.Mounts, MountSpec{Destination: "/etc/hosts", Type: "bind", Source: hosts, Options: []string{"bind", "ro"}})
			useInit(t, spec, kind.reexec)
			var stdout, stderr syncBuffer
			// A start stuck on the FIFO ends with its context.
			ctx := ctxT(t, 30*time.Second)
			h, err := startWith(t, func(_ context.Context, spec *Spec, stdio *Stdio) (*Handle, error) {
				return Start(ctx, spec, stdio)
			}, spec, &Stdio{Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			es, err := h.Wait(ctxT(t, 30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := h.copies.wait(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if es.ExitCode != 0 || stdout.String() != "127.0.0.1 bound\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want the bound file", es.ExitCode, stdout.String(), stderr.String())
			}
		})
	}
}

// TestWorkdirThroughProc gives a container that shares the host's pid
// namespace a working directory reached through /proc/<pid>/root of a host
// process: the directories it lacks must not be made in the host's tree,
// by the init, cloned or executed, nor by an exec'd process.
func TestWorkdirThroughProc(t *testing.T) {
	checkLeaks(t)
	host := t.TempDir()
	viaProc := func(name string) (string, string) {
		dir := path.Join(host, name, "sub")
		return dir, fmt.Sprintf("/proc/%d/root%s", os.Getpid(), dir)
	}
	noHostPid := func(t *testing.T, args ...string) *Spec {
		spec := testSpec(t, args...)
		spec.Namespaces.New = nil
		for _, ns := range DefaultNamespaces {
			if ns != "pid" {
				spec.Namespaces.New = append(spec.Namespaces.New, ns)
			}
		}
		return spec
	}
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			spec := noHostPid(t, "true")
			useInit(t, spec, kind.reexec)
			hostDir, cwd := viaProc(kind.name)
			spec.Process.Cwd = cwd
			if h, err := start(t, spec, nil); err == nil {
				h.Wait(ctxT(t, 30*time.Second))
			}
			if _, err := os.Lstat(path.Dir(hostDir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("working directory %s made %s on the host (%v)", cwd, path.Dir(hostDir), err)
			}
		})
	}
	t.Run("exec", func(t *testing.T) {
		h := running(t, noHostPid(t, "sleep", "100"))
		hostDir, cwd := viaProc("exec")
		p := Process{Args: []string{"true"}, Cwd: cwd, Env: []string{"PATH=/bin"}, Caps: testDefaultCaps}
		ctx := ctxT(t, 30*time.Second)
		if ep, err := h.Exec(ctx, &p, nil); err == nil {
			ep.Wait(ctx)
		}
		if _, err := os.Lstat(path.Dir(hostDir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("working directory %s made %s on the host (%v)", cwd, path.Dir(hostDir), err)
		}
	})
}

// TestChildKeepsOnly clones a child from this process as the monitor
// clones an init, with a file and a socket of its own open, and looks at
// the child while it waits to be put in its cgroups (the join hook): by
// then it holds none of them, only its stdio and its pipes to the parent.
// One that shares a pid namespace with others is in their sight from its
// start, and one held up there would keep them open.
func TestChildKeepsOnly(t *testing.T) {
	testutil.RequireRoot(t)
	file, err := os.CreateTemp(t.TempDir(), "monitor-file")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()

	proc := Process{Args: []string{"/bin/true"}, Cwd: "/", Env: []string{"PATH=/bin"}, Caps: testDefaultCaps, NoNewPrivs: true}
	s := &execSetup{proc: &proc, stdio: []*os.File{null, null, null}, cgroupFD: -1}
	c, err := newExecChild(s)
	if err != nil {
		t.Fatal(err)
	}
	c.init = true
	// What the child holds once it has closed what it does not use, or
	// after 10 s if it never does; it goes on once the hook returns.
	var held []string
	unused := func(targets []string) bool {
		for _, target := range targets {
			if target == file.Name() || strings.HasPrefix(target, "socket:") {
				return false
			}
		}
		return true
	}
	var pid int
	hooks := execHooks{
		mu:       &sync.Mutex{},
		forked:   func(p int) { pid = p },
		register: func(int) error { return nil },
		kill:     func(p int) { unix.Kill(p, unix.SIGKILL) },
		join: func(p int) error {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				held = held[:0]
				dir := fmt.Sprintf("/proc/%d/fd", p)
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if target, err := os.Readlink(path.Join(dir, e.Name())); err == nil {
						held = append(held, target)
					}
				}
				if unused(held) || time.Now().After(deadline) {
					return nil
				}
			}
		},
	}
	_, err = c.start(s, hooks)
	if pid > 0 {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !unused(held) {
		t.Errorf("the child, about to join its cgroups, holds %q", held)
	}
}

// copyRootfs returns a copy of the shared rootfs with the symlinks given
// (link name in the rootfs, target).
func copyRootfs(t *testing.T, links ...[2]string) string {
	t.Helper()
	rootfs := t.TempDir()
	if out, err := exec.Command("cp", "-a", baseRootfs+"/.", rootfs).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v\n%s", err, out)
	}
	for _, l := range links {
		os.Remove(path.Join(rootfs, l[0]))
		if err := os.Symlink(l[1], path.Join(rootfs, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

// TestMountPointThroughProc gives a container that shares the host's pid
// namespace a mount under a symlink to /proc/<pid>/root, another process's
// root: the mount point is made inside the container, nothing on the host.
func TestMountPointThroughProc(t *testing.T) {
	checkLeaks(t)
	host := t.TempDir()
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			hostDir := path.Join(host, kind.name)
			rootfs := copyRootfs(t, [2]string{"escape", fmt.Sprintf("/proc/%d/root%s", os.Getpid(), host)})
			spec := testSpec(t, "true")
			spec.Rootfs[0].Source = rootfs
			spec.Namespaces.New = slices.DeleteFunc(slices.Clone(spec.Namespaces.New), func(ns string) bool { return ns == "pid" })
			spec.Mounts = append(spec.Mounts, MountSpec{Destination: "/escape/" + kind.name + "/sub", Type: "tmpfs", Source: "tmpfs"})
			useInit(t, spec, kind.reexec)
			if h, err := start(t, spec, nil); err == nil {
				h.Wait(ctxT(t, 30*time.Second))
			}
			if _, err := os.Lstat(hostDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a mount point under /escape made %s on the host (%v)", hostDir, err)
			}
		})
	}
}

// TestMountPointSymlinks mounts on destinations the rootfs has as
// symlinks: on what they name, inside the rootfs, as Docker does, also
// when that does not exist yet.
func TestMountPointSymlinks(t *testing.T) {
	checkLeaks(t)
	rootfs := copyRootfs(t, [2]string{"data", "/realdata"}, [2]string{"etc/resolv.conf", "../run/missing/resolv.conf"})
	conf := path.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range initKinds {
		t.Run(kind.name, func(t *testing.T) {
			spec := testSpec(t, "sh", "-c", "grep -q ' /realdata ' /proc/mounts && cat /etc/resolv.conf")
			spec.Rootfs[0].Source = rootfs
			spec.Mounts = append(spec.Mounts,
				MountSpec{Destination: "/data", Type: "tmpfs", Source: "tmpfs"},
				MountSpec{Destination: "/etc/resolv.conf", Type: "bind", Source: conf, Options: []string{"bind", "ro"}})
			useInit(t, spec, kind.reexec)
			es, stdout, stderr := run(t, spec)
			if es.ExitCode != 0 || stdout != "nameserver 192.0.2.1\n" {
				t.Fatalf("exit %d: %s%s", es.ExitCode, stdout, stderr)
			}
		})
	}
}
