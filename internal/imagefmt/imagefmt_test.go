package imagefmt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/testutil/imagetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func names(imgs []LoadedImage) map[string]digest.Digest {
	out := map[string]digest.Digest{}
	for _, i := range imgs {
		out[i.Name] = i.Desc.Digest
	}
	return out
}

func mustLoad(t *testing.T, st Store, path string) []LoadedImage {
	t.Helper()
	imgs, err := Load(context.Background(), st, path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return imgs
}

// checkComplete fails unless st holds every blob reachable from desc.
func checkComplete(t *testing.T, st *memStore, desc ocispec.Descriptor) {
	t.Helper()
	b, ok := st.blobs[desc.Digest]
	if !ok {
		t.Fatalf("store lacks %s %s", desc.MediaType, desc.Digest)
	}
	switch {
	case isIndex(desc.MediaType):
		var idx ocispec.Index
		json.Unmarshal(b, &idx)
		for _, c := range idx.Manifests {
			checkComplete(t, st, c)
		}
	case isManifest(desc.MediaType):
		var m ocispec.Manifest
		json.Unmarshal(b, &m)
		for _, c := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if _, ok := st.blobs[c.Digest]; !ok {
				t.Fatalf("store lacks %s %s", c.MediaType, c.Digest)
			}
		}
	}
}

func TestLoadOCIRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	a := imagetest.Busybox(t, src, imagetest.MultiLayer(3), imagetest.Name("docker.io/library/busybox:1"))
	b := imagetest.Busybox(t, src, imagetest.Compression("zstd"), imagetest.Name("example.com/bb:zstd"))
	m := imagetest.MultiPlatformWith(t, src, []string{"linux/amd64", "linux/arm64"}, imagetest.Name("example.com/multi:2"))
	want := map[string]digest.Digest{
		"docker.io/library/busybox:1": a.Manifest.Digest,
		"example.com/bb:zstd":         b.Manifest.Digest,
		"example.com/multi:2":         m.Index.Digest,
	}
	tarPath := imagetest.Tar(t, src, filepath.Join(t.TempDir(), "layout.tar"))
	gzPath := filepath.Join(t.TempDir(), "layout.tar.gz")
	gzipFile(t, tarPath, gzPath)

	for _, tc := range []struct{ name, path string }{
		{"dir", src}, {"tar", tarPath}, {"tar.gz", gzPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			imgs := mustLoad(t, st, tc.path)
			if got := names(imgs); !equalMaps(got, want) {
				t.Fatalf("loaded %v, want %v", got, want)
			}
			for _, i := range imgs {
				checkComplete(t, st, i.Desc)
			}
			// Save as a tar and as a directory, load each into a new
			// store: the same digests come back.
			var buf bytes.Buffer
			if err := SaveOCI(ctx, st, &buf, imgs); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "saved.tar")
			os.WriteFile(out, buf.Bytes(), 0o644)
			outDir := filepath.Join(t.TempDir(), "saved")
			if err := SaveOCIDir(ctx, st, outDir, imgs); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{out, outDir} {
				st2 := newMemStore()
				if got := names(mustLoad(t, st2, p)); !equalMaps(got, want) {
					t.Errorf("%s: reloaded %v, want %v", filepath.Base(p), got, want)
				}
			}
			var again bytes.Buffer
			SaveOCI(ctx, st, &again, imgs)
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("two saves of the same images differ")
			}
			if _, err := exec.LookPath("skopeo"); err == nil {
				outp, err := exec.Command("skopeo", "inspect", "oci-archive:"+out+":docker.io/library/busybox:1").CombinedOutput()
				if err != nil {
					t.Errorf("skopeo inspect of SaveOCI output: %v\n%s", err, outp)
				}
			}
		})
	}
}

