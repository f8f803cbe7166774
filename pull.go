package dock

import (
	"context"
	"errors"
	"fmt"

	"github.com/dockkit/dock/internal/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pull fetches the image ref from its registry into the store, tags it with
// its normalized reference and, unless WithoutUnpack is given, unpacks its
// layers into snapshots as they arrive, so that the image is ready to run
// when Pull returns. Blobs already in the store are not fetched again.
//
// Cancelling ctx stops the pull; nothing half-written becomes visible.
func (h *Host) Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error) {
	var c pullConfig
	for _, o := range opts {
		if err := o.applyPull(&c); err != nil {
			return nil, err
		}
	}
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.Digest != "" {
		r.Tag = "" // the digest decides; the image is stored as name@digest, as docker does
	}
	img, err := h.pull(ctx, r, c)
	var re *registry.Error
	if errors.As(err, &re) {
		return nil, err // it names the operation and the image already
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r.Familiar(), err)
	}
	return img, nil
}

func (h *Host) pull(ctx context.Context, r Reference, c pullConfig) (*Image, error) {
	release, err := h.lockRoot(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()

	var u *unpacker
	if !c.noUnpack {
		u = h.newUnpacker(ctx, c.progress)
		defer u.abort()
	}
	reg := h.registryFor(r, c.registry)
	popts := registry.PullOptions{Platform: c.platform}
	if c.progress != nil {
		popts.Progress = func(e registry.Event) { c.progress(progressFrom(e)) }
	}
	if u != nil {
		popts.OnManifest = func(ctx context.Context, _ ocispec.Descriptor, m ocispec.Manifest) error {
			return u.start(m)
		}
		// A failed unpack stops the download too.
		popts.OnBlob = func(ctx context.Context, d ocispec.Descriptor) error {
			u.arrived(d)
			return u.failed()
		}
		popts.Stream = u.stream
	}
	desc, err := registry.Pull(ctx, reg.settings(), r.Path, r.object(), h.store, popts)
	if err != nil {
		return nil, err
	}
	if u != nil {
		if err := u.wait(); err != nil {
			return nil, err
		}
	}
	if err := h.store.Tag(ctx, desc, r.String()); err != nil {
		return nil, err
	}
	return h.loadImage(ctx, r.String(), desc)
}

func progressFrom(e registry.Event) Progress {
	p := Progress{Digest: e.Digest.String(), MediaType: e.MediaType, Done: e.Done, Total: e.Total}
	switch e.State {
	case registry.Waiting:
		p.State = ProgressWaiting
	case registry.Downloading, registry.Uploading:
		p.State = ProgressTransferring
	case registry.Exists:
		p.State = ProgressExists
	case registry.Mounted:
		p.State = ProgressMounted
	case registry.Done:
		p.State = ProgressDone
	}
	return p
}

// Push copies img to the registry as ref ("host:5000/name:tag"). Blobs the
// registry already holds are not sent; blobs held by another repository of
// the same registry are mounted from it when the registry allows.
func (h *Host) Push(ctx context.Context, img *Image, ref string, opts ...PushOption) error {
	var c pushConfig
	for _, o := range opts {
		if err := o.applyPush(&c); err != nil {
			return err
		}
	}
	r, err := ParseReference(ref)
	if err != nil {
		return err
	}
	if r.Tag == "" {
		return fmt.Errorf("push %s: a tag is needed: %w", ref, ErrInvalidArgument)
	}
	reg := h.registryFor(r, c.registry)
	popts := registry.PushOptions{}
	if c.progress != nil {
		popts.Progress = func(e registry.Event) { c.progress(progressFrom(e)) }
	}
	// Other repositories of the same registry that hold this image may lend
	// their blobs.
	if entries, err := h.store.List(ctx); err == nil {
		for _, e := range entries {
			if e.Descriptor.Digest != img.Digest || e.Name == r.String() {
				continue
			}
			if o, err := ParseReference(e.Name); err == nil && o.Domain == r.Domain && o.Path != r.Path {
				popts.MountFrom = append(popts.MountFrom, o.Path)
			}
		}
	}
	if err := registry.Push(ctx, reg.settings(), h.store, img.manifest, r.Path, r.Tag, popts); err != nil {
		return fmt.Errorf("push %s: %w", r.Familiar(), err)
	}
	return nil
}
