package dock

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/testutil"
	"github.com/dockkit/dock/internal/testutil/imagetest"
	"github.com/dockkit/dock/internal/testutil/leakcheck"
	"github.com/dockkit/dock/internal/testutil/registrytest"
)

// TestMain lets the test binary act as a second program on a shared root:
// with DOCK_TEST_CHILD set it runs that role instead of the tests.
func TestMain(m *testing.M) {
	if role := os.Getenv("DOCK_TEST_CHILD"); role != "" {
		os.Exit(childMain(role))
	}
	os.Exit(m.Run())
}

// childMain runs one role of a multi-process test and returns the exit code.
func childMain(role string) int {
	ctx := context.Background()
	h, err := Open(ctx, WithRoot(os.Getenv("DOCK_TEST_ROOT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	defer h.Close()
	switch role {
	case "pull":
		announced := false
		_, err = h.Pull(ctx, os.Getenv("DOCK_TEST_REF"), WithProgress(func(p Progress) {
			if p.State == ProgressTransferring && p.Done > 0 && !announced {
				announced = true
				fmt.Println("transferring")
			}
		}))
	case "start-autoremove":
		var img *Image
		if img, err = h.Image(ctx, "test.local/busybox:latest"); err != nil {
			break
		}
		var c *Container
		if c, err = h.Create(ctx, img, WithCmd("sleep", "1"), WithAutoRemove()); err != nil {
			break
		}
		if err = c.Start(ctx); err == nil {
			fmt.Println(c.ID)
		}
	case "start-and-hang":
		var img *Image
		if img, err = h.Image(ctx, "test.local/busybox:latest"); err != nil {
			break
		}
		var c *Container
		if c, err = h.Create(ctx, img, WithCmd("sh", "-c", "echo start; sleep 2; echo end >&2; exit 7")); err != nil {
			break
		}
		if err = c.Start(ctx); err == nil {
			fmt.Println(c.ID)
			select {} // until killed
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child returns a command running the test binary in role on root.
func child(t *testing.T, role, root string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"DOCK_TEST_CHILD=" + role, "DOCK_TEST_ROOT=" + root}, env...)...)
	return cmd
}

// newHost opens a host on a fresh root under the test's temp dir, with its
// containers' cgroups under a parent of the test's own, and checks when the
// test ends that it left no mount, cgroup (that parent included) or process
// behind.
func newHost(t *testing.T, opts ...OpenOption) *Host {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	parent := "docktest-" + randomHex(6)
	leakcheck.Check(t, leakcheck.MountsUnder(root), leakcheck.CgroupPrefix(parent), leakcheck.ProcessesMatching(root))
	opts = append([]OpenOption{WithRoot(root), func(c *openConfig) error { c.cgParent = parent; return nil }}, opts...)
	h, err := Open(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// otherHost opens h's root again, as another program would, closing it
// when the test ends.
func otherHost(t *testing.T, h *Host) *Host {
	t.Helper()
	h2, err := Open(context.Background(), WithRoot(h.Root()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	return h2
}

// benchHost opens a host on a fresh root for a benchmark.
func benchHost(b *testing.B) *Host {
	b.Helper()
	testutil.RequireRoot(b)
	h, err := Open(context.Background(), WithRoot(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

// benchImage loads a busybox test image into h.
func benchImage(b *testing.B, h *Host) *Image {
	b.Helper()
	imagetest.RequireBusybox(b)
	dir := b.TempDir()
	imagetest.Busybox(b, dir, imagetest.Name("test.local/busybox:latest"))
	imgs, err := h.Load(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	return imgs[0]
}

// pushImage builds a busybox image with opts, loads it into a scratch host
// and pushes it to srv as repo:tag, returning its reference.
func pushImage(t *testing.T, srv *registrytest.Server, repoTag string, opts ...imagetest.Option) (string, *Image) {
	t.Helper()
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	ref := srv.Host + "/" + repoTag
	imagetest.Busybox(t, dir, append(opts, imagetest.Name(ref))...)
	h := newHost(t)
	ctx := context.Background()
	imgs, err := h.Load(ctx, dir, WithoutUnpack())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 {
		t.Fatalf("loaded %d images, want 1", len(imgs))
	}
	var popts []PushOption
	if srv.Username != "" {
		reg, err := NewRegistry(srv.Host, WithBasicAuth(srv.Username, srv.Password))
		if err != nil {
			t.Fatal(err)
		}
		popts = append(popts, WithRegistry(reg))
	}
	if err := h.Push(ctx, imgs[0], ref, popts...); err != nil {
		t.Fatal(err)
	}
	return ref, imgs[0]
}

// readFile reads rel from the merged tree of the snapshot chain.
func readSnapshotFile(t *testing.T, h *Host, chain, rel string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	key := "view-" + randomHex(4)
	mounts, err := h.snap.View(ctx, key, chain)
	if err != nil {
		t.Fatal(err)
	}
	defer h.snap.Remove(ctx, key)
	f, err := openImageFile(mounts, rel)
	if err != nil {
		return "", false
	}
	defer f.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := f.Read(buf)
	b.Write(buf[:n])
	return b.String(), true
}
