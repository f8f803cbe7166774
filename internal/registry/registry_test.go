package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/store"
	"github.com/dockkit/dock/internal/testutil/registrytest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/content/oci"
)

var linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

func TestPushPullRoundTrip(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()

	tests := []struct {
		name      string
		docker    bool
		layerType string
		layers    func(t testing.TB) [][]byte
	}{
		{"oci-gzip", false, ocispec.MediaTypeImageLayerGzip, func(testing.TB) [][]byte {
			return [][]byte{randomBytes(1, 3000), randomBytes(2, 200<<10)}
		}},
		{"docker-schema2", true, dockerLayerGzip, func(testing.TB) [][]byte {
			return [][]byte{randomBytes(3, 5000)}
		}},
		{"oci-zstd", false, ocispec.MediaTypeImageLayerZstd, func(t testing.TB) [][]byte {
			return [][]byte{zstdBytes(t, randomBytes(4, 100<<10)), zstdBytes(t, []byte("small"))}
		}},
		{"oci-uncompressed", false, ocispec.MediaTypeImageLayer, func(testing.TB) [][]byte {
			return [][]byte{randomBytes(5, 10<<10)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := memory.New()
			im := buildImage(t, src, linuxAMD64, tt.docker, tt.layerType, tt.layers(t)...)
			repo := "roundtrip/" + tt.name
			pushImage(t, cfg, src, im.manifest, repo, "v1")

			rd, err := Resolve(ctx, cfg, repo, "v1")
			if err != nil {
				t.Fatal(err)
			}
			if rd.Digest != im.manifest.Digest || rd.MediaType != im.manifest.MediaType {
				t.Fatalf("Resolve = %s %s, want %s %s", rd.Digest, rd.MediaType, im.manifest.Digest, im.manifest.MediaType)
			}
			tags, err := Tags(ctx, cfg, repo)
			if err != nil || !slices.Equal(tags, []string{"v1"}) {
				t.Fatalf("Tags = %v, %v; want [v1]", tags, err)
			}

			for _, ref := range []string{"v1", im.manifest.Digest.String()} {
				dst, err := oci.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				var got []ocispec.Descriptor
				desc, err := Pull(ctx, cfg, repo, ref, dst, PullOptions{
					OnBlob: func(_ context.Context, d ocispec.Descriptor) error {
						got = append(got, d) // Concurrency 1 below
						return nil
					},
					Concurrency: 1,
				})
				if err != nil {
					t.Fatalf("pull %s: %v", ref, err)
				}
				if desc.Digest != im.manifest.Digest || desc.Size != im.manifest.Size {
					t.Fatalf("pull %s = %s, want %s", ref, desc.Digest, im.manifest.Digest)
				}
				for _, d := range append(im.blobs(), im.manifest) {
					requireBlob(t, dst, src, d)
				}
				if len(got) != len(im.blobs())+1 || got[len(got)-1].Digest != im.manifest.Digest {
					t.Fatalf("OnBlob saw %d descriptors (last %v), want %d ending with the manifest", len(got), got[len(got)-1].Digest, len(im.blobs())+1)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opts []registrytest.Option
	}{
		{"htpasswd", []registrytest.Option{registrytest.WithHtpasswd("alice", "s3cret")}},
		{"token", []registrytest.Option{registrytest.WithTokenAuth("bob", "t0ken")}},
		{"token+tls", []registrytest.Option{registrytest.WithTokenAuth("carol", "pw"), registrytest.WithTLS()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := registrytest.Start(t, tt.opts...)
			cfg := serverConfig(t, s)
			src := memory.New()
			im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(10, 4096))
			pushImage(t, cfg, src, im.manifest, "auth/img", "latest")

			desc, err := Pull(ctx, cfg, "auth/img", "latest", memory.New(), PullOptions{})
			if err != nil || desc.Digest != im.manifest.Digest {
				t.Fatalf("pull with credentials = %s, %v", desc.Digest, err)
			}

			wrong := cfg
			wrong.Password = "wrong"
			anonymous := cfg
			anonymous.Username, anonymous.Password = "", ""
			for name, c := range map[string]Config{"wrong password": wrong, "anonymous": anonymous} {
				_, err := Pull(ctx, c, "auth/img", "latest", memory.New(), PullOptions{})
				if !errors.Is(err, errdefs.ErrUnauthorized) {
					t.Fatalf("%s: pull error %v, want ErrUnauthorized", name, err)
				}
				var re *Error
				if !errors.As(err, &re) || re.Op != "pull" || re.Host != s.Host || re.Repo != "auth/img" || re.StatusCode != 401 {
					t.Fatalf("%s: error %#v, want *Error{pull %s auth/img 401}", name, re, s.Host)
				}
				t.Logf("%s: %v", name, err)
				if !strings.HasPrefix(err.Error(), "pull "+s.Host+"/auth/img: ") {
					t.Fatalf("%s: message %q", name, err)
				}
				if err := Push(ctx, c, src, im.manifest, "auth/other", "x", PushOptions{}); !errors.Is(err, errdefs.ErrUnauthorized) {
					t.Fatalf("%s: push error %v, want ErrUnauthorized", name, err)
				}
			}
		})
	}
}

func TestTLS(t *testing.T) {
	s := registrytest.Start(t, registrytest.WithTLS())
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(20, 1000))
	pushImage(t, cfg, src, im.manifest, "tls/img", "1")
	if d, err := Pull(ctx, cfg, "tls/img", "1", memory.New(), PullOptions{}); err != nil || d.Digest != im.manifest.Digest {
		t.Fatalf("pull over TLS = %s, %v", d.Digest, err)
	}

	// Without the CA the server is not trusted; loopback alone would mean
	// plain HTTP, which the TLS server refuses too.
	for name, c := range map[string]Config{
		"no CA":      {Host: s.Host, TLS: s.TLSConfig().Clone(), DockerConfig: cfg.DockerConfig},
		"plain http": {Host: s.Host, DockerConfig: cfg.DockerConfig},
	} {
		if name == "no CA" {
			c.TLS.RootCAs = nil
		}
		if _, err := Resolve(ctx, c, "tls/img", "1"); err == nil {
			t.Fatalf("%s: resolve succeeded, want an error", name)
		}
	}
}

func TestPullPlatform(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	amd := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(30, 2000))
	arm := buildImage(t, src, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false, ocispec.MediaTypeImageLayerGzip, randomBytes(31, 2000))
	idx := buildIndex(t, src, amd, arm)
	pushImage(t, cfg, src, idx, "multi/img", "1")
	single := buildImage(t, src, linuxAMD64, true, dockerLayerGzip, randomBytes(32, 100))
	pushImage(t, cfg, src, single.manifest, "multi/single", "1")

	tests := []struct {
		name     string
		repo     string
		platform *ocispec.Platform
		want     testImage
		other    testImage
		wantErr  string
	}{
		{"arm64", "multi/img", &ocispec.Platform{OS: "linux", Architecture: "arm64"}, arm, amd, ""},
		{"aarch64 v8", "multi/img", &ocispec.Platform{OS: "linux", Architecture: "aarch64", Variant: "v8"}, arm, amd, ""},
		{"amd64", "multi/img", &linuxAMD64, amd, arm, ""},
		{"s390x", "multi/img", &ocispec.Platform{OS: "linux", Architecture: "s390x"}, testImage{}, testImage{},
			"no manifest for linux/s390x in " + s.Host + "/multi/img:1 (has linux/amd64, linux/arm64/v8)"},
		{"single manifest wrong platform", "multi/single", &ocispec.Platform{OS: "linux", Architecture: "arm64"}, testImage{}, testImage{},
			"no manifest for linux/arm64 in " + s.Host + "/multi/single:1 (has linux/amd64)"},
		{"single manifest right platform", "multi/single", &linuxAMD64, single, testImage{}, ""},
	}
	if host := HostPlatform(); host.Architecture == "amd64" || host.Architecture == "arm64" {
		want, other := amd, arm
		if host.Architecture == "arm64" {
			want, other = arm, amd
		}
		tests = append(tests, struct {
			name     string
			repo     string
			platform *ocispec.Platform
			want     testImage
			other    testImage
			wantErr  string
		}{"host default", "multi/img", nil, want, other, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := memory.New()
			desc, err := Pull(ctx, cfg, tt.repo, "1", dst, PullOptions{Platform: tt.platform})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errdefs.ErrNotFound) {
					t.Fatalf("error %v, want ErrNotFound with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != tt.want.manifest.Digest {
				t.Fatalf("pulled %s, want %s", desc.Digest, tt.want.manifest.Digest)
			}
			for _, d := range append(tt.want.blobs(), tt.want.manifest) {
				requireBlob(t, dst, src, d)
			}
			requireAbsent(t, dst, idx)
			if tt.other.manifest.Digest != "" {
				requireAbsent(t, dst, append(tt.other.layers, tt.other.manifest)...)
			}
		})
	}
}

func TestPullSharedLayers(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	shared := [][]byte{randomBytes(40, 300<<10), randomBytes(41, 100<<10)}
	a := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, shared...)
	b := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, append(shared, randomBytes(42, 50<<10))...)
	pushImage(t, cfg, src, a.manifest, "shared/a", "1")
	pushImage(t, cfg, src, b.manifest, "shared/b", "1")

	dst := memory.New()
	var first recorder
	if _, err := Pull(ctx, cfg, "shared/a", "1", dst, PullOptions{Progress: first.record}); err != nil {
		t.Fatal(err)
	}
	for _, l := range a.layers {
		if n := first.streamed(l.Digest, Downloading); n != l.Size {
			t.Fatalf("first pull streamed %d bytes of %s, want %d", n, l.Digest, l.Size)
		}
	}

	var second recorder
	var onBlob atomic.Int32
	if _, err := Pull(ctx, cfg, "shared/b", "1", dst, PullOptions{
		Progress: second.record,
		OnBlob:   func(context.Context, ocispec.Descriptor) error { onBlob.Add(1); return nil },
	}); err != nil {
		t.Fatal(err)
	}
	for i, l := range b.layers {
		n, st := second.streamed(l.Digest, Downloading), second.states(l.Digest)
		if i < len(shared) {
			if n != 0 || !hasState(st, Exists) {
				t.Fatalf("shared layer %s: streamed %d bytes, states %v; want 0 and exists", l.Digest, n, st)
			}
		} else if n != l.Size || !hasState(st, Done) {
			t.Fatalf("new layer %s: streamed %d bytes, states %v; want %d and done", l.Digest, n, st, l.Size)
		}
	}
	if got, want := int(onBlob.Load()), len(b.blobs())+1; got != want {
		t.Fatalf("OnBlob called %d times, want %d", got, want)
	}

	// Pulling the same image again moves no bytes at all and still reports
	// every blob.
	var third recorder
	onBlob.Store(0)
	if _, err := Pull(ctx, cfg, "shared/b", "1", dst, PullOptions{
		Progress: third.record,
		OnBlob:   func(context.Context, ocispec.Descriptor) error { onBlob.Add(1); return nil },
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range b.blobs() {
		if n := third.streamed(d.Digest, Downloading); n != 0 || !hasState(third.states(d.Digest), Exists) {
			t.Fatalf("third pull of %s: streamed %d, states %v", d.Digest, n, third.states(d.Digest))
		}
	}
	if got, want := int(onBlob.Load()), len(b.blobs())+1; got != want {
		t.Fatalf("third pull: OnBlob called %d times, want %d", got, want)
	}
}

func TestPullCorruptBlob(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(50, 4096), randomBytes(51, 70<<10))
	pushImage(t, cfg, src, im.manifest, "corrupt/img", "1")

	tests := []struct {
		name string
		blob ocispec.Descriptor
	}{
		{"layer", im.layers[1]},
		{"config", im.config},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.CorruptBlob(t, tt.blob.Digest)
			t.Cleanup(func() { s.CorruptBlob(t, tt.blob.Digest) }) // flips back
			for _, concurrency := range []int{1, 4} {
				// An OCI layout, which Pull verifies for, and dock's
				// store, which verifies itself.
				layout, err := oci.New(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st, err := store.Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				for _, dst := range []Target{layout, st} {
					_, err = Pull(ctx, cfg, "corrupt/img", "1", dst, PullOptions{Concurrency: concurrency})
					if !errors.Is(err, errdefs.ErrDigestMismatch) || !strings.Contains(err.Error(), tt.blob.Digest.String()) {
						t.Fatalf("%T: error %v, want ErrDigestMismatch naming %s", dst, err, tt.blob.Digest)
					}
					t.Logf("%T: error: %v", dst, err)
					requireAbsent(t, dst, tt.blob, im.manifest)
				}
			}
		})
	}
}

