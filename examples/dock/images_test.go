package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/dockkit/dock/internal/testutil/imagetest"
	"github.com/dockkit/dock/internal/testutil/registrytest"
)

// progressLine is one plain line of pull or push progress: a short digest,
// a state and a size.
var progressLine = regexp.MustCompile(`^[0-9a-f]{12}: [a-z]+ \([0-9.]+[kMGTPE]?B\)$`)

// checkPlainProgress checks that stderr holds only plain progress lines
// (no terminal escapes) and that each of digests shows up in state.
func checkPlainProgress(t *testing.T, r result, state string, digests ...string) {
	t.Helper()
	if strings.Contains(r.stderr, "\x1b") {
		t.Errorf("progress on a non-terminal holds escape sequences:\n%s", r)
	}
	for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
		if !progressLine.MatchString(l) {
			t.Errorf("progress line %q is not \"DIGEST: state (size)\"", l)
		}
	}
	for _, d := range digests {
		want := strings.TrimPrefix(d, "sha256:")[:12] + ": " + state + " ("
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress lacks %q:\n%s", want, r)
		}
	}
}

type inspectedImage struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	Size        int64
	Unpacked    int64
	Os          string
	Layers      []string
}

func inspectImages(t *testing.T, e *cliEnv, refs ...string) []inspectedImage {
	t.Helper()
	r := e.ok(append([]string{"inspect"}, refs...)...)
	var out []inspectedImage
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("inspect is not a JSON array: %v\n%s", err, r)
	}
	if len(out) != len(refs) {
		t.Fatalf("inspect of %d names gave %d objects", len(refs), len(out))
	}
	return out
}

