package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestOpenCreatesLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := os.ReadFile(dir + "/oci-layout")
	if err != nil || string(layout) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %q, %v", layout, err)
	}
	idx, err := os.ReadFile(dir + "/index.json")
	if err != nil || !strings.Contains(string(idx), `"schemaVersion":2`) || !strings.Contains(string(idx), `"manifests":[]`) {
		t.Fatalf("index.json = %q, %v", idx, err)
	}
	if fi, err := os.Stat(dir + "/blobs/sha256"); err != nil || !fi.IsDir() {
		t.Fatalf("blobs/sha256: %v", err)
	}
	desc := pushBytes(t, s, "application/octet-stream", []byte("kept"))
	s.Close()
	if _, err := s.Exists(context.Background(), desc); !errors.Is(err, errdefs.ErrWrongState) {
		t.Fatalf("Exists after Close: %v, want ErrWrongState", err)
	}

	s2, err := Open(dir) // reopening keeps content
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s2.Exists(context.Background(), desc); !ok || err != nil {
		t.Fatalf("Exists after reopen = %v, %v", ok, err)
	}

	if err := os.WriteFile(dir+"/oci-layout", []byte(`{"imageLayoutVersion":"9.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Fatalf("Open of layout version 9: %v, want ErrNotSupported", err)
	}
}

// errReader yields data and then fails.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// cancelReader cancels its context once it has yielded after bytes.
type cancelReader struct {
	r      io.Reader
	after  int
	n      int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func TestPushVerifies(t *testing.T) {
	data := content(1, 3<<20+17)
	good := blobDesc(ocispec.MediaTypeImageLayerGzip, data)
	other := digest.FromString("something else")

	whole := content(2, 3*copyBufferSize) // ends on a buffer's end
	wholeDesc := blobDesc(ocispec.MediaTypeImageLayerGzip, whole)

	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		reader  func(cancel context.CancelFunc) io.Reader
		wantErr error
		wantMsg string
	}{
		{"ok", good, func(context.CancelFunc) io.Reader { return bytes.NewReader(data) }, nil, ""},
		{"ok, whole buffers", wholeDesc, func(context.CancelFunc) io.Reader { return bytes.NewReader(whole) }, nil, ""},
		{"read error on a buffer's end", wholeDesc,
			func(context.CancelFunc) io.Reader {
				return &errReader{data: whole[:copyBufferSize], err: errors.New("connection reset")}
			},
			nil, "connection reset"},
		{"empty blob", blobDesc("application/octet-stream", nil), func(context.CancelFunc) io.Reader { return bytes.NewReader(nil) }, nil, ""},
		{"digest mismatch", ocispec.Descriptor{Digest: other, Size: good.Size},
			func(context.CancelFunc) io.Reader { return bytes.NewReader(data) },
			errdefs.ErrDigestMismatch, "blob " + other.String() + ": content hashes to " + good.Digest.String() + ": digest mismatch"},
		{"short", ocispec.Descriptor{Digest: good.Digest, Size: good.Size + 1},
			func(context.CancelFunc) io.Reader { return bytes.NewReader(data) },
			errdefs.ErrInvalidArgument, "size 3145745, descriptor says 3145746"},
		{"long", ocispec.Descriptor{Digest: good.Digest, Size: good.Size - 1},
			func(context.CancelFunc) io.Reader { return bytes.NewReader(data) },
			errdefs.ErrInvalidArgument, "longer than descriptor size"},
		{"read error", good,
			func(context.CancelFunc) io.Reader {
				return &errReader{data: data[:1000], err: errors.New("connection reset")}
			},
			nil, "connection reset"},
		{"cancelled mid-stream", good,
			func(cancel context.CancelFunc) io.Reader {
				return &cancelReader{r: bytes.NewReader(data), after: 1 << 20, cancel: cancel}
			},
			context.Canceled, ""},
		{"bad digest", ocispec.Descriptor{Digest: "sha256:../../etc", Size: 1},
			func(context.CancelFunc) io.Reader { return strings.NewReader("x") },
			errdefs.ErrInvalidArgument, ""},
		{"negative size", ocispec.Descriptor{Digest: good.Digest, Size: -1},
			func(context.CancelFunc) io.Reader { return bytes.NewReader(data) },
			errdefs.ErrInvalidArgument, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := s.Push(ctx, tc.desc, tc.reader(cancel))
			ok := tc.wantErr == nil && tc.wantMsg == ""
			if ok {
				if err != nil {
					t.Fatalf("Push: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("Push succeeded, want an error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("Push: %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Push: %q, want it to contain %q", err, tc.wantMsg)
				}
			}
			if p := s.BlobPath(tc.desc.Digest); p != "" {
				_, statErr := os.Stat(p)
				if visible := statErr == nil; visible != ok {
					t.Fatalf("blob visible = %v after Push error %v", visible, err)
				}
			}
			if names := ingestFiles(t, s); len(names) != 0 {
				t.Fatalf("ingest left %v", names)
			}
			if n := iobuf.Lent(); n != 0 {
				t.Fatalf("%d copy buffers not given back", n)
			}
		})
	}
}

func TestFetchExistsInfoDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := []byte("hello layer")
	desc := pushBytes(t, s, ocispec.MediaTypeImageLayer, data)
	missing := blobDesc(ocispec.MediaTypeImageLayer, []byte("nope"))

	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("Fetch = %q", got)
	}
	if _, err := s.Fetch(ctx, missing); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), missing.Digest.String()) {
		t.Fatalf("Fetch missing: %v", err)
	}
	wrongSize := desc
	wrongSize.Size++
	if _, err := s.Fetch(ctx, wrongSize); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Fetch with wrong size: %v", err)
	}
	if err := s.Push(ctx, wrongSize, bytes.NewReader(data)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Push of stored blob with wrong size: %v", err)
	}
	// Pushing a stored blob again succeeds without reading.
	if err := s.Push(ctx, desc, &errReader{err: errors.New("must not be read")}); err != nil {
		t.Fatalf("Push of stored blob: %v", err)
	}
	if ok, err := s.Exists(ctx, desc); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if ok, err := s.Exists(ctx, missing); ok || err != nil {
		t.Fatalf("Exists(missing) = %v, %v", ok, err)
	}
	if _, err := s.Exists(ctx, ocispec.Descriptor{Digest: "sha256:zz"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Exists(bad digest): %v", err)
	}
	if n, err := s.Info(ctx, desc.Digest); n != int64(len(data)) || err != nil {
		t.Fatalf("Info = %d, %v", n, err)
	}
	if want := s.Dir() + "/blobs/sha256/" + desc.Digest.Encoded(); s.BlobPath(desc.Digest) != want {
		t.Fatalf("BlobPath = %s, want %s", s.BlobPath(desc.Digest), want)
	}
	if p := s.BlobPath("sha256:../../../etc/passwd"); p != "" {
		t.Fatalf("BlobPath of a bad digest = %q", p)
	}
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Info(ctx, desc.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Info after Delete: %v", err)
	}
}

func TestPushSameBlobConcurrently(t *testing.T) {
	s := newStore(t)
	data := content(3, 5<<20)
	desc := blobDesc(ocispec.MediaTypeImageLayerGzip, data)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A second Store on the same dir behaves like another process.
			st := s
			if i%2 == 1 {
				var err error
				if st, err = Open(s.Dir()); err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = st.Push(context.Background(), desc, bytes.NewReader(data))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("push %d: %v", i, err)
		}
	}
	got, err := os.ReadFile(s.BlobPath(desc.Digest))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored blob differs (%v)", err)
	}
	if names := ingestFiles(t, s); len(names) != 0 {
		t.Fatalf("ingest left %v", names)
	}
}

func BenchmarkPush64MiB(b *testing.B) {
	data := content(5, 64<<20)
	desc := blobDesc(ocispec.MediaTypeImageLayerGzip, data)
	s := newStore(b)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if err := s.Push(ctx, desc, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, desc.Digest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("no space left on device")
	}
	return len(p), nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestCopyStopsOnWriteError checks that a failing disk ends the copy with the
// disk's error, without reading the rest of the stream.
func TestCopyStopsOnWriteError(t *testing.T) {
	const total = 64 << 20
	cr := &countReader{r: io.LimitReader(zeroReader{}, total)}
	_, err := copyHashed(context.Background(), &failWriter{after: 2 << 20}, digest.SHA256.Hash(), cr, total)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("copy: %v, want the write error", err)
	}
	if cr.n > 8<<20 {
		t.Fatalf("read %d bytes after the write failed", cr.n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestOpenCompletesLayout(t *testing.T) {
	tests := []struct {
		name   string
		remove string
	}{
		{"index.json missing", "index.json"},
		{"oci-layout missing", "oci-layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			im := mustImage(t, s, "completes")
			if err := s.Tag(context.Background(), im.manifest, "example.com/a:1"); err != nil {
				t.Fatal(err)
			}
			s.Close()
			want, err := os.ReadFile(dir + "/" + map[string]string{"index.json": "oci-layout", "oci-layout": "index.json"}[tt.remove])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(dir + "/" + tt.remove); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir); err != nil {
				t.Fatal(err)
			}
			layout, err := os.ReadFile(dir + "/oci-layout")
			if err != nil || string(layout) != `{"imageLayoutVersion":"1.0.0"}` {
				t.Fatalf("oci-layout = %q, %v", layout, err)
			}
			idx, err := os.ReadFile(dir + "/index.json")
			if err != nil || !strings.Contains(string(idx), `"schemaVersion":2`) {
				t.Fatalf("index.json = %q, %v", idx, err)
			}
			kept := map[string][]byte{"index.json": layout, "oci-layout": idx}[tt.remove]
			if !bytes.Equal(kept, want) {
				t.Fatalf("the file left in place changed: %q, was %q", kept, want)
			}
		})
	}
}

func TestOpenFreshConcurrently(t *testing.T) {
	dir := t.TempDir() + "/root"
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			s, err := Open(dir)
			if err == nil {
				_, err = s.List(context.Background())
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir + "/" + indexTemp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind: %v", indexTemp, err)
	}
}
