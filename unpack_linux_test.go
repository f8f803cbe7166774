package dock

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/testutil/registrytest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Times the test layers give their entries; anything newer was made by
// the unpack itself.
var (
	tLow  = time.Unix(1600000000, 0)
	tMid  = time.Unix(1650000000, 0)
	tHigh = time.Unix(1700000000, 0)
)

// tl is a test layer entry: a header, and the content of a regular file.
type tl struct {
	tar.Header
	body string
}

func dirE(name string, mode int64, uid, gid int, mt time.Time) tl {
	return tl{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: gid, ModTime: mt}}
}

func fileE(name, body string, mt time.Time) tl {
	return tl{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mt}, body: body}
}

func linkE(name, target string) tl {
	return tl{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: tMid}}
}

func symlinkE(name, target string) tl {
	return tl{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, ModTime: tMid}}
}

func tarOf(t *testing.T, entries []tl) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storeImage stores an image of the given layer tars in h, gzip-compressed.
// wrongDiffID, when >= 0, gives that layer a diffID its content does not
// hash to.
func storeImage(t *testing.T, h *Host, name string, layers [][]byte, wrongDiffID int) *Image {
	t.Helper()
	ctx := context.Background()
	cfg := ocispec.Image{Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}, RootFS: ocispec.RootFS{Type: "layers"}}
	var descs []ocispec.Descriptor
	for i, l := range layers {
		desc, diffID, err := h.addLayer(ctx, bytes.NewReader(l), ocispec.MediaTypeImageLayerGzip)
		if err != nil {
			t.Fatal(err)
		}
		if i == wrongDiffID {
			diffID = digest.FromString("not this layer")
		}
		descs = append(descs, desc)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	}
	img, err := h.writeImage(ctx, cfg, descs, name)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// overlayHost is newHost on the overlay snapshotter, or a skip.
func overlayHost(t *testing.T) *Host {
	t.Helper()
	h := newHost(t)
	if _, ok := stackerOf(h.snap); !ok || h.snapName != "overlay" {
		t.Skipf("needs the overlay snapshotter, have %s", h.snapName)
	}
	return h
}

// serialSnapshotter hides the overlay snapshotter's stacking, so that
// layers are unpacked one at a time, each over its committed parent.
type serialSnapshotter struct{ Snapshotter }

// outOfOrder unpacks img with all its layers written before any is
// committed, so that each is written with nothing below it yet.
func outOfOrder(t *testing.T, h *Host, img *Image) error {
	t.Helper()
	var written sync.WaitGroup
	written.Add(len(img.Layers))
	return h.unpackImage(context.Background(), img, unpackConfig{
		window:     len(img.Layers),
		written:    func(int, error) { written.Done() },
		committing: func(int) { written.Wait() },
	})
}