func TestPushPullImages(t *testing.T) {
	reg := startRegistry(t)
	src := newCLIEnv(t)
	repo := reg.Host + "/cli/busybox"
	ref := repo + ":1"
	img := src.loadImage(ref, imagetest.MultiLayer(3))
	manifest := img.Manifest.Digest.String()
	imageID := img.ConfigDesc.Digest.Encoded()[:12]

	r := src.ok("push", ref)
	if !strings.Contains(r.stdout, manifest) {
		t.Errorf("push does not name the manifest digest %s:\n%s", manifest, r)
	}
	var blobs []string
	for _, l := range img.Layers {
		blobs = append(blobs, l.Digest.String())
	}
	checkPlainProgress(t, r, "done", append(blobs, img.ConfigDesc.Digest.String())...)
	// A second push finds every blob in place.
	src.ok("push", "-q", ref)

	t.Run("pull", func(t *testing.T) {
		e := newCLIEnv(t)
		r := e.ok("pull", ref)
		if !strings.Contains(r.stdout, manifest) {
			t.Errorf("pull does not name the manifest digest %s:\n%s", manifest, r)
		}
		checkPlainProgress(t, r, "unpacked", blobs...)
		row := findImage(e.images(), repo, "1")
		if row == nil {
			t.Fatalf("images does not list %s", ref)
		}
		if len(row) != 6 || row[2] != imageID || row[5] == "-" {
			t.Errorf("images row %q: want 6 columns, ID %s, an UNPACKED size", row, imageID)
		}
		got := inspectImages(t, e, ref)[0]
		if got.ID != img.ConfigDesc.Digest.String() || len(got.RepoTags) != 1 || got.RepoTags[0] != ref ||
			len(got.Layers) != 3 || got.Unpacked <= 0 || got.Os != "linux" {
			t.Errorf("inspect %s: %+v", ref, got)
		}
		if len(got.RepoDigests) != 1 || got.RepoDigests[0] != repo+"@"+manifest {
			t.Errorf("inspect RepoDigests %q, want %s@%s", got.RepoDigests, repo, manifest)
		}
		// Pulling again fetches nothing and still names the digest.
		r = e.ok("pull", "-q", ref)
		if r.stderr != "" || !strings.Contains(r.stdout, manifest) {
			t.Errorf("pull -q:\n%s", r)
		}
	})

	t.Run("pull on a terminal", func(t *testing.T) {
		e := newCLIEnv(t)
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		cmd := exec.Command(dockBin, "--root", e.root, "pull", ref)
		cmd.Env = e.environ()
		var stdout strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, tty
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		copied := make(chan string)
		go func() {
			var b strings.Builder
			_, _ = io.Copy(&b, ptmx) // ends with EIO once dock exits
			copied <- b.String()
		}()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pull on a terminal: %v", err)
		}
		var screen string
		select {
		case screen = <-copied:
		case <-time.After(10 * time.Second):
			t.Fatal("the terminal output never ended")
		}
		// Bars are redrawn in place with cursor movements.
		if !strings.Contains(screen, "\x1b[") {
			t.Errorf("progress on a terminal draws nothing in place: %q", screen)
		}
		for _, d := range blobs {
			if !strings.Contains(screen, strings.TrimPrefix(d, "sha256:")[:12]) {
				t.Errorf("terminal progress never shows %s: %q", d, screen)
			}
		}
		if !strings.Contains(stdout.String(), manifest) {
			t.Errorf("pull on a terminal does not name the digest on stdout: %q", stdout.String())
		}
	})

	t.Run("run pulls", func(t *testing.T) {
		e := newCLIEnv(t)
		r := e.dock("run", "--rm", ref, "echo", "hi")
		if r.code != 0 || r.stdout != "hi\n" {
			t.Fatalf("run of an image only in the registry:\n%s", r)
		}
		if !strings.HasPrefix(r.stderr, "Unable to find image '"+ref+"' locally\n") {
			t.Errorf("run does not say it pulls:\n%s", r)
		}
		want := strings.TrimPrefix(blobs[0], "sha256:")[:12] + ": unpacked"
		if !strings.Contains(r.stderr, want) {
			t.Errorf("run's pull shows no progress (%q):\n%s", want, r)
		}
		if findImage(e.images(), repo, "1") == nil {
			t.Errorf("run's pull did not store %s", ref)
		}
	})

	t.Run("pull by digest", func(t *testing.T) {
		e := newCLIEnv(t)
		r := e.ok("pull", "-q", repo+"@"+manifest)
		if !strings.Contains(r.stdout, manifest) {
			t.Errorf("pull by digest:\n%s", r)
		}
		got := inspectImages(t, e, manifest)[0]
		if got.ID != img.ConfigDesc.Digest.String() {
			t.Errorf("inspect %s: ID %s", manifest, got.ID)
		}
	})

	t.Run("pull no-unpack", func(t *testing.T) {
		e := newCLIEnv(t)
		e.ok("pull", "--no-unpack", "-q", ref)
		row := findImage(e.images(), repo, "1")
		if row == nil || row[len(row)-1] != "-" {
			t.Errorf("images row %q: want UNPACKED - for an image never unpacked", row)
		}
	})

	t.Run("tag and rmi", func(t *testing.T) {
		e := newCLIEnv(t)
		e.ok("pull", "-q", ref)
		if r := e.ok("tag", ref, "cli/other:2"); r.stdout != "" || r.stderr != "" {
			t.Errorf("tag prints:\n%s", r)
		}
		rows := e.images()
		a, b := findImage(rows, repo, "1"), findImage(rows, "cli/other", "2")
		if a == nil || b == nil || a[2] != b[2] {
			t.Fatalf("after tag, images:\n%q", rows)
		}
		both := inspectImages(t, e, ref, "cli/other:2")
		if both[0].ID != both[1].ID || len(both[1].RepoTags) != 1 || both[1].RepoTags[0] != "cli/other:2" {
			t.Errorf("inspect after tag: %+v", both)
		}
		// A pushed tag made locally reaches the registry.
		e.ok("tag", ref, repo+":retagged")
		e.ok("push", "-q", repo+":retagged")
		if r := newCLIEnv(t).ok("pull", "-q", repo+":retagged"); !strings.Contains(r.stdout, manifest) {
			t.Errorf("pull of the pushed tag:\n%s", r)
		}

		r := e.ok("rmi", "cli/other:2")
		if !strings.Contains(r.stdout, "cli/other:2") {
			t.Errorf("rmi names nothing:\n%s", r)
		}
		rows = e.images()
		if findImage(rows, "cli/other", "2") != nil || findImage(rows, repo, "1") == nil {
			t.Errorf("after rmi cli/other:2, images:\n%q", rows)
		}
		// An ID naming an image with several names needs -f.
		e.fails(125, "", "rmi", imageID)
		if findImage(e.images(), repo, "1") == nil {
			t.Fatalf("a refused rmi removed %s", ref)
		}
		e.ok("rmi", "-f", imageID)
		if rows := e.images(); len(rows) != 0 {
			t.Errorf("after removing every name, images:\n%q", rows)
		}
		e.fails(125, "not found", "inspect", ref)
	})
}