func TestLoadTags(t *testing.T) {
	src := t.TempDir()
	img := imagetest.Busybox(t, src, imagetest.Name("busybox:1"))
	imagetest.Busybox(t, src, imagetest.MultiLayer(2)) // unnamed
	st := newMemStore()
	imgs, err := Load(context.Background(), st, src, WithTag(func(n string) (string, error) {
		return "docker.io/library/" + n, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("loaded %d images, want 2", len(imgs))
	}
	d, err := st.Resolve(context.Background(), "docker.io/library/busybox:1")
	if err != nil || d.Digest != img.Manifest.Digest {
		t.Fatalf("resolve: %v, %v", d, err)
	}
	if len(st.tags) != 1 {
		t.Errorf("tags %v", st.tags)
	}

	st = newMemStore()
	_, err = Load(context.Background(), st, src, WithTag(func(n string) (string, error) {
		return "", errdefs.ErrInvalidArgument
	}))
	if !errors.Is(err, errdefs.ErrInvalidArgument) || len(st.tags) != 0 {
		t.Errorf("refused name: err %v, tags %v", err, st.tags)
	}
}

func TestDockerArchiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	imagetest.Busybox(t, src, imagetest.MultiLayer(3), imagetest.Name("busybox:1"))
	imagetest.Busybox(t, src, imagetest.Compression("none"), imagetest.Name("example.com/plain:2"))
	st := newMemStore()
	imgs := mustLoad(t, st, src)
	want := names(imgs)

	var buf bytes.Buffer
	if err := SaveDocker(ctx, st, &buf, imgs); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(t.TempDir(), "docker.tar")
	os.WriteFile(full, buf.Bytes(), 0o644)
	// With index.json, the original manifests come back.
	if got := names(mustLoad(t, newMemStore(), full)); !equalMaps(got, want) {
		t.Errorf("reloaded %v, want %v", got, want)
	}
	// With manifest.json alone (as docker before 25 writes), the images
	// are converted; converting twice gives the same digests.
	legacy := filepath.Join(t.TempDir(), "legacy.tar")
	filterTar(t, full, legacy, func(name string) bool {
		return name != "index.json" && name != "oci-layout"
	})
	st2 := newMemStore()
	conv := mustLoad(t, st2, legacy)
	if len(conv) != 2 {
		t.Fatalf("converted %d images", len(conv))
	}
	for _, i := range conv {
		if i.Desc.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("%s: media type %s", i.Name, i.Desc.MediaType)
		}
		if _, ok := want[i.Name]; !ok {
			t.Errorf("unexpected name %q", i.Name)
		}
		checkComplete(t, st2, i.Desc)
		checkDiffIDs(t, st2, i.Desc)
	}
	var buf2 bytes.Buffer
	if err := SaveDocker(ctx, st2, &buf2, conv); err != nil {
		t.Fatal(err)
	}
	legacy2 := filepath.Join(t.TempDir(), "legacy2.tar")
	os.WriteFile(legacy2+".full", buf2.Bytes(), 0o644)
	filterTar(t, legacy2+".full", legacy2, func(name string) bool { return name != "index.json" })
	if got, w := names(mustLoad(t, newMemStore(), legacy2)), names(conv); !equalMaps(got, w) {
		t.Errorf("second conversion %v, first %v", got, w)
	}

	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	for _, ref := range []string{"busybox:1", "example.com/plain:2"} {
		out, err := exec.Command("skopeo", "inspect", "docker-archive:"+full+":"+ref).CombinedOutput()
		if err != nil {
			t.Errorf("skopeo inspect docker-archive %s: %v\n%s", ref, err, out)
		}
	}
	// skopeo can copy the whole image out of our archive.
	dst := t.TempDir()
	if out, err := exec.Command("skopeo", "copy", "docker-archive:"+full+":busybox:1", "oci:"+dst+":x").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy from docker-archive: %v\n%s", err, out)
	}
}

