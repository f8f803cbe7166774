package dock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockkit/dock/internal/atomicfile"
	"github.com/dockkit/dock/internal/runtime"
)

var errLocked = errors.New("locked by another program")

// lockScratch takes the lock that marks the scratch snapshot, file or mount
// key as in use by a living program.
func (h *Host) lockScratch(key string) (func(), error) {
	return lockPath(context.Background(), filepath.Join(h.root, "tmp", key+".lock"), true)
}

// isScratch tells the keys of snapshots that live only while one call runs.
func isScratch(key string) bool {
	return strings.HasPrefix(key, "extract-") || strings.HasPrefix(key, "diff-") || strings.HasPrefix(key, "view-")
}

// reconcile repairs what programs that died on this root left behind:
// scratch snapshots, files and mounts whose program no longer holds their
// lock; containers half created or half removed; auto-remove containers
// that exited while no program owned them; writable layers of containers
// that are gone.
func (h *Host) reconcile(ctx context.Context) error {
	tmp := filepath.Join(h.root, "tmp")
	var scratch, layers []string
	err := h.snap.Walk(ctx, func(_ context.Context, info SnapshotInfo) error {
		switch {
		case info.Kind == KindCommitted:
		case isScratch(info.Name):
			scratch = append(scratch, info.Name)
		case strings.HasPrefix(info.Name, "container-"):
			layers = append(layers, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, key := range scratch {
		release, err := lockPath(ctx, filepath.Join(tmp, key+".lock"), false)
		if err != nil {
			continue
		}
		if err := h.snap.Remove(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
			os.Remove(filepath.Join(tmp, key+".lock"))
		}
		release()
	}

	// Scratch files and mounts, then lock files nothing stands beside.
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		release, err := lockPath(ctx, filepath.Join(tmp, name+".lock"), false)
		if err != nil {
			continue
		}
		p := filepath.Join(tmp, name)
		unmountScratch(p)
		if os.RemoveAll(p) == nil {
			os.Remove(p + ".lock")
		}
		release()
	}
	for _, e := range ents {
		lock := e.Name()
		key := strings.TrimSuffix(lock, ".lock")
		if key == lock || isScratch(key) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(tmp, key)); !os.IsNotExist(err) {
			continue
		}
		release, err := lockPath(ctx, filepath.Join(tmp, lock), false)
		if err != nil {
			continue
		}
		if id, ok := strings.CutPrefix(key, "create-"); ok {
			// A create that died keeps its lock file until its
			// container directory is swept below.
			if _, err := os.Stat(filepath.Join(h.containersDir(), id, "dock.json")); os.IsNotExist(err) {
				if _, err := os.Stat(filepath.Join(h.containersDir(), id)); err == nil {
					release()
					continue
				}
			}
		}
		os.Remove(filepath.Join(tmp, lock))
		release()
	}
	return h.reconcileContainers(ctx, layers)
}

// reconcileContainers finishes creates and removes that a dead program left
// half done, and auto-removes exited containers nobody owns.
func (h *Host) reconcileContainers(ctx context.Context, layers []string) error {
	dir := h.containersDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	// The first Open after the host booted also clears what a crash left of
	// auto-remove containers, whose records are written without a sync.
	booted, first, markBoot := h.bootState()
	boot := bootID()
	known := map[string]bool{}
	for _, e := range ents {
		id := e.Name()
		if len(id) != 64 || !isHexID(id) {
			continue
		}
		if h.recordWhole(ctx, id, first) {
			known[id] = true
			continue
		}
		// No record: a create that died, or a remove that died after
		// removing it; or the record of an auto-remove container that a
		// crash cut short. Leave it while its creator lives.
		lock := filepath.Join(h.root, "tmp", "create-"+id+".lock")
		release, err := lockPath(ctx, lock, false)
		if err != nil {
			known[id] = true
			continue
		}
		if h.recordWhole(ctx, id, first) {
			release() // the create finished meanwhile
			known[id] = true
			continue
		}
		if err := h.snap.Remove(ctx, "container-"+id); err == nil || errors.Is(err, ErrNotFound) {
			os.RemoveAll(filepath.Join(dir, id))
			os.Remove(lock)
		}
		release()
	}
	for _, key := range layers {
		id := strings.TrimPrefix(key, "container-")
		if known[id] {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, id)); err == nil {
			continue // a create under way, or one the loop above kept
		}
		h.snap.Remove(ctx, key)
	}
	// Names that point at no container, unless a create under way holds
	// them: it links the name before it makes the container's directory.
	if names, err := os.ReadDir(h.namesDir()); err == nil {
		for _, n := range names {
			link := filepath.Join(h.namesDir(), n.Name())
			id, err := os.Readlink(link)
			if err != nil || known[id] {
				continue
			}
			if len(id) != 64 || !isHexID(id) {
				os.Remove(link) // no create makes such an ID
				continue
			}
			lock := filepath.Join(h.root, "tmp", "create-"+id+".lock")
			release, err := lockPath(ctx, lock, false)
			if err != nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, id)); os.IsNotExist(err) {
				os.Remove(link)
				os.Remove(lock)
			}
			release()
		}
	}
	var restart []*Container
	for id := range known {
		// Only an exited container may need recovering, restarting or
		// removing; reading its state alone keeps an Open cheap among
		// many running containers.
		if st, err := runtime.ReadState(filepath.Join(dir, id)); err == nil && st.Status != runtime.Stopped && st.Status != runtime.Created {
			continue
		}
		c, err := h.loadContainer(id)
		if err != nil {
			continue
		}
		st := c.State()
		lost := false
		if st.Status == StatusExited && st.Error != "" {
			// A container whose monitor is gone reads as exited with an
			// error; only such a one may need recovering.
			lost, _ = c.recover(ctx)
		}
		switch policy := c.rec.Spec.Restart.Name; {
		case lost && (policy == "always" || policy == "unless-stopped"),
			// Docker's one difference between the two: a container
			// stopped by hand is started again when the engine starts
			// (here: the root's first Open after the host booted) only
			// with always. One not stopped by hand was waiting for its
			// restart when its monitor went with the host.
			booted && !c.rec.AutoRemove && st.Status == StatusExited &&
				(policy == "always" || policy == "unless-stopped" && !runtime.StoppedByCaller(c.stateDir())):
			restart = append(restart, c)
			continue
		}
		// One created before the host last booted goes too, as dockerd
		// removes such containers when it starts: a crash may have lost
		// its state, which then reads as created.
		if !c.rec.AutoRemove || !(st.Status == StatusExited || st.Status == StatusCreated && boot != "" && c.rec.BootID != "" && c.rec.BootID != boot) {
			continue
		}
		if c.tryOwner() {
			c.Remove(ctx, false)
		}
	}
	// As dockerd does when it starts: the containers that were running
	// when their monitor died (with the host, mostly) and whose policy
	// says always or unless-stopped run again.
	// A container whose namespace another joins starts first.
	started := map[*Container]bool{}
	waits := func(c *Container) bool {
		for _, dir := range c.rec.Spec.Namespaces.JoinContainer {
			for _, o := range restart {
				if o != c && !started[o] && o.stateDir() == dir {
					return true
				}
			}
		}
		return false
	}
	for len(started) < len(restart) {
		n := len(started)
		for _, c := range restart {
			if !started[c] && !waits(c) {
				c.Start(ctx) // a failure is recorded in its state, as any start's
				started[c] = true
			}
		}
		if len(started) == n {
			// A cycle of joins: the rest go as they come.
			for _, c := range restart {
				if !started[c] {
					c.Start(ctx)
					started[c] = true
				}
			}
		}
	}
	markBoot()
	return nil
}

