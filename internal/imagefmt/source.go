package imagefmt

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/klauspost/compress/zstd"
)

// source gives random access to the members of an archive by their cleaned,
// slash-separated relative names.
type source interface {
	// open returns the content and size of the regular file name; a name
	// absent from the archive wraps errdefs.ErrNotFound.
	open(name string) (io.ReadCloser, int64, error)
	// has reports whether name is a regular file in the archive.
	has(name string) bool
	Close() error
}

// openSource opens path as an OCI layout directory or as a tar archive,
// decompressing a gzip or zstd compressed tar into a temporary file first.
func openSource(path string) (source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		root, err := os.OpenRoot(path)
		if err != nil {
			return nil, err
		}
		return &dirSource{root: root}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	var dec io.Reader
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %v: %w", path, err, errdefs.ErrInvalidArgument)
		}
		dec = zr
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bufio.NewReader(f), zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, err
		}
		defer zr.Close()
		dec = zr
	}
	tmpPath := ""
	if dec != nil {
		tmp, err := os.CreateTemp("", "dock-load-*.tar")
		if err != nil {
			f.Close()
			return nil, err
		}
		tmpPath = tmp.Name()
		_, err = io.Copy(tmp, io.LimitReader(dec, MaxArchiveSize+1))
		f.Close()
		if err == nil {
			var st os.FileInfo
			if st, err = tmp.Stat(); err == nil && st.Size() > MaxArchiveSize {
				err = fmt.Errorf("decompressed archive larger than %d bytes: %w", int64(MaxArchiveSize), errdefs.ErrInvalidArgument)
			}
		}
		if err != nil {
			tmp.Close()
			os.Remove(tmpPath)
			return nil, fmt.Errorf("%s: decompress: %w", path, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			tmp.Close()
			os.Remove(tmpPath)
			return nil, err
		}
		f = tmp
	}
	ts, err := indexTar(f)
	if err != nil {
		f.Close()
		if tmpPath != "" {
			os.Remove(tmpPath)
		}
		return nil, err
	}
	ts.tmp = tmpPath
	return ts, nil
}

// dirSource reads an OCI layout directory through an os.Root, so no name
// or symlink in it reaches outside the directory.
type dirSource struct{ root *os.Root }

func (d *dirSource) open(name string) (io.ReadCloser, int64, error) {
	f, err := d.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%s: %w", name, errdefs.ErrNotFound)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	return f, fi.Size(), nil
}

func (d *dirSource) has(name string) bool {
	fi, err := d.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (d *dirSource) Close() error { return d.root.Close() }

// member is where a tar member's data lies in the archive file.
type member struct {
	typ    byte
	offset int64
	size   int64
	link   string // cleaned target for symlinks and hard links
}

// tarSource is a tar file whose members were located by one pass over the
// headers; members are then read in place, never loaded whole.
type tarSource struct {
	f       *os.File
	members map[string]member
	tmp     string // temporary decompressed copy to remove on Close
}

// indexTar records the offset of every member of the tar in f. Member
// names are untrusted: absolute names and names with ".." are rejected.
func indexTar(f *os.File) (*tarSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ts := &tarSource{f: f, members: map[string]member{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tar after %d entries: %v: %w", len(ts.members), err, errdefs.ErrInvalidArgument)
		}
		if len(ts.members) >= MaxEntries {
			return nil, fmt.Errorf("tar: more than %d entries: %w", MaxEntries, errdefs.ErrInvalidArgument)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if name == "." {
			continue
		}
		m := member{typ: hdr.Typeflag}
		switch hdr.Typeflag {
		case tar.TypeReg, '\x00':
			m.typ = tar.TypeReg
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					return nil, fmt.Errorf("tar entry %q: sparse files are not supported: %w", hdr.Name, errdefs.ErrInvalidArgument)
				}
			}
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			if hdr.Size < 0 || off+hdr.Size > fi.Size() {
				return nil, fmt.Errorf("tar entry %q: size %d runs past the end of the archive: %w", hdr.Name, hdr.Size, errdefs.ErrInvalidArgument)
			}
			m.offset, m.size = off, hdr.Size
		case tar.TypeDir:
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			if m.link, err = cleanName(target); err != nil {
				return nil, fmt.Errorf("tar entry %q: link target %q: %w", hdr.Name, hdr.Linkname, err)
			}
		case tar.TypeLink:
			if m.link, err = cleanName(hdr.Linkname); err != nil {
				return nil, fmt.Errorf("tar entry %q: link target %q: %w", hdr.Name, hdr.Linkname, err)
			}
		default:
			return nil, fmt.Errorf("tar entry %q: unexpected type %q: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
		}
		if old, dup := ts.members[name]; dup && (old.typ != tar.TypeDir || m.typ != tar.TypeDir) {
			return nil, fmt.Errorf("tar entry %q: appears twice: %w", hdr.Name, errdefs.ErrInvalidArgument)
		}
		ts.members[name] = m
	}
	return ts, nil
}

// cleanName turns an archive member name into a clean relative path,
// refusing absolute paths and any ".." element.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute name: %w", errdefs.ErrInvalidArgument)
	}
	if strings.ContainsAny(name, "\x00\\") {
		return "", fmt.Errorf("bad character in name: %w", errdefs.ErrInvalidArgument)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("name contains \"..\": %w", errdefs.ErrInvalidArgument)
		}
	}
	return path.Clean(name), nil
}

// resolve follows symlinks and hard links (at most 8) to a regular member.
func (t *tarSource) resolve(name string) (member, error) {
	for range 8 {
		m, ok := t.members[name]
		if !ok {
			return member{}, fmt.Errorf("%s: %w", name, errdefs.ErrNotFound)
		}
		switch m.typ {
		case tar.TypeReg:
			return m, nil
		case tar.TypeSymlink, tar.TypeLink:
			name = m.link
		default:
			return member{}, fmt.Errorf("%s: not a regular file: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return member{}, fmt.Errorf("%s: too many links: %w", name, errdefs.ErrInvalidArgument)
}

func (t *tarSource) open(name string) (io.ReadCloser, int64, error) {
	m, err := t.resolve(name)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(io.NewSectionReader(t.f, m.offset, m.size)), m.size, nil
}

func (t *tarSource) has(name string) bool {
	_, err := t.resolve(name)
	return err == nil
}

func (t *tarSource) Close() error {
	err := t.f.Close()
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
	return err
}
