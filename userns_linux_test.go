package dock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// remapped opens a host whose containers have a user namespace mapping
// 0–65535 to the host's 100000–165535.
func remapped(t *testing.T) *Host {
	t.Helper()
	ns, err := RemappedNamespaces(100000, 100000, 65536)
	if err != nil {
		t.Fatal(err)
	}
	return newHost(t, WithNamespaces(ns))
}

// A container in a user namespace runs over the image's overlay layers as
// its own root: the layers' files are root's inside, it can write
// anywhere in its filesystem, and what it writes is owned on the host by
// the mapped ids, never by the host's root.
func TestUserNamespaceOverlay(t *testing.T) {
	h := remapped(t)
	// t.TempDir's directories are closed to others.
	for _, d := range []string{h.Root(), filepath.Dir(h.Root())} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, err := h.Create(ctx, img, WithCmd("sh", "-c",
		"id -u; head -1 /proc/self/uid_map | tr -s ' '; stat -c '%u:%g' /bin/sh; echo hi > /etc/written && mkdir /newdir && echo ok"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	var stdout, stderr strings.Builder
	if err := c.Start(ctx, WithOutput(&stdout, &stderr)); err != nil {
		if strings.Contains(err.Error(), "idmapped mount") && strings.Contains(err.Error(), "not supported") {
			// tmpfs before Linux 6.3, for one.
			t.Skipf("this kernel cannot idmap the root's file system: %v", err)
		}
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := []string{"0", " 0 100000 65536", "0:0", "ok"}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want %q", lines, want)
	}
	for i := range want {
		if strings.TrimSpace(lines[i]) != strings.TrimSpace(want[i]) {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}

	// On the host, the written file is the mapped root's.
	mounts, err := h.Snapshotter().Mounts(context.Background(), "container-"+c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var upper string
	for _, o := range mounts[0].Options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
	}
	if upper == "" {
		t.Skipf("container's layer is not an overlay: %+v", mounts)
	}
	for _, p := range []string{"etc/written", "newdir"} {
		fi, err := os.Stat(filepath.Join(upper, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("%s owned by %d:%d on the host, want 100000:100000", p, st.Uid, st.Gid)
		}
	}

	// A commit writes the files as the container saw them: root's.
	out, err := c.Commit(ctx, "test.local/userns-commit:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unpack(ctx, out); err != nil {
		t.Fatal(err)
	}
	key := "view-" + randomHex(4)
	vm, err := h.snap.View(ctx, key, out.Layers[len(out.Layers)-1].ChainID.String())
	if err != nil {
		t.Fatal(err)
	}
	defer h.snap.Remove(ctx, key)
	dir, done, err := h.mountTemp(vm)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, p := range []string{"etc/written", "newdir"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("committed %s owned by %d:%d, want 0:0", p, st.Uid, st.Gid)
		}
	}
}

// A state root that others cannot search is refused with a clear error
// for a user namespace container, rather than failing inside its init.
func TestUserNamespaceClosedRoot(t *testing.T) {
	h := remapped(t)
	if err := os.Chmod(h.Root(), 0o700); err != nil {
		t.Fatal(err)
	}
	img := busyboxImage(t, h)
	_, err := h.Create(context.Background(), img, WithCmd("true"))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), h.Root()) {
		t.Fatalf("create under a closed root: %v, want ErrInvalidArgument naming %s", err, h.Root())
	}
}

func TestRemappedNamespacesRefused(t *testing.T) {
	for _, tc := range [][3]uint32{{0, 100000, 65536}, {100000, 0, 65536}, {100000, 100000, 0}, {1 << 31, 100000, 1 << 31}} {
		if _, err := RemappedNamespaces(tc[0], tc[1], tc[2]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("RemappedNamespaces%v: %v, want ErrInvalidArgument", tc, err)
		}
	}
}
