package store

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func storedDigests(t *testing.T, s *Store, descs ...ocispec.Descriptor) map[digest.Digest]bool {
	t.Helper()
	got := map[digest.Digest]bool{}
	for _, d := range descs {
		ok, err := s.Exists(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		got[d.Digest] = ok
	}
	return got
}

func imageBlobs(img image) []ocispec.Descriptor {
	return append([]ocispec.Descriptor{img.manifest, img.config}, img.layers...)
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	shared := tarGz("shared", []byte("shared"))
	tagged := mustImage(t, s, "tagged", shared)
	untagged := mustImage(t, s, "untagged", shared)
	kept := mustImage(t, s, "kept")
	armA := mustImage(t, s, "arm-a")
	armB := mustImage(t, s, "arm-b")
	absent := blobDesc(ocispec.MediaTypeImageManifest, []byte(`{"not":"stored"}`))
	multi := pushIndex(t, s, armA.manifest, absent) // another platform not pulled
	nested := pushIndex(t, s, armB.manifest)
	outer := pushIndex(t, s, nested)
	stray := pushBytes(t, s, "application/octet-stream", []byte("stray"))

	for ref, d := range map[string]ocispec.Descriptor{
		"example.com/tagged:1": tagged.manifest,
		"example.com/multi:1":  multi,
		"example.com/outer:1":  outer,
	} {
		if err := s.Tag(ctx, d, ref); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := s.GC(ctx, []digest.Digest{kept.manifest.Digest})
	if err != nil {
		t.Fatal(err)
	}

	live := slices.Concat(imageBlobs(tagged), imageBlobs(kept), imageBlobs(armA), imageBlobs(armB),
		[]ocispec.Descriptor{multi, nested, outer})
	for d, ok := range storedDigests(t, s, live...) {
		if !ok {
			t.Errorf("GC removed reachable blob %s", d)
		}
	}
	dead := []ocispec.Descriptor{untagged.manifest, untagged.config, untagged.layers[0], stray}
	for d, ok := range storedDigests(t, s, dead...) {
		if ok {
			t.Errorf("GC kept unreachable blob %s", d)
		}
	}
	slices.Sort(removed)
	var want []digest.Digest
	for _, d := range dead {
		want = append(want, d.Digest)
	}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("GC returned %v, want %v", removed, want)
	}

	// Untag and collect again: only the shared layer's other user keeps it.
	if err := s.Untag(ctx, "example.com/tagged:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for d, ok := range storedDigests(t, s, imageBlobs(tagged)...) {
		if ok {
			t.Errorf("GC kept %s after Untag", d)
		}
	}
	if ok := storedDigests(t, s, armA.layers[0])[armA.layers[0].Digest]; !ok {
		t.Error("GC removed a layer of a tagged index")
	}
}

func TestGCWaitsForLease(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	release, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second lease, from another handle, shares the lock.
	other, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	release2, err := other.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release2()
	release2() // idempotent

	// Stored under the lease, not yet tagged.
	img := mustImage(t, s, "pulling")

	done := make(chan error, 1)
	go func() {
		_, err := other.GC(ctx, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("GC finished while a lease was held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// GC waits on gc.lock before it takes the index lock, so Tag proceeds.
	if err := s.Tag(ctx, img.manifest, "example.com/pulled:1"); err != nil {
		t.Fatal(err)
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GC still waiting after the lease was released")
	}
	for d, ok := range storedDigests(t, s, imageBlobs(img)...) {
		if !ok {
			t.Errorf("GC removed %s stored under a lease", d)
		}
	}

	// A GC that cannot get the lock gives up when its context ends.
	release, err = s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.GC(cctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GC under a held lease with a deadline: %v", err)
	}
}

func TestGCCautious(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "mislabelled")
	loose := mustImage(t, s, "loose")
	// An index that calls an OCI manifest a Docker one.
	wrong := img.manifest
	wrong.MediaType = MediaTypeDockerManifest
	idx := pushIndex(t, s, wrong)
	if err := s.Tag(ctx, idx, "example.com/mislabelled:1"); err != nil {
		t.Fatal(err)
	}
	// keep may name any blob, a layer included.
	if _, err := s.GC(ctx, []digest.Digest{loose.layers[0].Digest}); err != nil {
		t.Fatal(err)
	}
	for d, ok := range storedDigests(t, s, append(imageBlobs(img), loose.layers[0])...) {
		if !ok {
			t.Errorf("GC removed %s", d)
		}
	}
	if ok := storedDigests(t, s, loose.manifest)[loose.manifest.Digest]; ok {
		t.Error("GC kept the unreferenced manifest")
	}

	// A manifest whose bytes rotted on disk stops GC before it removes
	// anything.
	stray := pushBytes(t, s, "application/octet-stream", []byte("stray"))
	raw, err := os.ReadFile(s.BlobPath(img.manifest.Digest))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-2] ^= 1
	if err := os.WriteFile(s.BlobPath(img.manifest.Digest), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := s.GC(ctx, nil)
	if !errors.Is(err, errdefs.ErrDigestMismatch) || !strings.Contains(err.Error(), img.manifest.Digest.String()) {
		t.Fatalf("GC over a corrupt manifest: %v", err)
	}
	if len(removed) != 0 || !storedDigests(t, s, stray)[stray.Digest] {
		t.Fatalf("GC removed %v despite the error", removed)
	}
	if _, err := s.GC(ctx, []digest.Digest{"sha256:nothex"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("GC with a bad keep digest: %v", err)
	}
}
