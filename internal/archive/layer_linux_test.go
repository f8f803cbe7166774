package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/archive/archivetest"
	"github.com/dockkit/dock/internal/errdefs"
	"github.com/dockkit/dock/internal/iobuf"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func compress(t *testing.T, b []byte, mediaType string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Compress(&buf, mediaType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestApplyLayer(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, crosses read-ahead chunks
	raw := archivetest.Tar(t, archivetest.Dir("d/"), archivetest.Reg("d/small", "s"), archivetest.Reg("d/big", big))
	raw = append(raw, make([]byte, 4096)...) // padding past the tar's end counts in the diffID
	want := digest.FromBytes(raw)
	const (
		ociGzip  = "application/vnd.oci.image.layer.v1.tar+gzip"
		ociZstd  = "application/vnd.oci.image.layer.v1.tar+zstd"
		ociPlain = "application/vnd.oci.image.layer.v1.tar"
		dockerGz = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	)
	hostile := archivetest.Tar(t, archivetest.Reg("ok", "x"), archivetest.Reg("../escape", "x"), archivetest.Reg("big", big), archivetest.Reg("big2", big))
	cases := []struct {
		name      string
		blob      []byte
		mediaType string
		diffID    digest.Digest
		wantErr   error
	}{
		{"gzip by media type", compress(t, raw, ociGzip), ociGzip, want, nil},
		{"docker gzip", compress(t, raw, dockerGz), dockerGz, want, nil},
		{"gzip sniffed", compress(t, raw, ociGzip), "", want, nil},
		{"zstd by media type", compress(t, raw, ociZstd), ociZstd, want, nil},
		{"zstd sniffed", compress(t, raw, ociZstd), "", "", nil},
		{"plain", raw, ociPlain, want, nil},
		{"plain sniffed", raw, "", want, nil},
		{"wrong diffID", compress(t, raw, ociGzip), ociGzip, digest.FromString("other"), errdefs.ErrDigestMismatch},
		{"media type says gzip, bytes are plain", raw, ociGzip, "", nil},
		{"truncated gzip", compress(t, raw, ociGzip)[:2000], ociGzip, want, io.ErrUnexpectedEOF},
		{"bad diffID", raw, "", "sha256:zz", errdefs.ErrInvalidArgument},
		{"zstd window bomb", zstdWindow(t, raw, 1<<29), ociZstd, "", errZstdWindow},
		{"refused entry stops the pipeline", compress(t, hostile, ociZstd), ociZstd, "", errdefs.ErrInvalidArgument},
	}
	// Directly, and decompressed ahead by a Prefetcher (small bound, so
	// that it waits for the reader) with writeback started early.
	apply := func(prefetch bool, root string, blob []byte, mediaType string, diffID digest.Digest) (digest.Digest, error) {
		opts := ApplyOptions{NoSameOwner: os.Geteuid() != 0}
		if !prefetch {
			return ApplyLayer(context.Background(), root, bytes.NewReader(blob), mediaType, diffID, opts)
		}
		opts.StartWriteback = true
		pf, err := Prefetch(bytes.NewReader(blob), mediaType, 1)
		if err != nil {
			return "", err
		}
		defer pf.Close()
		return ApplyLayer(context.Background(), root, pf, "", diffID, opts)
	}
	for _, tc := range cases {
		for _, prefetch := range []bool{false, true} {
			name := tc.name
			if prefetch {
				name += " prefetched"
			}
			t.Run(name, func(t *testing.T) {
				root := t.TempDir()
				got, err := apply(prefetch, root, tc.blob, tc.mediaType, tc.diffID)
				if tc.name == "media type says gzip, bytes are plain" {
					if err == nil {
						t.Fatal("plain bytes accepted as gzip")
					}
					return
				}
				if tc.wantErr == errZstdWindow {
					if err == nil || !strings.Contains(err.Error(), "window") {
						t.Fatalf("ApplyLayer: %v, want a window size error", err)
					}
					if testing.Verbose() {
						t.Log(err)
					}
					return
				}
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("ApplyLayer: %v, want %v", err, tc.wantErr)
					}
					if tc.wantErr == errdefs.ErrDigestMismatch && (!strings.Contains(err.Error(), string(want)) || !strings.Contains(err.Error(), string(tc.diffID))) {
						t.Errorf("mismatch error %q names not both digests", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("diffID %s, want %s", got, want)
				}
				b, err := os.ReadFile(filepath.Join(root, "d/big"))
				if err != nil || string(b) != big {
					t.Fatalf("d/big: %d bytes, %v", len(b), err)
				}
			})
		}
	}
}

func TestApplyProgressAndCancel(t *testing.T) {
	var files []archivetest.File
	for i := range 300 {
		files = append(files, archivetest.Reg("f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), "body"))
	}
	raw := archivetest.Tar(t, files...)
	var last int64
	calls := 0
	n, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(raw), ApplyOptions{
		NoSameOwner: os.Geteuid() != 0,
		Progress: func(n int64) {
			if n < last {
				t.Errorf("progress went back: %d after %d", n, last)
			}
			last, calls = n, calls+1
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 301 || last != n || n < int64(len(raw))-2048 {
		t.Errorf("progress: %d calls, last %d, Apply read %d of %d", calls, last, n, len(raw))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, t.TempDir(), bytes.NewReader(raw), ApplyOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: %v", err)
	}
}

func TestApplyMetadata(t *testing.T) {
	f := archivetest.Reg("bin/su", "x")
	f.Mode = 0o4755
	f.Uid, f.Gid = 12, 34
	g := archivetest.Dir("shared/")
	g.Mode = 0o3775
	s := archivetest.Symlink("bin/sh", "busybox")
	s.Uid, s.Gid = 5, 6
	fifo := archivetest.Reg("run/fifo", "")
	fifo.Typeflag, fifo.Mode = '6', 0o620
	sg := archivetest.Dir("sgid/")
	sg.Mode, sg.Gid = 0o2755, 1234
	inSg := archivetest.Reg("sgid/file", "g")             // root:root despite the setgid parent
	open := withMode(archivetest.Reg("open", "o"), 0o666) // wider than the umask
	raw := archivetest.Tar(t, f, g, s, fifo, withXattr(archivetest.Reg("cap", "c"), "user.k", "v"), sg, inSg, open)
	root := t.TempDir()
	noOwner := os.Geteuid() != 0
	if _, err := Apply(context.Background(), root, bytes.NewReader(raw), ApplyOptions{NoSameOwner: noOwner}); err != nil {
		t.Fatal(err)
	}
	snap := archivetest.Snapshot(t, root)
	check := func(p, want string) {
		t.Helper()
		if got := snap[p].String(); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	if noOwner {
		t.Skip("owners need root")
	}
	check("bin/su", "reg 4755 12:34 mtime=1700000000 size=1 2d711642b726")
	check("shared", "dir 3775 0:0 mtime=1700000000")
	check("bin/sh", "symlink 0777 5:6 mtime=1700000000 -> busybox")
	check("run/fifo", "fifo 0620 0:0 mtime=1700000000")
	check("cap", "reg 0644 0:0 mtime=1700000000 size=1 2e7d2c03a950 xattrs=user.k=v")
	check("bin", "dir 0755 0:0 mtime="+snapMtime(snap["bin"]))
	check("sgid", "dir 2755 0:1234 mtime=1700000000")
	check("sgid/file", "reg 0644 0:0 mtime=1700000000 size=1 cd0aa9856147")
	check("open", "reg 0666 0:0 mtime=1700000000 size=1 65c74c15a686")
}

func snapMtime(n archivetest.Node) string {
	return strings.TrimPrefix(strings.Fields(n.String())[3], "mtime=")
}

func TestApplySparse(t *testing.T) {
	zeros := strings.Repeat("\x00", 8<<20)
	raw := archivetest.Tar(t, archivetest.Reg("holes", zeros), archivetest.Reg("tail", zeros+"end"),
		archivetest.Reg("small", "\x00\x00"))
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(raw), ApplyOptions{NoSameOwner: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"holes": zeros, "tail": zeros + "end", "small": "\x00\x00"} {
		p := filepath.Join(root, name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Fatalf("%s: %d bytes, %v; want %d bytes", name, len(b), err, len(want))
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if len(want) > 1<<20 && st.Blocks*512 > 1<<20 {
			t.Errorf("%s: %d bytes allocated for %d zeros", name, st.Blocks*512, len(want))
		}
	}
}

var errZstdWindow = errors.New("zstd window")

// zstdWindow compresses b as a stream whose frame asks for a window of w
// bytes: the decoder must refuse to allocate it.
func zstdWindow(t *testing.T, b []byte, w int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(w))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestBuffersGivenBack checks that decompression stopped early, an apply
// that fails half-way and a whole layer all give back the read-ahead and
// copy buffers they took.
func TestBuffersGivenBack(t *testing.T) {
	var files []archivetest.File
	for i := range 8 {
		files = append(files, archivetest.Reg("big"+string(rune('a'+i)), strings.Repeat(string(rune('a'+i)), 3<<20)))
	}
	raw := archivetest.Tar(t, files...)
	gz := compress(t, raw, "application/vnd.oci.image.layer.v1.tar+gzip")
	lent := func(when string) {
		t.Helper()
		if n := iobuf.Lent(); n != 0 {
			t.Fatalf("%s: %d buffers not given back", when, n)
		}
	}

	for range 5 {
		pf, err := Prefetch(bytes.NewReader(gz), "application/vnd.oci.image.layer.v1.tar+gzip", 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, pf, 1<<20)
		pf.Close()
	}
	lent("prefetchers closed early")

	// A layer cut short: decompression fails while the apply writes.
	if _, err := ApplyLayer(context.Background(), t.TempDir(), bytes.NewReader(gz[:len(gz)/2]), "application/vnd.oci.image.layer.v1.tar+gzip", "", ApplyOptions{NoSameOwner: true}); err == nil {
		t.Fatal("apply of half a layer succeeded")
	}
	lent("apply of a truncated layer")

	if _, err := ApplyLayer(context.Background(), t.TempDir(), bytes.NewReader(gz), "application/vnd.oci.image.layer.v1.tar+gzip", "", ApplyOptions{NoSameOwner: true}); err != nil {
		t.Fatal(err)
	}
	lent("apply of a whole layer")
}