// tarNames lists the entry names of the tar at path.
func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		names[strings.TrimPrefix(h.Name, "./")] = true
	}
}

func TestSaveLoad(t *testing.T) {
	e := newCLIEnv(t)
	const ref = "cli/save:1"
	img := e.loadImage(ref, imagetest.MultiLayer(2))
	id := img.ConfigDesc.Digest.Encoded()[:12]

	for _, tc := range []struct {
		name  string
		flags []string
		want  []string // entries the tar must hold
	}{
		{"docker-archive", nil, []string{"manifest.json"}},
		{"docker-archive by name", []string{"--format", "docker-archive"}, []string{"manifest.json"}},
		{"oci", []string{"--format", "oci"}, []string{"oci-layout", "index.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "image.tar")
			args := append([]string{"save", "-o", file}, tc.flags...)
			if r := e.ok(append(args, ref)...); r.stdout != "" {
				t.Errorf("save -o writes to stdout:\n%s", r)
			}
			names := tarNames(t, file)
			for _, w := range tc.want {
				if !names[w] {
					t.Errorf("saved tar lacks %s: %v", w, names)
				}
			}
			e.ok("rmi", ref)
			if findImage(e.images(), "cli/save", "1") != nil {
				t.Fatalf("rmi %s left it listed", ref)
			}
			r := e.ok("load", file)
			if strings.TrimSpace(r.stdout) != "Loaded image: "+ref {
				t.Errorf("load:\n%s", r)
			}
			row := findImage(e.images(), "cli/save", "1")
			if row == nil || row[2] != id {
				t.Errorf("after load, images row %q, want ID %s", row, id)
			}
			// load -i as docker spells it.
			if r := e.ok("load", "-i", file); !strings.Contains(r.stdout, ref) {
				t.Errorf("load -i:\n%s", r)
			}
		})
	}

	t.Run("inspect format", func(t *testing.T) {
		r := e.ok("inspect", "-f", "{{.ID}}", ref)
		if r.stdout != img.ConfigDesc.Digest.String()+"\n" {
			t.Errorf("inspect -f {{.ID}}: %q", r.stdout)
		}
		r = e.ok("image", "inspect", "--format", "{{index .RepoTags 0}} {{json .Config.Cmd}}", ref, ref)
		if want := ref + " [\"sh\"]\n"; r.stdout != want+want {
			t.Errorf("inspect --format of two: %q, want %q twice", r.stdout, want)
		}
		e.fails(125, "--format", "inspect", "-f", "{{.ID", ref)
	})

	t.Run("to stdout", func(t *testing.T) {
		r := e.ok("save", ref)
		file := filepath.Join(t.TempDir(), "stdout.tar")
		if err := os.WriteFile(file, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if !tarNames(t, file)["manifest.json"] {
			t.Errorf("save to stdout is no docker archive")
		}
	})

	t.Run("stdin", func(t *testing.T) {
		for _, format := range []string{"docker", "oci"} {
			r := e.ok("save", "--format", format, ref)
			e.ok("image", "rm", ref)
			r = e.exec(r.stdout, "--root", e.root, "load")
			if r.code != 0 || strings.TrimSpace(r.stdout) != "Loaded image: "+ref {
				t.Errorf("load of a %s tar on stdin:\n%s", format, r)
			}
			if findImage(e.images(), "cli/save", "1") == nil {
				t.Errorf("load of a %s tar on stdin did not store %s", format, ref)
			}
		}
	})

	t.Run("missing image", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "none.tar")
		e.fails(125, "not found", "save", "-o", file, "cli/missing:1")
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed save left %s: %v", file, err)
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*")); len(m) != 0 {
			t.Errorf("a failed save left files: %v", m)
		}
	})

	t.Run("bad format", func(t *testing.T) {
		e.fails(125, "--format", "save", "--format", "zip", "-o", filepath.Join(t.TempDir(), "x"), ref)
	})
}

