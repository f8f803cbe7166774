package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchTar writes a layer like a distro base image: 5000 small files (100 B
// to 16 KiB) in 100 directories, a few symlinks, and four 16 MiB files.
func benchTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 16<<20)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	mt := time.Unix(1700000000, 0)
	for d := range 100 {
		dir := fmt.Sprintf("usr/share/d%03d/", d)
		if d == 0 {
			for _, p := range []string{"usr/", "usr/share/", "usr/lib/"} {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p, Mode: 0o755, ModTime: mt}); err != nil {
					return err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mt}); err != nil {
			return err
		}
		for f := range 50 {
			size := 100 + rng.IntN(16<<10)
			name := dir + "file" + strconv.Itoa(f)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size), ModTime: mt}); err != nil {
				return err
			}
			off := rng.IntN(len(payload) - size)
			if _, err := tw.Write(payload[off : off+size]); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "link", Linkname: "file0", ModTime: mt}); err != nil {
			return err
		}
	}
	for i := range 4 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/lib/big%d.so", i), Mode: 0o755, Size: int64(len(payload)), ModTime: mt}); err != nil {
			return err
		}
		if _, err := tw.Write(payload); err != nil {
			return err
		}
	}
	return tw.Close()
}

// BenchmarkApply extracts the bench layer into a fresh directory each time
// (nothing is deleted while it runs: ext4 creates slowly after mass deletes).
func BenchmarkApply(b *testing.B) {
	var buf bytes.Buffer
	if err := benchTar(&buf); err != nil {
		b.Fatal(err)
	}
	layer := buf.Bytes()
	base := b.TempDir()
	opts := ApplyOptions{NoSameOwner: os.Geteuid() != 0}
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(context.Background(), dir, bytes.NewReader(layer), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyLayerGzip measures the pipelined gunzip, hash and extract.
func BenchmarkApplyLayerGzip(b *testing.B) {
	var raw, gz bytes.Buffer
	if err := benchTar(&raw); err != nil {
		b.Fatal(err)
	}
	zw, _ := Compress(&gz, "application/vnd.oci.image.layer.v1.tar+gzip")
	zw.Write(raw.Bytes())
	zw.Close()
	base := b.TempDir()
	opts := ApplyOptions{NoSameOwner: os.Geteuid() != 0}
	b.SetBytes(int64(raw.Len()))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := ApplyLayer(context.Background(), dir, bytes.NewReader(gz.Bytes()), "", "", opts); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyFromEnv is a harness for timing Apply against tar -xf by hand:
// DOCK_BENCH_WRITE_TAR=FILE writes the bench layer; DOCK_APPLY_TAR=FILE with
// DOCK_APPLY_DEST=DIR extracts FILE (a tar, or compressed when
// DOCK_APPLY_LAYER=1) into DIR and prints the time taken.
func TestApplyFromEnv(t *testing.T) {
	if p := os.Getenv("DOCK_BENCH_WRITE_TAR"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := benchTar(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	src, dest := os.Getenv("DOCK_APPLY_TAR"), os.Getenv("DOCK_APPLY_DEST")
	if src == "" || dest == "" {
		t.Skip("set DOCK_APPLY_TAR and DOCK_APPLY_DEST to time Apply")
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	if os.Getenv("DOCK_APPLY_LAYER") != "" {
		_, err = ApplyLayer(context.Background(), dest, f, "", "", ApplyOptions{})
	} else {
		_, err = Apply(context.Background(), dest, f, ApplyOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("apply %s: %v\n", src, time.Since(start))
}
