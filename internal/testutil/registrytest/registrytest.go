// Package registrytest runs Debian's docker-registry (distribution 2.8) on
// loopback for tests, optionally behind basic auth, token auth or TLS.
//
// Each [Start] gets its own config, storage directory and free port in
// t.TempDir, so tests may run in parallel; the process is stopped in
// t.Cleanup.
package registrytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Binary is the path of the registry executable that Start runs.
const Binary = "/usr/bin/docker-registry"

// Server is a running docker-registry.
type Server struct {
	// Addr is the listening address, "127.0.0.1:<port>".
	Addr string
	// Host is the registry host as written in image references; it equals
	// Addr.
	Host string
	// CACert is the PEM certificate of the test CA that signed the server
	// certificate; nil unless WithTLS was given.
	CACert []byte
	// StorageDir is the root of the registry's filesystem storage driver.
	StorageDir string
	// Username and Password are the credentials the registry accepts; empty
	// without WithHtpasswd or WithTokenAuth.
	Username, Password string
	// TokenRealm is the URL of the token server; empty without WithTokenAuth.
	TokenRealm string

	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

type config struct {
	basicUser, basicPass string
	tokenUser, tokenPass string
	tls                  bool
}

// Option configures Start.
type Option func(*config)

// WithHtpasswd protects the registry with HTTP basic auth for one user.
// It needs the htpasswd program (Debian's apache2-utils) to make the bcrypt
// hash distribution requires; the test is skipped without it.
func WithHtpasswd(user, pass string) Option {
	return func(c *config) { c.basicUser, c.basicPass = user, pass }
}

// WithTokenAuth protects the registry with bearer token auth: a small token
// server on loopback issues signed JWTs granting every requested action to
// user, and refuses anyone else.
func WithTokenAuth(user, pass string) Option {
	return func(c *config) { c.tokenUser, c.tokenPass = user, pass }
}

// WithTLS serves the registry (and the token server) over HTTPS with a
// certificate for 127.0.0.1, ::1 and localhost signed by a fresh test CA,
// found in [Server.CACert].
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// Start runs a docker-registry for the test and waits until it answers on
// /v2/. It skips the test when the registry is not installed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("needs docker-registry (Debian package docker-registry): %v", err)
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.basicUser != "" && c.tokenUser != "" {
		t.Fatal("registrytest: WithHtpasswd and WithTokenAuth exclude each other")
	}

	dir := t.TempDir()
	s := &Server{
		dir:        dir,
		StorageDir: filepath.Join(dir, "storage"),
		logPath:    filepath.Join(dir, "registry.log"),
	}
	if err := os.Mkdir(s.StorageDir, 0o700); err != nil {
		t.Fatal(err)
	}

	var y strings.Builder
	y.WriteString("version: 0.1\n")
	y.WriteString("log:\n  level: info\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&y, "storage:\n  filesystem:\n    rootdirectory: %s\n", s.StorageDir)
	y.WriteString("  delete:\n    enabled: true\n")
	y.WriteString("  maintenance:\n    uploadpurging:\n      enabled: false\n")

	var pki *testPKI
	if c.tls {
		var err error
		if pki, err = newTestPKI(); err != nil {
			t.Fatal(err)
		}
		s.CACert = pki.caPEM
	}

	var tokenTLS *tls.Config
	switch {
	case c.basicUser != "":
		line := htpasswdLine(t, c.basicUser, c.basicPass)
		p := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(p, line, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&y, "auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", p)
		s.Username, s.Password = c.basicUser, c.basicPass
	case c.tokenUser != "":
		if pki != nil {
			tokenTLS = pki.serverTLS()
		}
		ts, err := startTokenServer(t, c.tokenUser, c.tokenPass, tokenTLS)
		if err != nil {
			t.Fatal(err)
		}
		bundle := filepath.Join(dir, "token-root.pem")
		if err := os.WriteFile(bundle, ts.certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&y, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			ts.realm, tokenService, tokenIssuer, bundle)
		s.Username, s.Password = c.tokenUser, c.tokenPass
		s.TokenRealm = ts.realm
	}

	var tlsYAML string
	if pki != nil {
		certPath := filepath.Join(dir, "server.pem")
		keyPath := filepath.Join(dir, "server-key.pem")
		if err := os.WriteFile(certPath, pki.serverCertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, pki.serverKeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		tlsYAML = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certPath, keyPath)
	}

	// A port picked by the kernel can be taken again before the registry
	// binds it; try a few times.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.Host = s.Addr
		cfg := y.String() + fmt.Sprintf("http:\n  addr: %s\n  secret: registrytest\n  draintimeout: 1s\n", s.Addr) + tlsYAML +
			"health:\n  storagedriver:\n    enabled: false\n"
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.run(t, cfgPath); lastErr == nil {
			return s
		}
	}
	t.Fatalf("registrytest: start docker-registry: %v\n%s", lastErr, s.logTail())
	return nil
}

// run starts the process and waits for /v2/ to answer.
func (s *Server) run(t testing.TB, cfgPath string) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(Binary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = registryEnv()
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLSConfig(), Proxy: nil}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("docker-registry exited during start")
		default:
		}
		resp, err := client.Get(s.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			client.CloseIdleConnections()
			t.Cleanup(func() { s.stop(t) })
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kill()
	return errors.New("docker-registry did not answer on /v2/ within 20s")
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *Server) stop(t testing.TB) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.kill()
	}
	if t.Failed() {
		t.Logf("docker-registry log (%s):\n%s", s.Addr, s.logTail())
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// URL returns the registry's base URL, "http://127.0.0.1:<port>" or https
// with WithTLS.
func (s *Server) URL() string {
	if s.CACert != nil {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// TLSConfig returns a client configuration trusting the test CA, or nil
// without WithTLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.CACert == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// BlobPath returns the file in StorageDir holding the blob d, which a test
// may overwrite to simulate corruption on the registry's side.
func (s *Server) BlobPath(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(s.StorageDir, "docker", "registry", "v2", "blobs",
		d.Algorithm().String(), h[:2], h, "data")
}

// CorruptBlob flips bytes of the stored blob d in place, keeping its size, so
// that the registry serves content whose digest no longer matches.
func (s *Server) CorruptBlob(t testing.TB, d digest.Digest) {
	t.Helper()
	p := s.BlobPath(d)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("registrytest: corrupt %s: %v", d, err)
	}
	if len(b) == 0 {
		t.Fatalf("registrytest: corrupt %s: empty blob", d)
	}
	for i := 0; i < len(b); i += 512 {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("registrytest: corrupt %s: %v", d, err)
	}
}

func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		// distribution reads REGISTRY_* variables as config overrides.
		if strings.HasPrefix(kv, "REGISTRY_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func htpasswdLine(t testing.TB, user, pass string) []byte {
	t.Helper()
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skipf("needs htpasswd (Debian package apache2-utils) for a bcrypt hash: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-nbB", user, pass).Output()
	if err != nil {
		t.Fatalf("registrytest: htpasswd: %v", err)
	}
	return append(bytes.TrimSpace(out), '\n')
}
