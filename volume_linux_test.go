package dock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func volumeNames(t *testing.T, h *Host) []string {
	t.Helper()
	vols, err := h.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	return names
}

func TestVolumeCreateListRemove(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	if names := volumeNames(t, h); len(names) != 0 {
		t.Fatalf("a new root lists volumes %q", names)
	}
	v, err := h.CreateVolume(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.Root(), "volumes", "data", "_data"); v.Name != "data" || v.Mountpoint != want || v.Created.IsZero() {
		t.Errorf("CreateVolume returned %+v, want name data, mountpoint %s and a time", v, want)
	}
	again, err := h.CreateVolume(ctx, "data")
	if err != nil || !again.Created.Equal(v.Created) {
		t.Errorf("creating it again: %+v, %v; want %+v", again, err, v)
	}
	anon, err := h.CreateVolume(ctx, "")
	if err != nil || len(anon.Name) != 64 {
		t.Errorf("CreateVolume without a name: %+v, %v; want a random name", anon, err)
	}
	for _, bad := range []string{"../x", "a/b", "-x", "."} {
		if _, err := h.CreateVolume(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CreateVolume(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	want := []string{anon.Name, "data"}
	slices.Sort(want) // listed by name, and the random one may sort either side
	if got := volumeNames(t, h); !slices.Equal(got, want) {
		t.Errorf("Volumes: %q, want %q", got, want)
	}
	if got, err := h.Volume(ctx, "data"); err != nil || got != v {
		t.Errorf("Volume(data): %+v, %v; want %+v", got, err, v)
	}

	if err := h.RemoveVolume(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if got := volumeNames(t, h); !slices.Equal(got, []string{anon.Name}) {
		t.Errorf("after remove, Volumes: %q", got)
	}
	if _, err := os.Stat(filepath.Join(h.Root(), "volumes", "data")); !os.IsNotExist(err) {
		t.Errorf("the removed volume's directory: %v", err)
	}
	// Nothing of it stays aside either.
	ents, _ := os.ReadDir(filepath.Join(h.Root(), "tmp"))
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("left in tmp: %s", e.Name())
		}
	}
	for _, name := range []string{"data", "never", "../volumes"} {
		if err := h.RemoveVolume(ctx, name, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("RemoveVolume(%q): %v, want ErrNotFound", name, err)
		}
		if err := h.RemoveVolume(ctx, name, true); err != nil {
			t.Errorf("RemoveVolume(%q, force): %v", name, err)
		}
		if _, err := h.Volume(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Volume(%q): %v, want ErrNotFound", name, err)
		}
	}
}

// A container that references a volume keeps it, stopped or not, until
// the container is removed; prune spares it.
func TestVolumeInUse(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	img := busyboxImage(t, h)
	// Made empty beforehand, the volume is filled from the image at its
	// first mount, as Docker fills an empty one.
	if _, err := h.CreateVolume(ctx, "used"); err != nil {
		t.Fatal(err)
	}
	c, stdout, stderr := runContainer(t, h, img, WithName("keeper"), WithMount(Volume("used", "/etc")),
		WithCmd("sh", "-c", "grep -q root /etc/passwd && echo filled; echo kept > /etc/mine"))
	if st := wait(t, c); st.ExitCode != 0 || stdout.String() != "filled\n" {
		t.Fatalf("exit %d, stdout %q: %s", st.ExitCode, stdout, stderr)
	}
	for _, name := range []string{"spare1", "spare2"} {
		if _, err := h.CreateVolume(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	err := h.RemoveVolume(ctx, "used", true)
	if !errors.Is(err, ErrWrongState) || !strings.Contains(err.Error(), "keeper") {
		t.Errorf("removing a volume a stopped container uses: %v, want ErrWrongState naming keeper", err)
	}
	removed, err := h.PruneVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"spare1", "spare2"}) {
		t.Errorf("PruneVolumes removed %q, want spare1 and spare2", removed)
	}
	if got := volumeNames(t, h); !slices.Equal(got, []string{"used"}) {
		t.Errorf("after prune, Volumes: %q", got)
	}
	v, err := h.Volume(ctx, "used")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(v.Mountpoint, "mine")); string(b) != "kept\n" {
		t.Errorf("the volume lost what its container wrote: %q, %v", b, err)
	}

	if err := c.Remove(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveVolume(ctx, "used", false); err != nil {
		t.Errorf("removing it once its container is gone: %v", err)
	}
	if removed, err := h.PruneVolumes(ctx); err != nil || len(removed) != 0 {
		t.Errorf("a prune with nothing to prune: %q, %v", removed, err)
	}
}

// A create mounting a volume while it is removed either keeps the volume
// (the remove fails, the container references it) or makes it anew: the
// container never references a volume that is gone.
func TestVolumeRemoveRacesCreate(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	img := busyboxImage(t, h)
	data := filepath.Join(h.Root(), "volumes", "race", "_data")
	for i := range 5 {
		// Removes one after another, so that one falls in whatever
		// step of the create.
		done := make(chan struct{})
		var wg sync.WaitGroup
		var rerr error
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := h.RemoveVolume(ctx, "race", true); err != nil && !errors.Is(err, ErrWrongState) {
					rerr = err
					return
				}
			}
		})
		c, err := h.Create(ctx, img, WithMount(Volume("race", "/data")), WithCmd("true"))
		close(done)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: create: %v", i, err)
		}
		if rerr != nil {
			t.Errorf("round %d: remove: %v", i, rerr)
		}
		if _, err := os.Stat(data); err != nil {
			t.Errorf("round %d: the container's volume: %v", i, err)
		}
		if err := c.Remove(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
}
