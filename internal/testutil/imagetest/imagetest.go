// Package imagetest builds small, real container images for tests from the
// host's statically linked busybox (Debian's busybox-static) and writes them
// into an OCI image layout directory.
//
// Layers are reproducible: every tar entry has a fixed mtime and owner, and
// entries are written in a fixed order, so digests stay the same across runs
// on the same host (the busybox binary is part of the content).
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxPath is where the static busybox binary is read from.
const BusyboxPath = "/bin/busybox"

// Epoch is the modification time of every entry in the built layers and the
// creation time recorded in their configs.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Media types of Docker's image manifest schema 2, used with DockerMediaTypes.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// AnnotationImageName is containerd's annotation carrying an image's full name.
const AnnotationImageName = "io.containerd.image.name"

// DefaultPath is the PATH set in the built images' config.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Image describes an image written into an OCI layout.
type Image struct {
	// Index is the descriptor recorded in the layout's index.json: the
	// manifest's, or for MultiPlatform the image index's.
	Index ocispec.Descriptor
	// Manifest is the image manifest's descriptor; for MultiPlatform, the
	// manifest of the first platform given.
	Manifest ocispec.Descriptor
	// Manifests lists the per-platform manifests of a MultiPlatform image
	// (with Platform set); nil for a single image.
	Manifests []ocispec.Descriptor
	// Config is the image config of Manifest.
	Config ocispec.Image
	// ConfigDesc is the descriptor of Config's blob.
	ConfigDesc ocispec.Descriptor
	// Layers are the layer descriptors of Manifest, base first.
	Layers []ocispec.Descriptor
	// Dir is the OCI layout directory.
	Dir string
	// Name is the org.opencontainers.image.ref.name annotation, if any.
	Name string
}

// File is a regular file added to an image with WithFile.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode
}

type config struct {
	layers      int
	compression string
	platform    ocispec.Platform
	files       []File
	name        string
	docker      bool
	volumes     []string
	labels      map[string]string
	exposed     []string
}

// Option changes what Busybox builds.
type Option func(*config)

// MultiLayer splits the image over n layers (n >= 1). Layer 1 holds the
// busybox base. Layer 2 adds /etc/motd and /opt/app/{a.txt,b.txt} and deletes
// /root/.profile with a whiteout. Layer 3 deletes /etc/motd with a whiteout
// and makes /opt/app opaque, adding /opt/app/c.txt in it. Layers 4..n each
// add /layerN.txt. Files from WithFile go into the last layer.
func MultiLayer(n int) Option { return func(c *config) { c.layers = n } }

// Compression sets the layer compression: "gzip" (default), "zstd" or "none".
func Compression(kind string) Option { return func(c *config) { c.compression = kind } }

// Platform sets the platform recorded in the config, as "os/arch[/variant]".
// The layer content is always the host's busybox.
func Platform(p string) Option {
	return func(c *config) { c.platform = parsePlatform(p) }
}

// WithFile adds a regular file (parents created as needed) to the last layer.
func WithFile(p string, content []byte, mode fs.FileMode) Option {
	return func(c *config) {
		c.files = append(c.files, File{Path: p, Content: content, Mode: mode})
	}
}

// Name records ref as the org.opencontainers.image.ref.name annotation of
// the image's entry in index.json, replacing an entry of the same name.
func Name(ref string) Option { return func(c *config) { c.name = ref } }

// Volumes declares paths as the image's volumes, as a Dockerfile's VOLUME.
func Volumes(paths ...string) Option {
	return func(c *config) { c.volumes = append(c.volumes, paths...) }
}

// Label sets a label of the image's config, as a Dockerfile's LABEL.
func Label(k, v string) Option {
	return func(c *config) {
		if c.labels == nil {
			c.labels = map[string]string{}
		}
		c.labels[k] = v
	}
}

// Expose declares ports the image serves, as a Dockerfile's EXPOSE:
// "80/tcp", "53/udp".
func Expose(ports ...string) Option {
	return func(c *config) { c.exposed = append(c.exposed, ports...) }
}

