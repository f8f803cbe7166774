package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dockkit/dock/internal/archive/archivetest"
)

// FuzzApply feeds arbitrary bytes to Apply: it may refuse them, but must not
// panic, and must not touch anything outside its root. The seeds are the
// hostile layers of TestHostileLayers plus testdata/fuzz/FuzzApply. Each run
// builds a fresh host tree, so minimizing a new input is slow; add
// -fuzzminimizetime=5s to keep the fuzzer mutating.
func FuzzApply(f *testing.F) {
	seedHost := &host{base: "/tmp/fuzz-host", root: "/tmp/fuzz-host/root", sentinel: "/tmp/fuzz-host/sentinel"}
	for _, tc := range hostileCases() {
		if tc.lim.MaxEntries > 0 && tc.lim.MaxEntries < 200 {
			continue // the count bomb only slows fuzzing down
		}
		f.Add(tc.layer(f, seedHost))
	}
	for _, l := range whiteoutLayers(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHost(t)
		mode := WhiteoutDelete
		if len(data)%2 == 1 && os.Geteuid() == 0 {
			mode = WhiteoutOverlay
		}
		opts := ApplyOptions{
			Whiteouts:   mode,
			NoSameOwner: os.Geteuid() != 0,
			Limits:      Limits{MaxEntries: 200, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20},
		}
		_, _ = Apply(context.Background(), h.root, bytes.NewReader(data), opts)
		h.check(t)
		if fi, err := os.Lstat(h.root); err != nil || !fi.IsDir() {
			t.Fatalf("root is no longer a directory: %v %v", fi, err)
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzApply from the hostile
// cases when DOCK_WRITE_FUZZ_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("DOCK_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set DOCK_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &host{base: "/tmp/fuzz-host", root: "/tmp/fuzz-host/root", sentinel: "/tmp/fuzz-host/sentinel"}
	pick := map[string]bool{
		"dotdot file": true, "symlink to slash then write etc/passwd": true, "symlink chain climbing out": true,
		"hardlink through symlink": true, "whiteout dotdot": true, "dir replaced by symlink then written through": true,
		"huge size header": true, "opaque through symlink": true,
	}
	for i, tc := range hostileCases() {
		if !pick[tc.name] {
			continue
		}
		b := bytes.TrimRight(tc.layer(t, h), "\x00") // the reader takes EOF as the end
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("hostile-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	layers := whiteoutLayers(t)
	layers = append(layers, archivetest.Tar(t, archivetest.Symlink("a", "/"), archivetest.Link("b", "a"), archivetest.Reg("b/x", "x")))
	for i, b := range layers {
		b = bytes.TrimRight(b, "\x00")
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("layer-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
