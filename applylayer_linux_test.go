package dock

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dockkit/dock/internal/archive"
	"github.com/dockkit/dock/internal/archive/archivetest"
	digest "github.com/opencontainers/go-digest"
)

func TestApplyLayerPlainDir(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w, err := archive.Compress(&buf, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	lower := archivetest.Tar(t, archivetest.Dir("etc/"), archivetest.Reg("etc/a", "a"), archivetest.Reg("etc/gone", "x"))
	upper := archivetest.Tar(t, archivetest.Reg("etc/.wh.gone", ""), archivetest.Reg("etc/b", "b"))
	escape := archivetest.Tar(t, archivetest.Reg("../outside", "x"))

	dir := t.TempDir()
	for _, l := range []struct {
		name string
		blob []byte
		raw  []byte
	}{{"gzip", gz(lower), lower}, {"plain", upper, upper}} {
		got, err := ApplyLayer(context.Background(), dir, bytes.NewReader(l.blob))
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		if want := digest.FromBytes(l.raw); got != want {
			t.Fatalf("%s: diffID %s, want %s", l.name, got, want)
		}
	}
	for name, want := range map[string]string{"etc/a": "a", "etc/b": "b"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	for _, name := range []string{"etc/gone", "etc/.wh.gone"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it absent", name, err)
		}
	}
	if _, err := ApplyLayer(context.Background(), dir, bytes.NewReader(escape)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("entry outside the directory: %v, want ErrInvalidArgument", err)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "outside")); err == nil {
		t.Fatal("a layer wrote outside its directory")
	}
}
