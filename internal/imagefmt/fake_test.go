package imagefmt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memStore is an in-memory Store that verifies what it is given, as the
// real store does.
type memStore struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	tags  map[string]ocispec.Descriptor
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{blobs: map[digest.Digest][]byte{}, tags: map[string]ocispec.Descriptor{}}
}

func (m *memStore) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[desc.Digest]
	return ok, nil
}

func (m *memStore) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	b, err := io.ReadAll(io.LimitReader(r, desc.Size+1))
	if err != nil {
		return err
	}
	if int64(len(b)) != desc.Size {
		return fmt.Errorf("blob %s: size %d, descriptor says %d: %w", desc.Digest, len(b), desc.Size, errdefs.ErrInvalidArgument)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return fmt.Errorf("blob %s: got %s: %w", desc.Digest, got, errdefs.ErrDigestMismatch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[desc.Digest] = b
	return nil
}

func (m *memStore) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[desc.Digest]; !ok {
		return fmt.Errorf("tag %s: blob %s: %w", ref, desc.Digest, errdefs.ErrNotFound)
	}
	m.tags[ref] = desc
	return nil
}

func (m *memStore) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.tags[ref]
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("reference %q: %w", ref, errdefs.ErrNotFound)
	}
	return d, nil
}
