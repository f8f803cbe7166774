package main

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockkit/dock"
	"github.com/dockkit/dock/internal/testutil/imagetest"
)

func TestPauseRestart(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "busy", runImage, "sh", "-c", "echo started; while :; do sleep 0.1; done")
	waitStatus(t, e, "busy", "Up")

	if r := e.ok("pause", "busy"); r.stdout != "busy\n" {
		t.Errorf("pause prints %q", r.stdout)
	}
	waitStatus(t, e, "busy", "Up (Paused)")
	e.fails(125, "paused", "exec", "busy", "true")
	if r := e.ok("unpause", "busy"); r.stdout != "busy\n" {
		t.Errorf("unpause prints %q", r.stdout)
	}
	if r := e.ok("exec", "busy", "echo", "thawed"); r.stdout != "thawed\n" {
		t.Errorf("exec after unpause:\n%s", r)
	}

	if r := e.ok("restart", "-t", "1", "busy"); r.stdout != "busy\n" {
		t.Errorf("restart prints %q", r.stdout)
	}
	waitStatus(t, e, "busy", "Up")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.ok("logs", "busy")
		if strings.Count(r.stdout, "started\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs after restart:\n%s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	r := e.ok("stats", "--no-stream", "busy")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.Contains(lines[1], "busy") {
		t.Errorf("stats --no-stream:\n%s", r)
	}
	// No memory limit: as docker, the host's memory is the limit.
	if !regexp.MustCompile(`  [0-9.]+(B|[KMG]iB) / [0-9.]+[MGT]iB +[0-9.]+%  `).MatchString(r.stdout) {
		t.Errorf("stats --no-stream: memory not as docker shows it:\n%s", r)
	}

	for _, cmd := range []string{"pause", "unpause", "restart"} {
		checkFailure(t, e.dock(cmd, "nosuch"), 1, "nosuch")
	}
	e.ok("rm", "-f", "busy")
}

// rootfsTar writes a tar of a tiny root filesystem: busybox and /hello.
func rootfsTar(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Skipf("needs %s: %v", imagetest.BusyboxPath, err)
	}
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, h := range []struct {
		hdr  tar.Header
		body []byte
	}{
		{tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb},
		{tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil},
		{tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 9}, []byte("imported\n")},
	} {
		if err := tw.WriteHeader(&h.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(h.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImport(t *testing.T) {
	e := newCLIEnv(t)
	file := rootfsTar(t)
	e.ok("import", file, "cli/imported:1")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.exec(string(b), "--root", e.root, "import", "-", "cli/imported:2"); r.code != 0 {
		t.Fatalf("import from stdin:\n%s", r)
	}
	rows := e.images()
	a, c := findImage(rows, "cli/imported", "1"), findImage(rows, "cli/imported", "2")
	if a == nil || c == nil {
		t.Fatalf("images after import: %q", rows)
	}
	r := e.dock("run", "--rm", "cli/imported:1", "/bin/busybox", "cat", "/hello")
	if r.code != 0 || r.stdout != "imported\n" {
		t.Errorf("run of an imported image:\n%s", r)
	}
	e.fails(125, "", "import", filepath.Join(t.TempDir(), "missing.tar"), "cli/imported:3")
}

func TestAttachEvents(t *testing.T) {
	e := newRunEnv(t)
	e.ok("run", "-d", "--name", "late", runImage, "sh", "-c", "sleep 1; echo late; exit 3")
	r := e.dock("attach", "--no-stdin", "late")
	if r.code != 3 || r.stdout != "late\n" {
		t.Errorf("attach until the exit: want exit 3 and the output after attaching:\n%s", r)
	}
	checkFailure(t, e.dock("attach", "nosuch"), 125, "nosuch")

	r = e.ok("events", "--since", "10m", "--until", "0s")
	id := strings.TrimSpace(e.ok("ps", "-aq").stdout)
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[1] != "container" {
			t.Fatalf("events line %q: want TIME container TYPE ID (...)", l)
		}
		if strings.HasPrefix(f[3], id) {
			kinds = append(kinds, f[2])
		}
	}
	if len(kinds) < 3 {
		t.Errorf("events of the container: %q, want its creation, start and exit", kinds)
	}
	r = e.ok("events", "--since", "10m", "--until", "0s", "--filter", "container=nosuch")
	if strings.TrimSpace(r.stdout) != "" {
		t.Errorf("events filtered on a missing container:\n%s", r)
	}
	e.fails(125, "--filter", "events", "--filter", "bogus=1")
	e.ok("rm", "late")
}

// TestParseWhen checks the times --since and --until take, as docker
// reads them.
func TestParseWhen(t *testing.T) {
	local := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.Local)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"0", time.Unix(0, 0)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.5", time.Unix(1700000000, 500000000)},
		{"2026-01-02T03:04:05Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04:05.25+01:00", time.Date(2026, 1, 2, 2, 4, 5, 250000000, time.UTC)},
		{"2026-01-02T03:04:05", local(2026, 1, 2, 3, 4, 5, 0)},
		{"2026-01-02T03:04", local(2026, 1, 2, 3, 4, 0, 0)},
		{"2026-01-02", local(2026, 1, 2, 0, 0, 0, 0)},
	}
	for _, tc := range tests {
		got, err := parseWhen(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := parseWhen("10m"); err != nil || time.Since(got) < 10*time.Minute || time.Since(got) > 11*time.Minute {
		t.Errorf("parseWhen(10m) = %v, %v", got, err)
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "12abc", ""} {
		if _, err := parseWhen(bad); !errors.Is(err, dock.ErrInvalidArgument) {
			t.Errorf("parseWhen(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
}

// TestKeepFlagsHealth checks how --health-* flags become options: settings
// without --health-cmd still make one (changing the image's check), and
// --no-healthcheck refuses them.
func TestKeepFlagsHealth(t *testing.T) {
	k := keepFlags{healthInterval: time.Second}
	opts, err := k.options(false)
	if err != nil || len(opts) != 1 {
		t.Errorf("--health-interval alone: %d options, %v; want 1", len(opts), err)
	}
	k = keepFlags{noHealthcheck: true, healthRetries: 2}
	if _, err := k.options(false); !errors.Is(err, dock.ErrInvalidArgument) {
		t.Errorf("--no-healthcheck with --health-retries: %v, want ErrInvalidArgument", err)
	}
	k = keepFlags{}
	if opts, err := k.options(false); err != nil || len(opts) != 0 {
		t.Errorf("no flags: %d options, %v", len(opts), err)
	}
}

// TestCPUPercent checks the CPU figure of dock stats, also across a
// restart, which starts the counter again.
func TestCPUPercent(t *testing.T) {
	t0 := time.Now()
	a := dock.Stats{Time: t0, CPUUsageNanos: 1e9}
	b := dock.Stats{Time: t0.Add(time.Second), CPUUsageNanos: 1.5e9}
	if got := cpuPercent(a, b); got != 50 {
		t.Errorf("half a CPU second in a second: %v%%", got)
	}
	if got := cpuPercent(b, dock.Stats{Time: t0.Add(2 * time.Second), CPUUsageNanos: 1e7}); got != 0 {
		t.Errorf("after a restart: %v%%", got)
	}
}