// setIndexAnnotations rewrites the annotations of every entry of the OCI
// layout's index.json with fn.
func setIndexAnnotations(t *testing.T, dir string, fn func(map[string]string) map[string]string) {
	t.Helper()
	p := filepath.Join(dir, "index.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx["manifests"].([]any) {
		d := m.(map[string]any)
		a := map[string]string{}
		if old, ok := d["annotations"].(map[string]any); ok {
			for k, v := range old {
				a[k] = v.(string)
			}
		}
		d["annotations"] = fn(a)
	}
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string) string // returns the path to load
		want []string
	}{
		{"ref.name", func(t *testing.T, dir string) string {
			imagetest.Busybox(t, dir, imagetest.Name("cli/layout:ref"))
			return dir
		}, []string{"cli/layout:ref"}},
		{"containerd name", func(t *testing.T, dir string) string {
			imagetest.Busybox(t, dir)
			setIndexAnnotations(t, dir, func(a map[string]string) map[string]string {
				a[imagetest.AnnotationImageName] = "docker.io/cli/layout:containerd"
				return a
			})
			return dir
		}, []string{"cli/layout:containerd"}},
		{"two images", func(t *testing.T, dir string) string {
			imagetest.Busybox(t, dir, imagetest.Name("cli/layout:one"))
			imagetest.Busybox(t, dir, imagetest.Name("cli/layout:two"), imagetest.MultiLayer(2))
			return dir
		}, []string{"cli/layout:one", "cli/layout:two"}},
		{"tar of a layout", func(t *testing.T, dir string) string {
			imagetest.Busybox(t, dir, imagetest.Name("cli/layout:tar"), imagetest.Compression("zstd"))
			return imagetest.Tar(t, dir, filepath.Join(t.TempDir(), "layout.tar"))
		}, []string{"cli/layout:tar"}},
		{"docker media types", func(t *testing.T, dir string) string {
			imagetest.Busybox(t, dir, imagetest.Name("cli/layout:docker"), imagetest.DockerMediaTypes())
			return dir
		}, []string{"cli/layout:docker"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imagetest.RequireBusybox(t)
			e := newCLIEnv(t)
			path := tc.make(t, filepath.Join(t.TempDir(), "layout"))
			r := e.ok("load", path)
			rows := e.images()
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, "Loaded image: "+w+"\n") {
					t.Errorf("load does not name %s:\n%s", w, r)
				}
				repo, tag, _ := strings.Cut(w, ":")
				if findImage(rows, repo, tag) == nil {
					t.Errorf("images does not list %s: %q", w, rows)
				}
			}
			if len(rows) != len(tc.want) {
				t.Errorf("images lists %d rows, want %d: %q", len(rows), len(tc.want), rows)
			}
		})
	}

	t.Run("no-unpack", func(t *testing.T) {
		imagetest.RequireBusybox(t)
		e := newCLIEnv(t)
		dir := filepath.Join(t.TempDir(), "layout")
		imagetest.Busybox(t, dir, imagetest.Name("cli/layout:packed"))
		e.ok("load", "--no-unpack", dir)
		row := findImage(e.images(), "cli/layout", "packed")
		if row == nil || row[len(row)-1] != "-" {
			t.Errorf("images row %q: want UNPACKED - after load --no-unpack", row)
		}
	})

	t.Run("untagged", func(t *testing.T) {
		imagetest.RequireBusybox(t)
		e := newCLIEnv(t)
		dir := filepath.Join(t.TempDir(), "layout")
		img := imagetest.Busybox(t, dir)
		r := e.ok("load", dir)
		if strings.TrimSpace(r.stdout) != "Loaded image: "+img.Manifest.Digest.String() {
			t.Errorf("load of an unnamed image:\n%s", r)
		}
		got := inspectImages(t, e, img.Manifest.Digest.String())[0]
		if got.ID != img.ConfigDesc.Digest.String() || got.RepoTags == nil || len(got.RepoTags) != 0 {
			t.Errorf("inspect of an unnamed image: %+v", got)
		}
		r = e.ok("inspect", img.Manifest.Digest.String())
		if !strings.Contains(r.stdout, `"RepoTags": []`) {
			t.Errorf("inspect prints no empty RepoTags array:\n%s", r)
		}
	})

	t.Run("missing path", func(t *testing.T) {
		e := newCLIEnv(t)
		e.fails(125, "", "load", filepath.Join(t.TempDir(), "nothing"))
	})
	t.Run("no path", func(t *testing.T) {
		e := newCLIEnv(t)
		e.fails(125, "", "load")
	})
}

