package dock

import (
	"errors"
	"strings"
	"testing"

	distref "github.com/distribution/reference"
)

func TestParseReference(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in                     string
		domain, path, tag, dig string
		str, familiar          string
	}{
		{in: "alpine", domain: "docker.io", path: "library/alpine", tag: "latest",
			str: "docker.io/library/alpine:latest", familiar: "alpine:latest"},
		{in: "alpine:3.20", domain: "docker.io", path: "library/alpine", tag: "3.20",
			str: "docker.io/library/alpine:3.20", familiar: "alpine:3.20"},
		{in: "docker.io/library/alpine:3.20", domain: "docker.io", path: "library/alpine", tag: "3.20",
			str: "docker.io/library/alpine:3.20", familiar: "alpine:3.20"},
		{in: "user/app", domain: "docker.io", path: "user/app", tag: "latest",
			str: "docker.io/user/app:latest", familiar: "user/app:latest"},
		{in: "host:5000/x@" + d, domain: "host:5000", path: "x", dig: d,
			str: "host:5000/x@" + d, familiar: "host:5000/x@" + d},
		{in: "127.0.0.1:5000/ns/name:tag", domain: "127.0.0.1:5000", path: "ns/name", tag: "tag",
			str: "127.0.0.1:5000/ns/name:tag", familiar: "127.0.0.1:5000/ns/name:tag"},
		{in: "name:tag@" + d, domain: "docker.io", path: "library/name", tag: "tag", dig: d,
			str: "docker.io/library/name:tag@" + d, familiar: "name:tag@" + d},
		{in: "localhost/app", domain: "localhost", path: "app", tag: "latest",
			str: "localhost/app:latest", familiar: "localhost/app:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseReference(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Domain != tt.domain || r.Path != tt.path || r.Tag != tt.tag || string(r.Digest) != tt.dig {
				t.Errorf("got %+v", r)
			}
			if r.String() != tt.str {
				t.Errorf("String() = %q, want %q", r.String(), tt.str)
			}
			if r.Familiar() != tt.familiar {
				t.Errorf("Familiar() = %q, want %q", r.Familiar(), tt.familiar)
			}
		})
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, in := range []string{"", "UPPER", "a b", " alpine", "alpine:", "x@sha256:12", "a//b", "-a", "host:port/x"} {
		t.Run(in, func(t *testing.T) {
			if _, err := ParseReference(in); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("ParseReference(%q) = %v, want ErrInvalidArgument", in, err)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"alpine", "alpine:3.20", "docker.io/library/alpine:3.20", "host:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a/b/c:d", "[::1]:5000/x:y", "UPPER", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		// The normalized form must parse to itself.
		r2, err := ParseReference(r.String())
		if err != nil {
			t.Fatalf("reparse %q: %v", r.String(), err)
		}
		if r2 != r {
			t.Fatalf("reparse %q: got %+v, want %+v", r.String(), r2, r)
		}
	})
}

// The zero Reference, an unnamed image's, spells as nothing.
func TestZeroReference(t *testing.T) {
	var r Reference
	if r.Name() != "" || r.String() != "" || r.Familiar() != "" {
		t.Errorf("zero Reference: Name %q, String %q, Familiar %q", r.Name(), r.String(), r.Familiar())
	}
}

// FuzzParseReferenceDistribution checks ParseReference against Docker's
// own parser, distribution/reference: the same references are accepted,
// with the same parts and the same familiar form. One difference is
// deliberate: a first component that looks like a registry but is not a
// valid host name ("a_b.com/x") is an error here; distribution takes the
// whole for a path with no registry.
func FuzzParseReferenceDistribution(f *testing.F) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, s := range []string{"alpine", "alpine:3.20", "docker.io/library/alpine:3.20", "index.docker.io/alpine",
		"host:5000/x@" + d, "a/b/c:d", "[::1]:5000/x:y", "[fe80::1]/a", "UPPER", "Foo/bar", "localhost/x", "localhost:5000/a-b__c.d",
		"a--b/c", "a___b", "a_b.com/x", "x:" + strings.Repeat("t", 128), "x:" + strings.Repeat("t", 129), "name:tag@" + d,
		"x@sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "x@md5:0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a.b:c/x", "-a.com/x", "a-.com/x", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" || len(s) > 4096 || strings.TrimSpace(s) != s {
			return
		}
		got, err := ParseReference(s)
		named, derr := distref.ParseNormalizedNamed(s)
		if derr != nil {
			if err == nil {
				t.Fatalf("%q: accepted as %+v; distribution: %v", s, got, derr)
			}
			return
		}
		if distref.Domain(named) == "" {
			if err == nil {
				t.Fatalf("%q: accepted as %+v; distribution sees no registry", s, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v; distribution accepts %s", s, err, named)
		}
		want := Reference{Domain: distref.Domain(named), Path: distref.Path(named)}
		if tg, ok := named.(distref.Tagged); ok {
			want.Tag = tg.Tag()
		}
		if dg, ok := named.(distref.Digested); ok {
			want.Digest = dg.Digest()
		}
		if want.Tag == "" && want.Digest == "" {
			want.Tag = "latest"
		}
		if got != want {
			t.Fatalf("%q: %+v, distribution %+v", s, got, want)
		}
		wantFamiliar := distref.FamiliarString(distref.TagNameOnly(named))
		if got.Familiar() != wantFamiliar {
			t.Fatalf("%q: familiar %q, distribution %q", s, got.Familiar(), wantFamiliar)
		}
	})
}