func TestPullCancel(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(60, 48<<20))
	pushImage(t, cfg, src, im.manifest, "cancel/img", "1")
	big := im.layers[0]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled atomic.Int64
	dst := memory.New()
	start := time.Now()
	_, err := Pull(ctx, cfg, "cancel/img", "1", dst, PullOptions{Progress: func(e Event) {
		if e.Digest == big.Digest && e.State == Downloading && e.Done > 0 && cancelled.CompareAndSwap(0, e.Done) {
			cancel()
		}
	}})
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("pull took %v after cancel", elapsed)
	}
	t.Logf("cancel after %d bytes: %v in %v", cancelled.Load(), err, elapsed)
	if cancelled.Load() == 0 {
		t.Fatal("never saw the layer stream")
	}
	requireAbsent(t, dst, big, im.manifest)
}

var linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}

// sharedLayerIndex stores a linux/amd64 and a linux/arm64 image whose first
// layer is the same (shared bytes, from seed) and whose second is their
// own (amdOwn and armOwn bytes), and an index over both.
func sharedLayerIndex(t *testing.T, src content.Storage, seed uint64, shared, amdOwn, armOwn int) (amd, arm testImage, idx ocispec.Descriptor) {
	t.Helper()
	layer := randomBytes(seed, shared)
	amd = buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, layer, randomBytes(seed+1, amdOwn))
	arm = buildImage(t, src, linuxARM64, false, ocispec.MediaTypeImageLayerGzip, layer, randomBytes(seed+2, armOwn))
	return amd, arm, buildIndex(t, src, amd, arm)
}

