package snapshots

import (
	"context"
	"os"
	"path/filepath"
)

// Native is a snapshotter for hosts without overlayfs: Prepare copies the
// parent's whole tree (cloning file extents where the filesystem can), and
// mounts are bind mounts. It costs disk and time per snapshot but needs
// nothing from the kernel beyond bind mounts.
type Native struct {
	*engine
}

var _ Snapshotter = (*Native)(nil)

// NewNative opens, or makes, a native snapshotter at root and removes what a
// crash left there.
func NewNative(root string) (*Native, error) {
	e, err := newEngine("native", root, nativeDriver{})
	if err != nil {
		return nil, err
	}
	return &Native{e}, nil
}

type nativeDriver struct{}

func (nativeDriver) populate(ctx context.Context, dir string, kind Kind, parents []string) error {
	fs := filepath.Join(dir, "fs")
	if kind == KindView || len(parents) == 0 {
		// A view shows its committed parent, which never changes, as is.
		return os.Mkdir(fs, 0o755)
	}
	if err := CopyTree(ctx, fs, filepath.Join(parents[0], "fs")); err != nil {
		return err
	}
	// The copy is durable before the record that makes it visible.
	return syncFS(fs)
}

func (nativeDriver) mounts(dir string, kind Kind, parents []string) ([]Mount, error) {
	src := filepath.Join(dir, "fs")
	mode := "rw"
	if kind == KindView {
		mode = "ro"
		if len(parents) > 0 {
			src = filepath.Join(parents[0], "fs")
		}
	}
	return []Mount{{Type: "bind", Source: src, Options: []string{"rbind", mode}}}, nil
}