func TestLogin(t *testing.T) {
	const user, pass = "alice", "s3cret-pw"
	reg := startRegistry(t, registrytest.WithHtpasswd(user, pass))
	ref := reg.Host + "/cli/private:1"

	owner := newCLIEnv(t)
	img := owner.loadImage(ref)
	owner.fails(125, "", "push", "-q", ref)
	owner.fails(125, "", "login", "-u", user, "-p", "wrong", reg.Host)
	if _, err := os.Stat(filepath.Join(owner.dockerCfg, "config.json")); err == nil {
		t.Errorf("a failed login stored credentials")
	}
	r := owner.ok("login", "-u", user, "-p", pass, reg.Host)
	if !strings.Contains(r.stdout, "Login Succeeded") {
		t.Errorf("login:\n%s", r)
	}
	cfg, err := os.ReadFile(filepath.Join(owner.dockerCfg, "config.json"))
	if err != nil || !strings.Contains(string(cfg), reg.Host) {
		t.Fatalf("login stored no credentials for %s in $DOCKER_CONFIG/config.json: %v\n%s", reg.Host, err, cfg)
	}
	owner.ok("push", "-q", ref)

	t.Run("password-stdin", func(t *testing.T) {
		e := newCLIEnv(t)
		e.fails(125, "", "pull", "-q", ref)
		r := e.exec(pass+"\n", "--root", e.root, "login", "-u", user, "--password-stdin", reg.Host)
		if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
			t.Fatalf("login --password-stdin:\n%s", r)
		}
		r = e.ok("pull", "-q", ref)
		if !strings.Contains(r.stdout, img.Manifest.Digest.String()) {
			t.Errorf("pull after login:\n%s", r)
		}
	})

	t.Run("wrong password-stdin", func(t *testing.T) {
		e := newCLIEnv(t)
		r := e.exec("nope\n", "--root", e.root, "login", "-u", user, "--password-stdin", reg.Host)
		checkFailure(t, r, 125, "")
		e.fails(125, "", "pull", "-q", ref)
	})

	t.Run("missing user", func(t *testing.T) {
		e := newCLIEnv(t)
		e.fails(125, "", "login", "-p", pass, reg.Host)
	})
}

