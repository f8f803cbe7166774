package dock

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/cgroups"
	"github.com/dockkit/dock/internal/testutil/imagetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// busyboxImage loads a busybox test image into h.
func busyboxImage(t *testing.T, h *Host, opts ...imagetest.Option) *Image {
	t.Helper()
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	imagetest.Busybox(t, dir, append(opts, imagetest.Name("test.local/busybox:latest"))...)
	imgs, err := h.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return imgs[0]
}

// runContainer creates and starts a container, removing it at cleanup.
func runContainer(t *testing.T, h *Host, img *Image, opts ...CreateOption) (*Container, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	ctx := context.Background()
	c, err := h.Create(ctx, img, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(context.Background(), true); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	var stdout, stderr bytes.Buffer
	if err := c.Start(ctx, WithOutput(&stdout, &stderr)); err != nil {
		t.Fatal(err)
	}
	return c, &stdout, &stderr
}

func wait(t *testing.T, c *Container) ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestContainerExitCodes(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	tests := []struct {
		name string
		cmd  []string
		code int
	}{
		{"zero", []string{"true"}, 0},
		{"three", []string{"sh", "-c", "exit 3"}, 3},
		{"child killed", []string{"sh", "-c", `sh -c 'kill -9 $$'; exit $?`}, 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := runContainer(t, h, img, WithCmd(tt.cmd...))
			if st := wait(t, c); st.ExitCode != tt.code {
				t.Fatalf("exit code %d, want %d", st.ExitCode, tt.code)
			}
			if s := c.State(); s.Status != StatusExited {
				t.Errorf("status %s after exit", s.Status)
			}
		})
	}
}

func TestContainerKilled(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	if err := c.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c)
	if st.ExitCode != 137 || st.Signal != syscall.SIGKILL {
		t.Fatalf("got %+v, want exit 137 by SIGKILL", st)
	}
}

