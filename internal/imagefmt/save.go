package imagefmt

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sink receives the files of a saved archive.
type sink interface {
	put(name string, size int64, r io.Reader) error
}

// tarSink writes files as members of a tar stream with a fixed mtime, so
// two saves of the same images give the same bytes.
type tarSink struct {
	tw   *tar.Writer
	dirs map[string]bool
}

var saveTime = time.Unix(0, 0).UTC()

func newTarSink(w io.Writer) *tarSink { return &tarSink{tw: tar.NewWriter(w), dirs: map[string]bool{}} }

func (t *tarSink) put(name string, size int64, r io.Reader) error {
	if dir := filepath.ToSlash(filepath.Dir(name)); dir != "." && !t.dirs[dir] {
		parts := strings.Split(dir, "/")
		for i := range parts {
			d := strings.Join(parts[:i+1], "/")
			if t.dirs[d] {
				continue
			}
			t.dirs[d] = true
			if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: saveTime, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
	}
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: saveTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(t.tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes, expected %d: %w", name, n, size, errdefs.ErrInvalidArgument)
	}
	return nil
}

// dirSink writes files into a directory, each through a temp file and a
// rename; a blob already present is kept.
type dirSink struct{ dir string }

func (d dirSink) put(name string, size int64, r io.Reader) error {
	p := filepath.Join(d.dir, filepath.FromSlash(name))
	if strings.HasPrefix(name, "blobs/") {
		if fi, err := os.Stat(p); err == nil && fi.Size() == size {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: %d bytes, expected %d: %w", name, n, size, errdefs.ErrInvalidArgument)
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// saver copies blobs from a store into a sink once each.
type saver struct {
	st      Store
	out     sink
	written map[digest.Digest]bool
}

func (s *saver) fetchBytes(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes, limit %d: %w", desc.Digest, desc.Size, limit, errdefs.ErrInvalidArgument)
	}
	rc, err := s.st.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(newVerifier(io.LimitReader(rc, desc.Size+1), desc))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return b, nil
}

// copyBlob writes the blob desc describes, verified, to blobs/<alg>/<hex>.
func (s *saver) copyBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if err := checkDesc(desc); err != nil {
		return err
	}
	if s.written[desc.Digest] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rc, err := s.st.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := s.out.put(blobName(desc.Digest), desc.Size, newVerifier(io.LimitReader(rc, desc.Size+1), desc)); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	s.written[desc.Digest] = true
	return nil
}

func (s *saver) putBytes(name string, b []byte) error {
	return s.out.put(name, int64(len(b)), bytes.NewReader(b))
}

// fillMediaType sets desc's media type from the blob's content when the
// caller left it empty (a descriptor built from a digest alone).
func (s *saver) fillMediaType(ctx context.Context, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	if desc.MediaType != "" {
		return desc, nil
	}
	b, err := s.fetchBytes(ctx, desc, MaxManifestSize)
	if err != nil {
		return desc, err
	}
	var p probe
	if err := json.Unmarshal(b, &p); err != nil {
		return desc, fmt.Errorf("blob %s: no media type and not JSON: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	switch {
	case p.MediaType != "":
		desc.MediaType = p.MediaType
	case p.Manifests != nil:
		desc.MediaType = ocispec.MediaTypeImageIndex
	case p.Config != nil:
		desc.MediaType = ocispec.MediaTypeImageManifest
	default:
		return desc, fmt.Errorf("blob %s: neither a manifest nor an index: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	return desc, nil
}

// copyTree writes desc and all it references. Manifests of an index that
// the store lacks (platforms never pulled) are left out, as containerd's
// export does; an index with none of them stored is an error.
func (s *saver) copyTree(ctx context.Context, desc ocispec.Descriptor, depth int) error {
	switch {
	case isManifest(desc.MediaType):
		b, err := s.fetchBytes(ctx, desc, MaxManifestSize)
		if err != nil {
			return err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		for _, c := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := s.copyBlob(ctx, c); err != nil {
				return fmt.Errorf("manifest %s: %w", desc.Digest, err)
			}
		}
	case isIndex(desc.MediaType):
		if depth >= maxDepth {
			return fmt.Errorf("index %s: nested deeper than %d: %w", desc.Digest, maxDepth, errdefs.ErrInvalidArgument)
		}
		b, err := s.fetchBytes(ctx, desc, MaxManifestSize)
		if err != nil {
			return err
		}
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		present := 0
		for _, c := range idx.Manifests {
			ok, err := s.st.Exists(ctx, c)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			present++
			if err := s.copyTree(ctx, c, depth+1); err != nil {
				return err
			}
		}
		if present == 0 && len(idx.Manifests) > 0 {
			return fmt.Errorf("index %s: none of its manifests is stored: %w", desc.Digest, errdefs.ErrNotFound)
		}
	}
	return s.copyBlob(ctx, desc)
}

func nameAnnotations(d ocispec.Descriptor, name string) ocispec.Descriptor {
	d = plainDesc(d)
	if name != "" {
		d.Annotations = map[string]string{
			AnnotationImageName:       name,
			ocispec.AnnotationRefName: name,
		}
	}
	return d
}

func (s *saver) writeLayout(ctx context.Context, images []NamedDesc, entries []ocispec.Descriptor) error {
	lay, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := s.putBytes(ocispec.ImageLayoutFile, lay); err != nil {
		return err
	}
	for _, img := range images {
		if err := s.copyTree(ctx, img.Desc, 0); err != nil {
			return fmt.Errorf("image %q: %w", img.Name, err)
		}
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: entries,
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return s.putBytes(ocispec.ImageIndexFile, b)
}

// SaveOCI writes images and all their content to w as a tar of an OCI
// image layout. Each named image's index.json entry carries its name in
// both io.containerd.image.name and org.opencontainers.image.ref.name.
func SaveOCI(ctx context.Context, st Store, w io.Writer, images []NamedDesc) error {
	ts := newTarSink(w)
	if err := saveOCI(ctx, st, ts, images); err != nil {
		return err
	}
	return ts.tw.Close()
}

// SaveOCIDir writes images into the directory dir (created if missing) as
// an OCI image layout, replacing its index.json.
func SaveOCIDir(ctx context.Context, st Store, dir string, images []NamedDesc) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return saveOCI(ctx, st, dirSink{dir: dir}, images)
}

func saveOCI(ctx context.Context, st Store, out sink, images []NamedDesc) error {
	if len(images) == 0 {
		return fmt.Errorf("save: no images: %w", errdefs.ErrInvalidArgument)
	}
	s := &saver{st: st, out: out, written: map[digest.Digest]bool{}}
	entries := make([]ocispec.Descriptor, 0, len(images))
	images = append([]NamedDesc(nil), images...)
	for i, img := range images {
		d, err := s.fillMediaType(ctx, img.Desc)
		if err != nil {
			return fmt.Errorf("save: image %q: %w", img.Name, err)
		}
		images[i].Desc = d
		entries = append(entries, nameAnnotations(d, img.Name))
	}
	if err := s.writeLayout(ctx, images, entries); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// SaveDocker writes images to w as a docker-archive tar that `docker load`
// (old and new) and skopeo's docker-archive transport read: manifest.json
// and repositories, with config and layers under blobs/sha256 as docker 25+
// lays them out, plus oci-layout and index.json so OCI readers (and Load)
// see the original manifests. Layers are written as stored (compressed).
// For an index, the manifest for the host's platform is saved, else the
// first one stored.
func SaveDocker(ctx context.Context, st Store, w io.Writer, images []NamedDesc) error {
	if len(images) == 0 {
		return fmt.Errorf("save: no images: %w", errdefs.ErrInvalidArgument)
	}
	ts := newTarSink(w)
	s := &saver{st: st, out: ts, written: map[digest.Digest]bool{}}
	var (
		entries   []ocispec.Descriptor
		manifests []dockerManifest
		byDigest  = map[digest.Digest]int{} // manifest digest -> index in manifests
		repos     = map[string]map[string]string{}
		selected  []NamedDesc
	)
	for _, img := range images {
		desc, err := s.fillMediaType(ctx, img.Desc)
		if err == nil {
			desc, err = s.pickManifest(ctx, desc, 0)
		}
		if err != nil {
			return fmt.Errorf("save: image %q: %w", img.Name, err)
		}
		selected = append(selected, NamedDesc{Name: img.Name, Desc: desc})
		entries = append(entries, nameAnnotations(desc, img.Name))
		b, err := s.fetchBytes(ctx, desc, MaxManifestSize)
		if err != nil {
			return fmt.Errorf("save: image %q: %w", img.Name, err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("save: image %q: manifest %s: %v: %w", img.Name, desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		i, ok := byDigest[desc.Digest]
		if !ok {
			dm := dockerManifest{Config: blobName(m.Config.Digest), RepoTags: []string{}}
			for _, l := range m.Layers {
				dm.Layers = append(dm.Layers, blobName(l.Digest))
			}
			manifests = append(manifests, dm)
			i = len(manifests) - 1
			byDigest[desc.Digest] = i
		}
		repo, tag, ok := splitTag(img.Name)
		if !ok {
			continue
		}
		manifests[i].RepoTags = append(manifests[i].RepoTags, img.Name)
		if len(m.Layers) > 0 {
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = m.Layers[len(m.Layers)-1].Digest.Encoded()
		}
	}
	if err := s.writeLayout(ctx, selected, entries); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	mb, err := json.Marshal(manifests)
	if err != nil {
		return err
	}
	if err := s.putBytes(dockerManifestFile, mb); err != nil {
		return err
	}
	if len(repos) > 0 {
		rb, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		if err := s.putBytes(dockerReposFile, rb); err != nil {
			return err
		}
	}
	return ts.tw.Close()
}

// pickManifest returns desc if it is a manifest, else the stored manifest
// of an index for the host platform (or the first stored one).
func (s *saver) pickManifest(ctx context.Context, desc ocispec.Descriptor, depth int) (ocispec.Descriptor, error) {
	if isManifest(desc.MediaType) {
		return plainDesc(desc), nil
	}
	if !isIndex(desc.MediaType) {
		return ocispec.Descriptor{}, fmt.Errorf("%s: media type %q is not an image: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if depth >= maxDepth {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: nested deeper than %d: %w", desc.Digest, maxDepth, errdefs.ErrInvalidArgument)
	}
	b, err := s.fetchBytes(ctx, desc, MaxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	var first *ocispec.Descriptor
	for _, c := range idx.Manifests {
		ok, err := s.st.Exists(ctx, c)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		if !ok {
			continue
		}
		if isIndex(c.MediaType) {
			return s.pickManifest(ctx, c, depth+1)
		}
		if !isManifest(c.MediaType) {
			continue
		}
		if c.Platform != nil && c.Platform.OS == "linux" && c.Platform.Architecture == runtime.GOARCH {
			return plainDesc(c), nil
		}
		if first == nil {
			c := c
			first = &c
		}
	}
	if first == nil {
		return ocispec.Descriptor{}, fmt.Errorf("index %s: no manifest stored: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return plainDesc(*first), nil
}

// splitTag splits "repo:tag" into its parts; names with a digest or
// without a tag are not docker RepoTags.
func splitTag(name string) (repo, tag string, ok bool) {
	if name == "" || strings.Contains(name, "@") {
		return "", "", false
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}