// TestPushIndex pushes a two-platform index whose images share a layer:
// into a new repository, where the shared layer goes up once, and into one
// that has one of the images, which is not sent again.
func TestPushIndex(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	amd, arm, idx := sharedLayerIndex(t, src, 80, 300<<10, 1000, 2000)
	sharedLayer := amd.layers[0]

	var fresh recorder
	if err := Push(ctx, cfg, src, idx, "index/fresh", "1", PushOptions{Progress: fresh.record}); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(append(amd.blobs(), arm.blobs()...), amd.manifest, arm.manifest, idx) {
		if n := fresh.streamed(d.Digest, Uploading); n != d.Size {
			t.Errorf("fresh push: %s (%s) sent %d bytes, want %d", d.Digest, d.MediaType, n, d.Size)
		}
		if st := fresh.states(d.Digest); !hasState(st, Done) {
			t.Errorf("fresh push: %s: states %v, want done", d.Digest, st)
		}
	}
	// Both manifests name the shared layer; it is checked and sent once.
	if st, n := fresh.states(sharedLayer.Digest), fresh.starts(sharedLayer.Digest, Uploading); hasState(st, Exists) || n != 1 {
		t.Errorf("fresh push: shared layer: states %v, %d uploads; want one upload and no second look", st, n)
	}

	if err := Push(ctx, cfg, src, amd.manifest, "index/part", "amd", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	var part recorder
	if err := Push(ctx, cfg, src, idx, "index/part", "all", PushOptions{Progress: part.record}); err != nil {
		t.Fatal(err)
	}
	if st := part.states(amd.manifest.Digest); !hasState(st, Exists) || part.streamed(amd.manifest.Digest, Uploading) != 0 {
		t.Errorf("amd64 manifest: states %v, want exists and nothing sent", st)
	}
	for _, d := range append(amd.blobs(), sharedLayer) {
		if n := part.streamed(d.Digest, Uploading); n != 0 {
			t.Errorf("blob %s of the image already there: sent %d bytes", d.Digest, n)
		}
	}
	for _, d := range []ocispec.Descriptor{arm.config, arm.layers[1], arm.manifest, idx} {
		if n := part.streamed(d.Digest, Uploading); n != d.Size {
			t.Errorf("%s: sent %d bytes, want %d", d.Digest, n, d.Size)
		}
	}

	for _, repo := range []string{"index/fresh", "index/part"} {
		tag := map[string]string{"index/fresh": "1", "index/part": "all"}[repo]
		for _, im := range []testImage{amd, arm} {
			p := linuxAMD64
			if im.manifest.Digest == arm.manifest.Digest {
				p = linuxARM64
			}
			dst := memory.New()
			d, err := Pull(ctx, cfg, repo, tag, dst, PullOptions{Platform: &p})
			if err != nil || d.Digest != im.manifest.Digest {
				t.Fatalf("pull %s:%s for %s = %s, %v; want %s", repo, tag, FormatPlatform(p), d.Digest, err, im.manifest.Digest)
			}
			for _, b := range im.blobs() {
				requireBlob(t, dst, src, b)
			}
		}
	}
}

// failingSource is a push source that cannot read one blob.
type failingSource struct {
	Target
	bad digest.Digest
}

func (f failingSource) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if d.Digest == f.bad {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, errdefs.ErrNotFound)
	}
	return f.Target.Fetch(ctx, d)
}