// treeOf describes every node under dir: type, mode, owner, size, link
// count, device, link target, content hash, xattrs, and the modification
// time when it is older than since (newer ones are the time of the unpack).
func treeOf(t *testing.T, dir string, since time.Time) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d nlink=%d rdev=%d", st.Mode, st.Uid, st.Gid, st.Nlink, st.Rdev)
		if mt := time.Unix(st.Mtim.Unix()); mt.Before(since) {
			desc += " mtime=" + mt.UTC().Format(time.RFC3339Nano)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" size=%d sha=%x", st.Size, sum[:8])
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil && n > 0 {
			names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			slices.Sort(names)
			for _, x := range names {
				v := make([]byte, 4096)
				m, _ := unix.Lgetxattr(p, x, v)
				desc += fmt.Sprintf(" %s=%q", x, v[:max(m, 0)])
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// viewTree mounts a view of the committed snapshot chain and describes it.
func viewTree(t *testing.T, h *Host, chain string, since time.Time) map[string]string {
	t.Helper()
	dir, done := viewDir(t, h, chain)
	defer done()
	return treeOf(t, dir, since)
}

// viewDir mounts a view of the committed snapshot chain and returns its
// directory, and what unmounts and removes it.
func viewDir(t *testing.T, h *Host, chain string) (string, func()) {
	t.Helper()
	ctx := context.Background()
	key := "view-" + randomHex(4)
	mounts, err := h.snap.View(ctx, key, chain)
	if err != nil {
		t.Fatal(err)
	}
	dir, done, err := h.mountTemp(mounts)
	if err != nil {
		h.snap.Remove(ctx, key)
		t.Fatal(err)
	}
	return dir, func() {
		done()
		h.snap.Remove(ctx, key)
	}
}

// implicitLayers exercise what a layer written with nothing below it can
// get wrong: directories it writes into without naming them (under owners,
// modes and times of lower layers, under whiteouts and opaque
// directories), whiteouts, hardlinks, symlinks and replaced entries.
func implicitLayers(t *testing.T) [][]byte {
	return [][]byte{
		tarOf(t, []tl{
			dirE("etc/", 0o755, 0, 0, tLow),
			fileE("etc/passwd", "root:x:0:0::/root:/bin/sh\n", tLow),
			linkE("etc/passwd-link", "etc/passwd"),
			dirE("srv/", 0o750, 1234, 5678, tLow),
			dirE("tmp/", 0o1777, 0, 0, tLow),
			dirE("opt/", 0o755, 0, 0, tLow),
			dirE("opt/app/", 0o2775, 10, 20, tLow),
			fileE("opt/app/old", "old", tLow),
			dirE("gone/", 0o700, 3, 3, tLow),
			fileE("gone/f", "f", tLow),
			dirE("var/", 0o755, 0, 0, tLow),
			dirE("var/lib/", 0o755, 0, 0, tLow),
			dirE("var/lib/x/", 0o700, 7, 7, tLow),
			fileE("var/lib/x/hidden", "h", tLow),
			fileE("usr/bin/tool", "tool", tLow), // usr/ and usr/bin/ unnamed
			symlinkE("lib", "usr/lib"),
		}),
		tarOf(t, []tl{
			fileE("srv/data/file", "data", tMid), // srv and srv/data unnamed
			linkE("srv/data/file2", "srv/data/file"),
			fileE("tmp/x", "x", tMid),
			fileE("opt/app/new", "new", tMid),
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: ".wh.gone", ModTime: tMid}},
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/app/.wh.old", ModTime: tMid}},
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/x/.wh..wh..opq", ModTime: tMid}},
			fileE("var/lib/x/y", "y", tMid),
			fileE("usr/bin/tool", "tool v2", tMid),
		}),
		tarOf(t, []tl{
			fileE("gone/again/f", "again", tHigh), // gone is whited out below
			fileE("var/lib/x/z", "z", tHigh),
			fileE("srv/data/more", "more", tHigh),
			dirE("etc/", 0o700, 0, 0, tHigh), // named: its own attributes
			fileE("etc/new", "new", tHigh),
			fileE("usr/bin/tool2", "tool2", tHigh),
		}),
	}
}

// Layers written out of order, each before the one below it is committed,
// land the same trees, metadata included, as layers written one at a time
// over their committed parents.
func TestUnpackOutOfOrderMatchesSerial(t *testing.T) {
	since := time.Now().Add(-time.Minute)
	layers := implicitLayers(t)

	serial := overlayHost(t)
	imgS := storeImage(t, serial, "test.local/implicit:1", layers, -1)
	serial.snap = serialSnapshotter{serial.snap}
	if err := serial.Unpack(context.Background(), imgS); err != nil {
		t.Fatal(err)
	}

	parallel := overlayHost(t)
	imgP := storeImage(t, parallel, "test.local/implicit:1", layers, -1)
	if err := outOfOrder(t, parallel, imgP); err != nil {
		t.Fatal(err)
	}

	for i, l := range imgP.Layers {
		if imgS.Layers[i].ChainID != l.ChainID {
			t.Fatalf("layer %d: chain IDs differ", i)
		}
		chain := l.ChainID.String()
		want, got := viewTree(t, serial, chain, since), viewTree(t, parallel, chain, since)
		for p, w := range want {
			if g, ok := got[p]; !ok {
				t.Errorf("layer %d: %s missing out of order (serial: %s)", i, p, w)
			} else if g != w {
				t.Errorf("layer %d: %s\n  serial:       %s\n  out of order: %s", i, p, w, g)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("layer %d: %s only out of order", i, p)
			}
		}
	}
}

