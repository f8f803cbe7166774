package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The test binary re-executes itself to play a second process; childEnv
// names the role.
const (
	childEnv     = "DOCK_STORE_TEST_CHILD"
	childDirEnv  = "DOCK_STORE_TEST_DIR"
	childIDEnv   = "DOCK_STORE_TEST_ID"
	childSizeEnv = "DOCK_STORE_TEST_SIZE"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := runChild(role); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(role string) error {
	ctx := context.Background()
	s, err := Open(os.Getenv(childDirEnv))
	if err != nil {
		return err
	}
	defer s.Close()
	switch role {
	case "tag":
		id := os.Getenv(childIDEnv)
		img, err := pushImage(ctx, s, "proc-"+id, sharedLayer())
		if err != nil {
			return err
		}
		return s.Tag(ctx, img.manifest, procRef(id))
	case "slowpush":
		size, err := strconv.ParseInt(os.Getenv(childSizeEnv), 10, 64)
		if err != nil {
			return err
		}
		data := content(7, int(size))
		desc := blobDesc(ocispec.MediaTypeImageLayerGzip, data)
		// Yield a few chunks, then hang: the parent kills us mid-write.
		r := io.MultiReader(bytes.NewReader(data[:4<<20]), hangReader{})
		return s.Push(ctx, desc, r)
	}
	return fmt.Errorf("unknown role %q", role)
}

type hangReader struct{}

func (hangReader) Read([]byte) (int, error) {
	time.Sleep(time.Hour)
	return 0, io.EOF
}

func procRef(id string) string { return "example.com/proc/img:" + id }

// content returns n deterministic pseudo-random bytes for seed.
func content(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func sharedLayer() []byte { return content(99, 8<<20) }

func blobDesc(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pushBytes(t testing.TB, s *Store, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	desc := blobDesc(mediaType, data)
	if err := s.Push(context.Background(), desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return desc
}

// image is a stored single-platform image.
type image struct {
	manifest, config ocispec.Descriptor
	layers           []ocispec.Descriptor
}

// tarGz builds a gzip'd tar holding one file.
func tarGz(name string, body []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Write(body)
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// diffID returns the digest of a gzip'd layer's uncompressed tar, or the
// blob's own digest for the raw test layers that are not gzip.
func diffID(layer []byte) digest.Digest {
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		return digest.FromBytes(layer)
	}
	d, err := digest.FromReader(zr)
	if err != nil {
		return digest.FromBytes(layer)
	}
	return d
}

// pushImage stores an image whose own layer holds a file named for seed,
// plus the extra raw layers given, and returns its descriptors.
func pushImage(ctx context.Context, s *Store, seed string, extra ...[]byte) (image, error) {
	var img image
	layers := append([][]byte{tarGz(seed, []byte(seed))}, extra...)
	var diffIDs []digest.Digest
	for _, l := range layers {
		d := blobDesc(ocispec.MediaTypeImageLayerGzip, l)
		if err := s.Push(ctx, d, bytes.NewReader(l)); err != nil {
			return img, err
		}
		img.layers = append(img.layers, d)
		diffIDs = append(diffIDs, diffID(l))
	}
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{Architecture: "amd64", OS: "linux"},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Labels: map[string]string{"seed": seed}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	img.config = blobDesc(ocispec.MediaTypeImageConfig, cfg)
	if err := s.Push(ctx, img.config, bytes.NewReader(cfg)); err != nil {
		return img, err
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: img.config, Layers: img.layers}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	img.manifest = blobDesc(ocispec.MediaTypeImageManifest, mb)
	if err := s.Push(ctx, img.manifest, bytes.NewReader(mb)); err != nil {
		return img, err
	}
	return img, nil
}

func mustImage(t testing.TB, s *Store, seed string, extra ...[]byte) image {
	t.Helper()
	img, err := pushImage(context.Background(), s, seed, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushIndex stores an OCI index over the given manifests.
func pushIndex(t testing.TB, s *Store, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}
	idx.SchemaVersion = 2
	b, _ := json.Marshal(idx)
	return pushBytes(t, s, ocispec.MediaTypeImageIndex, b)
}

func ingestFiles(t testing.TB, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.path(ingestDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