// DockerMediaTypes writes Docker schema 2 media types instead of OCI ones.
func DockerMediaTypes() Option { return func(c *config) { c.docker = true } }

// NativePlatform is the host's platform as "linux/GOARCH".
func NativePlatform() string { return "linux/" + runtime.GOARCH }

// RequireBusybox skips the test when the static busybox is not installed.
func RequireBusybox(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("needs %s (Debian's busybox-static): %v", BusyboxPath, err)
	}
}

// Busybox builds a busybox image into the OCI layout at dir (created or
// extended) and returns what it wrote. The single base layer holds
// /bin/busybox, one symlink per applet at the path `busybox --list-full`
// names, /etc/passwd and /etc/group (root, a user 1000, nobody), /tmp (1777),
// /root with a .profile. Config: Cmd ["sh"], Env [DefaultPath], WorkingDir /.
func Busybox(t testing.TB, dir string, opts ...Option) Image {
	t.Helper()
	RequireBusybox(t)
	cfg := config{layers: 1, compression: "gzip", platform: parsePlatform(NativePlatform())}
	for _, o := range opts {
		o(&cfg)
	}
	img, err := build(dir, cfg)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if err := addToIndex(dir, img.Index); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return img
}

// MultiPlatform builds an image index with one manifest per platform into
// the layout at dir. All platforms share the busybox layer bytes; only the
// config differs.
func MultiPlatform(t testing.TB, dir string, platforms ...string) Image {
	t.Helper()
	return MultiPlatformWith(t, dir, platforms)
}

// MultiPlatformWith is MultiPlatform with options applied to every platform's
// image; Name names the index, Platform is ignored.
func MultiPlatformWith(t testing.TB, dir string, platforms []string, opts ...Option) Image {
	t.Helper()
	RequireBusybox(t)
	if len(platforms) == 0 {
		t.Fatal("imagetest: MultiPlatform needs at least one platform")
	}
	cfg := config{layers: 1, compression: "gzip"}
	for _, o := range opts {
		o(&cfg)
	}
	var first Image
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if cfg.docker {
		idx.MediaType = MediaTypeDockerManifestList
	}
	var manifests []ocispec.Descriptor
	for i, p := range platforms {
		c := cfg
		c.platform = parsePlatform(p)
		c.name = ""
		img, err := build(dir, c)
		if err != nil {
			t.Fatalf("imagetest: %v", err)
		}
		if i == 0 {
			first = img
		}
		d := img.Manifest
		pl := c.platform
		d.Platform = &pl
		manifests = append(manifests, d)
	}
	idx.Manifests = manifests
	desc, err := writeJSON(dir, idx.MediaType, idx)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	if cfg.name != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: cfg.name}
	}
	if err := addToIndex(dir, desc); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	first.Index = desc
	first.Manifests = manifests
	first.Name = cfg.name
	return first
}

