package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestTagResolveUntagList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := mustImage(t, s, "a")
	b := mustImage(t, s, "b")
	idx := pushIndex(t, s, a.manifest, b.manifest)

	const (
		alpine = "docker.io/library/alpine:3.20"
		multi  = "127.0.0.1:5000/team/multi:v1"
	)
	if err := s.Tag(ctx, a.manifest, alpine); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, idx, multi); err != nil {
		t.Fatal(err)
	}

	got, err := s.Resolve(ctx, alpine)
	if err != nil || got.Digest != a.manifest.Digest || got.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("Resolve(%s) = %v, %v", alpine, got, err)
	}
	if got.Annotations[ocispec.AnnotationRefName] != alpine || got.Annotations[AnnotationImageName] != alpine {
		t.Fatalf("annotations = %v", got.Annotations)
	}

	// Retagging moves the name.
	if err := s.Tag(ctx, b.manifest, alpine); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve(ctx, alpine); got.Digest != b.manifest.Digest {
		t.Fatalf("after retag Resolve = %s, want %s", got.Digest, b.manifest.Digest)
	}
	// The image it left, with no other name, stays without one.
	entries, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("List = %v, want 3 entries", entries)
	}
	want := map[string]digest.Digest{alpine: b.manifest.Digest, multi: idx.Digest, "": a.manifest.Digest}
	for _, e := range entries {
		if want[e.Name] != e.Descriptor.Digest {
			t.Errorf("entry %q -> %s, want %s", e.Name, e.Descriptor.Digest, want[e.Name])
		}
		if e.Name == "" && len(e.Descriptor.Annotations) != 0 {
			t.Errorf("unnamed entry keeps annotations %v", e.Descriptor.Annotations)
		}
	}

	// Digests resolve, tagged or not, with their media type.
	for _, tc := range []struct {
		name string
		d    digest.Digest
		mt   string
	}{
		{"tagged index", idx.Digest, ocispec.MediaTypeImageIndex},
		{"untagged manifest", a.manifest.Digest, ocispec.MediaTypeImageManifest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Resolve(ctx, tc.d.String())
			if err != nil || got.Digest != tc.d || got.MediaType != tc.mt || got.Size <= 0 {
				t.Fatalf("Resolve(%s) = %+v, %v", tc.d, got, err)
			}
		})
	}

	if err := s.Untag(ctx, alpine); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, alpine); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Resolve after Untag: %v", err)
	}
	if err := s.Untag(ctx, alpine); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Untag: %v", err)
	}
	// Removing a name leaves nothing of an image that had no other.
	if entries, _ := s.List(ctx); len(entries) != 2 || entries[0].Name != multi || entries[1].Name != "" {
		t.Fatalf("List after Untag = %v", entries)
	}

	// A name given again to an unnamed image replaces its unnamed entry;
	// a name moved from an image that keeps another leaves no unnamed one.
	if err := s.Tag(ctx, a.manifest, alpine); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, a.manifest, "example.com/a:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, b.manifest, alpine); err != nil {
		t.Fatal(err)
	}
	entries, _ = s.List(ctx)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if want := []string{"127.0.0.1:5000/team/multi:v1", "docker.io/library/alpine:3.20", "example.com/a:2"}; !slices.Equal(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}

	// Retagging to the same image changes nothing.
	if err := s.Tag(ctx, b.manifest, alpine); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.List(ctx); len(again) != len(entries) {
		t.Fatalf("List after a retag to the same image = %v", again)
	}

	// RemoveUnnamed drops only unnamed entries.
	if err := s.Untag(ctx, "example.com/a:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, b.manifest, "example.com/b:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUnnamed(ctx, b.manifest.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("RemoveUnnamed of a named image: %v", err)
	}
	if err := s.Tag(ctx, idx, alpine); err != nil { // b keeps example.com/b:1
		t.Fatal(err)
	}
	if err := s.Tag(ctx, a.manifest, "example.com/b:1"); err != nil { // b has no name left
		t.Fatal(err)
	}
	if err := s.RemoveUnnamed(ctx, b.manifest.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUnnamed(ctx, b.manifest.Digest); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second RemoveUnnamed: %v", err)
	}
	for _, e := range mustList(t, s) {
		if e.Descriptor.Digest == b.manifest.Digest {
			t.Errorf("entry %q of the removed image remains", e.Name)
		}
	}
}

func mustList(t *testing.T, s *Store) []Entry {
	t.Helper()
	entries, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestTagRefuses(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "a")
	missing := blobDesc(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`))
	wrongSize := img.manifest
	wrongSize.Size++
	tests := []struct {
		name string
		desc ocispec.Descriptor
		ref  string
		want error
	}{
		{"layer", img.layers[0], "example.com/a:1", errdefs.ErrInvalidArgument},
		{"config", img.config, "example.com/a:1", errdefs.ErrInvalidArgument},
		{"missing manifest", missing, "example.com/a:1", errdefs.ErrNotFound},
		{"wrong size", wrongSize, "example.com/a:1", errdefs.ErrInvalidArgument},
		{"empty name", img.manifest, "", errdefs.ErrInvalidArgument},
		{"space in name", img.manifest, "example.com/a b:1", errdefs.ErrInvalidArgument},
		{"newline in name", img.manifest, "example.com/a:1\n", errdefs.ErrInvalidArgument},
		{"digest as name", img.manifest, img.manifest.Digest.String(), errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Tag(ctx, tc.desc, tc.ref)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Tag: %v, want %v", err, tc.want)
			}
		})
	}
	if entries, _ := s.List(ctx); len(entries) != 0 {
		t.Fatalf("refused tags left entries %v", entries)
	}
	if _, err := s.Resolve(ctx, img.layers[0].Digest.String()); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Resolve of a layer digest: %v", err)
	}
	if _, err := s.Resolve(ctx, missing.Digest.String()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Resolve of a missing digest: %v", err)
	}
}

// TestForeignIndex reads an index.json written by another tool: bare tag
// ref.names and an unnamed entry.
func TestForeignIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "a")
	named := img.manifest
	named.Annotations = map[string]string{ocispec.AnnotationRefName: "latest"}
	idx := newIndex()
	idx.Manifests = []ocispec.Descriptor{named, img.manifest}
	data, _ := json.Marshal(idx)
	if err := os.WriteFile(s.path(indexFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resolve(ctx, "latest"); err != nil || got.Digest != img.manifest.Digest {
		t.Fatalf("Resolve(latest) = %v, %v", got, err)
	}
	entries, err := s.List(ctx)
	if err != nil || len(entries) != 2 || entries[0].Name != "latest" || entries[1].Name != "" {
		t.Fatalf("List = %v, %v", entries, err)
	}

	if err := os.WriteFile(s.path(indexFile), []byte(`{"schemaVersion":2,"manifests":[`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "index.json") {
		t.Fatalf("List of corrupt index.json: %v", err)
	}
	if err := s.Tag(ctx, img.manifest, "example.com/a:1"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Tag over corrupt index.json: %v", err)
	}
}