func TestContainerCommandNotFound(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, err := h.Create(context.Background(), img, WithCmd("/no/such/command"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(context.Background(), true)
	err = c.Start(context.Background())
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("start of a missing command: %v, want ErrNotFound", err)
	}
	var se interface{ ExitCode() int }
	if !errors.As(err, &se) || se.ExitCode() != 127 {
		t.Fatalf("want exit code 127 from %v", err)
	}
}

func TestContainerOutputAndLogs(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, stdout, stderr := runContainer(t, h, img, WithCmd("sh", "-c", "echo out; echo err >&2; echo out2"))
	wait(t, c)
	if got := stdout.String(); got != "out\nout2\n" {
		t.Errorf("stdout %q", got)
	}
	if got := stderr.String(); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	// Another handle, as another program would open it.
	h2, err := Open(context.Background(), WithRoot(h.Root()))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	c2, err := h2.Container(context.Background(), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := c2.Logs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var lo, le bytes.Buffer
	if err := logs.WriteTo(&lo, &le); err != nil {
		t.Fatal(err)
	}
	if lo.String() != "out\nout2\n" || le.String() != "err\n" {
		t.Errorf("logs: stdout %q stderr %q", lo.String(), le.String())
	}
	st, err := c2.Wait(context.Background())
	if err != nil || st.ExitCode != 0 {
		t.Errorf("second program's wait: %+v %v", st, err)
	}
}

func TestContainerConfigFromImageAndOptions(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, stdout, _ := runContainer(t, h, img,
		WithCmd("sh", "-c", `echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname)"`),
		WithEnv("FOO=bar"), WithWorkdir("/tmp"), WithUser("1000"), WithHostname("box"))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d", st.ExitCode)
	}
	if got := strings.TrimSpace(stdout.String()); got != "bar /tmp 1000:1000 box" {
		t.Errorf("got %q", got)
	}
}

func TestContainerNamesUnique(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, err := h.Create(ctx, img, WithName("web"), WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(ctx, true)
	if _, err := h.Create(ctx, img, WithName("web"), WithCmd("true")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second container named web: %v, want ErrAlreadyExists", err)
	}
	got, err := h.Container(ctx, "web")
	if err != nil || got.ID != c.ID {
		t.Fatalf("lookup by name: %v %v", got, err)
	}
	if got, err := h.Container(ctx, c.ID[:8]); err != nil || got.ID != c.ID {
		t.Fatalf("lookup by ID prefix: %v %v", got, err)
	}
}

func TestContainerStopAndRemoveRunning(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	if err := c.Remove(ctx, false); !errors.Is(err, ErrWrongState) {
		t.Fatalf("remove of a running container: %v, want ErrWrongState", err)
	}
	if err := c.Start(ctx); !errors.Is(err, ErrWrongState) {
		t.Fatalf("start of a running container: %v, want ErrWrongState", err)
	}
	start := time.Now()
	if err := c.Stop(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	st := wait(t, c)
	// sleep dies of SIGTERM, as PID 1 it ignores it... busybox sleep has
	// no handler, so the kernel ignores SIGTERM for a namespace's init and
	// Stop must escalate; either way the container ends.
	if st.Signal != syscall.SIGTERM && st.Signal != syscall.SIGKILL {
		t.Errorf("ended by %v", st.Signal)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("stop took %v", time.Since(start))
	}
}

func TestContainerCommit(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h, imagetest.MultiLayer(2))
	c, _, _ := runContainer(t, h, img, WithCmd("sh", "-c", "echo hello > /new.txt && rm /opt/app/a.txt && mkdir -p /d/e"))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d", st.ExitCode)
	}
	ctx := context.Background()
	out, err := c.Commit(ctx, "test.local/committed:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Layers) != len(img.Layers)+1 {
		t.Fatalf("%d layers, want %d", len(out.Layers), len(img.Layers)+1)
	}
	if err := h.Unpack(ctx, out); err != nil {
		t.Fatal(err)
	}
	top := out.Layers[len(out.Layers)-1].ChainID.String()
	if s, ok := readSnapshotFile(t, h, top, "new.txt"); !ok || s != "hello\n" {
		t.Errorf("new.txt = %q, %v", s, ok)
	}
	if _, ok := readSnapshotFile(t, h, top, "opt/app/a.txt"); ok {
		t.Error("a.txt deleted in the container but present in the commit")
	}
	if _, ok := readSnapshotFile(t, h, top, "opt/app/b.txt"); !ok {
		t.Error("b.txt lost in the commit")
	}
	// A container from the committed image sees the change.
	c2, stdout, _ := runContainer(t, h, out, WithCmd("cat", "/new.txt"))
	wait(t, c2)
	if stdout.String() != "hello\n" {
		t.Errorf("container of the commit read %q", stdout.String())
	}
}

func TestContainerAutoRemove(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, err := h.Create(ctx, img, WithCmd("true"), WithAutoRemove())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d", st.ExitCode)
	}
	if _, err := h.Container(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("auto-remove container still there: %v", err)
	}
	n := 0
	h.snap.Walk(ctx, func(_ context.Context, i SnapshotInfo) error {
		if i.Kind == KindActive {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Errorf("%d active snapshots left", n)
	}
}

// An auto-remove container whose starter died is removed by the next
// program that opens the root after it exits.
func TestContainerAutoRemoveOwnerDied(t *testing.T) {
	h := newHost(t)
	busyboxImage(t, h)
	cmd := child(t, "start-autoremove", h.Root())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	ctx := context.Background()
	c, err := h.Container(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Container(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("container whose owner died survived: %v", err)
	}
}

// hostDir returns a directory of the host holding in.txt, "from host\n".
func hostDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestContainerMounts(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	host := hostDir(t)
	c, stdout, stderr := runContainer(t, h, img,
		WithMount(Bind(host, "/hostdir", ReadOnly)),
		WithMount(Volume("vol1", "/etc")),
		WithMount(Tmpfs("/scratch", "size=1m")),
		WithReadOnlyRootfs(),
		WithCmd("sh", "-c", `cat /hostdir/in.txt
echo x > /hostdir/new 2>/dev/null && echo bind-writable
echo x > /scratch/f && echo tmpfs-ok
echo x > /rootfile 2>/dev/null && echo rootfs-writable
grep -q root /etc/passwd && echo volume-filled
echo added > /etc/added`))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, stderr)
	}
	want := "from host\ntmpfs-ok\nvolume-filled\n"
	if got := stdout.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The volume outlives the container and keeps its writes.
	c2, stdout2, _ := runContainer(t, h, img, WithMount(Volume("vol1", "/data")), WithCmd("cat", "/data/added"))
	wait(t, c2)
	if stdout2.String() != "added\n" {
		t.Errorf("second container read %q from the volume", stdout2.String())
	}
}

// An empty volume is filled from the image of each container that mounts
// it, as in Docker: made by CreateVolume, and again once emptied.
func TestEmptyVolumeFilled(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h, imagetest.WithFile("seed/a", []byte("from image\n"), 0o644))
	if _, err := h.CreateVolume(context.Background(), "seeded"); err != nil {
		t.Fatal(err)
	}
	vol := WithMount(Volume("seeded", "/seed"))
	c, stdout, stderr := runContainer(t, h, img, vol, WithCmd("sh", "-c", "cat /seed/a && rm /seed/a"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "from image\n" {
		t.Fatalf("first container: exit %d, out %q, err %q", st.ExitCode, stdout, stderr)
	}
	c, stdout, stderr = runContainer(t, h, img, vol, WithCmd("sh", "-c", "cat /seed/a && echo kept > /seed/b"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "from image\n" {
		t.Fatalf("container after the volume was emptied: exit %d, out %q, err %q", st.ExitCode, stdout, stderr)
	}
	// Not empty: left as it is.
	c, stdout, _ = runContainer(t, h, img, vol, WithCmd("sh", "-c", "rm /seed/a; ls /seed"))
	wait(t, c)
	c, stdout2, _ := runContainer(t, h, img, vol, WithCmd("ls", "/seed"))
	wait(t, c)
	if stdout.String() != "b\n" || stdout2.String() != "b\n" {
		t.Errorf("a volume holding b listed %q, then %q; want b alone", stdout, stdout2)
	}
}

// TestUlimits checks WithUlimit in the container's command and in an exec'd
// process, as docker's --ulimit, and its refusals.
func TestUlimits(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, _, _ := runContainer(t, h, img, WithUlimit("nofile", 100, 200), WithUlimit("RLIMIT_CORE", 0, 0), WithCmd("sleep", "30"))
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", c.State().Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`Max open files +100 +200 `, `Max core file size +0 +0 `} {
		if !regexp.MustCompile(re).Match(limits) {
			t.Errorf("the command's limits lack %q:\n%s", re, limits)
		}
	}
	if out, _ := execOut(t, c, []string{"sh", "-c", "ulimit -n; ulimit -Hn"}); out != "100\n200\n" {
		t.Errorf("exec'd process's limits %q, want 100 and 200", out)
	}
	for _, o := range []CreateOption{WithUlimit("files", 1, 1), WithUlimit("nofile", 20, 10), WithUlimit("nofile", -1, 10), WithUlimit("nofile", -2, -2)} {
		if _, err := h.Create(ctx, img, o); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Create with a bad ulimit: %v, want ErrInvalidArgument", err)
		}
	}
}

// TestImageLabels checks that a container carries its image's labels,
// under those given to Create, and its exposed ports, as in Docker.
func TestImageLabels(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h, imagetest.Label("a", "1"), imagetest.Label("b", "2"), imagetest.Expose("8080", "53/udp", "80/tcp"))
	c, err := h.Create(context.Background(), img, WithLabels(map[string]string{"b": "3", "c": "4"}), WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove(context.Background(), true)
	want := map[string]string{"a": "1", "b": "3", "c": "4"}
	if !maps.Equal(c.Labels, want) {
		t.Errorf("labels %v, want %v", c.Labels, want)
	}
	again, err := h.Container(context.Background(), c.ID)
	if err != nil || !maps.Equal(again.Labels, want) {
		t.Errorf("labels read back %v (%v), want %v", again.Labels, err, want)
	}
	// The image's EXPOSE, as Docker spells it.
	if got, want := slices.Sorted(maps.Keys(c.Config().ExposedPorts)), []string{"53/udp", "80/tcp", "8080/tcp"}; !slices.Equal(got, want) {
		t.Errorf("exposed ports %q, want %q", got, want)
	}
}

// TestImageVolumes checks that an image's VOLUMEs get anonymous volumes,
// filled from the image, as in Docker: left by Remove, removed by Remove
// with WithVolumes and with an auto-remove container; a mount at the path
// takes the place of one.
func TestImageVolumes(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	img := busyboxImage(t, h, imagetest.Volumes("/data", "cache/"),
		imagetest.WithFile("data/seed", []byte("seed\n"), 0o644))
	volumes := func() []string { return volumeNames(t, h) }
	run := func(opts ...CreateOption) *Container {
		t.Helper()
		c, err := h.Create(ctx, img, append(opts, WithCmd("sh", "-c", "cat /data/seed && touch /data/x /cache/y && grep -c ' /data \\| /cache ' /proc/mounts"))...)
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if err := c.Start(ctx, WithOutput(&stdout, &stderr)); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "seed\n2\n" {
			t.Fatalf("exit %d, out %q, err %q; want the seed and two mounts", st.ExitCode, stdout.String(), stderr.String())
		}
		return c
	}

	c := run()
	if got := volumes(); len(got) != 2 || len(got[0]) != 64 || len(got[1]) != 64 {
		t.Fatalf("volumes %q, want two anonymous ones", got)
	}
	for _, name := range volumes() {
		if v, err := h.Volume(ctx, name); err != nil || !v.Anonymous {
			t.Errorf("volume %s: %+v, %v; want it anonymous", name, v, err)
		}
	}
	if err := c.Remove(ctx, false); err != nil {
		t.Fatal(err)
	}
	kept := volumes()
	if len(kept) != 2 {
		t.Errorf("Remove without WithVolumes left %q, want the two volumes", kept)
	}
	c = run()
	if err := c.Remove(ctx, false, WithVolumes()); err != nil {
		t.Fatal(err)
	}
	if got := volumes(); !slices.Equal(got, kept) {
		t.Errorf("Remove WithVolumes left %q, want %q", got, kept)
	}
	c = run(WithAutoRemove())
	if _, err := h.Container(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("auto-remove container left: %v", err)
	}
	if got := volumes(); !slices.Equal(got, kept) {
		t.Errorf("auto-remove left %q, want %q", got, kept)
	}
	// A named volume at a VOLUME path replaces its anonymous one.
	c = run(WithMount(Volume("named", "/data")))
	if err := c.Remove(ctx, false, WithVolumes()); err != nil {
		t.Fatal(err)
	}
	if got := volumes(); len(got) != 3 || !slices.Contains(got, "named") {
		t.Errorf("volumes %q, want the two kept and named", got)
	}
	if v, err := h.Volume(ctx, "named"); err != nil || v.Anonymous {
		t.Errorf("volume named: %+v, %v; want it named", v, err)
	}
	pruned, err := h.PruneVolumes(ctx, AnonymousOnly())
	if err != nil || !slices.Equal(pruned, kept) || !slices.Equal(volumes(), []string{"named"}) {
		t.Errorf("PruneVolumes(AnonymousOnly()) = %q, %v; left %q; want %q gone and named left", pruned, err, volumes(), kept)
	}
	// A volume mount with no name is anonymous too, filled from the
	// image, and goes with its container.
	c = run(WithMount(Volume("", "/data")), WithMount(Volume("", "/cache")))
	anon := slices.DeleteFunc(volumes(), func(n string) bool { return n == "named" })
	if len(anon) != 2 {
		t.Fatalf("volumes %q, want named and two anonymous", volumes())
	}
	if v, err := h.Volume(ctx, anon[0]); err != nil || !v.Anonymous {
		t.Errorf("volume %s: %+v, %v; want it anonymous", anon[0], v, err)
	}
	if err := c.Remove(ctx, false, WithVolumes()); err != nil {
		t.Fatal(err)
	}
	if got := volumes(); !slices.Equal(got, []string{"named"}) {
		t.Errorf("Remove WithVolumes left %q, want named alone", got)
	}
}

// TestVolumeRefillResumed has a create find a refill cut short while its
// entries were moved in: it finishes it.
func TestVolumeRefillResumed(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	v, err := h.CreateVolume(context.Background(), "resumed")
	if err != nil {
		t.Fatal(err)
	}
	move := filepath.Join(filepath.Dir(v.Mountpoint), "_move")
	for _, f := range []struct{ dir, name string }{{v.Mountpoint, "first"}, {move, "rest"}} {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, f.name), []byte(f.name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, stdout, stderr := runContainer(t, h, img, WithMount(Volume("resumed", "/v")), WithCmd("cat", "/v/first", "/v/rest"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "first\nrest\n" {
		t.Errorf("exit %d, out %q, err %q; want first and rest", st.ExitCode, stdout, stderr)
	}
	if _, err := os.Lstat(move); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", move, err)
	}
}

// A layer that writes into a directory without naming it must not change
// the directory's owner or mode as the layers below have them.
func TestUnpackImplicitParentKeepsLowerMode(t *testing.T) {
	h := newHost(t)
	base := busyboxImage(t, h)
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "tmp/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	layer, diffID, err := h.addLayer(ctx, &buf, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	cfg := base.Config
	cfg.RootFS.DiffIDs = append(slices.Clone(cfg.RootFS.DiffIDs), diffID)
	var layers []ocispec.Descriptor
	for _, l := range base.Layers {
		layers = append(layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	img, err := h.writeImage(ctx, cfg, append(layers, layer), "test.local/implicit:1")
	if err != nil {
		t.Fatal(err)
	}
	c, stdout, _ := runContainer(t, h, img, WithUser("1000"), WithCmd("sh", "-c", "stat -c %a /tmp && echo y > /tmp/y && cat /tmp/x"))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %q", st.ExitCode, stdout)
	}
	if got := stdout.String(); got != "1777\nx" {
		t.Errorf("got %q, want /tmp 1777 and writable", got)
	}
}

// The program that started a container is killed with SIGKILL; another
// program opens the root, waits for the container and reads its whole log.
func TestContainerOutlivesStarter(t *testing.T) {
	h := newHost(t)
	busyboxImage(t, h)
	cmd := child(t, "start-and-hang", h.Root())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	ctx := context.Background()
	h2 := otherHost(t, h)
	c, err := h2.Container(ctx, strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove(context.Background(), true) })
	if st := c.State(); st.Status != StatusRunning {
		t.Fatalf("after its starter died the container is %s", st.Status)
	}
	if st := wait(t, c); st.ExitCode != 7 {
		t.Fatalf("exit code %d, want 7", st.ExitCode)
	}
	logs, err := c.Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out, errOut bytes.Buffer
	if err := logs.WriteTo(&out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "start\n" || errOut.String() != "end\n" {
		t.Errorf("logs: stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestContainerLimits(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	t.Run("memory", func(t *testing.T) {
		c, _, _ := runContainer(t, h, img, WithMemoryLimit(32<<20), WithCmd("tail", "/dev/zero"))
		st := wait(t, c)
		if !st.OOMKilled || st.ExitCode != 137 {
			t.Fatalf("got %+v, want an OOM kill with exit 137", st)
		}
	})
	t.Run("pids", func(t *testing.T) {
		// A fork bomb of 100 sleeps, in a shell that dies when fork
		// fails; the outer shell counts, with builtins only, the processes
		// that exist, then kills them all.
		c, stdout, _ := runContainer(t, h, img, WithPidsLimit(20), WithCmd("sh", "-c",
			`sh -c 'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done' 2>/dev/null
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n; kill -9 -1; exit 0`))
		wait(t, c)
		n, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
		if err != nil || n > 20 || n < 10 {
			t.Fatalf("%q processes under a limit of 20", stdout.String())
		}
	})
	t.Run("cpu", func(t *testing.T) {
		// Spin for a while and compare the CPU time the shell's children got
		// with the wall time: a 0.2 CPU cap holds it near 0.2, never above.
		c, stdout, _ := runContainer(t, h, img, WithCPUs(0.2), WithCmd("sh", "-c",
			`s=$(cut -d' ' -f1 /proc/uptime); timeout 2 sh -c 'while :; do :; done'; e=$(cut -d' ' -f1 /proc/uptime); echo $s $e; cat /proc/self/stat`))
		if st := wait(t, c); st.ExitCode != 0 {
			t.Fatalf("exit %d", st.ExitCode)
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) < 2 {
			t.Fatalf("output %q", stdout.String())
		}
		var start, end float64
		fmt.Sscan(lines[0], &start, &end)
		f := strings.Fields(lines[1])
		// Fields 16 and 17 of the shell's stat (cutime, cstime): the CPU
		// its waited-for children used, in clock ticks.
		cu, _ := strconv.Atoi(f[15])
		cs, _ := strconv.Atoi(f[16])
		share := float64(cu+cs) / 100 / (end - start)
		t.Logf("CPU share under --cpus 0.2: %.3f", share)
		if share > 0.3 || share < 0.02 {
			t.Fatalf("CPU share %.3f, want about 0.2", share)
		}
	})
}

func TestContainerNamespaceOptions(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ns := func(t *testing.T, opts ...CreateOption) string {
		c, stdout, stderr := runContainer(t, h, img, append(opts, WithCmd("sh", "-c",
			`readlink /proc/self/ns/net; readlink /proc/self/ns/pid; hostname`))...)
		if st := wait(t, c); st.ExitCode != 0 {
			t.Fatalf("exit %d: %s", st.ExitCode, stderr)
		}
		return stdout.String()
	}
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	hostPid, _ := os.Readlink("/proc/self/ns/pid")

	t.Run("default", func(t *testing.T) {
		out := ns(t)
		if !strings.Contains(out, "net:[") || strings.Contains(out, hostNet) || strings.Contains(out, hostPid) {
			t.Errorf("shares the host's namespaces:\n%s", out)
		}
	})
	t.Run("host", func(t *testing.T) {
		out := ns(t, WithHostNamespace(PIDNamespace), WithNetwork("host"))
		if !strings.Contains(out, hostNet) || !strings.Contains(out, hostPid) {
			t.Errorf("does not share the host's pid and net namespaces:\n%s", out)
		}
		// As Docker: on the host's network, the host's name.
		if name, _ := os.Hostname(); !strings.HasSuffix(out, "\n"+name+"\n") {
			t.Errorf("hostname on the host's network, want %s:\n%s", name, out)
		}
	})
	t.Run("join", func(t *testing.T) {
		pod, _, _ := runContainer(t, h, img, WithCmd("sleep", "100"))
		podNet, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pod.State().Pid))
		if err != nil {
			t.Fatal(err)
		}
		out := ns(t, WithJoinNamespace(NetNamespace, pod))
		if !strings.Contains(out, podNet) {
			t.Errorf("not in %s:\n%s", podNet, out)
		}
	})
	// A container joins the namespace the other's init has at its own
	// start, not the pid the other had when it was created.
	t.Run("join after restart", func(t *testing.T) {
		ctx := context.Background()
		pod, _, _ := runContainer(t, h, img, WithCmd("sleep", "100"))
		c, err := h.Create(ctx, img, WithJoinNamespace(NetNamespace, pod), WithJoinNamespace(PIDNamespace, pod),
			WithCmd("sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/pid"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Remove(context.Background(), true) })
		if err := pod.Stop(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); !errors.Is(err, ErrWrongState) {
			t.Errorf("start joining a stopped container: %v, want ErrWrongState", err)
		}
		if err := pod.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var want string
		for _, kind := range []string{"net", "pid"} {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pod.State().Pid, kind))
			if err != nil {
				t.Fatal(err)
			}
			want += l + "\n"
		}
		var stdout bytes.Buffer
		if err := c.Start(ctx, WithOutput(&stdout, io.Discard)); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, c); st.ExitCode != 0 || stdout.String() != want {
			t.Errorf("joined after the other's restart: exit %d, %q; want %q", st.ExitCode, stdout.String(), want)
		}
		// A state whose pid has gone to another process, as between an
		// init's end and its monitor's record of it, is not joined.
		stateFile := filepath.Join(h.Root(), "containers", pod.ID, "state.json")
		b, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil || st["pidStart"] == nil {
			t.Fatalf("state %s: %v, want a pidStart", b, err)
		}
		st["pidStart"] = st["pidStart"].(float64) - 1
		if b, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stateFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c2, err := h.Create(ctx, img, WithJoinNamespace(NetNamespace, pod), WithCmd("true"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c2.Remove(context.Background(), true) })
		if err := c2.Start(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("start joining a pid whose start differs: %v, want not running", err)
		}
	})
}