// Directories a layer writes into without naming them take the owner, mode
// and times that the layers below give them, though those were not
// committed when the layer was written.
func TestUnpackImplicitDirsTakeLowerAttrs(t *testing.T) {
	since := time.Now().Add(-time.Minute)
	h := overlayHost(t)
	img := storeImage(t, h, "test.local/implicit:1", implicitLayers(t), -1)
	if err := outOfOrder(t, h, img); err != nil {
		t.Fatal(err)
	}
	low := tLow.UTC().Format(time.RFC3339Nano)
	checks := []struct {
		layer int
		path  string
		want  string // the start, or a field, of treeOf's description
	}{
		{1, "srv", fmt.Sprintf("mode=%o uid=1234 gid=5678", unix.S_IFDIR|0o750)},
		{1, "srv", "mtime=" + low},
		{1, "opt/app", "mtime=" + low},
		{1, "tmp", fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o1777)},
		{1, "opt/app", fmt.Sprintf("mode=%o uid=10 gid=20", unix.S_IFDIR|unix.S_ISGID|0o775)},
		{1, "var/lib/x", fmt.Sprintf("mode=%o uid=7 gid=7", unix.S_IFDIR|0o700)},
		{2, "var/lib/x", fmt.Sprintf("mode=%o uid=7 gid=7", unix.S_IFDIR|0o700)},
		{1, "usr/bin", fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o755)},
		// Whited out below: made afresh, not the old 0700 3:3.
		{2, "gone", fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o755)},
		{2, "etc", fmt.Sprintf("mode=%o uid=0 gid=0", unix.S_IFDIR|0o700)},
	}
	trees := map[int]map[string]string{}
	for _, c := range checks {
		if trees[c.layer] == nil {
			trees[c.layer] = viewTree(t, h, img.Layers[c.layer].ChainID.String(), since)
		}
		got, ok := trees[c.layer][c.path]
		if !ok {
			t.Errorf("layer %d: %s missing", c.layer, c.path)
		} else if !strings.HasPrefix(got, c.want) && !strings.Contains(got, " "+c.want) {
			t.Errorf("layer %d: %s is %s, want %s", c.layer, c.path, got, c.want)
		}
	}
	for _, absent := range []string{"gone/f", "opt/app/old", "var/lib/x/hidden"} {
		if _, ok := trees[2][absent]; ok {
			t.Errorf("%s shows through its whiteout", absent)
		}
	}
}

// A layer that fails while the layers above it are written and waiting
// leaves neither its snapshot nor theirs, complete-looking or not.
func TestUnpackFailingMiddleLayer(t *testing.T) {
	h := overlayHost(t)
	img := storeImage(t, h, "test.local/failing:1", implicitLayers(t), 1)
	upperWritten := make(chan struct{})
	err := h.unpackImage(context.Background(), img, unpackConfig{
		window: len(img.Layers),
		written: func(i int, err error) {
			switch i {
			case 2:
				close(upperWritten)
			case 1:
				<-upperWritten // fail only once the layer above waits
			}
		},
	})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v, want a diffID mismatch", err)
	}
	for _, l := range img.Layers[1:] {
		if _, err := h.snap.Stat(context.Background(), l.ChainID.String()); !errors.Is(err, ErrNotFound) {
			t.Errorf("layer %s: snapshot %s: %v", l.Digest, l.ChainID, err)
		}
	}
	checkSnapshotsComplete(t, h)
}

