package imagefmt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as an archive file. Load must not
// panic; when it fails, nothing may be tagged, and when it succeeds, every
// image it reports must be complete in the store. The seed corpus is in
// testdata/fuzz/FuzzLoad (rewrite it with IMAGEFMT_WRITE_SEEDS=1 go test
// -run TestWriteFuzzSeeds). Archives are tens of kilobytes, which makes
// the fuzzer's minimizing of new inputs slow; bound it:
//
//	go test -run '^$' -fuzz=FuzzLoad -fuzzminimizetime=200x -fuzztime=5m
func FuzzLoad(f *testing.F) {
	for _, es := range seedArchives() {
		p := filepath.Join(f.TempDir(), "seed.tar")
		writeTar(f, p, es)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "in.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		st := newMemStore()
		imgs, err := Load(context.Background(), st, p, WithTag(func(n string) (string, error) {
			if n == "" {
				return "", errors.New("empty")
			}
			return n, nil
		}))
		if err != nil {
			if len(st.tags) != 0 {
				t.Fatalf("failed load (%v) tagged %v", err, st.tags)
			}
			return
		}
		for _, img := range imgs {
			if _, ok := st.blobs[img.Desc.Digest]; !ok {
				t.Fatalf("loaded image %q is not stored", img.Name)
			}
		}
	})
}

func seedArchives() [][]tarEntry {
	oci, _ := tinyOCI()
	return [][]tarEntry{oci, tinyDocker()}
}

// TestWriteFuzzSeeds rewrites the committed seed corpus from seedArchives.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("IMAGEFMT_WRITE_SEEDS") == "" {
		t.Skip("set IMAGEFMT_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzLoad")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, es := range seedArchives() {
		p := filepath.Join(t.TempDir(), "seed.tar")
		writeTar(t, p, es)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
