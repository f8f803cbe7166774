package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockkit/dock/internal/testutil"
	"github.com/dockkit/dock/internal/testutil/imagetest"
	"github.com/dockkit/dock/internal/testutil/leakcheck"
	"github.com/dockkit/dock/internal/testutil/registrytest"
)

// dockBin is the dock binary built once for every end-to-end test.
var dockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dock-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dockBin = filepath.Join(dir, "dock")
	// Static, as the project builds it (README): --init runs the binary
	// in the container, which has no dynamic loader for it.
	build := exec.Command("go", "build", "-o", dockBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cliEnv is one isolated world for the binary: a fresh state root, a
// fresh HOME and docker config directory.
type cliEnv struct {
	t         *testing.T
	root      string
	dockerCfg string // DOCKER_CONFIG for the subprocess
	env       []string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	// load and pull unpack layers with their owners, which needs
	// CAP_CHOWN; every test here loads or pulls.
	testutil.RequireRoot(t)
	home, tmp := t.TempDir(), t.TempDir()
	e := &cliEnv{t: t, root: filepath.Join(tmp, "root"), dockerCfg: filepath.Join(home, ".docker")}
	// No mount under the root and no monitor of it may outlive the test.
	// Container cgroups are named by ID alone, which cannot be told apart
	// from those of other work on the machine, so they are not counted.
	leakcheck.Check(t, leakcheck.MountsUnder(tmp), leakcheck.ProcessesMatching(e.root+"/"),
		leakcheck.CgroupPrefix("dock-cli-test-none-"))
	// Leave no container of this root running or mounted, whatever the
	// test did; runs before the temp dirs are removed.
	t.Cleanup(e.removeContainers)
	return e
}

// result is what one run of the binary did.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("dock %s: exit %d\nstdout:\n%sstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// exec runs the binary with exactly args (no --root added) and stdin.
func (e *cliEnv) exec(stdin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockBin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		e.t.Fatalf("dock %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("dock %s: timed out\n%s", strings.Join(args, " "), r)
	}
	return r
}

func (e *cliEnv) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCK_ROOT", "DOCKER_CONFIG", "HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "DOCK_CERTS_DIR":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+filepath.Dir(e.dockerCfg), "DOCKER_CONFIG="+e.dockerCfg)
	return append(env, e.env...)
}

// dock runs `dock --root ROOT args...`.
func (e *cliEnv) dock(args ...string) result {
	e.t.Helper()
	return e.exec("", append([]string{"--root", e.root}, args...)...)
}

// ok runs dock and fails the test unless it exits 0.
func (e *cliEnv) ok(args ...string) result {
	e.t.Helper()
	r := e.dock(args...)
	if r.code != 0 {
		e.t.Fatalf("want success:\n%s", r)
	}
	return r
}

// fails runs dock and checks that it failed with code and one line on
// stderr starting with "dock: " and holding want.
func (e *cliEnv) fails(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.dock(args...)
	checkFailure(e.t, r, code, want)
	e.t.Logf("dock %s: exit %d: %s", strings.Join(args[max(0, len(args)-3):], " "), r.code, strings.TrimSpace(r.stderr))
	return r
}

func checkFailure(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("want exit %d:\n%s", code, r)
	}
	if !strings.HasPrefix(r.stderr, "dock: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("want one line on stderr starting with \"dock: \":\n%s", r)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("want stderr to hold %q:\n%s", want, r)
	}
}

func (e *cliEnv) removeContainers() {
	if _, err := os.Stat(filepath.Join(e.root, "containers")); err != nil {
		return
	}
	r := e.dock("ps", "-aq")
	for _, id := range strings.Fields(r.stdout) {
		if r := e.dock("rm", "-f", id); r.code != 0 {
			e.t.Errorf("cleanup: %s", r)
		}
	}
}

// loadImage writes a busybox image named ref into an OCI layout and loads it.
func (e *cliEnv) loadImage(ref string, opts ...imagetest.Option) imagetest.Image {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "layout")
	img := imagetest.Busybox(e.t, dir, append([]imagetest.Option{imagetest.Name(ref)}, opts...)...)
	r := e.ok("load", dir)
	if !strings.Contains(r.stdout, "Loaded image: "+ref) {
		e.t.Fatalf("load did not name %s:\n%s", ref, r)
	}
	return img
}

// images returns the rows of `dock images` after the header, split into
// columns.
func (e *cliEnv) images() [][]string {
	e.t.Helper()
	r := e.ok("images")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	wantHeader := []string{"REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "UNPACKED"}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(wantHeader, " ") {
		e.t.Fatalf("images header %q, want %q", lines[0], wantHeader)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, splitColumns(l))
	}
	return rows
}

// splitColumns splits a tabwriter row on runs of two or more spaces, so that
// "2 years ago" stays one column.
func splitColumns(line string) []string {
	var cols []string
	for _, c := range strings.Split(line, "  ") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	return cols
}

// findImage returns the images row of repo:tag, or nil.
func findImage(rows [][]string, repo, tag string) []string {
	for _, r := range rows {
		if len(r) >= 2 && r[0] == repo && r[1] == tag {
			return r
		}
	}
	return nil
}

// startRegistry starts a registry for the test.
func startRegistry(t *testing.T, opts ...registrytest.Option) *registrytest.Server {
	t.Helper()
	imagetest.RequireBusybox(t)
	return registrytest.Start(t, opts...)
}