// checkDiffIDs checks that the config's diff IDs match the layers, which
// docker-archive conversion leaves uncompressed or as they were.
func checkDiffIDs(t *testing.T, st *memStore, desc ocispec.Descriptor) {
	t.Helper()
	var m ocispec.Manifest
	json.Unmarshal(st.blobs[desc.Digest], &m)
	var cfg ocispec.Image
	json.Unmarshal(st.blobs[m.Config.Digest], &cfg)
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("%d diff IDs, %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	for i, l := range m.Layers {
		r := io.Reader(bytes.NewReader(st.blobs[l.Digest]))
		if l.MediaType == ocispec.MediaTypeImageLayerGzip {
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		d, err := digest.FromReader(r)
		if err != nil {
			t.Fatal(err)
		}
		if d != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff ID %s, config says %s", i, d, cfg.RootFS.DiffIDs[i])
		}
	}
}

func TestLoadSkopeoDockerArchive(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
	src := t.TempDir()
	img := imagetest.Busybox(t, src, imagetest.MultiLayer(3), imagetest.Name("x"))
	arch := filepath.Join(t.TempDir(), "skopeo.tar")
	out, err := exec.Command("skopeo", "copy", "oci:"+src+":x", "docker-archive:"+arch+":example.com/x:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	st := newMemStore()
	imgs := mustLoad(t, st, arch)
	if len(imgs) != 1 || imgs[0].Name != "example.com/x:1" {
		t.Fatalf("loaded %+v", imgs)
	}
	checkComplete(t, st, imgs[0].Desc)
	checkDiffIDs(t, st, imgs[0].Desc)
	var m ocispec.Manifest
	json.Unmarshal(st.blobs[imgs[0].Desc.Digest], &m)
	var cfg ocispec.Image
	json.Unmarshal(st.blobs[m.Config.Digest], &cfg)
	if cfg.Architecture != img.Config.Architecture || len(m.Layers) != 3 {
		t.Errorf("config %+v, %d layers", cfg.Platform, len(m.Layers))
	}
}

func gzipFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	os.WriteFile(dst, buf.Bytes(), 0o644)
}

// filterTar copies the tar src to dst keeping the members keep accepts.
func filterTar(t *testing.T, src, dst string, keep func(string) bool) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !keep(h.Name) {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	os.WriteFile(dst, buf.Bytes(), 0o644)
}

func equalMaps(a, b map[string]digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// tarEntry is a member of a hand-made archive.
type tarEntry struct {
	name string
	typ  byte
	body []byte
	link string
}

func writeTar(t testing.TB, path string, es []tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(e.body)
		}
	}
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tinyOCI returns the members of a valid OCI layout tar holding one small
// image named "tiny:1", and the manifest digest.
func tinyOCI() ([]tarEntry, map[string][]byte) {
	layer := tinyLayer()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(cfg).String() + `","size":` + itoa(len(cfg)) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digest.FromBytes(layer).String() + `","size":` + itoa(len(layer)) + `}]}`)
	idx := []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		digest.FromBytes(man).String() + `","size":` + itoa(len(man)) + `,"annotations":{"org.opencontainers.image.ref.name":"tiny:1"}}]}`)
	blobs := map[string][]byte{"layer": layer, "config": cfg, "manifest": man, "index": idx}
	return []tarEntry{
		{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", body: idx},
		{name: "blobs/sha256/" + digest.FromBytes(man).Encoded(), body: man},
		{name: "blobs/sha256/" + digest.FromBytes(cfg).Encoded(), body: cfg},
		{name: "blobs/sha256/" + digest.FromBytes(layer).Encoded(), body: layer},
	}, blobs
}

// tinyDocker returns the members of a docker-archive (classic layout)
// holding one small image tagged "tiny:2".
func tinyDocker() []tarEntry {
	layer := tinyLayer()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `"]}}`)
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	return []tarEntry{
		{name: "abc/", typ: tar.TypeDir},
		{name: "abc/layer.tar", body: layer},
		{name: "def/", typ: tar.TypeDir},
		{name: "def/layer.tar", typ: tar.TypeSymlink, link: "../abc/layer.tar"},
		{name: cfgName, body: cfg},
		{name: "manifest.json", body: []byte(`[{"Config":"` + cfgName + `","RepoTags":["tiny:2"],"Layers":["def/layer.tar"]}]`)},
		{name: "repositories", body: []byte(`{"tiny":{"2":"abc"}}`)},
	}
}

