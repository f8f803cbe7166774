package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/store"
	"github.com/dockkit/dock/internal/testutil/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
)

// rangeProxy forwards to a registry and records the Range of each blob GET.
// With strip it drops Range, as a registry that ignores it; with mangle it
// asks the registry for one byte more than the client did, so that the
// Content-Range answered is not the one asked for.
type rangeProxy struct {
	strip      bool
	stripLater bool // drop Range only from requests not starting at 0
	mangle     bool
	mu         sync.Mutex
	ranges     map[string][]string // blob digest -> Range headers, "" for none
}

func startRangeProxy(t *testing.T, s *registrytest.Server, strip, stripLater, mangle bool) (*rangeProxy, string) {
	t.Helper()
	p := &rangeProxy{strip: strip, stripLater: stripLater, mangle: mangle, ranges: map[string][]string{}}
	target, err := url.Parse("http://" + s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
			p.mu.Lock()
			d := r.URL.Path[i+len("/blobs/"):]
			p.ranges[d] = append(p.ranges[d], r.Header.Get("Range"))
			p.mu.Unlock()
			if p.strip || (p.stripLater && r.Header.Get("Range") != "" && !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-")) {
				r.Header.Del("Range")
			}
			var a, b int64
			if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &a, &b); err == nil && p.mangle && a == 0 {
				r.Header.Set("Range", fmt.Sprintf("bytes=0-%d", b+1))
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

func (p *rangeProxy) requests(d ocispec.Descriptor) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ranges[d.Digest.String()]
}

// flipByte changes one byte of the blob d as the registry stores it.
func flipByte(t *testing.T, s *registrytest.Server, d ocispec.Descriptor, off int64) {
	t.Helper()
	f, err := os.OpenFile(s.BlobPath(d.Digest), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestPullRanges(t *testing.T) {
	defer func(old int64) { minSplitSize = old }(minSplitSize)
	minSplitSize = 1 << 20

	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	src := memory.New()
	bigBytes := randomBytes(100, 3<<20+4321)
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(101, 200<<10), bigBytes)
	pushImage(t, cfg, src, im.manifest, "ranges/img", "1")
	big := im.layers[1]
	half := big.Size / 2

	tests := []struct {
		name      string
		strip     bool // the registry ignores Range
		later     bool // the registry ignores Range beyond the first byte
		mangle    bool // the first range answered is not the one asked for
		flip      int64
		cancel    bool
		wantErr   error
		wantPlain int  // GETs of the big blob without Range
		wantBoth  bool // both ranges asked for, and nothing else
	}{
		{name: "two ranges", wantBoth: true},
		{name: "registry ignores Range", strip: true},
		{name: "wrong Content-Range", mangle: true, wantPlain: 1},
		{name: "only the first range honoured", later: true, wantPlain: 1},
		{name: "a byte flipped in the second half", flip: half + 777, wantErr: errdefs.ErrDigestMismatch, wantBoth: true},
		{name: "a byte flipped in the first half", flip: 5, wantErr: errdefs.ErrDigestMismatch, wantBoth: true},
		{name: "cancelled mid-range", cancel: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy, host := startRangeProxy(t, s, tt.strip, tt.later, tt.mangle)
			pcfg := cfg
			pcfg.Host = host
			if tt.flip != 0 {
				flipByte(t, s, big, tt.flip)
				t.Cleanup(func() { flipByte(t, s, big, tt.flip) })
			}
			dst, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var rec recorder
			opts := PullOptions{Progress: rec.record}
			if tt.cancel {
				var once sync.Once
				opts.Progress = func(e Event) {
					if e.Digest == big.Digest && e.State == Downloading && e.Done > 0 {
						once.Do(cancel)
					}
				}
			}
			_, err = Pull(ctx, pcfg, "ranges/img", "1", dst, opts)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Pull: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Pull: %v, want %v", err, tt.wantErr)
			case tt.wantErr == errdefs.ErrDigestMismatch && !strings.Contains(err.Error(), big.Digest.String()):
				t.Fatalf("Pull: %v, want it to name %s", err, big.Digest)
			}
			if err != nil {
				t.Logf("error: %v", err)
				requireAbsent(t, dst, big, im.manifest)
				if entries, err := os.ReadDir(dst.Dir() + "/ingest"); err != nil || len(entries) != 0 {
					t.Fatalf("ingest holds %d files (%v)", len(entries), err)
				}
			} else {
				for _, d := range im.blobs() {
					requireBlob(t, dst, src, d)
				}
				if n := rec.streamed(big.Digest, Downloading); n != big.Size {
					t.Fatalf("progress reported %d of %d bytes", n, big.Size)
				}
			}
			// Both ranges are asked for at once; when the first answer
			// is the whole blob or fails, the second may be dropped
			// before it reaches the proxy.
			gets := proxy.requests(big)
			first, second := fmt.Sprintf("bytes=0-%d", half-1), fmt.Sprintf("bytes=%d-%d", half, big.Size-1)
			plain := 0
			for _, g := range gets {
				switch g {
				case "":
					plain++
				case first, second:
				default:
					t.Fatalf("GET of the big blob with Range %q", g)
				}
			}
			if !tt.cancel && (plain != tt.wantPlain || !slices.Contains(gets, first)) {
				t.Fatalf("GETs of the big blob with Range %q, want %d without and one of %q", gets, tt.wantPlain, first)
			}
			if tt.wantBoth && (len(gets) != 2 || !slices.Contains(gets, second)) {
				t.Fatalf("GETs of the big blob with Range %q, want %q and %q", gets, first, second)
			}
			if small := proxy.requests(im.layers[0]); len(small) > 1 || (len(small) == 1 && small[0] != "") {
				t.Fatalf("small layer fetched with Range %q, want one plain GET", small)
			}
		})
	}
}

