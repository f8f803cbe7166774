package registry

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
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
	concurrency := opts.Concurrency
	if concurrency <= 0 {
		concurrency = defaultConcurrency
	}
	// The first failure stops the rest and is what Push reports: a node
	// stopped by it must not report its own cancellation instead.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pusher{src: src, dst: r, progress: progressFunc(opts.Progress), slots: make(chan struct{}, concurrency), nodes: map[digest.Digest]*pushedNode{}, fail: cancel}
	for _, m := range opts.MountFrom {
		if m != "" && cfg.repoName(m) != r.Reference.Repository {
			p.mountFrom = append(p.mountFrom, cfg.repoName(m))
		}
	}
	ok, err := r.Exists(ctx, desc)
	if err != nil {
		return err
	}
	if !ok {
		if err := p.manifest(ctx, desc, tag); err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return err
		}
		return nil
	}
	// The registry has the image: only the tag is left to write. Tell the
	// caller what is already there.
	succ, err := content.Successors(ctx, src, desc)
	if err != nil {
		return err
	}
	for _, d := range succ {
		p.progress.emit(d, Exists, d.Size)
	}
	p.progress.emit(desc, Exists, desc.Size)
	if tag == "" {
		return nil
	}
	// The tag is the manifest sent again under it; the registry keeps one
	// copy.
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	return r.PushReference(ctx, desc, rc, tag)
}

// pusher copies a graph of content from a local store to a repository:
// what the repository lacks, each node after every node it names, so that
// the registry never holds a manifest whose blobs are missing.
type pusher struct {
	src       Target
	dst       *remote.Repository
	progress  progressFunc
	mountFrom []string
	slots     chan struct{} // one per blob being checked or sent
	fail      context.CancelCauseFunc

	mu    sync.Mutex
	nodes map[digest.Digest]*pushedNode
}

// pushedNode is one node of the graph, copied once however many manifests
// name it (a layer shared by the images of an index).
type pushedNode struct {
	done chan struct{}
	err  error
}

// node copies d unless the repository has it, once per push.
func (p *pusher) node(ctx context.Context, d ocispec.Descriptor) error {
	p.mu.Lock()
	n, seen := p.nodes[d.Digest]
	if !seen {
		n = &pushedNode{done: make(chan struct{})}
		p.nodes[d.Digest] = n
	}
	p.mu.Unlock()
	if seen {
		select {
		case <-n.done:
			return n.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if isPushedManifest(d.MediaType) {
		n.err = p.childManifest(ctx, d)
	} else {
		n.err = p.blob(ctx, d)
	}
	if n.err != nil && ctx.Err() == nil {
		p.fail(n.err)
	}
	close(n.done)
	return n.err
}

// isPushedManifest reports whether a node of type mt goes to the
// registry's manifests, with what it names pushed before it.
func isPushedManifest(mt string) bool {
	return isIndex(mt) || isManifest(mt) || mt == artifactManifest
}

// artifactManifest is the media type of the OCI artifact manifest of
// image-spec 1.1's drafts, which registries still hold as a manifest.
const artifactManifest = "application/vnd.oci.artifact.manifest.v1+json"

// isForeignLayer reports whether a layer of type mt is one that images
// name but registries are not to hold (Windows base layers): it is
// neither checked nor sent, as Docker does not push it.
func isForeignLayer(mt string) bool {
	switch mt {
	case "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
		return true
	}
	return false
}

// childManifest copies a manifest an index names, unless the repository
// has it (and so, what it names).
func (p *pusher) childManifest(ctx context.Context, d ocispec.Descriptor) error {
	if ok, err := p.present(ctx, d); err != nil || ok {
		return err
	}
	return p.manifest(ctx, d, "")
}

// present reports whether the repository has d, telling the caller when it
// does.
func (p *pusher) present(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	ok, err := p.dst.Exists(ctx, d)
	if ok && err == nil {
		p.progress.emit(d, Exists, d.Size)
	}
	return ok, err
}

// manifest copies what d names, all at once, then d itself, tagged with tag
// when it is not empty.
func (p *pusher) manifest(ctx context.Context, d ocispec.Descriptor, tag string) error {
	succ, err := content.Successors(ctx, p.src, d)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range succ {
		if isForeignLayer(c.MediaType) {
			continue
		}
		g.Go(func() error { return p.node(gctx, c) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return p.upload(ctx, d, tag)
}

// blob copies d unless the repository has it: mounted from the first of
// mountFrom that holds it, else uploaded.
func (p *pusher) blob(ctx context.Context, d ocispec.Descriptor) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	if ok, err := p.present(ctx, d); err != nil || ok {
		return err
	}
	for i, from := range p.mountFrom {
		// The registry answers a mount of a blob that from lacks by
		// asking for the bytes: the next repository is tried, and the
		// last one gets them.
		var asked bool
		last := i == len(p.mountFrom)-1
		err := p.dst.Mount(ctx, d, from, func() (io.ReadCloser, error) {
			asked = true
			if !last {
				return nil, errTryNextMount
			}
			return p.fetch(ctx, d)
		})
		if err != nil && !errors.Is(err, errTryNextMount) {
			return err
		}
		switch {
		case !asked:
			p.progress.emit(d, Mounted, d.Size)
			return nil
		case last:
			p.progress.emit(d, Done, d.Size)
			return nil
		}
	}
	return p.upload(ctx, d, "")
}

var errTryNextMount = errors.New("blob not in that repository")

// upload sends d's bytes, under tag when it is not empty.
func (p *pusher) upload(ctx context.Context, d ocispec.Descriptor, tag string) error {
	rc, err := p.fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	if tag != "" {
		err = p.dst.PushReference(ctx, d, rc, tag)
	} else {
		err = p.dst.Push(ctx, d, rc)
	}
	if err != nil {
		return err
	}
	p.progress.emit(d, Done, d.Size)
	return nil
}

// fetch opens d in the local store, reporting its bytes as they are read.
func (p *pusher) fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	p.progress.emit(d, Uploading, 0)
	rc, err := p.src.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	return newStreamReader(ctx, rc, d, false, Uploading, p.progress), nil
}