func tinyLayer() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("hi\n"))
	tw.Close()
	return buf.Bytes()
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLoadTiny(t *testing.T) {
	oci, _ := tinyOCI()
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"oci", oci, "tiny:1"},
		{"docker", tinyDocker(), "tiny:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.tar")
			writeTar(t, p, tc.entries)
			st := newMemStore()
			imgs, err := Load(context.Background(), st, p, WithTag(func(n string) (string, error) { return n, nil }))
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Name != tc.want {
				t.Fatalf("loaded %+v", imgs)
			}
			if _, err := st.Resolve(context.Background(), tc.want); err != nil {
				t.Error(err)
			}
			checkComplete(t, st, imgs[0].Desc)
		})
	}
}

// TestLoadBad feeds broken and hostile archives: each fails with an error
// naming the fault, and nothing is tagged.
func TestLoadBad(t *testing.T) {
	oci, blobs := tinyOCI()
	layerName := "blobs/sha256/" + digest.FromBytes(blobs["layer"]).Encoded()
	manName := "blobs/sha256/" + digest.FromBytes(blobs["manifest"]).Encoded()
	replace := func(es []tarEntry, name string, body []byte) []tarEntry {
		out := append([]tarEntry(nil), es...)
		for i := range out {
			if out[i].name == name {
				out[i].body = body
			}
		}
		return out
	}
	without := func(es []tarEntry, name string) []tarEntry {
		var out []tarEntry
		for _, e := range es {
			if e.name != name {
				out = append(out, e)
			}
		}
		return out
	}
	dock := tinyDocker()
	cases := []struct {
		name    string
		entries []tarEntry
		errIs   error
		errHas  string
	}{
		{"dotdot", append(oci, tarEntry{name: "../evil", body: []byte("x")}), errdefs.ErrInvalidArgument, `"../evil"`},
		{"absolute", append(oci, tarEntry{name: "/etc/evil", body: []byte("x")}), errdefs.ErrInvalidArgument, `"/etc/evil"`},
		{"layer digest", replace(oci, layerName, bytes.Repeat([]byte{0}, len(blobs["layer"]))), errdefs.ErrDigestMismatch, layerName},
		{"layer size", replace(oci, layerName, []byte("short")), errdefs.ErrInvalidArgument, layerName},
		{"manifest digest", replace(oci, manName, bytes.Replace(blobs["manifest"], []byte(`"layers"`), []byte(`"layerz"`), 1)), errdefs.ErrDigestMismatch, manName},
		{"missing layer", without(oci, layerName), errdefs.ErrNotFound, layerName},
		{"bad index", replace(oci, "index.json", []byte("{")), errdefs.ErrInvalidArgument, "index.json"},
		{"index schema", replace(oci, "index.json", []byte(`{"manifests":[]}`)), errdefs.ErrInvalidArgument, "schemaVersion"},
		{"layout version", replace(oci, "oci-layout", []byte(`{"imageLayoutVersion":"9"}`)), errdefs.ErrNotSupported, "oci-layout"},
		{"duplicate", append(oci, tarEntry{name: "index.json", body: []byte("{}")}), errdefs.ErrInvalidArgument, "index.json"},
		{"device", append(oci, tarEntry{name: "dev", typ: tar.TypeChar}), errdefs.ErrInvalidArgument, `"dev"`},
		{"empty", nil, errdefs.ErrInvalidArgument, "index.json"},
		{"docker symlink escape", append(without(dock, "def/layer.tar"), tarEntry{name: "def/layer.tar", typ: tar.TypeSymlink, link: "../../etc/passwd"}), errdefs.ErrInvalidArgument, "def/layer.tar"},
		{"docker config path", replace(dock, "manifest.json", []byte(`[{"Config":"../x.json","Layers":[]}]`)), errdefs.ErrInvalidArgument, "../x.json"},
		{"docker diff ids", replace(dock, "manifest.json", []byte(`[{"Config":"`+dock[4].name+`","RepoTags":["a:b"],"Layers":["abc/layer.tar","abc/layer.tar"]}]`)), errdefs.ErrInvalidArgument, "diff IDs"},
		{"docker missing layer", without(dock, "abc/layer.tar"), errdefs.ErrNotFound, "abc/layer.tar"},
		{"docker layer content", replace(dock, "abc/layer.tar", []byte("not the layer")), errdefs.ErrDigestMismatch, "def/layer.tar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.tar")
			writeTar(t, p, tc.entries)
			st := newMemStore()
			_, err := Load(context.Background(), st, p, WithTag(func(n string) (string, error) { return n, nil }))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, tc.errIs) {
				t.Errorf("error %v, want %v", err, tc.errIs)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not name %q", err, tc.errHas)
			}
			if len(st.tags) != 0 {
				t.Errorf("tagged %v", st.tags)
			}
		})
	}
}

