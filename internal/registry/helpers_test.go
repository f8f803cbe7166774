package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	mrand "math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dockkit/dock/internal/testutil/registrytest"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/errdef"
)

const (
	dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerConfig    = "application/vnd.docker.container.image.v1+json"
)

// testImage is an image built in a memory store for a test.
type testImage struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
}

func (im testImage) blobs() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{im.config}, im.layers...)
}

// randomBytes returns n reproducible pseudo-random bytes for seed.
func randomBytes(seed uint64, n int) []byte {
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func pushBytes(t testing.TB, store content.Storage, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := content.NewDescriptorFromBytes(mediaType, b)
	if err := store.Push(context.Background(), d, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		t.Fatalf("store %s: %v", d.Digest, err)
	}
	return d
}

// buildImage stores an image of the given layers (bytes only, never
// unpacked) for platform p; docker selects schema 2 media types over OCI.
func buildImage(t testing.TB, store content.Storage, p ocispec.Platform, docker bool, layerType string, layers ...[]byte) testImage {
	t.Helper()
	var im testImage
	cfg := ocispec.Image{Platform: p}
	cfg.RootFS.Type = "layers"
	for _, l := range layers {
		im.layers = append(im.layers, pushBytes(t, store, layerType, l))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgType, manType := ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if docker {
		cfgType, manType = dockerConfig, MediaTypeDockerManifest
	}
	im.config = pushBytes(t, store, cfgType, cb)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: manType, Config: im.config, Layers: im.layers}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	im.manifest = pushBytes(t, store, manType, mb)
	return im
}

// buildIndex stores an OCI index over the given images.
func buildIndex(t testing.TB, store content.Storage, images ...testImage) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, im := range images {
		d := im.manifest
		b, err := content.FetchAll(context.Background(), store, d)
		if err != nil {
			t.Fatal(err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		cb, err := content.FetchAll(context.Background(), store, m.Config)
		if err != nil {
			t.Fatal(err)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cb, &cfg); err != nil {
			t.Fatal(err)
		}
		p := cfg.Platform
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return pushBytes(t, store, ocispec.MediaTypeImageIndex, b)
}

// serverConfig returns a Config for s that ignores the user's Docker config.
func serverConfig(t testing.TB, s *registrytest.Server) Config {
	return Config{
		Host:         s.Host,
		TLS:          s.TLSConfig(),
		Username:     s.Username,
		Password:     s.Password,
		DockerConfig: filepath.Join(t.TempDir(), "config.json"),
	}
}

// pushImage pushes im (or an index) from store to repo:tag.
func pushImage(t testing.TB, cfg Config, store Target, root ocispec.Descriptor, repo, tag string) {
	t.Helper()
	if err := Push(context.Background(), cfg, store, root, repo, tag, PushOptions{}); err != nil {
		t.Fatalf("push %s:%s: %v", repo, tag, err)
	}
}

// recorder collects progress events; safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) record(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// streamed returns the bytes reported while streaming d in state st: the
// largest Done seen.
func (r *recorder) streamed(d digest.Digest, st State) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, e := range r.events {
		if e.Digest == d && e.State == st && e.Done > n {
			n = e.Done
		}
	}
	return n
}

// starts counts the transfers of d in state st that began: the events with
// no bytes yet.
func (r *recorder) starts(d digest.Digest, st State) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Digest == d && e.State == st && e.Done == 0 {
			n++
		}
	}
	return n
}

func (r *recorder) states(d digest.Digest) []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []State
	for _, e := range r.events {
		if e.Digest == d && (len(s) == 0 || s[len(s)-1] != e.State) {
			s = append(s, e.State)
		}
	}
	return s
}

func hasState(states []State, st State) bool {
	for _, s := range states {
		if s == st {
			return true
		}
	}
	return false
}

// requireBlob checks that dst holds d with the bytes of src.
func requireBlob(t testing.TB, dst, src content.ReadOnlyStorage, d ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	rc, err := dst.Fetch(ctx, d)
	if err != nil {
		t.Fatalf("blob %s not in destination: %v", d.Digest, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, err := content.FetchAll(ctx, src, d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob %s: content differs", d.Digest)
	}
}

func requireAbsent(t testing.TB, dst content.ReadOnlyStorage, descs ...ocispec.Descriptor) {
	t.Helper()
	for _, d := range descs {
		ok, err := dst.Exists(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Fatalf("%s (%s) is in the destination, want absent", d.Digest, d.MediaType)
		}
	}
}

var _ Target = (*memory.Store)(nil)

var tlsConfig tls.Config
