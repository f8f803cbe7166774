package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// fillParts returns a fill that writes data in the given parts, each from
// its own goroutine in chunks of chunk bytes, the later parts first.
func fillParts(data []byte, parts []span, chunk int) func(context.Context, io.WriterAt) error {
	return func(ctx context.Context, w io.WriterAt) error {
		g, ctx := errgroup.WithContext(ctx)
		for _, p := range slices.Backward(parts) {
			g.Go(func() error {
				for off := p.start; off < p.end; off += int64(chunk) {
					if err := ctx.Err(); err != nil {
						return err
					}
					end := min(off+int64(chunk), p.end)
					if _, err := w.WriteAt(data[off:end], off); err != nil {
						return err
					}
				}
				return nil
			})
		}
		return g.Wait()
	}
}

func TestPushAt(t *testing.T) {
	data := content(7, 5<<20+333)
	good := blobDesc(ocispec.MediaTypeImageLayerGzip, data)
	n := int64(len(data))
	half := n / 2
	halves := []span{{0, half}, {half, n}}
	corrupt := slices.Clone(data)
	corrupt[half+12345] ^= 1
	other := digest.FromString("other")

	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		fill    func(cancel context.CancelFunc) func(context.Context, io.WriterAt) error
		wantErr error
		wantMsg string
	}{
		{"two halves", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, halves, 1<<20)
		}, nil, ""},
		{"five uneven parts, small chunks", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, []span{{0, 1}, {1, 4096}, {4096, half}, {half, n - 7}, {n - 7, n}}, 64<<10+3)
		}, nil, ""},
		{"empty blob", blobDesc("application/octet-stream", nil), func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return func(context.Context, io.WriterAt) error { return nil }
		}, nil, ""},
		{"a flipped byte in the second half", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(corrupt, halves, 1<<20)
		}, errdefs.ErrDigestMismatch, "blob " + good.Digest.String() + ": content hashes to " + digest.FromBytes(corrupt).String()},
		{"another digest", ocispec.Descriptor{Digest: other, Size: n}, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, halves, 1<<20)
		}, errdefs.ErrDigestMismatch, "blob " + other.String()},
		{"a gap", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, []span{{0, half}, {half + 1, n}}, 1<<20)
		}, errdefs.ErrInvalidArgument, "bytes written in order"},
		{"overlapping parts", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, []span{{0, half + 10}, {half, n}}, 1<<20)
		}, errdefs.ErrInvalidArgument, "over bytes already written"},
		{"past the end", ocispec.Descriptor{Digest: good.Digest, Size: n - 1}, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return fillParts(data, halves, 1<<20)
		}, errdefs.ErrInvalidArgument, "beyond the size"},
		{"fill fails", good, func(context.CancelFunc) func(context.Context, io.WriterAt) error {
			return func(ctx context.Context, w io.WriterAt) error {
				if err := fillParts(data, []span{{0, half}}, 1<<20)(ctx, w); err != nil {
					return err
				}
				return errors.New("connection reset")
			}
		}, nil, "connection reset"},
		{"cancelled mid-way", good, func(cancel context.CancelFunc) func(context.Context, io.WriterAt) error {
			return func(ctx context.Context, w io.WriterAt) error {
				if err := fillParts(data, []span{{half, n}}, 1<<20)(ctx, w); err != nil {
					return err
				}
				cancel()
				return fillParts(data, []span{{0, half}}, 1<<20)(ctx, w)
			}
		}, context.Canceled, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := s.PushAt(ctx, tc.desc, tc.fill(cancel))
			ok := tc.wantErr == nil && tc.wantMsg == ""
			if ok {
				if err != nil {
					t.Fatalf("PushAt: %v", err)
				}
				got, err := os.ReadFile(s.BlobPath(tc.desc.Digest))
				if err != nil {
					t.Fatal(err)
				}
				if digest.FromBytes(got) != tc.desc.Digest {
					t.Fatalf("stored %d bytes of other content", len(got))
				}
			} else {
				if err == nil {
					t.Fatal("PushAt succeeded, want an error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("PushAt: %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("PushAt: %q, want it to contain %q", err, tc.wantMsg)
				}
				t.Logf("error: %v", err)
				if _, err := os.Stat(s.BlobPath(tc.desc.Digest)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("blob visible after a failed PushAt (stat: %v)", err)
				}
			}
			if names := ingestFiles(t, s); len(names) != 0 {
				t.Fatalf("ingest left %v", names)
			}
		})
	}
}

func TestPushAtStoredBlob(t *testing.T) {
	s := newStore(t)
	data := content(8, 70000)
	d := pushBytes(t, s, "application/octet-stream", data)
	called := false
	err := s.PushAt(context.Background(), d, func(context.Context, io.WriterAt) error { called = true; return nil })
	if err != nil || called {
		t.Fatalf("PushAt of a stored blob: %v, fill called %v; want nil, false", err, called)
	}
	got, err := os.ReadFile(s.BlobPath(d.Digest))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored blob changed: %v", err)
	}
}

func TestSpansAdd(t *testing.T) {
	tests := []struct {
		name string
		adds []span
		want spans
	}{
		{"one", []span{{5, 9}}, spans{{5, 9}}},
		{"append after", []span{{0, 4}, {4, 8}}, spans{{0, 8}}},
		{"prepend before", []span{{4, 8}, {0, 4}}, spans{{0, 8}}},
		{"gap kept", []span{{0, 4}, {6, 8}}, spans{{0, 4}, {6, 8}}},
		{"fills a gap", []span{{0, 4}, {6, 8}, {4, 6}}, spans{{0, 8}}},
		{"inserted between", []span{{0, 2}, {10, 12}, {5, 6}}, spans{{0, 2}, {5, 6}, {10, 12}}},
		{"joins the next", []span{{0, 2}, {10, 12}, {5, 10}}, spans{{0, 2}, {5, 12}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s spans
			for _, a := range tc.adds {
				if s.overlaps(a.start, a.end) {
					t.Fatalf("%v overlaps %v", a, s)
				}
				s = s.add(a.start, a.end)
			}
			if !slices.Equal(s, tc.want) {
				t.Fatalf("got %v, want %v", s, tc.want)
			}
		})
	}
}
