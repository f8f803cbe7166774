package registry

import (
	"context"
	"errors"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
)

// PushOptions configures Push.
type PushOptions struct {
	// Progress receives events from several goroutines at once; bytes are
	// reported as they stream.
	Progress func(Event)
	// Concurrency is how many blobs upload at once; 0 means 4.
	Concurrency int
	// MountFrom names repositories of the same registry that may hold the
	// blobs already; each blob is mounted from the first that has it
	// instead of being uploaded.
	MountFrom []string
}

// Push copies the graph rooted at desc (a manifest or an index) from src to
// repo, blobs first, and tags it with tag; an empty tag pushes by digest
// only. Blobs the registry already has are not uploaded.
func Push(ctx context.Context, cfg Config, src Target, desc ocispec.Descriptor, repo, tag string, opts PushOptions) error {
	return cfg.wrap("push", repo, push(ctx, cfg, src, desc, repo, tag, opts))
}

func push(ctx context.Context, cfg Config, src Target, desc ocispec.Descriptor, repo, tag string, opts PushOptions) error {
	s, err := newSession(cfg)
	if err != nil {
		return err
	}
	defer s.close()
	r, err := s.repository(repo)
	if err != nil {
		return err
	}
	progress := progressFunc(opts.Progress)
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	var mountFrom []string
	for _, m := range opts.MountFrom {
		if m != "" && cfg.repoName(m) != r.Reference.Repository {
			mountFrom = append(mountFrom, cfg.repoName(m))
		}
	}
	graphOpts := oras.CopyGraphOptions{
		Concurrency: concurrency,
		PreCopy: func(ctx context.Context, d ocispec.Descriptor) error {
			progress.emit(d, Uploading, 0)
			return nil
		},
		PostCopy: func(ctx context.Context, d ocispec.Descriptor) error {
			progress.emit(d, Done, d.Size)
			return nil
		},
		OnCopySkipped: func(ctx context.Context, d ocispec.Descriptor) error {
			progress.emit(d, Exists, d.Size)
			return nil
		},
		OnMounted: func(ctx context.Context, d ocispec.Descriptor) error {
			progress.emit(d, Mounted, d.Size)
			return nil
		},
	}
	if len(mountFrom) > 0 {
		graphOpts.MountFrom = func(context.Context, ocispec.Descriptor) ([]string, error) {
			return mountFrom, nil
		}
	}
	// When the registry has the root, oras only writes the tag and reports
	// nothing; tell the caller what is already there.
	if ok, err := r.Exists(ctx, desc); err != nil {
		return err
	} else if ok {
		succ, err := content.Successors(ctx, src, desc)
		if err != nil {
			return err
		}
		for _, d := range succ {
			progress.emit(d, Exists, d.Size)
		}
		progress.emit(desc, Exists, desc.Size)
	}
	source := &pushSource{src: src, root: desc, progress: progress}
	if tag == "" {
		err = oras.CopyGraph(ctx, source, r, desc, graphOpts)
	} else {
		_, err = oras.Copy(ctx, source, desc.Digest.String(), r, tag, oras.CopyOptions{CopyGraphOptions: graphOpts})
	}
	return unwrapCopyError(err)
}

// pushSource reads from the local store, reporting bytes as they stream,
// and resolves any reference to the root being pushed.
type pushSource struct {
	src      Target
	root     ocispec.Descriptor
	progress progressFunc
}

var _ oras.ReadOnlyTarget = (*pushSource)(nil)
var _ content.ReadOnlyStorage = (*pushSource)(nil)

func (s *pushSource) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.src.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	return newStreamReader(ctx, rc, desc, false, Uploading, s.progress), nil
}

func (s *pushSource) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return s.src.Exists(ctx, desc)
}

func (s *pushSource) Resolve(context.Context, string) (ocispec.Descriptor, error) {
	return s.root, nil
}

// unwrapCopyError drops oras's CopyError wrapper, whose message only adds
// "failed to perform …", keeping the cause.
func unwrapCopyError(err error) error {
	var ce *oras.CopyError
	if errors.As(err, &ce) && ce.Err != nil {
		return ce.Err
	}
	return err
}
