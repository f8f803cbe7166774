package dock

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// Reference names an image the way Docker spells it, normalized: "alpine"
// becomes docker.io/library/alpine:latest. A reference carries a tag, a
// digest, or both; with both, the digest decides what is pulled.
type Reference struct {
	Domain string        // registry host as named: "docker.io", "127.0.0.1:5000"
	Path   string        // repository path: "library/alpine"
	Tag    string        // "" when only a digest was given
	Digest digest.Digest // "" when not pinned
}

// ParseReference parses and normalizes an image reference. A bare name gets
// the tag "latest" unless it is pinned by digest.
func ParseReference(s string) (Reference, error) {
	if s == "" || len(s) > 4096 || strings.TrimSpace(s) != s {
		return Reference{}, fmt.Errorf("reference %q: %w", s, ErrInvalidArgument)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("reference %q: %v: %w", s, err, ErrInvalidArgument)
	}
	r := Reference{Domain: reference.Domain(named), Path: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is the repository's full name: domain and path.
func (r Reference) Name() string {
	if r.Domain == "" && r.Path == "" {
		return "" // the zero Reference, an unnamed image's
	}
	return r.Domain + "/" + r.Path
}

// String is the normalized reference: name, then ":tag", then "@digest".
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form Docker prints: "alpine:3.20" for
// docker.io/library/alpine:3.20.
func (r Reference) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// object is what a registry is asked for: the digest when pinned, else the tag.
func (r Reference) object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