func TestLoadDirEscape(t *testing.T) {
	src := t.TempDir()
	img := imagetest.Busybox(t, src, imagetest.Name("x"))
	// A layout whose blob is a symlink out of the directory.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o644)
	lp := filepath.Join(src, "blobs", "sha256", img.Layers[0].Digest.Encoded())
	os.Remove(lp)
	if err := os.Symlink(secret, lp); err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	_, err := Load(context.Background(), st, src)
	if err == nil || !strings.Contains(err.Error(), img.Layers[0].Digest.Encoded()) {
		t.Fatalf("Load of escaping symlink: %v", err)
	}
	for d, b := range st.blobs {
		if string(b) == "secret" {
			t.Errorf("stored the outside file as %s", d)
		}
	}
}

func TestSaveDockerPicksPlatform(t *testing.T) {
	src := t.TempDir()
	imagetest.MultiPlatformWith(t, src, []string{"linux/s390x", imagetest.NativePlatform()}, imagetest.Name("m:1"))
	st := newMemStore()
	imgs := mustLoad(t, st, src)
	var buf bytes.Buffer
	if err := SaveDocker(context.Background(), st, &buf, imgs); err != nil {
		t.Fatal(err)
	}
	var mj []dockerManifest
	tr := tar.NewReader(&buf)
	var members []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, h.Name)
		if h.Name == "manifest.json" {
			json.NewDecoder(tr).Decode(&mj)
		}
	}
	sort.Strings(members)
	if len(mj) != 1 || len(mj[0].RepoTags) != 1 || mj[0].RepoTags[0] != "m:1" {
		t.Fatalf("manifest.json %+v (members %v)", mj, members)
	}
	var cfg ocispec.Image
	cd := digest.Digest("sha256:" + strings.TrimPrefix(mj[0].Config, "blobs/sha256/"))
	json.Unmarshal(st.blobs[cd], &cfg)
	if "linux/"+cfg.Architecture != imagetest.NativePlatform() {
		t.Errorf("saved platform %s/%s", cfg.OS, cfg.Architecture)
	}
}

func TestSaveBareDescriptor(t *testing.T) {
	src := t.TempDir()
	img := imagetest.Busybox(t, src, imagetest.Name("bb:1"))
	st := newMemStore()
	mustLoad(t, st, src)
	bare := []NamedDesc{{Name: "bb:1", Desc: ocispec.Descriptor{Digest: img.Manifest.Digest, Size: img.Manifest.Size}}}
	for _, save := range []func(context.Context, Store, io.Writer, []NamedDesc) error{SaveOCI, SaveDocker} {
		var buf bytes.Buffer
		if err := save(context.Background(), st, &buf, bare); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "a.tar")
		os.WriteFile(p, buf.Bytes(), 0o644)
		got := mustLoad(t, newMemStore(), p)
		if len(got) != 1 || got[0].Desc.Digest != img.Manifest.Digest || got[0].Desc.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("reloaded %+v", got)
		}
	}
}
