// Package registry talks to OCI distribution registries: pull, push, resolve,
// list tags and log in. It is the only package of dock that imports oras-go;
// the rest of dock sees descriptors, a [Target] and errdefs sentinels.
//
// Every blob and manifest read from a registry is checked against its
// descriptor's digest and size while it streams, so a corrupt byte never
// reaches the destination store.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/dockkit/dock/internal/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	oraserr "oras.land/oras-go/v2/errdef"
)

// DefaultHost is the registry of references that name none.
const DefaultHost = "docker.io"

// dockerHubEndpoint is where the API of docker.io is served.
const dockerHubEndpoint = "registry-1.docker.io"

// Target is a content store that Pull writes to and Push reads from. Its
// method set is that of oras.Target, so an OCI layout store implementing
// the one implements the other.
//
// Push must verify content against expected (digest and size) before making
// it visible, and should fail with an error matching ErrAlreadyExists (of
// errdefs or of oras) when the content is already there.
type Target interface {
	Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error)
	Push(ctx context.Context, expected ocispec.Descriptor, content io.Reader) error
	Exists(ctx context.Context, target ocispec.Descriptor) (bool, error)
	Tag(ctx context.Context, desc ocispec.Descriptor, reference string) error
	Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error)
}

// VerifyingTarget is a Target whose Push itself refuses content of another
// size or digest than the descriptor's, storing nothing then. Pull leaves
// the digest check to such a target instead of hashing every blob twice.
type VerifyingTarget interface {
	Target
	VerifiesContent() bool
}

// Config says how to reach one registry host and who to be there.
type Config struct {
	// Host is the registry as written in references: "docker.io",
	// "127.0.0.1:5000". Empty means docker.io.
	Host string
	// PlainHTTP uses http instead of https. It is implied for loopback
	// hosts (127.0.0.0/8, ::1, localhost) unless TLS is set.
	PlainHTTP bool
	// TLS configures https, for instance a private CA in RootCAs.
	TLS *tls.Config
	// Username and Password, or IdentityToken, authenticate to the registry.
	// When all are empty, credentials come from the Docker config file.
	Username, Password, IdentityToken string
	// DockerConfig is the path of a Docker config.json; empty means
	// $DOCKER_CONFIG/config.json, else ~/.docker/config.json. Its
	// credsStore and credHelpers are honoured.
	DockerConfig string
	// UserAgent is sent with every request; empty means "dock".
	UserAgent string
}

func (c Config) host() string {
	if c.Host == "" {
		return DefaultHost
	}
	return c.Host
}

// endpoint is the host:port that serves the API of c.Host.
func (c Config) endpoint() string {
	switch h := c.host(); h {
	case "docker.io", "index.docker.io":
		return dockerHubEndpoint
	default:
		return h
	}
}

// plainHTTP reports whether to speak http to the registry.
func (c Config) plainHTTP() bool {
	if c.PlainHTTP {
		return true
	}
	return c.TLS == nil && isLoopback(c.endpoint())
}

func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// repoName adds Docker Hub's implicit "library/" to single-name
// repositories there.
func (c Config) repoName(repo string) string {
	if c.endpoint() == dockerHubEndpoint && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// session is the HTTP machinery of one call: a transport, an auth client
// with its token cache.
type session struct {
	cfg       Config
	transport *http.Transport
	client    *auth.Client
}

func newSession(cfg Config) (*session, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLS != nil {
		base.TLSClientConfig = cfg.TLS.Clone()
	}
	cred, err := cfg.credentialFunc()
	if err != nil {
		return nil, err
	}
	client := &auth.Client{
		Client:     &http.Client{Transport: retry.NewTransport(base)},
		Cache:      auth.NewCache(),
		Credential: cred,
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "dock"
	}
	client.SetUserAgent(ua)
	return &session{cfg: cfg, transport: base, client: client}, nil
}

func (s *session) close() { s.transport.CloseIdleConnections() }

func (s *session) repository(repo string) (*remote.Repository, error) {
	ref := orasregistry.Reference{Registry: s.cfg.endpoint(), Repository: s.cfg.repoName(repo)}
	if err := ref.ValidateRepository(); err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, errdefs.ErrInvalidArgument)
	}
	return &remote.Repository{
		Client:    s.client,
		Reference: ref,
		PlainHTTP: s.cfg.plainHTTP(),
	}, nil
}

func (s *session) registry() *remote.Registry {
	return &remote.Registry{RepositoryOptions: remote.RepositoryOptions{
		Client:    s.client,
		Reference: orasregistry.Reference{Registry: s.cfg.endpoint()},
		PlainHTTP: s.cfg.plainHTTP(),
	}}
}