// Tar writes the OCI layout at dir as a tar archive to the file dest, with
// fixed mtimes, and returns dest.
func Tar(t testing.TB, dir, dest string) string {
	t.Helper()
	f, err := os.Create(dest)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	defer f.Close()
	if err := WriteTar(dir, f); err != nil {
		t.Fatalf("imagetest: tar %s: %v", dir, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	return dest
}

// WriteTar writes the directory tree at dir to w as a tar stream with
// fixed mtimes and owners, entries in lexical order.
func WriteTar(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: Epoch, Mode: int64(info.Mode().Perm()), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			return tw.WriteHeader(hdr)
		case info.Mode().IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = info.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// entry is one tar member of a built layer.
type entry struct {
	name     string // without leading slash
	typ      byte
	mode     int64
	uid, gid int
	content  []byte
	link     string
}

func build(dir string, cfg config) (Image, error) {
	if cfg.layers < 1 {
		return Image{}, fmt.Errorf("MultiLayer(%d): need at least 1 layer", cfg.layers)
	}
	base, err := baseLayer()
	if err != nil {
		return Image{}, err
	}
	layers := [][]entry{base}
	for i := 2; i <= cfg.layers; i++ {
		layers = append(layers, extraLayer(i))
	}
	last := len(layers) - 1
	for _, f := range cfg.files {
		layers[last] = addFile(layers[last], f)
	}

	ociCfg := ocispec.Image{
		Created:  &Epoch,
		Platform: cfg.platform,
		Config: ocispec.ImageConfig{
			Cmd:        []string{"sh"},
			Env:        []string{DefaultPath},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	ociCfg.Config.Labels = cfg.labels
	for _, p := range cfg.exposed {
		if ociCfg.Config.ExposedPorts == nil {
			ociCfg.Config.ExposedPorts = map[string]struct{}{}
		}
		ociCfg.Config.ExposedPorts[p] = struct{}{}
	}
	for _, v := range cfg.volumes {
		if ociCfg.Config.Volumes == nil {
			ociCfg.Config.Volumes = map[string]struct{}{}
		}
		ociCfg.Config.Volumes[v] = struct{}{}
	}
	var layerDescs []ocispec.Descriptor
	for i, l := range layers {
		raw, err := tarEntries(l)
		if err != nil {
			return Image{}, err
		}
		ociCfg.RootFS.DiffIDs = append(ociCfg.RootFS.DiffIDs, digest.FromBytes(raw))
		blob, mt, err := compress(raw, cfg.compression, cfg.docker)
		if err != nil {
			return Image{}, err
		}
		d, err := writeBlob(dir, mt, blob)
		if err != nil {
			return Image{}, err
		}
		layerDescs = append(layerDescs, d)
		ociCfg.History = append(ociCfg.History, ocispec.History{
			Created:   &Epoch,
			CreatedBy: fmt.Sprintf("imagetest layer %d", i+1),
		})
	}
	cfgMT, manMT := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if cfg.docker {
		cfgMT, manMT = MediaTypeDockerConfig, MediaTypeDockerManifest
	}
	cfgDesc, err := writeJSON(dir, cfgMT, ociCfg)
	if err != nil {
		return Image{}, err
	}
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: manMT,
		Config:    cfgDesc,
		Layers:    layerDescs,
	}
	manDesc, err := writeJSON(dir, manMT, man)
	if err != nil {
		return Image{}, err
	}
	top := manDesc
	if cfg.name != "" {
		top.Annotations = map[string]string{ocispec.AnnotationRefName: cfg.name}
	}
	return Image{
		Index:      top,
		Manifest:   manDesc,
		Config:     ociCfg,
		ConfigDesc: cfgDesc,
		Layers:     layerDescs,
		Dir:        dir,
		Name:       cfg.name,
	}, nil
}

func baseLayer() ([]entry, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", BusyboxPath, err)
	}
	es := []entry{
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, content: bb},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, content: []byte(
			"root:x:0:0:root:/root:/bin/sh\n" +
				"user:x:1000:1000:user:/home/user:/bin/sh\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, content: []byte(
			"root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")},
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "root", typ: tar.TypeDir, mode: 0o700},
		{name: "root/.profile", typ: tar.TypeReg, mode: 0o644, content: []byte("export PS1='# '\n")},
		{name: "home/user", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
	}
	seen := map[string]bool{"bin/busybox": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		p := path.Clean(strings.TrimPrefix(strings.TrimSpace(line), "/"))
		if p == "." || strings.HasPrefix(p, "..") || seen[p] {
			continue
		}
		seen[p] = true
		es = append(es, entry{name: p, typ: tar.TypeSymlink, mode: 0o777, link: "/bin/busybox"})
	}
	return es, nil
}

func extraLayer(i int) []entry {
	switch i {
	case 2:
		return []entry{
			{name: "etc/motd", typ: tar.TypeReg, mode: 0o644, content: []byte("layer 2 motd\n")},
			{name: "opt/app/a.txt", typ: tar.TypeReg, mode: 0o644, content: []byte("a from layer 2\n")},
			{name: "opt/app/b.txt", typ: tar.TypeReg, mode: 0o644, content: []byte("b from layer 2\n")},
			{name: "root/.wh..profile", typ: tar.TypeReg, mode: 0o600},
		}
	case 3:
		return []entry{
			{name: "etc/.wh.motd", typ: tar.TypeReg, mode: 0o600},
			{name: "opt/app", typ: tar.TypeDir, mode: 0o755},
			{name: "opt/app/.wh..wh..opq", typ: tar.TypeReg, mode: 0o600},
			{name: "opt/app/c.txt", typ: tar.TypeReg, mode: 0o644, content: []byte("c from layer 3\n")},
		}
	default:
		return []entry{{name: fmt.Sprintf("layer%d.txt", i), typ: tar.TypeReg, mode: 0o644,
			content: []byte(fmt.Sprintf("layer %d\n", i))}}
	}
}

func addFile(es []entry, f File) []entry {
	p := path.Clean(strings.TrimPrefix(f.Path, "/"))
	mode := int64(f.Mode.Perm())
	if f.Mode&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	if f.Mode&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if f.Mode&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	out := es[:0:0]
	for _, e := range es {
		if e.name != p {
			out = append(out, e)
		}
	}
	return append(out, entry{name: p, typ: tar.TypeReg, mode: mode, content: f.Content})
}

// tarEntries writes es sorted by name, creating missing parent directories
// (mode 0755) before their children.
func tarEntries(es []entry) ([]byte, error) {
	byName := map[string]entry{}
	for _, e := range es {
		byName[e.name] = e
	}
	for _, e := range es {
		for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = entry{name: d, typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := byName[n]
		hdr := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: Epoch, Linkname: e.link, Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func compress(raw []byte, kind string, docker bool) ([]byte, string, error) {
	var buf bytes.Buffer
	switch kind {
	case "gzip", "":
		zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if err != nil {
			return nil, "", err
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		if docker {
			return buf.Bytes(), MediaTypeDockerLayerGzip, nil
		}
		return buf.Bytes(), ocispec.MediaTypeImageLayerGzip, nil
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, "", err
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		if docker {
			return buf.Bytes(), MediaTypeDockerLayerZstd, nil
		}
		return buf.Bytes(), ocispec.MediaTypeImageLayerZstd, nil
	case "none":
		if docker {
			return raw, MediaTypeDockerLayer, nil
		}
		return raw, ocispec.MediaTypeImageLayer, nil
	}
	return nil, "", fmt.Errorf("Compression(%q): want gzip, zstd or none", kind)
}

func writeJSON(dir, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return writeBlob(dir, mediaType, b)
}

// writeBlob stores b under blobs/sha256 (kept if already there) and returns
// its descriptor.
func writeBlob(dir, mediaType string, b []byte) (ocispec.Descriptor, error) {
	d := digest.FromBytes(b)
	bdir := filepath.Join(dir, "blobs", d.Algorithm().String())
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return ocispec.Descriptor{}, err
	}
	p := filepath.Join(bdir, d.Encoded())
	if _, err := os.Stat(p); err != nil {
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return ocispec.Descriptor{}, err
		}
		if err := os.Rename(tmp, p); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, nil
}

// addToIndex records desc in dir's index.json, writing oci-layout too. An
// entry with the same ref.name is replaced; an unnamed entry with the same
// digest is not added twice.
func addToIndex(dir string, desc ocispec.Descriptor) error {
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), layout, 0o644); err != nil {
		return err
	}
	ip := filepath.Join(dir, ocispec.ImageIndexFile)
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	if b, err := os.ReadFile(ip); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("%s: %w", ip, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	name := desc.Annotations[ocispec.AnnotationRefName]
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		n := m.Annotations[ocispec.AnnotationRefName]
		if (name != "" && n == name) || (name == "" && n == "" && m.Digest == desc.Digest) {
			continue
		}
		kept = append(kept, m)
	}
	idx.Manifests = append(kept, desc)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(ip, b, 0o644)
}

func parsePlatform(s string) ocispec.Platform {
	parts := strings.Split(s, "/")
	p := ocispec.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}