// TestRootThroughSymlink opens a root through a symlink while a container
// runs in it: the container is seen running, stays so, and is not removed
// without force.
func TestRootThroughSymlink(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(h.Root(), link); err != nil {
		t.Fatal(err)
	}
	h2, err := Open(ctx, WithRoot(link))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if h2.Root() != h.Root() {
		t.Errorf("opened through a symlink, the root is %s, want %s", h2.Root(), h.Root())
	}
	c2, err := h2.Container(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := c2.State(); st.Status != StatusRunning {
		t.Fatalf("through the symlink the container is %s (%s)", st.Status, st.Error)
	}
	if err := c2.Remove(ctx, false); !errors.Is(err, ErrWrongState) {
		t.Fatalf("remove of a running container through the symlink: %v, want ErrWrongState", err)
	}
	if st := c.State(); st.Status != StatusRunning {
		t.Fatalf("after the other Open the container is %s (%s)", st.Status, st.Error)
	}
}

// TestRemoveWhileOthersReach removes a container while another program's
// removes and kills reach it: one remove does it all, the others find it
// gone, and nothing of it is left.
func TestRemoveWhileOthersReach(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	h2 := otherHost(t, h)
	for i := range 10 {
		c, err := h.Create(ctx, img, WithName(fmt.Sprintf("c%d", i)), WithCmd("true"))
		if err != nil {
			t.Fatal(err)
		}
		c2, err := h2.Container(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		dir := filepath.Join(h.Root(), "containers", c.ID)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if err := c2.Remove(ctx, false); err != nil {
						errs <- err
						return
					}
					if err := c2.Kill(syscall.SIGKILL); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrWrongState) {
						errs <- fmt.Errorf("kill: %v", err)
						return
					}
					if _, err := os.Stat(dir); os.IsNotExist(err) {
						return
					}
				}
			}()
		}
		if err := c.Remove(ctx, false); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d, other program: %v", i, err)
		}
		if _, err := os.Stat(filepath.Join(h.Root(), "containers", c.ID)); !os.IsNotExist(err) {
			t.Fatalf("round %d: the state directory is left (%v)", i, err)
		}
		if _, err := h.Container(ctx, c.Name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: the name still finds %v", i, err)
		}
	}
}