// TestPushFailureCause pushes an index one of whose blobs cannot be read:
// the push fails naming that blob, not with the cancellation of the
// uploads it stopped (among them one that the other image waits for).
func TestPushFailureCause(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	amd, _, idx := sharedLayerIndex(t, src, 90, 4<<20, 3<<20, 1000)
	for i := range 5 {
		repo := fmt.Sprintf("cause/r%d", i)
		err := Push(ctx, cfg, failingSource{src, amd.config.Digest}, idx, repo, "1", PushOptions{Concurrency: 2})
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), amd.config.Digest.String()) {
			t.Fatalf("push %d: %v; want the unreadable config %s", i, err, amd.config.Digest)
		}
		if _, err := Resolve(ctx, cfg, repo, "1"); err == nil {
			t.Fatalf("push %d: the index is in the registry after a failed push", i)
		}
	}
}

func TestPushMount(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(70, 200<<10), randomBytes(71, 1000))
	pushImage(t, cfg, src, im.manifest, "mount/base", "1")

	var rec recorder
	err := Push(ctx, cfg, src, im.manifest, "mount/derived", "2", PushOptions{
		Progress:  rec.record,
		MountFrom: []string{"mount/nowhere", "mount/base"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.blobs() {
		st := rec.states(d.Digest)
		if !hasState(st, Mounted) || rec.streamed(d.Digest, Uploading) != 0 {
			t.Fatalf("blob %s: states %v, uploaded %d bytes; want mounted, none", d.Digest, st, rec.streamed(d.Digest, Uploading))
		}
	}
	if d, err := Pull(ctx, cfg, "mount/derived", "2", memory.New(), PullOptions{}); err != nil || d.Digest != im.manifest.Digest {
		t.Fatalf("pull mounted image = %s, %v", d.Digest, err)
	}

	// Pushing again finds everything in place.
	var again recorder
	if err := Push(ctx, cfg, src, im.manifest, "mount/derived", "3", PushOptions{Progress: again.record}); err != nil {
		t.Fatal(err)
	}
	for _, d := range im.blobs() {
		if !hasState(again.states(d.Digest), Exists) || again.streamed(d.Digest, Uploading) != 0 {
			t.Fatalf("second push of %s: states %v", d.Digest, again.states(d.Digest))
		}
	}
	tags, err := Tags(ctx, cfg, "mount/derived")
	if err != nil || !slices.Equal(tags, []string{"2", "3"}) {
		t.Fatalf("Tags = %v, %v; want [2 3]", tags, err)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		opt  registrytest.Option
	}{
		{"htpasswd", registrytest.WithHtpasswd("dora", "pw1")},
		{"token", registrytest.WithTokenAuth("erin", "pw2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := registrytest.Start(t, tt.opt)
			cfg := serverConfig(t, s)
			src := memory.New()
			im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(80, 999))
			pushImage(t, cfg, src, im.manifest, "login/img", "1")

			noCreds := Config{Host: s.Host, DockerConfig: cfg.DockerConfig}
			if _, err := Pull(ctx, noCreds, "login/img", "1", memory.New(), PullOptions{}); !errors.Is(err, errdefs.ErrUnauthorized) {
				t.Fatalf("pull before login: %v, want ErrUnauthorized", err)
			}
			if err := Login(ctx, noCreds, s.Username, "wrong"); !errors.Is(err, errdefs.ErrUnauthorized) {
				t.Fatalf("login with a wrong password: %v, want ErrUnauthorized", err)
			}
			if _, err := os.Stat(cfg.DockerConfig); !os.IsNotExist(err) {
				t.Fatalf("failed login wrote %s: %v", cfg.DockerConfig, err)
			}
			if err := Login(ctx, noCreds, s.Username, s.Password); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(cfg.DockerConfig)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"auths"`) || !strings.Contains(string(b), s.Host) {
				t.Fatalf("config.json after login:\n%s", b)
			}
			if d, err := Pull(ctx, noCreds, "login/img", "1", memory.New(), PullOptions{}); err != nil || d.Digest != im.manifest.Digest {
				t.Fatalf("pull after login = %s, %v", d.Digest, err)
			}
		})
	}
}

func TestResolveNotFound(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	for _, ref := range []string{"nope", "sha256:" + strings.Repeat("ab", 32)} {
		if _, err := Resolve(ctx, cfg, "missing/repo", ref); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("resolve %s: %v, want ErrNotFound", ref, err)
		}
		if _, err := Pull(ctx, cfg, "missing/repo", ref, memory.New(), PullOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("pull %s: %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := Resolve(ctx, cfg, "Bad/Name", "1"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("resolve of an invalid name: %v, want ErrInvalidArgument", err)
	}
}

func TestPullCompletesPartialImage(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(90, 5000), randomBytes(91, 6000))
	pushImage(t, cfg, src, im.manifest, "partial/img", "1")

	// A store left with the manifest and one layer, as by a crash: the
	// missing layer and config are fetched, the present layer is not.
	dst := memory.New()
	for _, d := range []ocispec.Descriptor{im.manifest, im.layers[0]} {
		b, err := content.FetchAll(ctx, src, d)
		if err != nil {
			t.Fatal(err)
		}
		pushBytes(t, dst, d.MediaType, b)
	}
	var rec recorder
	if _, err := Pull(ctx, cfg, "partial/img", "1", dst, PullOptions{Progress: rec.record}); err != nil {
		t.Fatal(err)
	}
	for _, d := range im.blobs() {
		requireBlob(t, dst, src, d)
	}
	if n := rec.streamed(im.layers[0].Digest, Downloading); n != 0 {
		t.Fatalf("present layer streamed %d bytes", n)
	}
	if n := rec.streamed(im.layers[1].Digest, Downloading); n != im.layers[1].Size {
		t.Fatalf("missing layer streamed %d of %d bytes", n, im.layers[1].Size)
	}
}

func TestPullStream(t *testing.T) {
	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	ctx := context.Background()
	src := memory.New()
	layers := [][]byte{randomBytes(70, 3<<20), randomBytes(71, 5000)}
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, layers...)
	pushImage(t, cfg, src, im.manifest, "stream/img", "1")

	for _, concurrency := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", concurrency), func(t *testing.T) {
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			got := map[digest.Digest]*bytes.Buffer{}
			ended := map[digest.Digest]error{}
			stream := func(d ocispec.Descriptor) (io.Writer, func(error)) {
				if d.Digest != im.layers[0].Digest {
					return nil, nil
				}
				mu.Lock()
				defer mu.Unlock()
				b := &bytes.Buffer{}
				got[d.Digest] = b
				return b, func(err error) {
					mu.Lock()
					defer mu.Unlock()
					if _, ok := ended[d.Digest]; ok {
						t.Errorf("done of %s called twice", d.Digest)
					}
					ended[d.Digest] = err
				}
			}
			if _, err := Pull(ctx, cfg, "stream/img", "1", st, PullOptions{Concurrency: concurrency, Stream: stream}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			d := im.layers[0].Digest
			if concurrency == 1 {
				if len(got) != 0 {
					t.Fatalf("Stream consulted with concurrency 1")
				}
				return
			}
			if got[d] == nil {
				t.Fatalf("no stream of %s", d)
			}
			if err, ok := ended[d]; !ok || err != nil {
				t.Fatalf("stream of %s ended with %v (called %v)", d, err, ok)
			}
			if digest.FromBytes(got[d].Bytes()) != d {
				t.Fatalf("stream of %s: %d bytes of other content", d, got[d].Len())
			}
			if ok, err := st.Exists(ctx, im.layers[0]); err != nil || !ok {
				t.Fatalf("%s not stored: %v", d, err)
			}
		})
	}
}
