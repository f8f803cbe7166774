package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dockkit/dock/internal/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker image media types, which registries still serve for most images
// next to the OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

const (
	// MaxManifestSize bounds a manifest or index; the distribution spec
	// lets registries refuse larger ones, and so do we.
	MaxManifestSize = 4 << 20
	// MaxConfigSize bounds an image config, whose history can be long.
	MaxConfigSize = 8 << 20
)

// IsManifestType reports whether mt names an image manifest (OCI or Docker
// schema2).
func IsManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// IsIndexType reports whether mt names an index of manifests (OCI index or
// Docker manifest list).
func IsIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsConfigType reports whether mt names an image config (OCI or Docker).
func IsConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == MediaTypeDockerConfig
}

// probe holds the fields that tell manifests and indexes apart; a document
// carrying the other kind's fields is refused, so one set of bytes cannot
// be read as both (the image-spec's media type confusion advisory).
type probe struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	Manifests     json.RawMessage `json:"manifests"`
}

func decodeProbe(data []byte) (probe, error) {
	var p probe
	if len(data) > MaxManifestSize {
		return p, fmt.Errorf("%d bytes, limit %d: %w", len(data), MaxManifestSize, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("decode: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.SchemaVersion == nil || *p.SchemaVersion != 2 {
		return p, fmt.Errorf("schemaVersion is not 2: %w", errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// sniffMediaType tells a manifest from an index by content, for a blob
// known only by digest.
func sniffMediaType(data []byte) (string, error) {
	p, err := decodeProbe(data)
	if err != nil {
		return "", err
	}
	switch {
	case p.MediaType != "":
		if !IsManifestType(p.MediaType) && !IsIndexType(p.MediaType) {
			return "", fmt.Errorf("media type %q is not a manifest or index: %w", p.MediaType, errdefs.ErrInvalidArgument)
		}
		return p.MediaType, nil
	case p.Manifests != nil && p.Config == nil && p.Layers == nil:
		return ocispec.MediaTypeImageIndex, nil
	case p.Config != nil && p.Manifests == nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("neither a manifest nor an index: %w", errdefs.ErrInvalidArgument)
}

// DecodeManifest decodes an image manifest whose descriptor says mediaType.
// It refuses documents over [MaxManifestSize], other media types, a
// mediaType field that disagrees with mediaType, index fields, and
// descriptors with malformed digests or negative sizes.
func DecodeManifest(data []byte, mediaType string) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if !IsManifestType(mediaType) {
		return m, fmt.Errorf("media type %q is not a manifest: %w", mediaType, errdefs.ErrInvalidArgument)
	}
	p, err := decodeProbe(data)
	if err != nil {
		return m, err
	}
	if p.MediaType != "" && p.MediaType != mediaType {
		return m, fmt.Errorf("mediaType %q in content, descriptor says %q: %w", p.MediaType, mediaType, errdefs.ErrInvalidArgument)
	}
	if p.Manifests != nil {
		return m, fmt.Errorf("manifest has a manifests field: %w", errdefs.ErrInvalidArgument)
	}
	if p.Config == nil {
		return m, fmt.Errorf("manifest has no config: %w", errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if err := checkDescriptor("config", m.Config); err != nil {
		return m, err
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(fmt.Sprintf("layer %d", i), l); err != nil {
			return m, err
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor("subject", *m.Subject); err != nil {
			return m, err
		}
	}
	return m, nil
}

// DecodeIndex decodes an OCI index or Docker manifest list whose descriptor
// says mediaType, with the same checks as [DecodeManifest].
func DecodeIndex(data []byte, mediaType string) (ocispec.Index, error) {
	var idx ocispec.Index
	if !IsIndexType(mediaType) {
		return idx, fmt.Errorf("media type %q is not an index: %w", mediaType, errdefs.ErrInvalidArgument)
	}
	p, err := decodeProbe(data)
	if err != nil {
		return idx, err
	}
	if p.MediaType != "" && p.MediaType != mediaType {
		return idx, fmt.Errorf("mediaType %q in content, descriptor says %q: %w", p.MediaType, mediaType, errdefs.ErrInvalidArgument)
	}
	if p.Config != nil || p.Layers != nil {
		return idx, fmt.Errorf("index has config or layers fields: %w", errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, fmt.Errorf("decode index: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	for i, m := range idx.Manifests {
		if err := checkDescriptor(fmt.Sprintf("manifest %d", i), m); err != nil {
			return idx, err
		}
	}
	if idx.Subject != nil {
		if err := checkDescriptor("subject", *idx.Subject); err != nil {
			return idx, err
		}
	}
	return idx, nil
}

func checkDescriptor(what string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: digest %q: %v: %w", what, d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s %s: negative size %d: %w", what, d.Digest, d.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readBlob reads a whole blob of at most limit bytes and verifies its digest
// again, so that on-disk corruption is caught before parsing.
func (s *Store) readBlob(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes, limit %d: %w", desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	rc, err := s.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, desc.Size+1))
	if _, err := io.Copy(buf, io.LimitReader(rc, desc.Size+1)); err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	data := buf.Bytes()
	if int64(len(data)) != desc.Size {
		return nil, fmt.Errorf("blob %s: read %d bytes, descriptor says %d: %w", desc.Digest, len(data), desc.Size, errdefs.ErrInvalidArgument)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("blob %s: stored content hashes to %s: %w", desc.Digest, got, errdefs.ErrDigestMismatch)
	}
	return data, nil
}

// ReadManifest reads and decodes the stored manifest desc names; see
// [DecodeManifest] for what it refuses.
func (s *Store) ReadManifest(ctx context.Context, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	if !IsManifestType(desc.MediaType) {
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: media type %q is not a manifest: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	data, err := s.readBlob(ctx, desc, MaxManifestSize)
	if err != nil {
		return ocispec.Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	m, err := DecodeManifest(data, desc.MediaType)
	if err != nil {
		return m, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return m, nil
}

// ReadIndex reads and decodes the stored index or manifest list desc names.
func (s *Store) ReadIndex(ctx context.Context, desc ocispec.Descriptor) (ocispec.Index, error) {
	if !IsIndexType(desc.MediaType) {
		return ocispec.Index{}, fmt.Errorf("index %s: media type %q is not an index: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	data, err := s.readBlob(ctx, desc, MaxManifestSize)
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("index: %w", err)
	}
	idx, err := DecodeIndex(data, desc.MediaType)
	if err != nil {
		return idx, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	return idx, nil
}

// ReadConfig reads and decodes the stored image config desc names (OCI or
// Docker media type, at most [MaxConfigSize] bytes).
func (s *Store) ReadConfig(ctx context.Context, desc ocispec.Descriptor) (ocispec.Image, error) {
	var img ocispec.Image
	if !IsConfigType(desc.MediaType) {
		return img, fmt.Errorf("config %s: media type %q is not an image config: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	data, err := s.readBlob(ctx, desc, MaxConfigSize)
	if err != nil {
		return img, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(data, &img); err != nil {
		return img, fmt.Errorf("config %s: decode: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	return img, nil
}
