package dock

import (
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOption configures Host.Pull.
type PullOption interface{ applyPull(*pullConfig) error }

// PushOption configures Host.Push.
type PushOption interface{ applyPush(*pushConfig) error }

// LoadOption configures Host.Load.
type LoadOption interface{ applyLoad(*loadConfig) error }

type pullConfig struct {
	platform *ocispec.Platform
	progress func(Progress)
	registry *Registry
	noUnpack bool
}

type pushConfig struct {
	progress func(Progress)
	registry *Registry
}

type loadConfig struct {
	platform *ocispec.Platform
	noUnpack bool
}

// PlatformOption selects one platform of a multi-platform image; it serves
// Pull and Load.
type PlatformOption struct {
	p   ocispec.Platform
	err error
}

func (o PlatformOption) applyPull(c *pullConfig) error { c.platform = &o.p; return o.err }
func (o PlatformOption) applyLoad(c *loadConfig) error { c.platform = &o.p; return o.err }

// WithPlatform selects the platform to pull or load, spelled as Docker does:
// "linux/arm64", "linux/arm/v7", "linux/amd64". The default is the host's.
func WithPlatform(platform string) PlatformOption {
	p, err := ParsePlatform(platform)
	if err != nil {
		return PlatformOption{err: fmt.Errorf("WithPlatform(%q): %w", platform, err)}
	}
	return PlatformOption{p: p}
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]: %w", s, ErrInvalidArgument)
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, " \t:@") {
			return ocispec.Platform{}, fmt.Errorf("platform %q: %w", s, ErrInvalidArgument)
		}
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// ProgressOption reports progress of transfers; it serves Pull and Push.
type ProgressOption struct{ fn func(Progress) }

func (o ProgressOption) applyPull(c *pullConfig) error { c.progress = o.fn; return nil }
func (o ProgressOption) applyPush(c *pushConfig) error { c.progress = o.fn; return nil }

// WithProgress calls fn as blobs move. fn is called from several goroutines
// at once and must not block for long.
func WithProgress(fn func(Progress)) ProgressOption { return ProgressOption{fn: fn} }

// RegistryOpt names the registry to use for a Pull or Push.
type RegistryOpt struct{ r *Registry }

func (o RegistryOpt) applyPull(c *pullConfig) error {
	if o.r == nil {
		return fmt.Errorf("WithRegistry(nil): %w", ErrInvalidArgument)
	}
	c.registry = o.r
	return nil
}
func (o RegistryOpt) applyPush(c *pushConfig) error {
	if o.r == nil {
		return fmt.Errorf("WithRegistry(nil): %w", ErrInvalidArgument)
	}
	c.registry = o.r
	return nil
}

// WithRegistry reaches the registry as r says (credentials, TLS, plain HTTP)
// instead of the host's defaults for the reference's domain.
func WithRegistry(r *Registry) RegistryOpt { return RegistryOpt{r: r} }

// UnpackOption turns off unpacking; it serves Pull and Load.
type UnpackOption struct{}

func (UnpackOption) applyPull(c *pullConfig) error { c.noUnpack = true; return nil }
func (UnpackOption) applyLoad(c *loadConfig) error { c.noUnpack = true; return nil }

// WithoutUnpack stores the image's blobs without unpacking its layers into
// snapshots; the first container made from the image unpacks them.
func WithoutUnpack() UnpackOption { return UnpackOption{} }

// ProgressState tells where a blob is in its transfer.
type ProgressState int

// Progress states.
const (
	ProgressWaiting ProgressState = iota
	ProgressTransferring
	ProgressExists // already present at the destination; not transferred
	ProgressMounted
	ProgressDone
	ProgressUnpacking
	ProgressUnpacked
)

func (s ProgressState) String() string {
	switch s {
	case ProgressWaiting:
		return "waiting"
	case ProgressTransferring:
		return "transferring"
	case ProgressExists:
		return "exists"
	case ProgressMounted:
		return "mounted"
	case ProgressDone:
		return "done"
	case ProgressUnpacking:
		return "unpacking"
	case ProgressUnpacked:
		return "unpacked"
	}
	return "unknown"
}

// Progress is one report about one blob of a transfer.
type Progress struct {
	Digest    string
	MediaType string
	State     ProgressState
	Done      int64 // bytes moved so far
	Total     int64 // bytes in all
}
