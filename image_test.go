package dock

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/testutil/imagetest"
	"github.com/dockkit/dock/internal/testutil/registrytest"
	digest "github.com/opencontainers/go-digest"
)

func TestPullPushRoundTrip(t *testing.T) {
	srv := registrytest.Start(t)
	ref, pushed := pushImage(t, srv, "test/busybox:multi", imagetest.MultiLayer(3))
	h := newHost(t)
	ctx := context.Background()
	img, err := h.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != pushed.Digest {
		t.Fatalf("pulled %s, pushed %s", img.Digest, pushed.Digest)
	}
	if img.Name != ref {
		t.Errorf("name %q, want %q", img.Name, ref)
	}
	// Pull unpacks: the merged tree honours the layers' whiteouts.
	top := img.Layers[len(img.Layers)-1].ChainID.String()
	if _, ok := readSnapshotFile(t, h, top, "bin/busybox"); !ok {
		t.Error("bin/busybox missing from the unpacked image")
	}
	if _, ok := readSnapshotFile(t, h, top, "etc/motd"); ok {
		t.Error("etc/motd was deleted by layer 3 but is visible")
	}
	if _, ok := readSnapshotFile(t, h, top, "opt/app/a.txt"); ok {
		t.Error("opt/app was made opaque by layer 3 but a.txt is visible")
	}
	if _, ok := readSnapshotFile(t, h, top, "opt/app/c.txt"); !ok {
		t.Error("opt/app/c.txt missing")
	}
	if n := h.UnpackedSize(ctx, img); n < 500_000 {
		t.Errorf("unpacked size %d, want at least busybox's", n)
	}

	// Pushing it again under another name sends no blob the registry has.
	var sent atomic.Int64
	err = h.Push(ctx, img, srv.Host+"/other/busybox:copy", WithProgress(func(p Progress) {
		if p.State == ProgressTransferring {
			sent.Store(p.Done)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	img2, err := newHost(t).Pull(ctx, srv.Host+"/other/busybox:copy", WithoutUnpack())
	if err != nil {
		t.Fatal(err)
	}
	if img2.Digest != img.Digest {
		t.Fatalf("copy has digest %s, want %s", img2.Digest, img.Digest)
	}
}

func TestPullZstd(t *testing.T) {
	srv := registrytest.Start(t)
	ref, _ := pushImage(t, srv, "test/zstd:1", imagetest.Compression("zstd"), imagetest.MultiLayer(2))
	h := newHost(t)
	img, err := h.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(img.Layers[0].MediaType, "zstd") {
		t.Fatalf("layer media type %s, want zstd", img.Layers[0].MediaType)
	}
	if _, ok := readSnapshotFile(t, h, img.Layers[1].ChainID.String(), "opt/app/b.txt"); !ok {
		t.Error("opt/app/b.txt missing from the unpacked zstd image")
	}
}

func TestPullSharedLayersNotFetched(t *testing.T) {
	srv := registrytest.Start(t)
	refA, _ := pushImage(t, srv, "test/a:1", imagetest.MultiLayer(2))
	refB, imgB := pushImage(t, srv, "test/b:1", imagetest.MultiLayer(2), imagetest.WithFile("/extra.txt", []byte("b"), 0o644))
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.Pull(ctx, refA); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fetched := map[string]int64{}
	existed := map[string]bool{}
	_, err := h.Pull(ctx, refB, WithProgress(func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		switch p.State {
		case ProgressTransferring, ProgressDone:
			if p.Done > fetched[p.Digest] {
				fetched[p.Digest] = p.Done
			}
		case ProgressExists:
			existed[p.Digest] = true
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	base := imgB.Layers[0].Digest.String()
	if n := fetched[base]; n != 0 {
		t.Errorf("shared base layer: %d bytes fetched again", n)
	}
	if !existed[base] {
		t.Errorf("shared base layer not reported as existing; events %v", existed)
	}
}

func TestPullPlatform(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("needs skopeo to push a multi-platform index")
	}
	srv := registrytest.Start(t)
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	imagetest.MultiPlatform(t, dir, imagetest.NativePlatform(), "linux/arm64", "linux/ppc64le")
	ref := srv.Host + "/test/multi:1"
	out, err := exec.Command("skopeo", "copy", "--all", "--dest-tls-verify=false", "oci:"+dir, "docker://"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	h := newHost(t)
	ctx := context.Background()
	img, err := h.Pull(ctx, ref, WithPlatform("linux/arm64"), WithoutUnpack())
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Architecture != "arm64" {
		t.Errorf("pulled %s, want arm64", img.Config.Architecture)
	}
	_, err = h.Pull(ctx, ref, WithPlatform("linux/s390x"))
	if err == nil || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "linux/ppc64le") {
		t.Fatalf("want an error listing the platforms on offer, got %v", err)
	}
}

func TestPullAuth(t *testing.T) {
	srv := registrytest.Start(t, registrytest.WithHtpasswd("alice", "s3cret"))
	ref, _ := pushImage(t, srv, "test/private:1")
	ctx := context.Background()
	h := newHost(t)

	bad, err := NewRegistry(srv.Host, WithBasicAuth("alice", "wrong"), WithDockerConfig(filepath.Join(t.TempDir(), "none.json")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Pull(ctx, ref, WithRegistry(bad))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: got %v, want ErrUnauthorized", err)
	}
	good, _ := NewRegistry(srv.Host, WithBasicAuth("alice", "s3cret"))
	if _, err := h.Pull(ctx, ref, WithRegistry(good)); err != nil {
		t.Fatal(err)
	}
}

func TestPullCorruptBlobRefused(t *testing.T) {
	srv := registrytest.Start(t)
	ref, pushed := pushImage(t, srv, "test/corrupt:1")
	layer := pushed.Layers[0].Digest
	srv.CorruptBlob(t, layer)
	h := newHost(t)
	ctx := context.Background()
	_, err := h.Pull(ctx, ref)
	if err == nil {
		t.Fatal("pull of a corrupt blob succeeded")
	}
	if !errors.Is(err, ErrDigestMismatch) && !strings.Contains(err.Error(), layer.Encoded()[:12]) {
		t.Fatalf("error %v does not name the digest or match ErrDigestMismatch", err)
	}
	if _, err := os.Stat(h.store.BlobPath(layer)); !os.IsNotExist(err) {
		t.Errorf("the corrupt blob is in the store: %v", err)
	}
	if imgs, _ := h.Images(ctx); len(imgs) != 0 {
		t.Errorf("store lists %d images after a failed pull", len(imgs))
	}
}

// bigImage pushes an image whose last layer holds size random bytes, so that
// pulling it takes long enough to interrupt.
func bigImage(t *testing.T, srv *registrytest.Server, repoTag string, size int) string {
	data := make([]byte, size)
	rand.Read(data)
	ref, _ := pushImage(t, srv, repoTag, imagetest.WithFile("/big.bin", data, 0o644))
	return ref
}

func TestPullCancelLeavesNothing(t *testing.T) {
	srv := registrytest.Start(t)
	ref := bigImage(t, srv, "test/big:1", 64<<20)
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := h.Pull(ctx, ref, WithProgress(func(p Progress) {
		if p.State == ProgressTransferring && p.Done > 0 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if imgs, _ := h.Images(context.Background()); len(imgs) != 0 {
		t.Errorf("store lists %d images after a cancelled pull", len(imgs))
	}
	var committed []string
	h.snap.Walk(context.Background(), func(_ context.Context, i SnapshotInfo) error {
		committed = append(committed, i.Name)
		return nil
	})
	// A layer may have finished before the cancel; no active snapshot may
	// stay behind.
	for _, n := range committed {
		if strings.HasPrefix(n, "extract-") {
			t.Errorf("unpack snapshot %s left behind", n)
		}
	}
	// And the same pull then succeeds.
	if _, err := h.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
}

func TestPullTwoProcessesOneRoot(t *testing.T) {
	srv := registrytest.Start(t)
	refA, _ := pushImage(t, srv, "test/one:1", imagetest.MultiLayer(2))
	refB, _ := pushImage(t, srv, "test/two:1", imagetest.MultiLayer(3))
	root := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, ref := range []string{refA, refB, refA} {
		cmd := child(t, "pull", root, "DOCK_TEST_REF="+ref)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("pull %d: %v\n%s", i, err, outs[i])
		}
	}
	h, err := Open(context.Background(), WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, ref := range []string{refA, refB} {
		img, err := h.Image(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range img.Layers {
			if !h.hasSnapshot(context.Background(), l.ChainID) {
				t.Errorf("%s: layer %s not unpacked", ref, l.Digest)
			}
		}
	}
}

func TestPullKilledThenPullAgain(t *testing.T) {
	srv := registrytest.Start(t)
	ref := bigImage(t, srv, "test/killed:1", 96<<20)
	root := t.TempDir()
	cmd := child(t, "pull", root, "DOCK_TEST_REF="+ref)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "transferring" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	ctx := context.Background()
	h, err := Open(ctx, WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if imgs, _ := h.Images(ctx); len(imgs) != 0 {
		t.Fatalf("a killed pull left %d images visible", len(imgs))
	}
	// Opening the root removed the dead pull's unpack snapshots.
	h.snap.Walk(ctx, func(_ context.Context, i SnapshotInfo) error {
		if i.Kind != KindCommitted {
			t.Errorf("snapshot %s (%s) left by the killed pull", i.Name, i.Kind)
		}
		return nil
	})
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	img, err := h.Pull(pctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readSnapshotFile(t, h, img.Layers[len(img.Layers)-1].ChainID.String(), "big.bin"); !ok {
		t.Error("big.bin missing after the second pull")
	}
}

func TestSkopeoReadsStore(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("needs skopeo")
	}
	srv := registrytest.Start(t)
	ref, pushed := pushImage(t, srv, "test/skopeo:1")
	h := newHost(t)
	if _, err := h.Pull(context.Background(), ref, WithoutUnpack()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+filepath.Join(h.Root(), "images")+":"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(pushed.Layers[0].Digest.String())) {
		t.Errorf("skopeo's manifest does not list layer %s:\n%s", pushed.Layers[0].Digest, out)
	}
}

func TestRemoveImageCleansUp(t *testing.T) {
	srv := registrytest.Start(t)
	refA, _ := pushImage(t, srv, "test/rm-a:1", imagetest.MultiLayer(2))
	refB, _ := pushImage(t, srv, "test/rm-b:1", imagetest.MultiLayer(3))
	h := newHost(t)
	ctx := context.Background()
	a, err := h.Pull(ctx, refA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Pull(ctx, refB)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveImage(ctx, refB, false); err != nil {
		t.Fatal(err)
	}
	// b's own top layer is gone; the layers it shares with a stay.
	if h.hasSnapshot(ctx, b.Layers[2].ChainID) {
		t.Error("b's top snapshot survived its removal")
	}
	if _, err := os.Stat(h.store.BlobPath(b.Layers[2].Digest)); !os.IsNotExist(err) {
		t.Error("b's top layer blob survived its removal")
	}
	for _, l := range a.Layers {
		if !h.hasSnapshot(ctx, l.ChainID) {
			t.Errorf("a's snapshot %s removed with b", l.ChainID)
		}
	}
	if err := h.RemoveImage(ctx, refA, false); err != nil {
		t.Fatal(err)
	}
	n := 0
	h.snap.Walk(ctx, func(context.Context, SnapshotInfo) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d snapshots left after removing every image", n)
	}
	if _, err := h.Image(ctx, refA); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed image still found: %v", err)
	}
}

func TestLoadSaveRoundTrip(t *testing.T) {
	imagetest.RequireBusybox(t)
	dir := t.TempDir()
	imagetest.Busybox(t, dir, imagetest.MultiLayer(2), imagetest.Name("example.com/app:1"))
	ctx := context.Background()
	h := newHost(t)
	imgs, err := h.Load(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "example.com/app:1" {
		t.Fatalf("loaded %+v", imgs)
	}
	for _, f := range []struct {
		format ArchiveFormat
		name   string
	}{{OCIArchive, "oci"}, {DockerArchive, "docker"}} {
		t.Run(f.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := h.Save(ctx, &buf, f.format, "example.com/app:1"); err != nil {
				t.Fatal(err)
			}
			tarPath := filepath.Join(t.TempDir(), "img.tar")
			if err := os.WriteFile(tarPath, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			h2 := newHost(t)
			got, err := h2.Load(ctx, tarPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Name != "example.com/app:1" {
				t.Fatalf("loaded %+v", got)
			}
			if got[0].ID != imgs[0].ID {
				t.Errorf("image ID %s, want %s", got[0].ID, imgs[0].ID)
			}
			if f.format == OCIArchive && got[0].Digest != imgs[0].Digest {
				t.Errorf("digest %s, want %s", got[0].Digest, imgs[0].Digest)
			}
		})
	}
}

// A pull of a tag that has moved leaves the image it named before without
// a name, as Docker does: listed unnamed, kept with its blobs by Prune,
// kept by PruneImages while a container uses it, then removed by it; an
// unnamed image is also removed by its ID.
func TestDanglingImages(t *testing.T) {
	srv := registrytest.Start(t)
	ref, _ := pushImage(t, srv, "test/moving:1", imagetest.MultiLayer(2))
	h := newHost(t)
	ctx := context.Background()
	old, err := h.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, srv, "test/moving:1", imagetest.MultiLayer(3))
	cur, err := h.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Digest == old.Digest {
		t.Fatal("the tag did not move")
	}
	names := func() map[digest.Digest][]string {
		imgs, err := h.Images(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[digest.Digest][]string{}
		for _, img := range imgs {
			out[img.Digest] = append(out[img.Digest], img.Name)
		}
		return out
	}
	if got := names(); len(got) != 2 || len(got[old.Digest]) != 1 || got[old.Digest][0] != "" || len(got[cur.Digest]) != 1 || got[cur.Digest][0] == "" {
		t.Fatalf("images after the tag moved: %v", got)
	}
	if err := h.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.store.BlobPath(old.ID)); err != nil {
		t.Fatalf("Prune removed the unnamed image's config: %v", err)
	}

	c, err := h.Create(ctx, old, WithCmd("true"))
	if err != nil {
		t.Fatal(err)
	}
	removed, err := h.PruneImages(ctx)
	if err != nil || len(removed) != 0 {
		t.Fatalf("PruneImages with a container of the unnamed image: %v, %v", removed, err)
	}
	if err := c.Remove(ctx, true); err != nil {
		t.Fatal(err)
	}
	removed, err = h.PruneImages(ctx)
	if err != nil || len(removed) != 1 || removed[0] != old.Digest {
		t.Fatalf("PruneImages = %v, %v; want [%s]", removed, err, old.Digest)
	}
	if got := names(); len(got) != 1 || got[cur.Digest] == nil {
		t.Fatalf("images after PruneImages: %v", got)
	}
	if _, err := os.Stat(h.store.BlobPath(old.ID)); !os.IsNotExist(err) {
		t.Errorf("the pruned image's config is still stored: %v", err)
	}
	if !h.hasSnapshot(ctx, cur.Layers[2].ChainID) {
		t.Error("PruneImages removed a snapshot of the named image")
	}

	// The tag moves back; the image it leaves goes by its ID.
	pushImage(t, srv, "test/moving:1", imagetest.MultiLayer(2))
	if _, err := h.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveImage(ctx, cur.ID.Encoded()[:12], false); err != nil {
		t.Fatal(err)
	}
	if got := names(); len(got) != 1 || got[old.Digest] == nil {
		t.Fatalf("images after removing the unnamed one by ID: %v", got)
	}
	if h.hasSnapshot(ctx, cur.Layers[2].ChainID) {
		t.Error("the removed image's top snapshot survived")
	}
}