// TestContainerCallsErrors checks the errors of calls on a container that
// never started and on one removed.
func TestContainerCallsErrors(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, err := h.Create(ctx, img, WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(syscall.SIGTERM); !errors.Is(err, ErrWrongState) {
		t.Errorf("Kill of a created container: %v, want ErrWrongState", err)
	}
	if err := c.Stop(ctx, time.Second); err != nil {
		t.Errorf("Stop of a created container: %v", err)
	}
	if err := c.Remove(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("Start of a removed container: %v, want ErrNotFound", err)
	}
	if err := c.Stop(ctx, time.Second); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stop of a removed container: %v, want ErrNotFound", err)
	}
	if err := c.Kill(syscall.SIGTERM); !errors.Is(err, ErrNotFound) {
		t.Errorf("Kill of a removed container: %v, want ErrNotFound", err)
	}
	if _, err := h.Create(ctx, img, WithAutoRemove(), WithRestartPolicy("always")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("auto-remove with a restart policy: %v, want ErrInvalidArgument", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(h.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("a failed create left %d files in tmp", len(ents))
	}

	// A name of 64 hex digits names its container.
	name := strings.Repeat("ab", 32)
	c2, err := h.Create(ctx, img, WithName(name), WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Remove(ctx, true)
	if got, err := h.Container(ctx, name); err != nil || got.ID != c2.ID {
		t.Errorf("lookup by a hex name: %v, %v", got, err)
	}
	if got, err := h.Container(ctx, c2.ID); err != nil || got.ID != c2.ID {
		t.Errorf("lookup by ID: %v, %v", got, err)
	}
}

// TestAutoRemoveWaitElsewhere waits for an auto-remove container from a
// second program while its owner waits and removes it: both get how it
// ended, also once it is gone.
func TestAutoRemoveWaitElsewhere(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := ctxT(t, time.Minute)
	h2 := otherHost(t, h)
	for i := range 6 {
		c, err := h.Create(ctx, img, WithCmd("sh", "-c", "sleep 0.2; exit 5"), WithAutoRemove())
		if err != nil {
			t.Fatal(err)
		}
		c2, err := h2.Container(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			c.Kill(syscall.SIGKILL)
		}
		other := make(chan ExitStatus, 1)
		go func() {
			st, err := c2.Wait(ctx)
			if err != nil {
				t.Errorf("round %d, the other program's Wait: %v", i, err)
			}
			other <- st
		}()
		st := wait(t, c)
		got := <-other
		if got.ExitCode != st.ExitCode || got.Signal != st.Signal {
			t.Errorf("round %d: the other program got %+v, the owner %+v", i, got, st)
		}
		if i == 5 && st.Signal != syscall.SIGKILL || i < 5 && st.ExitCode != 5 {
			t.Errorf("round %d: the owner got %+v", i, st)
		}
		// Once it is gone too.
		if st, err := c2.Wait(ctx); err != nil || st.ExitCode != got.ExitCode {
			t.Errorf("round %d: Wait after the removal: %+v, %v", i, st, err)
		}
	}
}

// TestVolumeClosedToHostUsers makes a set-user-ID copy of a shell in a
// volume from inside a container: no host user but root reaches it.
func TestVolumeClosedToHostUsers(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, _, stderr := runContainer(t, h, img, WithMount(Volume("v", "/data")),
		WithCmd("sh", "-c", "cp /bin/busybox /data/sh && chmod 4755 /data/sh"))
	if st := wait(t, c); st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, stderr)
	}
	file := filepath.Join(h.Root(), "volumes", "v", "_data", "sh")
	if fi, err := os.Stat(file); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("the set-user-ID file: %v %v", fi, err)
	}
	// The root is under the test's temp dir, which others may not search
	// either: open the way to the root, as an installed /var/lib/dock has.
	for d := h.Root(); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("/bin/busybox", "stat", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "ermission denied") {
		t.Fatalf("a host user reached the volume's files: %v\n%s", err, out)
	}
}

