package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Lease holds a shared lock on the store that [Store.GC] waits for. A pull
// takes one before storing its first blob and releases it after Tag, so GC
// in any process cannot sweep blobs that nothing names yet. release is
// idempotent. A GC called while the same program holds a lease waits until
// the lease is released or its ctx ends.
func (s *Store) Lease(ctx context.Context) (release func(), err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	f, err := openLock(ctx, s.path(gcLockFile), lockShared)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// GC removes every blob that neither index.json nor keep reaches, and
// returns the removed digests. Reaching walks indexes to their manifests and
// manifests to their config and layers; blobs an index lists but the store
// lacks (other platforms) are skipped; media types are not trusted for
// this, so a mislabelled manifest keeps its blobs. GC first waits for every lease to be
// released, and holds the index lock throughout, so Tag waits for it too.
// A manifest or index that is not JSON, or whose stored bytes no longer match
// their digest, stops GC with an error rather than risk removing what it
// refers to.
func (s *Store) GC(ctx context.Context, keep []digest.Digest) ([]digest.Digest, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	for _, d := range keep {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("gc: keep %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
		}
	}
	gcLock, err := openLock(ctx, s.path(gcLockFile), lockExclusive)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer gcLock.Close()
	idxLock, err := openLock(ctx, s.path(indexLockFile), lockExclusive)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer idxLock.Close()

	marked, err := s.mark(ctx, keep)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	removed, err := s.sweep(ctx, marked)
	if err != nil {
		return removed, fmt.Errorf("gc: %w", err)
	}
	if err := s.cleanIngest(); err != nil {
		return removed, fmt.Errorf("gc: %w", err)
	}
	return removed, nil
}

// refs holds the fields of a manifest or index that name other blobs. GC
// decodes leniently, ignoring media types, since keeping too much is safe
// and removing too much is not.
type refs struct {
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests []ocispec.Descriptor `json:"manifests"`
}

func (s *Store) mark(ctx context.Context, keep []digest.Digest) (map[digest.Digest]bool, error) {
	idx, err := s.readIndexFile()
	if err != nil {
		return nil, err
	}
	marked := make(map[digest.Digest]bool)
	var walk func(desc ocispec.Descriptor) error
	walk = func(desc ocispec.Descriptor) error {
		if desc.Digest.Validate() != nil || marked[desc.Digest] {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		size, err := s.Info(ctx, desc.Digest)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil // an index may list platforms never pulled
		} else if err != nil {
			return err
		}
		marked[desc.Digest] = true
		known := IsManifestType(desc.MediaType) || IsIndexType(desc.MediaType)
		if (!known && desc.MediaType != "") || size > MaxManifestSize {
			return nil // a leaf
		}
		data, err := s.readBlob(ctx, ocispec.Descriptor{Digest: desc.Digest, Size: size}, MaxManifestSize)
		if err != nil {
			return err
		}
		var r refs
		if err := json.Unmarshal(data, &r); err != nil {
			if !known {
				return nil // kept by digest; not a manifest
			}
			return fmt.Errorf("blob %s: decode %s: %v: %w", desc.Digest, desc.MediaType, err, errdefs.ErrInvalidArgument)
		}
		if r.Config != nil && r.Config.Digest.Validate() == nil {
			marked[r.Config.Digest] = true
		}
		for _, l := range r.Layers {
			if l.Digest.Validate() == nil {
				marked[l.Digest] = true
			}
		}
		for _, m := range r.Manifests {
			if err := walk(m); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range idx.Manifests {
		if err := walk(m); err != nil {
			return nil, err
		}
	}
	for _, d := range keep {
		if err := walk(ocispec.Descriptor{Digest: d}); err != nil {
			return nil, err
		}
	}
	return marked, nil
}

func (s *Store) sweep(ctx context.Context, marked map[digest.Digest]bool) ([]digest.Digest, error) {
	var removed []digest.Digest
	algs, err := os.ReadDir(s.path(blobsDir))
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue // not ours to judge
		}
		dir := s.path(blobsDir, a.Name())
		blobs, err := os.ReadDir(dir)
		if err != nil {
			return removed, err
		}
		n := 0
		for _, b := range blobs {
			if err := ctx.Err(); err != nil {
				return removed, err
			}
			d := digest.NewDigestFromEncoded(alg, b.Name())
			if d.Validate() != nil || marked[d] {
				continue
			}
			if err := os.Remove(filepath.Join(dir, b.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("blob %s: %w", d, err)
			}
			removed = append(removed, d)
			n++
		}
		if n > 0 {
			if err := syncDir(dir); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
}
