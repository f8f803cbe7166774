//go:build linux

package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/caps"
	"github.com/dockkit/dock/internal/cgroupfs"
	"github.com/dockkit/dock/internal/cgroups"
	"github.com/dockkit/dock/internal/testutil"
	"github.com/dockkit/dock/internal/testutil/leakcheck"
)

var (
	testRoot   string // a state root shared by the package's tests (one sealed binary)
	baseRootfs string // a busybox tree, bound read-only into containers
	testSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	MaybeReexec()
	if h := os.Getenv("DOCK_RUNTIME_TEST_HELPER"); h != "" {
		os.Exit(runHelper(h))
	}
	code := func() int {
		dir, err := os.MkdirTemp("", "dock-runtime-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o711) // user namespace tests: the ids they map to must reach the state root
		testRoot = filepath.Join(dir, "root")
		baseRootfs = filepath.Join(dir, "rootfs")
		if os.Geteuid() == 0 {
			if err := buildRootfs(baseRootfs); err != nil {
				fmt.Fprintln(os.Stderr, "rootfs:", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// buildRootfs makes a minimal busybox tree at dir.
func buildRootfs(dir string) error {
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", name)); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":       "root:x:0:\nuser:x:1000:\ntty:x:5:\nnogroup:x:65534:\n",
		"etc/hosts":       "",
		"etc/hostname":    "",
		"etc/resolv.conf": "",
		"etc/notexec":     "just text\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// testSpec returns a Docker-like spec running args in the shared busybox
// rootfs (read-only, with a writable /tmp).
func testSpec(t testing.TB, args ...string) *Spec {
	t.Helper()
	testutil.RequireRoot(t)
	name := unsafeChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	id := fmt.Sprintf("rt-%s-%d-%d", strings.Trim(name, "-"), os.Getpid(), testSeq.Add(1))
	return &Spec{
		ID:             id,
		StateDir:       filepath.Join(testRoot, "containers", id),
		Rootfs:         []Mount{{Type: "bind", Source: baseRootfs}},
		ReadonlyRootfs: true,
		Process: Process{
			Args:       args,
			Env:        []string{"PATH=/bin", "HOME=/root"},
			Cwd:        "/",
			Caps:       testDefaultCaps,
			NoNewPrivs: true,
			Seccomp:    true,
		},
		Hostname:      "ctr-" + fmt.Sprint(testSeq.Load()),
		Namespaces:    Namespaces{New: DefaultNamespaces},
		Mounts:        []MountSpec{{Destination: "/tmp", Type: "tmpfs", Options: []string{"nosuid", "nodev", "size=16m", "mode=1777"}}},
		MaskedPaths:   DefaultMaskedPaths,
		ReadonlyPaths: DefaultReadonlyPaths,
		Cgroup:        testCgroup(t, "dock-rt-"+id),
	}
}

// initKinds are the two ways a monitor makes a container's init: a clone
// of its own (initOnThread) or the binary executed again.
var initKinds = []struct {
	name   string
	reexec bool
}{{"cloned", false}, {"executed", true}}

// useInit gives spec the kind of init asked for: a mount of its own in
// /proc has the binary executed again.
func useInit(t testing.TB, spec *Spec, reexec bool) {
	t.Helper()
	if reexec {
		spec.Mounts = append(spec.Mounts, MountSpec{Destination: "/proc/driver", Type: "tmpfs", Source: "tmpfs"})
	}
	if initOnThread(spec) == reexec {
		t.Fatalf("initOnThread = %v", !reexec)
	}
}

// testCgroup makes the group name, as a caller of Start does, and removes
// it when the test ends.
func testCgroup(t testing.TB, name string) *cgroupfs.Group {
	t.Helper()
	g, err := cgroups.Make(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Kill()
		g.Delete()
	})
	p := g.Paths()
	return &p
}

var testDefaultCaps = caps.Default()

// syncBuffer is a bytes.Buffer safe for the copy goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start starts spec and deletes the container when the test ends.
func start(t testing.TB, spec *Spec, stdio *Stdio) (*Handle, error) {
	t.Helper()
	return startWith(t, Start, spec, stdio)
}

// startWith starts spec with startFn (Start, or a Standby's) and deletes
// the container when the test ends.
func startWith(t testing.TB, startFn func(context.Context, *Spec, *Stdio) (*Handle, error), spec *Spec, stdio *Stdio) (*Handle, error) {
	t.Helper()
	h, err := startFn(context.Background(), spec, stdio)
	t.Cleanup(func() {
		hh, lerr := Load(spec.StateDir)
		if lerr != nil {
			os.RemoveAll(spec.StateDir)
			return
		}
		if err := hh.Delete(true); err != nil {
			t.Errorf("delete %s: %v", spec.ID, err)
		}
	})
	return h, err
}

// running starts spec, failing the test if it cannot; the container is
// deleted, killed if need be, when the test ends.
func running(t testing.TB, spec *Spec) *Handle {
	t.Helper()
	h, err := start(t, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// run starts spec, waits for it and returns its exit status and output.
func run(t testing.TB, spec *Spec) (ExitStatus, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	h, err := start(t, spec, &Stdio{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatalf("start %v: %v", spec.Process.Args, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	es, err := h.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return es, stdout.String(), stderr.String()
}

// checkLeaks fails the test if it leaves mounts under the test root, its
// cgroups or child processes behind.
func checkLeaks(t *testing.T) {
	testutil.RequireRoot(t)
	leakcheck.Check(t, leakcheck.MountsUnder(testRoot, baseRootfs), leakcheck.CgroupPrefix("dock-rt-"),
		leakcheck.ProcessesMatching(testRoot), leakcheck.Grace(5*time.Second))
}

// runHelper runs helper programs the tests start as separate processes.
func runHelper(name string) int {
	switch name {
	case "sealed":
		return sealedHelper()
	case "syscalls":
		return syscallsHelper()
	case "text-pages":
		return textPagesHelper()
	case "start-and-hang":
		// Start a container, say so, and wait to be killed.
		var spec Spec
		if err := jsonUnmarshalFile(os.Getenv("DOCK_RUNTIME_TEST_SPEC"), &spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := Start(context.Background(), &spec, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("started")
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	return 2
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func itoa(n int) string { return strconv.Itoa(n) }