// credentialFunc returns the static credential of c, or a lookup in the
// Docker config and its helpers.
func (c Config) credentialFunc() (auth.CredentialFunc, error) {
	if c.Username != "" || c.Password != "" || c.IdentityToken != "" {
		return auth.StaticCredential(c.endpoint(), auth.Credential{
			Username:     c.Username,
			Password:     c.Password,
			RefreshToken: c.IdentityToken,
		}), nil
	}
	store, err := c.credentialStore()
	if err != nil {
		return nil, err
	}
	return credentials.Credential(store), nil
}

func (c Config) credentialStore() (credentials.Store, error) {
	opts := credentials.StoreOptions{AllowPlaintextPut: true, DetectDefaultNativeStore: true}
	var (
		store *credentials.DynamicStore
		err   error
	)
	if c.DockerConfig != "" {
		store, err = credentials.NewStore(c.DockerConfig, opts)
	} else {
		store, err = credentials.NewStoreFromDocker(opts)
	}
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	return store, nil
}

// Error is a failed registry operation. It matches errdefs.ErrNotFound when
// the registry answered 404 (or the content is missing), and
// errdefs.ErrUnauthorized on 401 and 403.
type Error struct {
	Op         string // "pull", "push", "resolve", "tags", "login"
	Host       string // as in Config.Host
	Repo       string // empty for registry-wide operations
	StatusCode int    // HTTP status of the failed request; 0 if none
	Err        error
}

func (e *Error) Error() string {
	where := e.Host
	if e.Repo != "" {
		where += "/" + e.Repo
	}
	return fmt.Sprintf("%s %s: %v", e.Op, where, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e matches errdefs.ErrNotFound or
// errdefs.ErrUnauthorized by its status code or cause.
func (e *Error) Is(target error) bool {
	switch target {
	case errdefs.ErrNotFound:
		return e.StatusCode == http.StatusNotFound || errors.Is(e.Err, oraserr.ErrNotFound)
	case errdefs.ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case errdefs.ErrInvalidArgument:
		return errors.Is(e.Err, oraserr.ErrInvalidReference)
	}
	return false
}

func (c Config) wrap(op, repo string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	status := 0
	var resp *errcode.ErrorResponse
	switch {
	case errors.As(err, &resp):
		status = resp.StatusCode
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// The registry asked for basic auth and there is nothing to send.
		status = http.StatusUnauthorized
		err = fmt.Errorf("registry requires credentials and none are configured for %s: %w", c.host(), err)
	}
	return &Error{Op: op, Host: c.host(), Repo: repo, StatusCode: status, Err: err}
}

// Resolve returns the descriptor that ref (a tag or a digest) names in repo,
// without fetching it.
func Resolve(ctx context.Context, cfg Config, repo, ref string) (ocispec.Descriptor, error) {
	s, err := newSession(cfg)
	if err != nil {
		return ocispec.Descriptor{}, cfg.wrap("resolve", repo, err)
	}
	defer s.close()
	r, err := s.repository(repo)
	if err != nil {
		return ocispec.Descriptor{}, cfg.wrap("resolve", repo, err)
	}
	desc, err := r.Resolve(ctx, normalizeRef(ref))
	return desc, cfg.wrap("resolve", repo, err)
}

// Tags lists the tags of repo, sorted.
func Tags(ctx context.Context, cfg Config, repo string) ([]string, error) {
	s, err := newSession(cfg)
	if err != nil {
		return nil, cfg.wrap("tags", repo, err)
	}
	defer s.close()
	r, err := s.repository(repo)
	if err != nil {
		return nil, cfg.wrap("tags", repo, err)
	}
	var tags []string
	err = r.Tags(ctx, "", func(page []string) error {
		tags = append(tags, page...)
		return nil
	})
	if err != nil {
		return nil, cfg.wrap("tags", repo, err)
	}
	slices.Sort(tags)
	return tags, nil
}

// Login checks username and password against the registry, then stores them
// as `docker login` does: in the credential helper the Docker config names,
// else base64 in its "auths".
func Login(ctx context.Context, cfg Config, username, password string) error {
	cfg.Username, cfg.Password, cfg.IdentityToken = username, password, ""
	s, err := newSession(cfg)
	if err != nil {
		return cfg.wrap("login", "", err)
	}
	defer s.close()
	if err := s.registry().Ping(ctx); err != nil {
		return cfg.wrap("login", "", err)
	}
	cfg.Username, cfg.Password = "", ""
	store, err := cfg.credentialStore()
	if err != nil {
		return cfg.wrap("login", "", err)
	}
	key := credentials.ServerAddressFromRegistry(cfg.host())
	if err := store.Put(ctx, key, auth.Credential{Username: username, Password: password}); err != nil {
		return cfg.wrap("login", "", fmt.Errorf("store credentials for %s: %w", key, err))
	}
	return nil
}

// normalizeRef accepts "tag", "sha256:…" and "@sha256:…"; empty is "latest".
func normalizeRef(ref string) string {
	ref = strings.TrimPrefix(ref, "@")
	if ref == "" {
		return "latest"
	}
	return ref
}
