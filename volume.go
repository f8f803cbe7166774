package dock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// VolumeInfo describes a named volume.
type VolumeInfo struct {
	Name string
	// Mountpoint is the host directory containers see. A volume made by
	// CreateVolume has none until its first mount, which fills it from the
	// container's image, as Docker does with an empty volume.
	Mountpoint string
	Created    time.Time
	// Anonymous is set on a volume Create made for an image's VOLUME.
	Anonymous bool
}

// anonymousMark, in a volume's directory, marks it as made for an image's
// VOLUME; it holds the ID of the container it was made for.
const anonymousMark = "anonymous"

func (h *Host) volumesDir() string { return filepath.Join(h.root, "volumes") }

// Volumes lists the host's named volumes, by name.
func (h *Host) Volumes(ctx context.Context) ([]VolumeInfo, error) {
	ents, err := os.ReadDir(h.volumesDir())
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	var out []VolumeInfo
	for _, e := range ents {
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		v, err := h.volumeInfo(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("volumes: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Volume returns the named volume, or an error matching ErrNotFound.
func (h *Host) Volume(ctx context.Context, name string) (VolumeInfo, error) {
	if !validName(name) {
		return VolumeInfo{}, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	return h.volumeInfo(name)
}

func (h *Host) volumeInfo(name string) (VolumeInfo, error) {
	base := filepath.Join(h.volumesDir(), name)
	fi, err := os.Stat(base)
	if errors.Is(err, os.ErrNotExist) || err == nil && !fi.IsDir() {
		return VolumeInfo{}, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return VolumeInfo{}, err
	}
	// The lock file is made with the volume and never written, while the
	// directory's time moves when the volume is first filled.
	created := fi.ModTime()
	if li, err := os.Stat(filepath.Join(base, "lock")); err == nil {
		created = li.ModTime()
	}
	_, err = os.Lstat(filepath.Join(base, anonymousMark))
	return VolumeInfo{Name: name, Mountpoint: filepath.Join(base, "_data"), Created: created, Anonymous: err == nil}, nil
}

// CreateVolume makes an empty named volume, as docker volume create; an
// empty name gets a random one. A volume of that name that exists already
// is returned as it is.
func (h *Host) CreateVolume(ctx context.Context, name string) (VolumeInfo, error) {
	if name == "" {
		name = newID()
	}
	if !validName(name) {
		return VolumeInfo{}, fmt.Errorf("create volume: name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-]*: %w", name, ErrInvalidArgument)
	}
	unlock, err := h.lockVolume(ctx, name)
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	defer unlock()
	return h.volumeInfo(name)
}

// lockVolume makes the named volume's directory if it is absent and takes
// the volume's lock. A remove moves the directory aside, lock file and
// all: a lock won on the moved file fails to reopen it at its path, and
// the volume is made again.
func (h *Host) lockVolume(ctx context.Context, name string) (func(), error) {
	base := filepath.Join(h.volumesDir(), name)
	for {
		if err := os.MkdirAll(base, 0o710); err != nil {
			return nil, err
		}
		unlock, err := lockPath(ctx, filepath.Join(base, "lock"), true)
		if !errors.Is(err, os.ErrNotExist) {
			return unlock, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// RemoveVolume removes the named volume and all it holds. It refuses, with
// ErrWrongState, a volume that a container references, running or not;
// remove the container first. With force a missing volume is no error, as
// with docker volume rm -f. It waits for creates, pulls and loads in
// progress, as image removal does.
func (h *Host) RemoveVolume(ctx context.Context, name string, force bool) error {
	err := h.removeVolume(ctx, name)
	if force && errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

func (h *Host) removeVolume(ctx context.Context, name string) error {
	if !validName(name) {
		return ErrNotFound
	}
	// Spare the wait for the lease when there is nothing to remove.
	if _, err := os.Lstat(filepath.Join(h.volumesDir(), name)); errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	release, err := h.lockRoot(ctx, true)
	if err != nil {
		return err
	}
	users, err := h.volumeUsers()
	var drop func()
	if err == nil {
		drop, err = h.dropVolume(ctx, name, users[name])
	}
	release()
	if drop != nil {
		drop()
	}
	return err
}

// PruneVolumesOption limits what PruneVolumes removes.
type PruneVolumesOption func(*pruneVolumesConfig)

type pruneVolumesConfig struct{ anonymousOnly bool }

// AnonymousOnly has PruneVolumes remove only the volumes made for images'
// VOLUMEs, as docker volume prune does without --all.
func AnonymousOnly() PruneVolumesOption {
	return func(c *pruneVolumesConfig) { c.anonymousOnly = true }
}

// PruneVolumes removes every volume that no container references and
// returns their names. It waits as RemoveVolume does.
func (h *Host) PruneVolumes(ctx context.Context, opts ...PruneVolumesOption) ([]string, error) {
	var pc pruneVolumesConfig
	for _, o := range opts {
		o(&pc)
	}
	release, err := h.lockRoot(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("prune volumes: %w", err)
	}
	var removed []string
	var drops []func()
	// The volumes go from view under the lease; their contents, which
	// may be large, are deleted after it is released.
	defer func() {
		for _, d := range drops {
			d()
		}
	}()
	defer release()
	users, err := h.volumeUsers()
	if err != nil {
		return nil, fmt.Errorf("prune volumes: %w", err)
	}
	vols, err := h.Volumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune volumes: %w", err)
	}
	for _, v := range vols {
		if len(users[v.Name]) > 0 || pc.anonymousOnly && !v.Anonymous {
			continue
		}
		drop, err := h.dropVolume(ctx, v.Name, nil)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("prune volumes: %s: %w", v.Name, err)
		}
		drops = append(drops, drop)
		removed = append(removed, v.Name)
	}
	return removed, nil
}

// dropVolume moves the named volume into the root's scratch directory,
// unless users (the containers referencing it) is not empty, and returns
// what deletes it there. The caller holds the root lease exclusively, so
// no create can take the volume between the check of its users and its
// move; a create filling it holds its lock, which the move waits for. A
// volume moved aside is never seen half removed; reconcile deletes one a
// dead program left there.
func (h *Host) dropVolume(ctx context.Context, name string, users []string) (func(), error) {
	base := filepath.Join(h.volumesDir(), name)
	if _, err := os.Lstat(base); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	unlock, err := lockPath(ctx, filepath.Join(base, "lock"), true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	if len(users) > 0 {
		return nil, fmt.Errorf("in use by container %s: %w", strings.Join(users, ", "), ErrWrongState)
	}
	key := "volume-" + randomHex(8)
	releaseScratch, err := h.lockScratch(key)
	if err != nil {
		return nil, err
	}
	aside := filepath.Join(h.root, "tmp", key)
	if err := os.Rename(base, aside); err != nil {
		releaseScratch()
		return nil, err
	}
	return func() {
		removeDir(aside) // what stays is reconcile's
		releaseScratch()
	}, nil
}

// removeAnonymous removes a volume Create made for an image's VOLUME, as
// its container goes. Without the root lease, which waits for pulls and
// loads: only a create naming the volume's random name could race it. A
// volume another container names stays (ErrWrongState).
func (h *Host) removeAnonymous(ctx context.Context, name string) error {
	users, err := h.volumeUsers()
	if err != nil {
		return err
	}
	drop, err := h.dropVolume(ctx, name, users[name])
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	drop()
	return nil
}

// volumeUsers maps each volume containers reference to their names. A
// container being created has no record yet; the caller's exclusive root
// lease waits for its create to finish.
func (h *Host) volumeUsers() (map[string][]string, error) {
	ents, err := os.ReadDir(h.containersDir())
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, e := range ents {
		if len(e.Name()) != 64 || !isHexID(e.Name()) {
			continue
		}
		c, err := h.loadContainer(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // being removed
		}
		if err != nil {
			return nil, err
		}
		for _, m := range c.rec.Spec.Mounts {
			// A volume is bound from <root>/volumes/NAME/_data.
			if filepath.Base(m.Source) == "_data" && filepath.Dir(filepath.Dir(m.Source)) == h.volumesDir() {
				name := filepath.Base(filepath.Dir(m.Source))
				users[name] = append(users[name], c.Name)
			}
		}
	}
	for name, u := range users {
		slices.Sort(u)
		users[name] = slices.Compact(u)
	}
	return users, nil
}
