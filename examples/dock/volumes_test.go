package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/testutil/imagetest"
)

// volumeRows returns the rows of `dock volume ls` after its header.
func (e *cliEnv) volumeRows() [][]string {
	e.t.Helper()
	lines := strings.Split(strings.TrimRight(e.ok("volume", "ls").stdout, "\n"), "\n")
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "DRIVER VOLUME NAME" {
		e.t.Fatalf("volume ls header %q", lines[0])
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestVolumeCommands(t *testing.T) {
	e := newRunEnv(t)
	if rows := e.volumeRows(); len(rows) != 0 {
		t.Fatalf("a new root lists volumes %q", rows)
	}
	if r := e.ok("volume", "create", "data"); r.stdout != "data\n" {
		t.Errorf("volume create printed %q", r.stdout)
	}
	if rows := e.volumeRows(); !slices.EqualFunc(rows, [][]string{{"local", "data"}}, slices.Equal) {
		t.Errorf("volume ls rows %q, want local data", rows)
	}
	var info []map[string]any
	if err := json.Unmarshal([]byte(e.ok("volume", "inspect", "data").stdout), &info); err != nil {
		t.Fatal(err)
	}
	if len(info) != 1 || info[0]["Name"] != "data" || info[0]["Driver"] != "local" ||
		info[0]["Mountpoint"] != filepath.Join(e.root, "volumes", "data", "_data") {
		t.Errorf("volume inspect: %v", info)
	}
	e.fails(125, "not found", "volume", "inspect", "nosuch")
	// docker inspect finds volumes too.
	if r := e.ok("inspect", "-f", "{{.Name}} {{.Driver}}", "data"); r.stdout != "data local\n" {
		t.Errorf("inspect of a volume printed %q", r.stdout)
	}

	// A stopped container still holds its volume.
	e.ok("run", "--name", "user", "-v", "data:/data", runImage, "sh", "-c", "echo hi > /data/f")
	e.fails(1, "in use by container user", "volume", "rm", "data")
	e.ok("volume", "create", "spare")
	e.ok("volume", "create", "other")

	// Prune asks first; anything but yes keeps every volume.
	if r := e.exec("n\n", "--root", e.root, "volume", "prune"); r.code != 0 || !strings.Contains(r.stdout, "[y/N]") {
		t.Errorf("declined prune:\n%s", r)
	}
	if rows := e.volumeRows(); len(rows) != 3 {
		t.Errorf("a declined prune left %q", rows)
	}
	// As docker's since 23: without -a, only anonymous volumes go.
	if r := e.ok("volume", "prune", "-f"); r.stdout != "Total: 0 volume(s)\n" {
		t.Errorf("volume prune without -a printed %q", r.stdout)
	}
	want := "Deleted Volumes:\nother\nspare\n\nTotal: 2 volume(s)\n"
	if r := e.ok("volume", "prune", "-f", "-a"); r.stdout != want {
		t.Errorf("volume prune printed %q, want %q", r.stdout, want)
	}
	if rows := e.volumeRows(); !slices.EqualFunc(rows, [][]string{{"local", "data"}}, slices.Equal) {
		t.Errorf("after prune, volume ls rows %q, want the used one alone", rows)
	}

	e.ok("rm", "user")
	if r := e.ok("volume", "rm", "data"); r.stdout != "data\n" {
		t.Errorf("volume rm printed %q", r.stdout)
	}
	if rows := e.volumeRows(); len(rows) != 0 {
		t.Errorf("after rm, volume ls rows %q", rows)
	}
	e.fails(1, "not found", "volume", "rm", "data")
	e.ok("volume", "rm", "-f", "data")
}

// TestRemoveVolumesFlag checks dock rm -v and run --rm against an image's
// VOLUMEs: their anonymous volumes go with the container, as in docker.
func TestRemoveVolumesFlag(t *testing.T) {
	e := newCLIEnv(t)
	e.loadImage("cli/vol:1", imagetest.Volumes("/data"))
	e.ok("run", "--name", "kept", "cli/vol:1", "touch", "/data/x")
	e.ok("rm", "kept")
	if rows := e.volumeRows(); len(rows) != 1 {
		t.Fatalf("dock rm without -v left %q, want the anonymous volume", rows)
	}
	e.ok("run", "--name", "gone", "cli/vol:1", "touch", "/data/x")
	e.ok("rm", "-v", "gone")
	e.ok("run", "--rm", "cli/vol:1", "touch", "/data/x")
	if rows := e.volumeRows(); len(rows) != 1 {
		t.Errorf("dock rm -v and run --rm left %q, want the first volume alone", rows)
	}
	// The volume left behind is anonymous: prune takes it, and leaves
	// a named one.
	e.ok("volume", "create", "named")
	if r := e.ok("volume", "prune", "-f"); !strings.HasSuffix(r.stdout, "Total: 1 volume(s)\n") {
		t.Errorf("volume prune printed %q, want the anonymous volume", r.stdout)
	}
	if rows := e.volumeRows(); len(rows) != 1 || rows[0][1] != "named" {
		t.Errorf("after prune, volumes %q, want named alone", rows)
	}
}

// TestRunMounts checks -v DST and --mount, as docker's: an anonymous
// volume goes with its container; --mount makes binds, volumes and
// tmpfs mounts with their options.
func TestRunMounts(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "--rm", "-v", "/anon", runImage, "touch", "/anon/f")
	e.ok("run", "--name", "m", "--mount", "type=volume,target=/v", "--mount", "source=named,target=/n", runImage, "touch", "/v/f", "/n/f")
	if rows := e.volumeRows(); len(rows) != 2 || !slices.ContainsFunc(rows, func(r []string) bool { return r[1] == "named" }) {
		t.Fatalf("volumes %q, want named and one anonymous (run --rm took its own)", rows)
	}
	e.ok("rm", "-v", "m")
	if rows := e.volumeRows(); len(rows) != 1 || rows[0][1] != "named" {
		t.Errorf("after rm -v, volumes %q, want named alone", rows)
	}

	dir := t.TempDir()
	r := e.dock("run", "--rm", "--mount", "type=bind,src="+dir+",dst=/b,readonly", "--mount", "type=TMPFS,target=/t,tmpfs-size=1m,tmpfs-mode=1700",
		runImage, "sh", "-c", "grep ' /b ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; grep ' /t ' /proc/self/mounts | grep -o 'size=[^,]*,mode=[0-7]*'; touch /b/x")
	if r.code == 0 || r.stdout != "ro\nsize=1024k,mode=1700\n" {
		t.Errorf("--mount bind,readonly and tmpfs: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	hostNS, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if r := e.ok("run", "--rm", "--cgroupns", "host", runImage, "readlink", "/proc/self/ns/cgroup"); r.stdout != hostNS+"\n" {
		t.Errorf("--cgroupns host: %q, want the host's %s", r.stdout, hostNS)
	}
	for _, bad := range []string{"type=bind,target=/b", "type=volume", "type=tmpfs,src=x,target=/t", "target=/v,tmpfs-size=1m",
		"type=bind,src=/tmp,target=/b,readonly=maybe", "type=bind,src=/tmp,target=/b,propagation=shared", "type=nfs,target=/x"} {
		checkFailure(t, e.dock("run", "--rm", "--mount", bad, runImage, "true"), 125, "mount")
	}
	checkFailure(t, e.dock("run", "--rm", "--cgroupns", "shared", runImage, "true"), 125, "--cgroupns")
}
