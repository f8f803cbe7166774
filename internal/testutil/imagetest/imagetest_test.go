package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// checkLayout verifies that every blob reachable from index.json exists with
// the size and digest its descriptor states, and returns how many it saw.
func checkLayout(t *testing.T, dir string) int {
	t.Helper()
	var lay ocispec.ImageLayout
	readJSON(t, filepath.Join(dir, ocispec.ImageLayoutFile), &lay)
	if lay.Version != ocispec.ImageLayoutVersion {
		t.Fatalf("oci-layout version %q", lay.Version)
	}
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, ocispec.ImageIndexFile), &idx)
	seen := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor)
	walk = func(d ocispec.Descriptor) {
		if seen[d.Digest] {
			return
		}
		seen[d.Digest] = true
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
		if err != nil {
			t.Fatalf("blob %s: %v", d.Digest, err)
		}
		if int64(len(b)) != d.Size {
			t.Errorf("blob %s: size %d, descriptor says %d", d.Digest, len(b), d.Size)
		}
		if got := digest.FromBytes(b); got != d.Digest {
			t.Errorf("blob %s: content digest %s", d.Digest, got)
		}
		switch d.MediaType {
		case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
			var ix ocispec.Index
			mustUnmarshal(t, b, &ix)
			for _, m := range ix.Manifests {
				walk(m)
			}
		case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
			var m ocispec.Manifest
			mustUnmarshal(t, b, &m)
			if m.MediaType != d.MediaType {
				t.Errorf("manifest %s: mediaType %q, descriptor says %q", d.Digest, m.MediaType, d.MediaType)
			}
			walk(m.Config)
			for _, l := range m.Layers {
				walk(l)
			}
		}
	}
	for _, m := range idx.Manifests {
		walk(m)
	}
	return len(seen)
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mustUnmarshal(t, b, v)
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
}

// layerFiles returns the tar headers of a layer blob by name.
func layerFiles(t *testing.T, dir string, d ocispec.Descriptor) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	switch d.MediaType {
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip:
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case ocispec.MediaTypeImageLayerZstd, MediaTypeDockerLayerZstd:
		zr, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("layer %s: %v", d.Digest, err)
		}
		out[h.Name] = h
	}
}

func TestBusybox(t *testing.T) {
	cases := []struct {
		name      string
		opts      []Option
		layers    int
		layerType string
		manType   string
	}{
		{"default", nil, 1, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageManifest},
		{"zstd", []Option{Compression("zstd")}, 1, ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageManifest},
		{"none", []Option{Compression("none")}, 1, ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageManifest},
		{"multilayer", []Option{MultiLayer(4)}, 4, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageManifest},
		{"docker", []Option{DockerMediaTypes(), MultiLayer(2)}, 2, MediaTypeDockerLayerGzip, MediaTypeDockerManifest},
		{"arm64", []Option{Platform("linux/arm64/v8")}, 1, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageManifest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := Busybox(t, dir, append(tc.opts, Name("test:"+tc.name))...)
			if n := checkLayout(t, dir); n != 2+tc.layers {
				t.Errorf("reachable blobs %d, want %d", n, 2+tc.layers)
			}
			if img.Manifest.MediaType != tc.manType {
				t.Errorf("manifest media type %q", img.Manifest.MediaType)
			}
			if len(img.Layers) != tc.layers || len(img.Config.RootFS.DiffIDs) != tc.layers {
				t.Fatalf("layers %d, diffIDs %d, want %d", len(img.Layers), len(img.Config.RootFS.DiffIDs), tc.layers)
			}
			for _, l := range img.Layers {
				if l.MediaType != tc.layerType {
					t.Errorf("layer media type %q, want %q", l.MediaType, tc.layerType)
				}
			}
			if img.Index.Annotations[ocispec.AnnotationRefName] != "test:"+tc.name {
				t.Errorf("index annotations %v", img.Index.Annotations)
			}
			base := layerFiles(t, dir, img.Layers[0])
			for name, want := range map[string]byte{
				"bin/busybox": tar.TypeReg, "bin/sh": tar.TypeSymlink, "bin/ls": tar.TypeSymlink,
				"etc/passwd": tar.TypeReg, "etc/group": tar.TypeReg, "tmp/": tar.TypeDir, "root/": tar.TypeDir,
			} {
				h, ok := base[name]
				if !ok {
					t.Errorf("base layer lacks %s", name)
					continue
				}
				if h.Typeflag != want {
					t.Errorf("%s: type %c, want %c", name, h.Typeflag, want)
				}
				if !h.ModTime.Equal(Epoch) {
					t.Errorf("%s: mtime %v", name, h.ModTime)
				}
			}
			if h := base["tmp/"]; h != nil && h.Mode != 0o1777 {
				t.Errorf("/tmp mode %o", h.Mode)
			}
			if tc.name == "arm64" && (img.Config.Architecture != "arm64" || img.Config.Variant != "v8") {
				t.Errorf("platform %+v", img.Config.Platform)
			}
			if got := img.Config.Config.Cmd; len(got) != 1 || got[0] != "sh" {
				t.Errorf("Cmd %v", got)
			}
		})
	}
}

