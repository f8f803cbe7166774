package dock

import (
	"errors"
	"fmt"
	"strings"

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

// Docker's names for its own registry.
const (
	defaultDomain       = "docker.io"
	legacyDefaultDomain = "index.docker.io"
	officialRepoPrefix  = "library/"
	maxNameLength       = 255 // of the path, as distribution limits it
	maxTagLength        = 128
)

// ParseReference parses and normalizes an image reference. A bare name gets
// the tag "latest" unless it is pinned by digest.
//
// It accepts what Docker's reference grammar (distribution/reference)
// accepts, normalized as docker does, and is written out by hand: the
// grammar's regular expressions cost every program that links them some
// 400 KB and 2 ms to compile at start.
func ParseReference(s string) (Reference, error) {
	if s == "" || len(s) > 4096 || strings.TrimSpace(s) != s {
		return Reference{}, fmt.Errorf("reference %q: %w", s, ErrInvalidArgument)
	}
	r, err := parseNormalized(s)
	if err != nil {
		return Reference{}, fmt.Errorf("reference %q: %v: %w", s, err, ErrInvalidArgument)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Errors of the grammar, for ParseReference to wrap.
var (
	errFormat        = errors.New("invalid reference format")
	errUppercase     = errors.New("invalid reference format: repository name must be lowercase")
	errNameTooLong   = fmt.Errorf("repository path must not be more than %d characters", maxNameLength)
	errHexIdentifier = errors.New("invalid repository name: cannot specify 64-byte hexadecimal strings")
)

// parseNormalized adds docker's default registry and "library/" as docker
// does, then parses the whole reference.
func parseNormalized(s string) (Reference, error) {
	if isHexIdentifier(s) {
		return Reference{}, errHexIdentifier
	}
	// The first component is a registry when it looks like a host:
	// a dot, a port, localhost, or capitals (which a path cannot have).
	domain, rest := defaultDomain, s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, rest = first, s[i+1:]
		}
	}
	if domain == legacyDefaultDomain {
		domain = defaultDomain
	}
	if domain == defaultDomain && !strings.Contains(rest, "/") {
		rest = officialRepoPrefix + rest
	}
	name := rest
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		name = rest[:i]
	}
	if strings.ToLower(name) != name {
		return Reference{}, errUppercase
	}
	return parse(domain, rest)
}

// parse parses path[:tag][@digest] in the registry domain.
func parse(domain, rest string) (Reference, error) {
	var r Reference
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d := rest[i+1:]
		if !isDigest(d) {
			return Reference{}, errFormat
		}
		dg, err := digest.Parse(d)
		if err != nil {
			return Reference{}, err
		}
		r.Digest, rest = dg, rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		if !isTag(rest[i+1:]) {
			return Reference{}, errFormat
		}
		r.Tag, rest = rest[i+1:], rest[:i]
	}
	if !isDomain(domain) || !isPath(rest) {
		return Reference{}, errFormat
	}
	if len(rest) > maxNameLength {
		return Reference{}, errNameTooLong
	}
	r.Domain, r.Path = domain, rest
	return r, nil
}

func isHexIdentifier(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isLowerHex(c byte) bool   { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
func isHex(c byte) bool        { return isLowerHex(c) || 'A' <= c && c <= 'F' }
func isWord(c byte) bool       { return isAlnum(c) || c == '_' }

// isDomain matches host[:port], host being dot-separated components of
// letters, digits and inner hyphens, or an IPv6 address in brackets.
func isDomain(s string) bool {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if !isHex(s[i]) && s[i] != ':' {
				return false
			}
		}
		port := s[end+1:]
		return port == "" || port[0] == ':' && isPort(port[1:])
	}
	host := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		host = s[:i]
		if !isPort(s[i+1:]) {
			return false
		}
	}
	for c := range strings.SplitSeq(host, ".") {
		if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
			return false
		}
		for i := 0; i < len(c); i++ {
			if !isAlnum(c[i]) && c[i] != '-' {
				return false
			}
		}
	}
	return true
}

func isPort(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// isPath matches slash-separated components of lowercase letters and
// digits, joined inside a component by ".", "_", "__" or any run of "-".
func isPath(s string) bool {
	for c := range strings.SplitSeq(s, "/") {
		if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
			return false
		}
		for i := 1; i < len(c); {
			if isLowerAlnum(c[i]) {
				i++
				continue
			}
			// A separator, then an alphanumeric (the last one is).
			switch {
			case c[i] == '.':
				i++
			case c[i] == '_':
				i++
				if c[i] == '_' {
					i++
				}
			case c[i] == '-':
				for c[i] == '-' {
					i++
				}
			default:
				return false
			}
			if !isLowerAlnum(c[i]) {
				return false
			}
		}
	}
	return true
}

// isTag matches a word character, then up to 127 word characters, dots
// and hyphens.
func isTag(s string) bool {
	if s == "" || len(s) > maxTagLength || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// isDigest matches algorithm:hex with at least 32 hex digits, as the
// grammar does; go-digest then checks the algorithm and the length.
func isDigest(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || alg == "" || len(hex) < 32 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if !isHex(hex[i]) {
			return false
		}
	}
	return true
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
	name := r.Name()
	if r.Domain == defaultDomain {
		name = r.Path
		if rest, ok := strings.CutPrefix(r.Path, officialRepoPrefix); ok && !strings.Contains(rest, "/") {
			name = rest
		}
	}
	if r.Tag != "" {
		name += ":" + r.Tag
	}
	if r.Digest != "" {
		name += "@" + r.Digest.String()
	}
	return name
}

// object is what a registry is asked for: the digest when pinned, else the tag.
func (r Reference) object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