// racingStore stores a blob just before its PushAt, as another program
// pulling the same image would.
type racingStore struct {
	*store.Store
	src  *memory.Store
	hits int
}

func (r *racingStore) PushAt(ctx context.Context, desc ocispec.Descriptor, fill func(context.Context, io.WriterAt) error) error {
	b, err := content.FetchAll(ctx, r.src, desc)
	if err != nil {
		return err
	}
	if err := r.Store.Push(ctx, desc, bytes.NewReader(b)); err != nil {
		return err
	}
	r.hits++
	return r.Store.PushAt(ctx, desc, func(context.Context, io.WriterAt) error {
		return errors.New("fill called for a stored blob")
	})
}

func TestPullRangesStoredMeanwhile(t *testing.T) {
	defer func(old int64) { minSplitSize = old }(minSplitSize)
	minSplitSize = 1 << 20

	s := registrytest.Start(t)
	cfg := serverConfig(t, s)
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(120, 2<<20+5))
	pushImage(t, cfg, src, im.manifest, "ranges/race", "1")
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dst := &racingStore{Store: st, src: src}
	if _, err := Pull(context.Background(), cfg, "ranges/race", "1", dst, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if dst.hits != 1 {
		t.Fatalf("PushAt called %d times, want 1", dst.hits)
	}
	for _, d := range im.blobs() {
		requireBlob(t, dst, src, d)
	}
}

// TestPullRangesTokenAuth pulls a blob in parts from a registry behind
// token auth: the range requests carry the token the first request got.
func TestPullRangesTokenAuth(t *testing.T) {
	defer func(old int64) { minSplitSize = old }(minSplitSize)
	minSplitSize = 1 << 20

	s := registrytest.Start(t, registrytest.WithTokenAuth("ranger", "pw3"))
	cfg := serverConfig(t, s)
	src := memory.New()
	im := buildImage(t, src, linuxAMD64, false, ocispec.MediaTypeImageLayerGzip, randomBytes(110, 2<<20+99))
	pushImage(t, cfg, src, im.manifest, "ranges/auth", "1")
	proxy, host := startRangeProxy(t, s, false, false, false)
	pcfg := cfg
	pcfg.Host = host
	dst, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(context.Background(), pcfg, "ranges/auth", "1", dst, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range im.blobs() {
		requireBlob(t, dst, src, d)
	}
	// Two requests, each with its range and the token: a range sent
	// without it would have drawn a 401 and a retry, or a plain GET.
	big := im.layers[0]
	half := big.Size / 2
	want := []string{fmt.Sprintf("bytes=0-%d", half-1), fmt.Sprintf("bytes=%d-%d", half, big.Size-1)}
	got := slices.Sorted(slices.Values(proxy.requests(big)))
	if !slices.Equal(got, want) {
		t.Fatalf("GETs of the layer with Range %q, want %q", got, want)
	}
}

func TestCheckContentRange(t *testing.T) {
	tests := []struct {
		h    string
		ok   bool
		name string
	}{
		{"bytes 100-199/1000", true, "exact"},
		{"bytes 100-199/*", true, "unknown size"},
		{"bytes 100-198/1000", false, "short"},
		{"bytes 0-199/1000", false, "other start"},
		{"bytes 100-199/999", false, "other size"},
		{"100-199/1000", false, "no unit"},
		{"", false, "empty"},
		{"bytes x-199/1000", false, "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkContentRange(tt.h, 100, 100, 1000)
			if (err == nil) != tt.ok {
				t.Fatalf("checkContentRange(%q) = %v, want ok %v", tt.h, err, tt.ok)
			}
		})
	}
}

func TestSplitParts(t *testing.T) {
	const M = 1 << 20
	desc := func(sizes ...int64) []ocispec.Descriptor {
		var ds []ocispec.Descriptor
		for _, s := range sizes {
			ds = append(ds, ocispec.Descriptor{Size: s})
		}
		return ds
	}
	tests := []struct {
		name  string
		sizes []int64
		want  map[int]int
	}{
		{"bench image", []int64{820, 49 * M, 28 * M, 10 * M, 98 * M}, map[int]int{4: 2}},
		{"one big layer", []int64{1000, 100 * M}, map[int]int{1: 2}},
		{"two alike", []int64{60 * M, 50 * M}, nil},
		{"all small", []int64{20 * M, 3 * M}, nil},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitParts(desc(tt.sizes...))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("splitParts(%v) = %v, want %v", tt.sizes, got, tt.want)
			}
		})
	}
}
