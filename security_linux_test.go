package dock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// statusField returns a field of /proc/self/status as the container's
// command sees it.
func statusField(t *testing.T, out, name string) string {
	t.Helper()
	for l := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in %q", name, out)
	return ""
}

// TestSecurityOptions checks docker's --security-opt as options: seccomp
// off, a profile of the caller's, no_new_privs off, and /proc unmasked,
// each observed from inside the container against the defaults.
func TestSecurityOptions(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	// Denies mkdir and nothing else.
	profile := []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`)
	probe := []string{"sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; " +
		"echo masked=$(grep -c ' /proc/timer_list ' /proc/self/mountinfo); " +
		"mkdir /tmp/d 2>/dev/null && echo mkdir=ok || echo mkdir=denied"}
	tests := []struct {
		name                  string
		opts                  []CreateOption
		seccomp, nnp, masked  string
		mkdir, configSeccomp  string
		configNoNewPrivileges bool
	}{
		{"defaults", nil, "2", "1", "1", "ok", "default", true},
		{"seccomp unconfined", []CreateOption{WithoutSeccomp()}, "0", "1", "1", "ok", "unconfined", true},
		{"seccomp profile", []CreateOption{WithSeccompProfile(profile)}, "2", "1", "1", "denied", "custom", true},
		{"new privileges", []CreateOption{WithNewPrivileges()}, "2", "0", "1", "ok", "default", false},
		{"system paths unconfined", []CreateOption{WithUnmaskedPaths()}, "2", "1", "0", "ok", "default", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := runContainer(t, h, img, append(tt.opts, WithCmd(probe...))...)
			if st := wait(t, c); st.ExitCode != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode, stderr)
			}
			out := stdout.String()
			if got := statusField(t, out, "Seccomp"); got != tt.seccomp {
				t.Errorf("Seccomp %s, want %s", got, tt.seccomp)
			}
			if got := statusField(t, out, "NoNewPrivs"); got != tt.nnp {
				t.Errorf("NoNewPrivs %s, want %s", got, tt.nnp)
			}
			if !strings.Contains(out, "masked="+tt.masked+"\n") || !strings.Contains(out, "mkdir="+tt.mkdir+"\n") {
				t.Errorf("output %q, want masked=%s and mkdir=%s", out, tt.masked, tt.mkdir)
			}
			if cfg := c.Config(); cfg.Seccomp != tt.configSeccomp || cfg.NoNewPrivileges != tt.configNoNewPrivileges {
				t.Errorf("config: seccomp %q, no new privileges %v", cfg.Seccomp, cfg.NoNewPrivileges)
			}
		})
	}
	// An exec'd process runs under the container's profile too.
	c, _, _ := runContainer(t, h, img, WithSeccompProfile(profile), WithCmd("sleep", "100"))
	if out, code := execOut(t, c, []string{"sh", "-c", "mkdir /tmp/e 2>/dev/null || echo denied"}); code != 0 || out != "denied\n" {
		t.Errorf("exec'd mkdir: %q (exit %d), want it denied", out, code)
	}
	for _, bad := range [][]byte{[]byte(`{"defaultAction": `), []byte(`{"defaultAction": "SCMP_ACT_NONSENSE"}`), []byte(`{"syscalls": []}`)} {
		if _, err := h.Create(ctx, img, WithSeccompProfile(bad)); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "seccomp") {
			t.Errorf("Create with the profile %s: %v, want ErrInvalidArgument naming seccomp", bad, err)
		}
	}
}

// TestProcessOptions checks --group-add, --oom-score-adj, --shm-size and
// --sysctl as options, from inside the container, and that Create refuses
// what docker refuses.
func TestProcessOptions(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, err := h.Create(ctx, img,
		WithGroupAdd("user", "4321"), WithOOMScoreAdj(321), WithShmSize(3<<20),
		WithSysctl("net.ipv4.ip_unprivileged_port_start", "99"), WithSysctl("kernel.shmmni", "1234"),
		WithSysctl("kernel.domainname", "example.org"),
		WithCmd("sh", "-c", "grep '^Groups:' /proc/self/status; echo oom=$(cat /proc/1/oom_score_adj); "+
			"grep ' /dev/shm ' /proc/self/mounts; echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) "+
			"shmmni=$(cat /proc/sys/kernel/shmmni) domain=$(cat /proc/sys/kernel/domainname); "+
			"echo 1 2>/dev/null > /proc/sys/kernel/shmmni && echo ro=no || echo ro=yes; exec sleep 100"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(ctx, true)
	var stdout syncBuffer
	if err := c.Start(ctx, WithOutput(&stdout, &stdout)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(stdout.String(), "ro=") }, "the probe's output")
	out := stdout.String()
	if got := statusField(t, out, "Groups"); got != "1000 4321" {
		t.Errorf("groups %q, want 1000 4321", got)
	}
	for _, want := range []string{"oom=321\n", "size=3072k", "port=99 shmmni=1234 domain=example.org\n", "ro=yes\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	// An exec'd process gets the container's OOM score, as in docker.
	if out, code := execOut(t, c, []string{"cat", "/proc/self/oom_score_adj"}); code != 0 || out != "321\n" {
		t.Errorf("exec'd process's oom_score_adj %q (exit %d), want 321", out, code)
	}
	// A user given to exec gets the added groups too, as in docker.
	if out, code := execOut(t, c, []string{"sh", "-c", "id -u; grep '^Groups:' /proc/self/status"}, WithExecUser("nobody")); code != 0 || !strings.HasPrefix(out, "65534\n") || statusField(t, out, "Groups") != "1000 4321" {
		t.Errorf("exec'd as nobody: %q (exit %d), want uid 65534 in groups 1000 4321", out, code)
	}
	cfg := c.Config()
	if cfg.OOMScoreAdj != 321 || cfg.ShmSize != 3<<20 || len(cfg.GroupAdd) != 2 || cfg.Sysctls["kernel.shmmni"] != "1234" {
		t.Errorf("config %+v", cfg)
	}

	for _, tc := range []struct {
		name string
		opts []CreateOption
	}{
		{"group not in the image", []CreateOption{WithGroupAdd("wheel")}},
		{"oom score out of range", []CreateOption{WithOOMScoreAdj(1001)}},
		{"no shm", []CreateOption{WithShmSize(0)}},
		{"host-wide sysctl", []CreateOption{WithSysctl("kernel.panic", "1")}},
		{"sysctl out of its tree", []CreateOption{WithSysctl("net/../kernel/panic", "1")}},
		{"net sysctl on the host's network", []CreateOption{WithNetwork("host"), WithSysctl("net.ipv4.ip_forward", "1")}},
		{"ipc sysctl in the host's ipc namespace", []CreateOption{WithHostNamespace(IPCNamespace), WithSysctl("kernel.shmmax", "1")}},
		// A mount in /proc could lead an allowed sysctl's write to the host's.
		{"mount in /proc/sys", []CreateOption{WithMount(Tmpfs("/proc/sys/net")), WithSysctl("net.core.somaxconn", "1")}},
		{"mount over /proc", []CreateOption{WithMount(Bind("/proc", "/proc"))}},
	} {
		if c, err := h.Create(ctx, img, append(tc.opts, WithCmd("true"))...); !errors.Is(err, ErrInvalidArgument) {
			if err == nil {
				c.Remove(ctx, true)
			}
			t.Errorf("%s: Create: %v, want ErrInvalidArgument", tc.name, err)
		}
	}
}

// TestContainerDevices checks Docker's device rules: a container that may
// mount (CAP_SYS_ADMIN) makes a device node on a mount of its own that
// allows devices, and still cannot open it unless it is one of the
// standard nodes; a privileged container can.
func TestContainerDevices(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	// Opening /dev/kmsg to write needs no capability; opening it at all
	// needs the device rules to allow it.
	probe := []string{"sh", "-c", "mkdir -p /mnt && mount -t tmpfs t /mnt && mknod /mnt/kmsg c 1 11 && mknod /mnt/null c 1 3 || exit 9; " +
		"(exec 3>/mnt/kmsg) 2>/dev/null && echo kmsg=open || echo kmsg=denied; " +
		"echo x >/mnt/null && echo null=open; head -c1 /dev/urandom >/dev/null && echo urandom=open"}
	for _, tc := range []struct {
		name string
		opt  CreateOption
		want string
	}{
		{"default", WithCapAdd("SYS_ADMIN"), "kmsg=denied\nnull=open\nurandom=open\n"},
		{"privileged", WithPrivileged(), "kmsg=open\nnull=open\nurandom=open\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, stdout, stderr := runContainer(t, h, img, tc.opt, WithCmd(probe...))
			if st := wait(t, c); st.ExitCode != 0 || stdout.String() != tc.want {
				t.Errorf("exit %d, output %q (%s), want %q", st.ExitCode, stdout, stderr, tc.want)
			}
		})
	}
}

// TestContainerDeviceOption checks WithDevice, as docker's --device: the
// host's node appears where asked, and the container's cgroup allows what
// the access says of it and no more.
func TestContainerDeviceOption(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	// /dev/kmsg opened to write needs no capability; to read, CAP_SYSLOG,
	// which a container lacks: only the write end tells the rules apart.
	probe := []string{"sh", "-c", "ls -l /dev/klog | cut -c1; (exec 3>/dev/klog) 2>/dev/null && echo write=open || echo write=denied"}
	for _, tc := range []struct {
		name, access, want string
	}{
		{"write allowed", "w", "c\nwrite=open\n"},
		{"read only", "r", "c\nwrite=denied\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, stdout, stderr := runContainer(t, h, img, WithDevice("/dev/kmsg", "/dev/klog", tc.access), WithCmd(probe...))
			if st := wait(t, c); st.ExitCode != 0 || stdout.String() != tc.want {
				t.Errorf("exit %d, output %q (%s), want %q", st.ExitCode, stdout, stderr, tc.want)
			}
			if d := c.Config().Devices; len(d) != 1 || d[0] != (DeviceMapping{"/dev/kmsg", "/dev/klog", tc.access}) {
				t.Errorf("config devices %+v", d)
			}
		})
	}
	// A device allowed for writing alone cannot be opened to read and
	// write: one request for both, which a "w" rule does not cover. With
	// CAP_SYSLOG, /dev/kmsg opens for both as far as the kernel goes.
	c, stdout, stderr := runContainer(t, h, img, WithDevice("/dev/kmsg", "/dev/klog", "w"), WithCapAdd("SYSLOG"), WithCmd("sh", "-c",
		"(exec 3>/dev/klog) && echo w=open; (exec 3<>/dev/klog) 2>/dev/null && echo rw=open || echo rw=denied"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "w=open\nrw=denied\n" {
		t.Errorf("/dev/kmsg allowed for writing: exit %d, %q (%s); want it open to write, not to read and write", st.ExitCode, stdout, stderr)
	}
	// A directory gives every node below it, as docker's --device /dev/snd.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"kmsg", "sub/kmsg"} {
		if err := unix.Mknod(filepath.Join(dir, p), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "readme"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c, stdout, stderr = runContainer(t, h, img, WithDevice(dir, "/dev/mine", "w"), WithCmd("sh", "-c",
		"ls -R /dev/mine | tr '\\n' ' '; (exec 3>/dev/mine/sub/kmsg) && echo open"))
	if st := wait(t, c); st.ExitCode != 0 || !strings.HasSuffix(stdout.String(), "open\n") || strings.Contains(stdout.String(), "readme") ||
		!strings.Contains(stdout.String(), "kmsg") || len(c.Config().Devices) != 2 {
		t.Errorf("a directory of devices: exit %d, %q (%s), %d devices; want its two nodes alone, open", st.ExitCode, stdout, stderr, len(c.Config().Devices))
	}
	for _, o := range []CreateOption{WithDevice(t.TempDir(), "", ""), WithDevice("/etc/passwd", "", ""), WithDevice("/dev/nosuch", "", ""),
		WithDevice("/dev/kmsg", "", "rx"), WithDevice("dev/kmsg", "", "")} {
		if c, err := h.Create(ctx, img, o, WithCmd("true")); !errors.Is(err, ErrInvalidArgument) {
			if err == nil {
				c.Remove(ctx, true)
			}
			t.Errorf("Create with a bad device: %v, want ErrInvalidArgument", err)
		}
	}
}

// TestContainerInit checks WithInit, as docker's --init: the command is
// not the first process of its pid namespace, so a SIGTERM from Stop
// reaches one that installs no handler; its exit code passes through;
// orphans are reaped.
func TestContainerInit(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	if err := reaperRuns(); err != nil {
		// The init is this test binary: hack/test.sh builds it statically.
		if _, cerr := h.Create(ctx, img, WithInit()); !errors.Is(cerr, ErrNotSupported) {
			t.Errorf("WithInit in a dynamically linked program: %v, want ErrNotSupported", cerr)
		}
		t.Skipf("this test binary is linked dynamically: %v", err)
	}
	t.Run("first process", func(t *testing.T) {
		c, stdout, stderr := runContainer(t, h, img, WithInit(), WithEnv("GODEBUG=gctrace=1", "GOMAXPROCS=7"), WithCmd("sh", "-c",
			"cat /proc/1/comm; echo pid=$$ env=$GODEBUG,$GOMAXPROCS; (cat /proc/1/exe >/dev/null) 2>/dev/null && echo exe=readable; sh -c 'sleep 0.1 &'; sleep 0.6; "+
				"for f in /proc/[0-9]*/stat; do read -r l < $f; case $l in *') Z '*) echo zombie $l;; esac; done; exit 7"))
		if st := wait(t, c); st.ExitCode != 7 {
			t.Errorf("exit %d, want the command's 7 (%s)", st.ExitCode, stderr)
		}
		// The reaper is this program: no process of the container may
		// read it through /proc/1/exe. The container's Go settings are
		// the command's, not the reaper's (whose gctrace would print).
		if out := stdout.String(); !strings.HasPrefix(out, "dock-reaper\npid=") || strings.Contains(out, "pid=1 ") ||
			!strings.Contains(out, " env=gctrace=1,7\n") || strings.Contains(out, "zombie") || strings.Contains(out, "exe=readable") {
			t.Errorf("output %q: want the reaper as process 1, the command not with the container's environment, no zombie, its binary unreadable", out)
		}
		if strings.Contains(stderr.String(), "gc 1 @") {
			t.Errorf("the reaper took the container's GODEBUG: %q", stderr)
		}
		if !c.Config().Init {
			t.Error("config: no init")
		}
	})
	t.Run("stop", func(t *testing.T) {
		c, _, _ := runContainer(t, h, img, WithInit(), WithCmd("sleep", "100"))
		if err := c.Stop(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Killed by the SIGTERM, not by the SIGKILL after the timeout.
		if st := wait(t, c); st.ExitCode != 128+15 {
			t.Errorf("exit %d after Stop, want 143", st.ExitCode)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		c, stdout, stderr := runContainer(t, h, img, WithInit(), WithTTY(), WithCmd("sh", "-c", "test -t 0 && echo tty; exit 3"))
		if st := wait(t, c); st.ExitCode != 3 || !strings.Contains(stdout.String(), "tty") {
			t.Errorf("exit %d, output %q (%s); want 3 and a terminal", st.ExitCode, stdout, stderr)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		c, err := h.Create(ctx, img, WithInit(), WithCmd("nosuch"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Remove(ctx, true)
		var se *StartError
		if err := c.Start(ctx); !errors.As(err, &se) || se.Code != 127 {
			t.Errorf("start: %v, want exit code 127", err)
		}
	})
}