// checkSnapshotsComplete fails when h has a snapshot other than committed
// ones whose parents are committed, or a snapshot directory without one.
func checkSnapshotsComplete(t *testing.T, h *Host) {
	t.Helper()
	ctx := context.Background()
	infos := map[string]SnapshotInfo{}
	h.snap.Walk(ctx, func(_ context.Context, i SnapshotInfo) error {
		infos[i.Name] = i
		return nil
	})
	for name, i := range infos {
		if i.Kind != KindCommitted {
			t.Errorf("snapshot %s is %s", name, i.Kind)
			continue
		}
		if p := i.Parent; p != "" && infos[p].Kind != KindCommitted {
			t.Errorf("snapshot %s: parent %s is not committed", name, p)
		}
	}
	dirs, err := os.ReadDir(filepath.Join(h.root, "snapshots", h.snapName, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(infos) {
		t.Errorf("%d snapshot directories for %d snapshots", len(dirs), len(infos))
	}
	if n := stagedDirs(h.root); n != 0 {
		t.Errorf("%d staged layer directories left", n)
	}
}

// stagedDirs counts the directories layers are being written into, staged
// by the overlay snapshotter under root.
func stagedDirs(root string) int {
	n := 0
	ents, _ := os.ReadDir(filepath.Join(root, "snapshots", "overlay", "staging"))
	for _, e := range ents {
		if e.IsDir() {
			n++
		}
	}
	return n
}

// A pull killed while several layers are being written, each into a
// directory of its own staged by the snapshotter, is repaired by the next
// program to open the root, and pulling again lands the whole image.
func TestPullKilledMidParallelUnpack(t *testing.T) {
	srv := registrytest.Start(t)
	scratch := overlayHost(t)
	var layers [][]byte
	want := map[string]string{}
	for i := range 3 {
		b := make([]byte, 12<<20)
		rand.Read(b)
		body := hex.EncodeToString(b) // inflating it takes real work
		name := fmt.Sprintf("layer%d/data", i)
		layers = append(layers, tarOf(t, []tl{fileE(name, body, tMid), fileE(fmt.Sprintf("layer%d/small", i), name, tMid)}))
		want[fmt.Sprintf("layer%d/small", i)] = name
	}
	ref := srv.Host + "/test/killed-parallel:1"
	img := storeImage(t, scratch, ref, layers, -1)
	if err := scratch.Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	h0, err := Open(context.Background(), WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	if h0.snapName != "overlay" {
		h0.Close()
		t.Skipf("needs the overlay snapshotter, have %s", h0.snapName)
	}
	h0.Close()
	cmd := child(t, "pull", root, "DOCK_TEST_REF="+ref)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, bufio.NewReader(stdout))
	seen := 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && seen < 2; time.Sleep(time.Millisecond) {
		seen = stagedDirs(root)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if seen < 2 {
		t.Fatalf("never saw two layers being written at once (saw %d)", seen)
	}

	ctx := context.Background()
	h, err := Open(ctx, WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkSnapshotsComplete(t, h)
	if imgs, _ := h.Images(ctx); len(imgs) != 0 {
		t.Fatalf("a killed pull left %d images visible", len(imgs))
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	got, err := h.Pull(pctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	top := got.Layers[len(got.Layers)-1].ChainID.String()
	for p, w := range want {
		if s, ok := readSnapshotFile(t, h, top, p); !ok || s != w {
			t.Errorf("%s: got %q (%v), want %q", p, s, ok, w)
		}
	}
	checkSnapshotsComplete(t, h)
}

// A hardlink to a file of a lower layer is refused, as it was when layers
// were written one at a time: the target is looked up in the layer's own
// directory, whatever lies below it.
func TestUnpackHardlinkToLowerLayer(t *testing.T) {
	layers := [][]byte{
		tarOf(t, []tl{fileE("bin/tool", "tool", tLow)}),
		tarOf(t, []tl{linkE("bin/alias", "bin/tool")}),
	}
	for _, mode := range []string{"serial", "out of order"} {
		t.Run(mode, func(t *testing.T) {
			h := overlayHost(t)
			img := storeImage(t, h, "test.local/hardlink:1", layers, -1)
			var err error
			if mode == "serial" {
				h.snap = serialSnapshotter{h.snap}
				err = h.Unpack(context.Background(), img)
			} else {
				err = outOfOrder(t, h, img)
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "hardlink target") {
				t.Fatalf("got %v, want the hardlink refused", err)
			}
			if _, err := h.snap.Stat(context.Background(), img.Layers[1].ChainID.String()); !errors.Is(err, ErrNotFound) {
				t.Errorf("snapshot of the refused layer: %v", err)
			}
			checkSnapshotsComplete(t, h)
		})
	}
}
