package imagefmt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	dockerManifestFile = "manifest.json"
	dockerReposFile    = "repositories"
)

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// blobPathRE matches the content-addressed member names docker 25+ uses.
var blobPathRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^blobs/sha256/([a-f0-9]{64})$`) })

// loadDocker converts the images a docker-archive's manifest.json lists
// into OCI image manifests and stores them.
func (l *loader) loadDocker(ctx context.Context) ([]LoadedImage, error) {
	b, err := l.readMember(dockerManifestFile, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", dockerManifestFile, err, errdefs.ErrInvalidArgument)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: no images: %w", dockerManifestFile, errdefs.ErrInvalidArgument)
	}
	if len(entries) > maxDescriptors {
		return nil, fmt.Errorf("%s: %d images: %w", dockerManifestFile, len(entries), errdefs.ErrInvalidArgument)
	}
	layerDescs := map[string]ocispec.Descriptor{} // by member name, for layers shared by images
	var imgs []LoadedImage
	for i, e := range entries {
		desc, err := l.convertDocker(ctx, e, layerDescs)
		if err != nil {
			return nil, fmt.Errorf("%s: image %d: %w", dockerManifestFile, i, err)
		}
		if len(e.RepoTags) == 0 {
			imgs = append(imgs, LoadedImage{Desc: desc})
		}
		for _, t := range e.RepoTags {
			imgs = append(imgs, LoadedImage{Name: t, Desc: desc})
		}
	}
	return imgs, nil
}

func (l *loader) convertDocker(ctx context.Context, e dockerManifest, layerDescs map[string]ocispec.Descriptor) (ocispec.Descriptor, error) {
	cfgName, err := cleanName(e.Config)
	if err != nil || e.Config == "" {
		return ocispec.Descriptor{}, fmt.Errorf("config %q: bad name: %w", e.Config, errdefs.ErrInvalidArgument)
	}
	cfgBytes, err := l.readMember(cfgName, MaxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %v: %w", cfgName, err, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %d diff IDs for %d layers: %w", cfgName, len(cfg.RootFS.DiffIDs), len(e.Layers), errdefs.ErrInvalidArgument)
	}
	cfgDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(cfgBytes),
		Size:      int64(len(cfgBytes)),
	}
	if m := blobPathRE().FindStringSubmatch(cfgName); m != nil && m[1] != cfgDesc.Digest.Encoded() {
		return ocispec.Descriptor{}, fmt.Errorf("%s: content hashes to %s: %w", cfgName, cfgDesc.Digest, errdefs.ErrDigestMismatch)
	}
	layers := make([]ocispec.Descriptor, 0, len(e.Layers))
	for i, ln := range e.Layers {
		name, err := cleanName(ln)
		if err != nil || ln == "" {
			return ocispec.Descriptor{}, fmt.Errorf("layer %q: bad name: %w", ln, errdefs.ErrInvalidArgument)
		}
		d, ok := layerDescs[name]
		if !ok {
			if d, err = l.describeLayer(name); err != nil {
				return ocispec.Descriptor{}, err
			}
			if d.MediaType == ocispec.MediaTypeImageLayer && d.Digest != cfg.RootFS.DiffIDs[i] {
				return ocispec.Descriptor{}, fmt.Errorf("%s: content hashes to %s, config's diff ID is %s: %w",
					name, d.Digest, cfg.RootFS.DiffIDs[i], errdefs.ErrDigestMismatch)
			}
			if err := l.pushMember(ctx, name, d); err != nil {
				return ocispec.Descriptor{}, err
			}
			layerDescs[name] = d
		}
		layers = append(layers, d)
	}
	if err := l.pushBytes(ctx, cfgDesc, cfgBytes); err != nil {
		return ocispec.Descriptor{}, err
	}
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    layers,
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := l.pushBytes(ctx, desc, mb); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// describeLayer works out a layer member's media type from its first bytes
// and its digest: from its name when content-addressed (Push verifies it),
// else by reading it once.
func (l *loader) describeLayer(name string) (ocispec.Descriptor, error) {
	rc, size, err := l.src.open(name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	var head [4]byte
	n, _ := io.ReadFull(rc, head[:])
	mt := ocispec.MediaTypeImageLayer
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		mt = ocispec.MediaTypeImageLayerGzip
	case n == 4 && bytes.Equal(head[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		mt = ocispec.MediaTypeImageLayerZstd
	}
	d := ocispec.Descriptor{MediaType: mt, Size: size}
	if m := blobPathRE().FindStringSubmatch(name); m != nil {
		d.Digest = digest.NewDigestFromEncoded(digest.SHA256, m[1])
		return d, nil
	}
	dg := digest.SHA256.Digester()
	dg.Hash().Write(head[:n])
	if _, err := io.Copy(dg.Hash(), rc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", name, err)
	}
	d.Digest = dg.Digest()
	return d, nil
}
