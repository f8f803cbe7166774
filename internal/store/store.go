// Package store keeps dock's local content: an OCI image layout directory
// (oci-layout, index.json, blobs/<alg>/<hex>) that skopeo, umoci and oras read
// as is.
//
// The store is safe for several processes at once. Blobs are streamed to a
// temp file under ingest/, verified against their descriptor, synced and
// renamed into blobs/, so a blob is either whole and verified or absent.
// index.json is rewritten by temp file and rename under an exclusive flock on
// index.lock. GC takes an exclusive flock on gc.lock that every [Store.Lease]
// holds shared, so content a caller has stored but not yet tagged survives.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/dockkit/dock/internal/atomicfile"
	"github.com/dockkit/dock/internal/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

const (
	blobsDir      = "blobs"
	ingestDir     = "ingest"
	indexFile     = "index.json"
	indexTemp     = "index.json.tmp"
	indexLockFile = "index.lock"
	gcLockFile    = "gc.lock"
)

// Store is an OCI image layout at a directory. Its methods may be called
// from several goroutines and several processes at once.
type Store struct {
	dir    string
	closed atomic.Bool
}

// Open opens the OCI layout at dir, creating it if absent. It reconciles what
// a crash left behind: ingest temp files no live process holds and a stray
// index.json temp file are removed. An existing layout with another
// imageLayoutVersion is refused.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	if err := s.init(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	ctx := context.Background()
	if err := s.cleanIngest(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	if err := s.cleanIndexTemp(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return s, nil
}

// Dir returns the layout's absolute directory.
func (s *Store) Dir() string { return s.dir }

// Close marks the store closed; later calls fail with errdefs.ErrWrongState.
// Leases taken before stay held until released.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return fmt.Errorf("store %s: closed: %w", s.dir, errdefs.ErrWrongState)
	}
	return nil
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// init creates the directories, oci-layout and an empty index.json if absent.
// The two files of a new layout are written at once and made durable by
// one sync of the directory: every first use of a root waits for these
// syncs.
func (s *Store) init() error {
	for _, d := range []string{s.dir, s.path(blobsDir), s.path(blobsDir, "sha256"), s.path(ingestDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var g errgroup.Group
	wrote := false
	layout, err := os.ReadFile(s.path(ocispec.ImageLayoutFile))
	switch {
	case err == nil:
		var l ocispec.ImageLayout
		if err := json.Unmarshal(layout, &l); err != nil {
			return fmt.Errorf("%s: %v: %w", ocispec.ImageLayoutFile, err, errdefs.ErrInvalidArgument)
		}
		if l.Version != ocispec.ImageLayoutVersion {
			return fmt.Errorf("%s: imageLayoutVersion %q, want %q: %w",
				ocispec.ImageLayoutFile, l.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotSupported)
		}
	case errors.Is(err, fs.ErrNotExist):
		wrote = true
		g.Go(func() error {
			data, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
			return atomicfile.Write(s.path(ocispec.ImageLayoutFile), data, 0o644, true)
		})
	default:
		return err
	}
	if _, err := os.Stat(s.path(indexFile)); errors.Is(err, fs.ErrNotExist) {
		wrote = true
		g.Go(s.createIndex)
	} else if err != nil {
		g.Wait()
		return err
	}
	if err := g.Wait(); err != nil || !wrote {
		return err
	}
	return syncDir(s.dir)
}

// createIndex writes an empty index.json unless another process has
// written one meanwhile; the caller syncs the directory.
func (s *Store) createIndex() error {
	lock, err := openLock(context.Background(), s.path(indexLockFile), lockExclusive)
	if err != nil {
		return err
	}
	defer lock.Close()
	if _, err := os.Stat(s.path(indexFile)); err == nil {
		return nil
	}
	return s.writeIndexLocked(newIndex())
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// cleanIngest removes ingest temp files whose writer is gone. A live Push
// holds an exclusive flock on its temp file, and the kernel drops it when
// the process dies, so a file we can lock is a crash leftover.
func (s *Store) cleanIngest() error {
	dir := s.path(ingestDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			continue
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // finished meanwhile
		} else if err != nil {
			return err
		}
		ok, err := tryLockFile(f)
		if err == nil && ok {
			// Unlink while holding the lock: a Push that created the file
			// but has not locked it yet sees it vanish and starts over.
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				f.Close()
				return err
			}
			removed = true
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// cleanIndexTemp removes index.json.tmp left by a writer that died between
// writing it and renaming it.
func (s *Store) cleanIndexTemp(ctx context.Context) error {
	if _, err := os.Lstat(s.path(indexTemp)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	lock, err := openLock(ctx, s.path(indexLockFile), lockExclusive)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := os.Remove(s.path(indexTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
