package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	goodDigest  = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	ociManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + goodDigest + `","size":0},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + goodDigest + `","size":0}]}`
	dockerManifest = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + goodDigest + `","size":0},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` + goodDigest + `","size":0}]}`
	ociIndex = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":0,` +
		`"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`
	dockerList = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + goodDigest + `","size":0,` +
		`"platform":{"architecture":"amd64","os":"linux"}}]}`
)

func TestDecodeManifest(t *testing.T) {
	tests := []struct {
		name, data, mediaType string
		ok                    bool
		msg                   string
	}{
		{"oci", ociManifest, ocispec.MediaTypeImageManifest, true, ""},
		{"docker", dockerManifest, MediaTypeDockerManifest, true, ""},
		{"oci without mediaType field", strings.Replace(ociManifest, `"mediaType":"application/vnd.oci.image.manifest.v1+json",`, "", 1), ocispec.MediaTypeImageManifest, true, ""},
		{"field disagrees with descriptor", ociManifest, MediaTypeDockerManifest, false, "descriptor says"},
		{"index media type", ociManifest, ocispec.MediaTypeImageIndex, false, "not a manifest"},
		{"layer media type", ociManifest, ocispec.MediaTypeImageLayerGzip, false, "not a manifest"},
		{"schema 1", strings.Replace(ociManifest, `"schemaVersion":2`, `"schemaVersion":1`, 1), ocispec.MediaTypeImageManifest, false, "schemaVersion"},
		{"no schemaVersion", strings.Replace(ociManifest, `"schemaVersion":2,`, ``, 1), ocispec.MediaTypeImageManifest, false, "schemaVersion"},
		{"with manifests", strings.Replace(ociManifest, `"layers"`, `"manifests":[],"layers"`, 1), ocispec.MediaTypeImageManifest, false, "manifests field"},
		{"no config", `{"schemaVersion":2,"layers":[]}`, ocispec.MediaTypeImageManifest, false, "no config"},
		{"bad layer digest", strings.Replace(ociManifest, `"digest":"`+goodDigest+`","size":0}]`, `"digest":"sha256:nothex","size":0}]`, 1), ocispec.MediaTypeImageManifest, false, "layer 0"},
		{"negative size", strings.Replace(ociManifest, `"size":0}]`, `"size":-5}]`, 1), ocispec.MediaTypeImageManifest, false, "negative size"},
		{"not json", `{"schemaVersion":2`, ocispec.MediaTypeImageManifest, false, "decode"},
		{"too big", ociManifest + strings.Repeat(" ", MaxManifestSize), ocispec.MediaTypeImageManifest, false, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(tc.data), tc.mediaType)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Layers) != 1 || m.Config.Digest != goodDigest {
					t.Fatalf("decoded %+v", m)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DecodeManifest: %v, want ErrInvalidArgument mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeIndex(t *testing.T) {
	tests := []struct {
		name, data, mediaType string
		ok                    bool
		msg                   string
	}{
		{"oci", ociIndex, ocispec.MediaTypeImageIndex, true, ""},
		{"docker list", dockerList, MediaTypeDockerManifestList, true, ""},
		{"manifest as index", ociManifest, ocispec.MediaTypeImageIndex, false, "descriptor says"},
		{"manifest fields without mediaType", `{"schemaVersion":2,"config":{},"manifests":[]}`, ocispec.MediaTypeImageIndex, false, "config or layers"},
		{"manifest media type", ociIndex, ocispec.MediaTypeImageManifest, false, "not an index"},
		{"bad digest", strings.Replace(ociIndex, goodDigest, "sha256:abc", 1), ocispec.MediaTypeImageIndex, false, "manifest 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := DecodeIndex([]byte(tc.data), tc.mediaType)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(idx.Manifests) != 1 || idx.Manifests[0].Platform == nil {
					t.Fatalf("decoded %+v", idx)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("DecodeIndex: %v, want ErrInvalidArgument mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestReadManifestIndexConfig(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "a")
	idx := pushIndex(t, s, img.manifest)
	dm := pushBytes(t, s, MediaTypeDockerManifest, []byte(dockerManifest))
	dl := pushBytes(t, s, MediaTypeDockerManifestList, []byte(dockerList))
	dcfg := pushBytes(t, s, MediaTypeDockerConfig, []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]}}`))

	if m, err := s.ReadManifest(ctx, img.manifest); err != nil || m.Config.Digest != img.config.Digest {
		t.Fatalf("ReadManifest = %+v, %v", m, err)
	}
	if m, err := s.ReadManifest(ctx, dm); err != nil || m.MediaType != MediaTypeDockerManifest {
		t.Fatalf("ReadManifest(docker) = %+v, %v", m, err)
	}
	if ix, err := s.ReadIndex(ctx, idx); err != nil || len(ix.Manifests) != 1 {
		t.Fatalf("ReadIndex = %+v, %v", ix, err)
	}
	if ix, err := s.ReadIndex(ctx, dl); err != nil || ix.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("ReadIndex(docker) = %+v, %v", ix, err)
	}
	if c, err := s.ReadConfig(ctx, img.config); err != nil || c.Config.Labels["seed"] != "a" {
		t.Fatalf("ReadConfig = %+v, %v", c, err)
	}
	if c, err := s.ReadConfig(ctx, dcfg); err != nil || c.Config.Env[0] != "A=1" {
		t.Fatalf("ReadConfig(docker) = %+v, %v", c, err)
	}

	big := img.manifest
	big.Size = MaxManifestSize + 1
	corrupt := pushBytes(t, s, ocispec.MediaTypeImageManifest, []byte(ociManifest))
	if err := os.WriteFile(s.BlobPath(corrupt.Digest), bytes.ToUpper([]byte(ociManifest)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		read func() error
		want error
		msg  string
	}{
		{"manifest as index", func() error { _, err := s.ReadIndex(ctx, img.manifest); return err }, errdefs.ErrInvalidArgument, "not an index"},
		{"index as manifest", func() error { _, err := s.ReadManifest(ctx, idx); return err }, errdefs.ErrInvalidArgument, "not a manifest"},
		{"layer as config", func() error { _, err := s.ReadConfig(ctx, img.layers[0]); return err }, errdefs.ErrInvalidArgument, "not an image config"},
		{"oversized manifest", func() error { _, err := s.ReadManifest(ctx, big); return err }, errdefs.ErrInvalidArgument, "limit"},
		{"corrupt on disk", func() error { _, err := s.ReadManifest(ctx, corrupt); return err }, errdefs.ErrDigestMismatch, corrupt.Digest.String()},
		{"lying media type", func() error {
			d := img.manifest
			d.MediaType = MediaTypeDockerManifest
			_, err := s.ReadManifest(ctx, d)
			return err
		}, errdefs.ErrInvalidArgument, "descriptor says"},
		{"missing", func() error {
			_, err := s.ReadManifest(ctx, blobDesc(ocispec.MediaTypeImageManifest, []byte("x")))
			return err
		}, errdefs.ErrNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
		})
	}
}

func FuzzDecodeManifest(f *testing.F) {
	for _, seed := range []string{ociManifest, dockerManifest, ociIndex, "{}", "null"} {
		f.Add([]byte(seed), ocispec.MediaTypeImageManifest)
		f.Add([]byte(seed), MediaTypeDockerManifest)
	}
	f.Fuzz(func(t *testing.T, data []byte, mediaType string) {
		m, err := DecodeManifest(data, mediaType)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error does not wrap ErrInvalidArgument: %v", err)
			}
			return
		}
		if !IsManifestType(mediaType) || len(data) > MaxManifestSize {
			t.Fatalf("accepted media type %q, %d bytes", mediaType, len(data))
		}
		if m.Config.Digest.Validate() != nil {
			t.Fatalf("accepted config digest %q", m.Config.Digest)
		}
		for _, l := range m.Layers {
			if l.Digest.Validate() != nil || l.Size < 0 {
				t.Fatalf("accepted layer %+v", l)
			}
		}
		// What decodes must not also decode as an index.
		if _, err := DecodeIndex(data, ocispec.MediaTypeImageIndex); err == nil {
			t.Fatalf("bytes decode as both manifest and index: %s", data)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	for _, seed := range []string{ociIndex, dockerList, ociManifest, `{"schemaVersion":2,"manifests":null}`} {
		f.Add([]byte(seed), ocispec.MediaTypeImageIndex)
		f.Add([]byte(seed), MediaTypeDockerManifestList)
	}
	f.Fuzz(func(t *testing.T, data []byte, mediaType string) {
		idx, err := DecodeIndex(data, mediaType)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error does not wrap ErrInvalidArgument: %v", err)
			}
			return
		}
		if !IsIndexType(mediaType) || len(data) > MaxManifestSize {
			t.Fatalf("accepted media type %q, %d bytes", mediaType, len(data))
		}
		for _, m := range idx.Manifests {
			if m.Digest.Validate() != nil || m.Size < 0 {
				t.Fatalf("accepted manifest %+v", m)
			}
		}
		if _, err := DecodeManifest(data, ocispec.MediaTypeImageManifest); err == nil {
			t.Fatalf("bytes decode as both index and manifest: %s", data)
		}
	})
}
