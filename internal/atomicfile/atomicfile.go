// Package atomicfile replaces files whole: a reader, or a program that
// opens the file after a crash, sees the old content or the new, never a
// part of either.
package atomicfile

import (
	"fmt"
	"os"
	"path"
)

// Write replaces the file name with data, through a temporary file in the same
// directory that is renamed over it. With durable set the file is synced
// before the rename; making the rename itself durable is SyncDir's, which
// callers that need it call once for all they renamed.
func Write(name string, data []byte, perm os.FileMode, durable bool) error {
	f, err := os.CreateTemp(path.Dir(name), "."+path.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// SyncDir makes the renames and removals made in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