// bootID returns the kernel's random ID of this boot of the host, or "".
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// recordWhole reports whether container id's record is there and whole.
// Written whole and renamed into place, a record is cut short only by a
// crash, and only an auto-remove container's, which is not synced. Most
// filesystems leave such a file empty; some leave zeros, or, past its first
// block, a part of it. Looked for when thorough, a record that is not JSON
// counts as cut short when the container's layer is volatile or gone (its
// record, small, survives whole or not at all); one of a container whose
// layer is durable is damage of another kind, left for the user to see.
func (h *Host) recordWhole(ctx context.Context, id string, thorough bool) bool {
	p := filepath.Join(h.containersDir(), id, "dock.json")
	fi, err := os.Stat(p)
	if err != nil || fi.Size() == 0 {
		return false
	}
	if !thorough {
		return true
	}
	b, err := os.ReadFile(p)
	if err != nil || json.Valid(b) {
		return true
	}
	info, err := h.snap.Stat(ctx, "container-"+id)
	if errors.Is(err, ErrNotFound) {
		return false
	}
	return err != nil || info.Labels[SnapshotLabelVolatile] != "true"
}

// recover records the container stopped if its monitor died while it ran,
// killing what is left of it; it reports whether it did. The container's
// lock keeps it from racing a start.
func (c *Container) recover(ctx context.Context) (bool, error) {
	unlock, err := c.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	hd, err := c.handle()
	if err != nil {
		return false, err
	}
	return hd.Recover()
}

// bootIDFile records, in the root, the boot of the host its last Open saw.
const bootIDFile = "boot_id"

// bootState tells whether the host booted since the root's last Open
// (booted; not when the root has no record of a boot: it holds no container
// a boot could concern, came from a version that did not record boots, or
// lost the record in a crash), and whether this Open is the first since the
// boot (first; also without a record, or when the first did not finish).
// mark records this boot, once the Open's reconcile is done.
func (h *Host) bootState() (booted, first bool, mark func()) {
	now := bootID()
	if now == "" {
		return false, false, func() {}
	}
	rec := filepath.Join(h.root, bootIDFile)
	old, err := os.ReadFile(rec)
	if string(old) == now+"\n" {
		return false, false, func() {}
	}
	// Not synced: a record lost with a crash makes the next Open look for
	// what the crash cut short again, and take the boot as seen.
	return err == nil, true, func() { atomicfile.Write(rec, []byte(now+"\n"), 0o644, false) }
}