func TestTLSRegistry(t *testing.T) {
	reg := startRegistry(t, registrytest.WithTLS())
	ref := reg.Host + "/cli/tls:1"
	certs := t.TempDir()
	hostDir := filepath.Join(certs, reg.Host)
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), reg.CACert, 0o644); err != nil {
		t.Fatal(err)
	}

	e := newCLIEnv(t)
	img := e.loadImage(ref)
	// Without the CA, a loopback registry is spoken to in plain HTTP, which
	// a TLS registry refuses.
	e.fails(125, "", "push", "-q", ref)
	e.ok("push", "-q", "--certs-dir", certs, ref)

	e2 := newCLIEnv(t)
	e2.env = append(e2.env, "DOCK_CERTS_DIR="+certs)
	r := e2.ok("pull", "-q", ref)
	if !strings.Contains(r.stdout, img.Manifest.Digest.String()) {
		t.Errorf("pull over TLS:\n%s", r)
	}
}

// loopbackHostname returns the machine's host name when it resolves only to
// 127.0.0.1, so that a registry on 127.0.0.1 can be named by a host that is
// not a loopback literal.
func loopbackHostname(t *testing.T) string {
	t.Helper()
	name, err := os.Hostname()
	if err != nil || name == "localhost" || strings.Contains(name, ".") {
		t.Skipf("host name %q is unsuitable: %v", name, err)
	}
	addrs, err := net.LookupHost(name)
	if err != nil || len(addrs) == 0 {
		t.Skipf("host name %q does not resolve: %v", name, err)
	}
	for _, a := range addrs {
		if a != "127.0.0.1" {
			t.Skipf("host name %q resolves to %v, not 127.0.0.1 alone", name, addrs)
		}
	}
	return name
}

func TestInsecureRegistry(t *testing.T) {
	reg := startRegistry(t)
	name := loopbackHostname(t)
	_, port, _ := net.SplitHostPort(reg.Addr)
	host := net.JoinHostPort(name, port)
	ref := host + "/cli/insecure:1"

	e := newCLIEnv(t)
	img := e.loadImage(ref)
	// Not a loopback literal: https first, which the registry does not speak.
	e.fails(125, "", "push", "-q", ref)
	e.ok("--insecure-registry", host, "push", "-q", ref)

	for _, tc := range []struct {
		name string
		args func(e *cliEnv) []string
	}{
		{"before", func(e *cliEnv) []string {
			return []string{"--insecure-registry", host, "--root", e.root, "pull", "-q", ref}
		}},
		{"after", func(e *cliEnv) []string {
			return []string{"pull", "-q", ref, "--root", e.root, "--insecure-registry", host}
		}},
		{"equals", func(e *cliEnv) []string {
			return []string{"pull", "--insecure-registry=" + host, "--root=" + e.root, "-q", ref}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t)
			r := e.exec("", tc.args(e)...)
			if r.code != 0 || !strings.Contains(r.stdout, img.Manifest.Digest.String()) {
				t.Errorf("pull with --insecure-registry:\n%s", r)
			}
		})
	}

	t.Run("login", func(t *testing.T) {
		e := newCLIEnv(t)
		// The registry has no auth: any credentials are accepted.
		r := e.exec("", "login", "--insecure-registry", host, "-u", "u", "-p", "p", host)
		if r.code != 0 {
			t.Errorf("login with --insecure-registry:\n%s", r)
		}
	})
}

