package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sync"

	"github.com/dockkit/dock/internal/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationImageName is the annotation containerd and docker read an
// image's full name from; Tag sets it next to ocispec.AnnotationRefName.
const AnnotationImageName = "io.containerd.image.name"

// maxIndexJSONSize bounds index.json, which lists every tagged name.
const maxIndexJSONSize = 64 << 20

// refNameRE is the grammar of org.opencontainers.image.ref.name from the
// image-spec annotations: components of letters and digits joined by
// separators. It admits full references such as
// "docker.io/library/alpine:3.20" and "host:5000/a/b@sha256:...".
var refNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9]+(?:(?:[-._:@/+]|--)[A-Za-z0-9]+)*$`) })

// Entry is one tagged name in index.json and the descriptor it points to.
type Entry struct {
	Name       string
	Descriptor ocispec.Descriptor
}

// entryName returns the name an index.json descriptor carries: the full
// containerd name first, else the OCI ref.name (which other tools may set to
// a bare tag).
func entryName(d ocispec.Descriptor) string {
	if n := d.Annotations[AnnotationImageName]; n != "" {
		return n
	}
	return d.Annotations[ocispec.AnnotationRefName]
}

func hasName(d ocispec.Descriptor, ref string) bool {
	return d.Annotations[AnnotationImageName] == ref || d.Annotations[ocispec.AnnotationRefName] == ref
}

// readIndexFile reads and decodes index.json; no lock is needed as writers
// replace it by rename.
func (s *Store) readIndexFile() (ocispec.Index, error) {
	var idx ocispec.Index
	f, err := os.Open(s.path(indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newIndex(), nil
	} else if err != nil {
		return idx, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIndexJSONSize+1))
	if err != nil {
		return idx, fmt.Errorf("%s: %w", indexFile, err)
	}
	if len(data) > maxIndexJSONSize {
		return idx, fmt.Errorf("%s: larger than %d bytes: %w", indexFile, maxIndexJSONSize, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, fmt.Errorf("%s: %v: %w", indexFile, err, errdefs.ErrInvalidArgument)
	}
	if idx.SchemaVersion != 2 {
		return idx, fmt.Errorf("%s: schemaVersion %d: %w", indexFile, idx.SchemaVersion, errdefs.ErrNotSupported)
	}
	return idx, nil
}

func newIndex() ocispec.Index {
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
}

// updateIndex runs fn on index.json under the exclusive index lock and, if fn
// reports a change, writes the result by temp file, fsync, rename and a
// sync of the layout directory.
func (s *Store) updateIndex(ctx context.Context, fn func(*ocispec.Index) (bool, error)) error {
	lock, err := openLock(ctx, s.path(indexLockFile), lockExclusive)
	if err != nil {
		return err
	}
	defer lock.Close()
	return s.updateIndexLocked(fn)
}

func (s *Store) updateIndexLocked(fn func(*ocispec.Index) (bool, error)) error {
	idx, err := s.readIndexFile()
	if err != nil {
		return err
	}
	changed, err := fn(&idx)
	if err != nil || !changed {
		return err
	}
	if err := s.writeIndexLocked(idx); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// writeIndexLocked replaces index.json with idx by temp file, fsync and
// rename; making the rename durable is the caller's. The index lock must be
// held.
func (s *Store) writeIndexLocked(idx ocispec.Index) error {
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	// Only the lock holder writes index.json.tmp, so a fixed name is safe;
	// Open removes it when a writer died before the rename.
	tmp := s.path(indexTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", indexFile, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", indexFile, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", indexFile, err)
	}
	if err := os.Rename(tmp, s.path(indexFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", indexFile, err)
	}
	return nil
}

// Resolve returns the descriptor for ref: a name recorded by [Store.Tag]
// (or a ref.name another tool wrote), or a digest string "sha256:..." of a
// stored manifest or index. A digest that index.json lists resolves to that
// descriptor; otherwise the blob is read to learn its media type. Unknown
// refs wrap errdefs.ErrNotFound.
func (s *Store) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if err := s.check(); err != nil {
		return ocispec.Descriptor{}, err
	}
	if ref == "" {
		return ocispec.Descriptor{}, fmt.Errorf("resolve: empty reference: %w", errdefs.ErrInvalidArgument)
	}
	idx, err := s.readIndexFile()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if d, err := digest.Parse(ref); err == nil {
		for _, m := range idx.Manifests {
			if m.Digest == d {
				return m, nil
			}
		}
		desc, err := s.describe(ctx, d)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
		}
		return desc, nil
	}
	// The last entry wins should a foreign tool have written a name twice.
	for i := len(idx.Manifests) - 1; i >= 0; i-- {
		if hasName(idx.Manifests[i], ref) {
			return idx.Manifests[i], nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("reference %q: %w", ref, errdefs.ErrNotFound)
}

// describe builds a descriptor for a stored manifest or index by reading it.
func (s *Store) describe(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	size, err := s.Info(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if size > MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("blob %s: %d bytes, larger than any manifest: %w", d, size, errdefs.ErrInvalidArgument)
	}
	desc := ocispec.Descriptor{Digest: d, Size: size}
	data, err := s.readBlob(ctx, desc, MaxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mt, err := sniffMediaType(data)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("blob %s: %w", d, err)
	}
	desc.MediaType = mt
	return desc, nil
}

// Tag records ref as a name for desc in index.json, with the annotations
// org.opencontainers.image.ref.name and io.containerd.image.name both set to
// ref; any entry that held the name before is dropped, so retagging moves
// the name. The image the name leaves stays, without a name, when it has no
// other (Docker's dangling image: listed, kept from collection, removed by
// [Store.RemoveUnnamed]); an unnamed entry of desc is dropped, as desc now
// has a name. desc must be a stored manifest or index of the size it states.
func (s *Store) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	if err := s.check(); err != nil {
		return err
	}
	if !refNameRE().MatchString(ref) {
		return fmt.Errorf("tag %q: not a valid reference name: %w", ref, errdefs.ErrInvalidArgument)
	}
	if _, err := digest.Parse(ref); err == nil {
		return fmt.Errorf("tag %q: a digest cannot be a name: %w", ref, errdefs.ErrInvalidArgument)
	}
	if !IsManifestType(desc.MediaType) && !IsIndexType(desc.MediaType) {
		return fmt.Errorf("tag %q: blob %s: media type %q is not a manifest or index: %w",
			ref, desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	size, err := s.Info(ctx, desc.Digest)
	if err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	if size != desc.Size {
		return fmt.Errorf("tag %q: blob %s: stored size %d, descriptor says %d: %w",
			ref, desc.Digest, size, desc.Size, errdefs.ErrInvalidArgument)
	}
	entry := desc
	entry.Annotations = make(map[string]string, len(desc.Annotations)+2)
	for k, v := range desc.Annotations {
		entry.Annotations[k] = v
	}
	entry.Annotations[ocispec.AnnotationRefName] = ref
	entry.Annotations[AnnotationImageName] = ref
	err = s.updateIndex(ctx, func(idx *ocispec.Index) (bool, error) {
		var left []ocispec.Descriptor // entries the name leaves
		kept := make([]ocispec.Descriptor, 0, len(idx.Manifests)+1)
		for _, m := range idx.Manifests {
			switch {
			case hasName(m, ref):
				if m.Digest != desc.Digest {
					left = append(left, m)
				}
			case m.Digest == desc.Digest && entryName(m) == "":
			default:
				kept = append(kept, m)
			}
		}
		kept = append(kept, entry)
		for _, m := range left {
			if !slices.ContainsFunc(kept, func(k ocispec.Descriptor) bool { return k.Digest == m.Digest }) {
				kept = append(kept, unnamed(m))
			}
		}
		idx.Manifests = kept
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	return nil
}

// unnamed returns d without the annotations that name it.
func unnamed(d ocispec.Descriptor) ocispec.Descriptor {
	var ann map[string]string
	for k, v := range d.Annotations {
		if k == ocispec.AnnotationRefName || k == AnnotationImageName {
			continue
		}
		if ann == nil {
			ann = map[string]string{}
		}
		ann[k] = v
	}
	d.Annotations = ann
	return d
}

// RemoveUnnamed removes from index.json, in one update, the entries of ds
// that carry no name; the content stays until [Store.GC]. When there are
// none it wraps errdefs.ErrNotFound.
func (s *Store) RemoveUnnamed(ctx context.Context, ds ...digest.Digest) error {
	err := s.removeEntries(ctx, func(m ocispec.Descriptor) bool { return entryName(m) == "" && slices.Contains(ds, m.Digest) })
	if err != nil {
		return fmt.Errorf("remove: unnamed images %v: %w", ds, err)
	}
	return nil
}

// Untag removes the name ref from index.json; the content stays until
// [Store.GC]. An unknown name wraps errdefs.ErrNotFound.
func (s *Store) Untag(ctx context.Context, ref string) error {
	err := s.removeEntries(ctx, func(m ocispec.Descriptor) bool { return hasName(m, ref) })
	if err != nil {
		return fmt.Errorf("untag: reference %q: %w", ref, err)
	}
	return nil
}

// removeEntries removes the entries of index.json that drop selects, and
// fails with errdefs.ErrNotFound when it selects none.
func (s *Store) removeEntries(ctx context.Context, drop func(ocispec.Descriptor) bool) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.updateIndex(ctx, func(idx *ocispec.Index) (bool, error) {
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if !drop(m) {
				kept = append(kept, m)
			}
		}
		if len(kept) == len(idx.Manifests) {
			return false, errdefs.ErrNotFound
		}
		idx.Manifests = kept
		return true, nil
	})
}

// List returns the entries of index.json in file order. Entries another tool
// wrote without a name have an empty Name.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	idx, err := s.readIndexFile()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := make([]Entry, 0, len(idx.Manifests))
	for _, m := range idx.Manifests {
		out = append(out, Entry{Name: entryName(m), Descriptor: m})
	}
	return out, nil
}
