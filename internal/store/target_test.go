package store

import (
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// target mirrors oras.Target (content.Storage plus content.TagResolver) so
// that a change of signature shows here; only internal/registry imports oras.
type target interface {
	Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error)
	Push(ctx context.Context, expected ocispec.Descriptor, content io.Reader) error
	Exists(ctx context.Context, target ocispec.Descriptor) (bool, error)
	Tag(ctx context.Context, desc ocispec.Descriptor, reference string) error
	Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error)
}

var _ target = (*Store)(nil)