func TestGlobalFlags(t *testing.T) {
	seed := newCLIEnv(t)
	seed.loadImage("cli/flags:1")
	root := seed.root

	for _, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"before", []string{"--root", root, "images"}, nil},
		{"after", []string{"images", "--root", root}, nil},
		{"equals", []string{"images", "--root=" + root}, nil},
		{"with debug", []string{"--debug", "images", "--root", root}, nil},
		{"insecure after", []string{"images", "--insecure-registry", "127.0.0.1:1", "--root", root}, nil},
		{"DOCK_ROOT", []string{"images"}, []string{"DOCK_ROOT=" + root}},
		{"flag beats DOCK_ROOT", []string{"images", "--root", root}, []string{"DOCK_ROOT=" + t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t)
			e.env = tc.env
			r := e.exec("", tc.args...)
			if r.code != 0 || !strings.Contains(r.stdout, "cli/flags") {
				t.Errorf("images does not list the image of --root:\n%s", r)
			}
		})
	}

	t.Run("image ls", func(t *testing.T) {
		e := newCLIEnv(t)
		for _, args := range [][]string{
			{"image", "ls", "--root", root},
			{"--root", root, "image", "list"},
			{"image", "ls", "-q", "--root", root},
		} {
			r := e.exec("", args...)
			if r.code != 0 || (!strings.Contains(r.stdout, "cli/flags") && !regexp.MustCompile(`^[0-9a-f]{12}\n$`).MatchString(r.stdout)) {
				t.Errorf("image ls:\n%s", r)
			}
		}
	})

	t.Run("inspect after", func(t *testing.T) {
		e := newCLIEnv(t)
		r := e.exec("", "inspect", "cli/flags:1", "--root", root)
		if r.code != 0 || !strings.Contains(r.stdout, `"cli/flags:1"`) {
			t.Errorf("inspect with --root after:\n%s", r)
		}
	})
}