func TestMultiLayerContent(t *testing.T) {
	dir := t.TempDir()
	img := Busybox(t, dir, MultiLayer(4), WithFile("/srv/hello.txt", []byte("hi"), 0o640))
	l2 := layerFiles(t, dir, img.Layers[1])
	l3 := layerFiles(t, dir, img.Layers[2])
	l4 := layerFiles(t, dir, img.Layers[3])
	for _, c := range []struct {
		layer map[string]*tar.Header
		name  string
	}{
		{l2, "etc/motd"}, {l2, "opt/app/a.txt"}, {l2, "root/.wh..profile"},
		{l3, "etc/.wh.motd"}, {l3, "opt/app/.wh..wh..opq"}, {l3, "opt/app/c.txt"},
		{l4, "layer4.txt"}, {l4, "srv/hello.txt"}, {l4, "srv/"},
	} {
		if c.layer[c.name] == nil {
			t.Errorf("missing %s", c.name)
		}
	}
	if h := l4["srv/hello.txt"]; h != nil && (h.Mode != 0o640 || h.Size != 2) {
		t.Errorf("hello.txt mode %o size %d", h.Mode, h.Size)
	}
}

func TestDeterministic(t *testing.T) {
	a := Busybox(t, t.TempDir(), MultiLayer(3), Compression("zstd"))
	b := Busybox(t, t.TempDir(), MultiLayer(3), Compression("zstd"))
	if a.Manifest.Digest != b.Manifest.Digest {
		t.Fatalf("manifest digests differ: %s vs %s", a.Manifest.Digest, b.Manifest.Digest)
	}
	c := Busybox(t, t.TempDir(), MultiLayer(3))
	if c.Manifest.Digest == a.Manifest.Digest {
		t.Fatal("gzip and zstd images share a digest")
	}
}

func TestIndexEntries(t *testing.T) {
	dir := t.TempDir()
	Busybox(t, dir, Name("a"))
	Busybox(t, dir, Name("b"), MultiLayer(2))
	Busybox(t, dir, Name("a"), MultiLayer(3)) // replaces a
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	if len(idx.Manifests) != 2 {
		t.Fatalf("index has %d entries, want 2: %+v", len(idx.Manifests), idx.Manifests)
	}
	checkLayout(t, dir)
}

func TestMultiPlatform(t *testing.T) {
	dir := t.TempDir()
	img := MultiPlatformWith(t, dir, []string{"linux/amd64", "linux/arm64/v8", "linux/s390x"}, Name("multi:1"))
	if img.Index.MediaType != ocispec.MediaTypeImageIndex || len(img.Manifests) != 3 {
		t.Fatalf("index %+v, %d manifests", img.Index, len(img.Manifests))
	}
	if n := checkLayout(t, dir); n != 1+3*2+1 { // index, 3 manifests + configs, one shared layer
		t.Errorf("reachable blobs %d", n)
	}
	if p := img.Manifests[1].Platform; p == nil || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("second platform %+v", p)
	}
	skopeoInspect(t, dir, "multi:1", "--override-arch", "arm64", "--override-variant", "v8")
}

func TestSkopeoAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"oci", []Option{MultiLayer(3)}},
		{"zstd", []Option{Compression("zstd")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := Busybox(t, dir, append(tc.opts, Name("bb:"+tc.name))...)
			out := skopeoInspect(t, dir, "bb:"+tc.name)
			var got struct{ Digest digest.Digest }
			mustUnmarshal(t, out, &got)
			if got.Digest != img.Manifest.Digest {
				t.Errorf("skopeo sees %s, want %s", got.Digest, img.Manifest.Digest)
			}
		})
	}
}

// skopeo 1.9's oci: transport only looks up index entries with OCI media
// types, so DockerMediaTypes images are not checked with it.

func skopeoInspect(t *testing.T, dir, name string, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Log("skopeo not installed; not checking with it")
		return []byte(`{}`)
	}
	args := append(extra, "inspect", "oci:"+dir+":"+name)
	out, err := exec.Command("skopeo", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
	return out
}

func TestTar(t *testing.T) {
	dir := t.TempDir()
	Busybox(t, dir, Name("x"))
	out := t.TempDir()
	p1 := Tar(t, dir, filepath.Join(out, "a.tar"))
	p2 := Tar(t, dir, filepath.Join(out, "b.tar"))
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("two tars of the same layout differ")
	}
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(b1))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	for _, n := range []string{"oci-layout", "index.json", "blobs/"} {
		if !names[n] {
			t.Errorf("tar lacks %s: %v", n, names)
		}
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		if out, err := exec.Command("skopeo", "inspect", "oci-archive:"+p1+":x").CombinedOutput(); err != nil {
			t.Errorf("skopeo inspect oci-archive: %v\n%s", err, out)
		}
	}
}