// TestNestedMounts gives a mount inside another before it: both show, as
// with Docker, which mounts the shallower first; a destination given twice
// is refused.
func TestNestedMounts(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	host := hostDir(t)
	c, stdout, stderr := runContainer(t, h, img,
		WithMount(Bind(host, "/mnt/x", ReadOnly)), WithMount(Volume("nest", "/mnt")),
		WithCmd("cat", "/mnt/x/in.txt"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "from host\n" {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout, stderr)
	}
	_, err := h.Create(context.Background(), img, WithMount(Bind(host, "/x")), WithMount(Tmpfs("/x/")), WithCmd("true"))
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("a destination given twice: %v, want ErrInvalidArgument", err)
	}
}

// TestReadOnlyRootfsWorkdir runs in a working directory the image lacks
// with a read-only root: it is made first, as Docker does.
func TestReadOnlyRootfsWorkdir(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	c, stdout, stderr := runContainer(t, h, img, WithReadOnlyRootfs(), WithWorkdir("/new/dir"), WithCmd("pwd"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "/new/dir\n" {
		t.Fatalf("exit %d: %s%s", st.ExitCode, stdout, stderr)
	}
}

// TestRemoveForceKeepsUnkilled removes with force a container whose
// processes cannot die yet (frozen behind its monitor's back, which on
// cgroup v1 holds off even SIGKILL): the removal fails and the record
// stays, and once thawed the container is removed.
func TestRemoveForceKeepsUnkilled(t *testing.T) {
	h := newHost(t)
	img := busyboxImage(t, h)
	ctx := context.Background()
	c, _, _ := runContainer(t, h, img, WithCmd("sleep", "1000"))
	g, err := h.cgroups.Load(c.rec.Spec.Cgroup.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer g.Thaw()
	old := removeKillWait
	removeKillWait = time.Second
	defer func() { removeKillWait = old }()
	err = c.Remove(ctx, true)
	if err == nil {
		if cgroups.Mode() == "v2" {
			t.Skip("cgroup v2: a frozen task dies of SIGKILL")
		}
		t.Fatal("forced Remove of a container that did not die succeeded")
	}
	if c.removed() {
		t.Fatalf("the record went with the failed removal: %v", err)
	}
	g.Thaw()
	if err := c.Remove(ctx, true); err != nil {
		t.Fatal(err)
	}
}
