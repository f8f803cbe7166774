package dock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"github.com/dockkit/dock/internal/registry"
)

// Registry is one registry host and how to reach it: credentials, TLS, and
// whether to use plain HTTP. Without credentials given in code, those that
// `docker login` stored (config.json and credential helpers) are used.
type Registry struct {
	host      string
	plainHTTP bool
	tls       *tls.Config
	user      string
	pass      string
	token     string
	config    string
}

// RegistryOption configures NewRegistry.
type RegistryOption func(*Registry) error

// NewRegistry describes the registry at host ("docker.io",
// "127.0.0.1:5000", "registry.example.com").
func NewRegistry(host string, opts ...RegistryOption) (*Registry, error) {
	if host == "" || strings.ContainsAny(host, "/ ") {
		return nil, fmt.Errorf("registry host %q: %w", host, ErrInvalidArgument)
	}
	r := &Registry{host: host}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// WithBasicAuth gives the registry a user name and password.
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) error {
		if user == "" {
			return fmt.Errorf("WithBasicAuth: empty user: %w", ErrInvalidArgument)
		}
		r.user, r.pass = user, password
		return nil
	}
}

// WithIdentityToken gives the registry an OAuth2 refresh token, as docker
// stores for registries that issue one.
func WithIdentityToken(token string) RegistryOption {
	return func(r *Registry) error {
		r.token = token
		return nil
	}
}

// WithPlainHTTP makes every request to the registry plain HTTP.
func WithPlainHTTP() RegistryOption {
	return func(r *Registry) error {
		r.plainHTTP = true
		return nil
	}
}

// WithCA trusts the PEM certificates in pem for the registry's TLS, besides
// the system's roots.
func WithCA(pem []byte) RegistryOption {
	return func(r *Registry) error {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("WithCA: no certificate in PEM data: %w", ErrInvalidArgument)
		}
		if r.tls == nil {
			r.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		r.tls.RootCAs = pool
		return nil
	}
}

// WithTLSConfig sets the TLS configuration used for the registry.
func WithTLSConfig(c *tls.Config) RegistryOption {
	return func(r *Registry) error {
		if c == nil {
			return fmt.Errorf("WithTLSConfig(nil): %w", ErrInvalidArgument)
		}
		r.tls = c.Clone()
		return nil
	}
}

// WithDockerConfig reads stored credentials from the docker config.json at
// path instead of $DOCKER_CONFIG/config.json or ~/.docker/config.json.
func WithDockerConfig(path string) RegistryOption {
	return func(r *Registry) error {
		r.config = path
		return nil
	}
}

// Host is the registry's host as references name it.
func (r *Registry) Host() string { return r.host }

func (r *Registry) settings() registry.Config {
	return registry.Config{
		Host:          r.host,
		PlainHTTP:     r.plainHTTP,
		TLS:           r.tls,
		Username:      r.user,
		Password:      r.pass,
		IdentityToken: r.token,
		DockerConfig:  r.config,
		UserAgent:     "dock",
	}
}

// Login checks user and password against the registry and stores them the
// way `docker login` does, for later calls without credentials.
func (r *Registry) Login(ctx context.Context, user, password string) error {
	return registry.Login(ctx, r.settings(), user, password)
}

// Tags lists the tags of the repository path (such as "library/alpine").
func (r *Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	return registry.Tags(ctx, r.settings(), repo)
}

// registryFor returns how to reach the registry of ref: one given to the
// call, one registered with the host, or one made from the host's settings.
func (h *Host) registryFor(ref Reference, given *Registry) *Registry {
	if given != nil {
		return given
	}
	if r, ok := h.registry[ref.Domain]; ok {
		return r
	}
	r := &Registry{host: ref.Domain}
	if h.insecure[ref.Domain] || isLoopbackHost(ref.Domain) {
		r.plainHTTP = true
	}
	return r
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