func TestErrors(t *testing.T) {
	reg := startRegistry(t)
	e := newCLIEnv(t)
	e.loadImage("cli/errors:1")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad reference", []string{"pull", "Not::A/Ref"}, "invalid"},
		{"bad reference push", []string{"push", "cli/UPPER:1"}, "invalid"},
		{"bad tag target", []string{"tag", "cli/errors:1", "bad:tag:too"}, "invalid"},
		{"missing in registry", []string{"pull", reg.Host + "/cli/nothing:1"}, "not found"},
		{"missing image rmi", []string{"rmi", "cli/nothing:1"}, "not found"},
		{"missing image inspect", []string{"inspect", "cli/nothing:1"}, "not found"},
		{"missing image push", []string{"push", reg.Host + "/cli/nothing:1"}, "not found"},
		{"missing image tag", []string{"tag", "cli/nothing:1", "cli/x:1"}, "not found"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown flag", []string{"images", "--frobnicate"}, "unknown flag"},
		{"unknown image command", []string{"image", "frobnicate"}, "unknown command"},
		{"missing argument", []string{"pull"}, "usage: dock pull"},
		{"extra argument", []string{"images", "x"}, "usage: dock images"},
		{"unreachable registry", []string{"pull", "127.0.0.1:1/cli/x:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.fails(125, tc.want, tc.args...)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		reg := startRegistry(t, registrytest.WithHtpasswd("bob", "right"))
		e.fails(125, "", "login", "-u", "bob", "-p", "wrong", reg.Host)
	})
}

// A name loaded again onto another image leaves the first listed as
// <none> <none>, as docker does; image prune removes it and rmi takes it
// by ID.
func TestDanglingCLI(t *testing.T) {
	imagetest.RequireBusybox(t)
	e := newCLIEnv(t)
	first := e.loadImage("example.com/cli/moving:1", imagetest.MultiLayer(2))
	e.loadImage("example.com/cli/moving:1", imagetest.MultiLayer(3))
	firstID := first.ConfigDesc.Digest.Encoded()[:12]
	row := findImage(e.images(), "<none>", "<none>")
	if row == nil || row[2] != firstID {
		t.Fatalf("images lists no <none> <none> row with ID %s: %q", firstID, e.images())
	}
	if findImage(e.images(), "example.com/cli/moving", "1") == nil {
		t.Fatalf("images lost the moved name: %q", e.images())
	}
	r := e.ok("image", "prune")
	if want := "Deleted: " + first.Manifest.Digest.String(); strings.TrimSpace(r.stdout) != want {
		t.Errorf("image prune printed %q, want %q", r.stdout, want)
	}
	if row := findImage(e.images(), "<none>", "<none>"); row != nil {
		t.Errorf("image prune left %q", row)
	}
	if r := e.ok("image", "prune"); r.stdout != "" {
		t.Errorf("a second prune printed %q", r.stdout)
	}

	e.loadImage("example.com/cli/moving:1", imagetest.MultiLayer(2))
	rows := e.images()
	row = findImage(rows, "<none>", "<none>")
	if row == nil {
		t.Fatalf("no <none> row after the name moved back: %q", rows)
	}
	e.ok("rmi", row[2])
	if row := findImage(e.images(), "<none>", "<none>"); row != nil {
		t.Errorf("rmi by ID left %q", row)
	}
}

// TestImagesFiltersAndFormat checks dock images's filters and formats
// against docker's spelling of them.
func TestImagesFiltersAndFormat(t *testing.T) {
	imagetest.RequireBusybox(t)
	e := newCLIEnv(t)
	first := e.loadImage("example.com/cli/moving:1", imagetest.MultiLayer(2))
	second := e.loadImage("example.com/cli/moving:1", imagetest.MultiLayer(3))
	e.loadImage("example.com/cli/labelled:2", imagetest.Label("tier", "web"))
	e.loadImage("cli-official:3", imagetest.Label("tier", "official"))
	list := func(args ...string) string {
		return strings.TrimSpace(e.ok(append(append([]string{"images"}, args...), "--format", "{{.Repository}}:{{.Tag}}")...).stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--filter", "dangling=true"}, "<none>:<none>"},
		{[]string{"--filter", "label=tier=web"}, "example.com/cli/labelled:2"},
		{[]string{"--filter", "label=tier=official"}, "cli-official:3"},
		{[]string{"--filter", "reference=example.com/cli/mov*"}, "example.com/cli/moving:1"},
		{[]string{"--filter", "reference=*/*/*:2"}, "example.com/cli/labelled:2"},
		{[]string{"--filter", "dangling=false", "--filter", "label=tier=db"}, ""},
		{[]string{"--filter", "dangling=1"}, "<none>:<none>"},
		// The full name too, with and without its tag, as docker's.
		{[]string{"--filter", "reference=example.com/*/labelled:*"}, "example.com/cli/labelled:2"},
		{[]string{"--filter", "reference=*:<none>"}, ""},
		{[]string{"--filter", "reference=cli-official"}, "cli-official:3"},
		{[]string{"--filter", "reference=docker.io/library/cli-official:*"}, "cli-official:3"},
	} {
		if got := list(tc.args...); got != tc.want {
			t.Errorf("images %v: %q, want %q", tc.args, got, tc.want)
		}
	}
	if r := e.ok("images", "-q", "--no-trunc", "--filter", "dangling=true"); r.stdout != first.ConfigDesc.Digest.String()+"\n" {
		t.Errorf("images -q --no-trunc -f dangling=true: %q, want %s", r.stdout, first.ConfigDesc.Digest)
	}
	r := e.ok("images", "--digests", "--filter", "reference=example.com/cli/moving")
	if !strings.Contains(r.stdout, "DIGEST") || !strings.Contains(r.stdout, second.Manifest.Digest.String()) {
		t.Errorf("images --digests:\n%s", r.stdout)
	}
	r = e.ok("images", "--filter", "reference=example.com/cli/labelled", "--format", "table {{.Repository}}\t{{.Tag}}")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "REPOSITORY") ||
		!strings.HasPrefix(lines[1], "example.com/cli/labelled") {
		t.Errorf("images --format table:\n%s", r.stdout)
	}
	for _, bad := range []string{"dangling=maybe", "size=1", "reference=[", "dangling"} {
		checkFailure(t, e.dock("images", "--filter", bad), 125, "--filter")
	}
}
