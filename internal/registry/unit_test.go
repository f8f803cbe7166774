package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dockkit/dock/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	oraserr "oras.land/oras-go/v2/errdef"
)

func TestStreamReader(t *testing.T) {
	good := []byte(strings.Repeat("dock", 50000))
	desc := ocispec.Descriptor{Digest: digest.FromBytes(good), Size: int64(len(good))}
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	tests := []struct {
		name    string
		content []byte
		desc    ocispec.Descriptor
		wantErr error
	}{
		{"good", good, desc, nil},
		{"flipped byte", bad, desc, errdefs.ErrDigestMismatch},
		{"too long", append(good, 'x'), desc, errdefs.ErrDigestMismatch},
		{"too short", good[:len(good)-1], desc, io.ErrUnexpectedEOF},
		{"empty", nil, ocispec.Descriptor{Digest: digest.FromBytes(nil)}, nil},
		{"empty wrong digest", nil, ocispec.Descriptor{Digest: desc.Digest}, errdefs.ErrDigestMismatch},
		{"invalid digest", good, ocispec.Descriptor{Digest: "sha256:xyz", Size: desc.Size}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// io.ReadFull stops at exactly Size bytes and never asks for
			// EOF, as a store reading a known size may: the mismatch must
			// still show.
			for _, read := range []string{"ReadAll", "ReadFull"} {
				if read == "ReadFull" && tt.desc.Size == 0 {
					continue // reads nothing, so there is nothing to refuse
				}
				r := newStreamReader(context.Background(), io.NopCloser(strings.NewReader(string(tt.content))), tt.desc, true, Downloading, nil)
				var err error
				if read == "ReadAll" {
					_, err = io.ReadAll(r)
				} else {
					_, err = io.ReadFull(r, make([]byte, tt.desc.Size))
					if tt.wantErr == io.ErrUnexpectedEOF && err != nil {
						err = io.ErrUnexpectedEOF // ReadFull's own word for it
					}
				}
				if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					if read == "ReadFull" && tt.name == "too long" && err == nil {
						continue // ReadFull never reads past Size
					}
					t.Fatalf("%s: error %v, want %v", read, err, tt.wantErr)
				}
			}
		})
	}

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r := newStreamReader(ctx, io.NopCloser(strings.NewReader(string(good))), desc, true, Downloading, nil)
		if _, err := r.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v", err)
		}
	})

	t.Run("progress", func(t *testing.T) {
		var last Event
		var n int
		r := newStreamReader(context.Background(), io.NopCloser(strings.NewReader(string(good))), desc, false, Uploading,
			func(e Event) { last = e; n++ })
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		if last.Done != desc.Size || last.Total != desc.Size || last.State != Uploading || n < 2 {
			t.Fatalf("last event %+v after %d events", last, n)
		}
	})
}

func TestPlatformMatches(t *testing.T) {
	p := func(s string) ocispec.Platform {
		f := strings.Split(s, "/")
		pl := ocispec.Platform{OS: f[0], Architecture: f[1]}
		if len(f) > 2 {
			pl.Variant = f[2]
		}
		return pl
	}
	tests := []struct {
		want, have string
		ok         bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/amd64", "linux/x86_64", true},
		{"linux/amd64", "linux/arm64", false},
		{"linux/amd64", "windows/amd64", false},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm64/v8", "linux/aarch64", true},
		{"linux/arm/v7", "linux/arm/v6", false},
		{"linux/arm/v7", "linux/arm", true},
		{"linux/arm", "linux/arm/v6", true},
		{"linux/386", "linux/i386", true},
	}
	for _, tt := range tests {
		t.Run(tt.want+"~"+tt.have, func(t *testing.T) {
			if got := platformMatches(p(tt.want), p(tt.have)); got != tt.ok {
				t.Fatalf("platformMatches = %v, want %v", got, tt.ok)
			}
		})
	}
}

func TestConfigEndpoint(t *testing.T) {
	tests := []struct {
		cfg      Config
		repo     string
		endpoint string
		repoName string
		plain    bool
	}{
		{Config{}, "alpine", "registry-1.docker.io", "library/alpine", false},
		{Config{Host: "docker.io"}, "library/alpine", "registry-1.docker.io", "library/alpine", false},
		{Config{Host: "docker.io"}, "user/app", "registry-1.docker.io", "user/app", false},
		{Config{Host: "127.0.0.1:5000"}, "app", "127.0.0.1:5000", "app", true},
		{Config{Host: "127.1.2.3:5000"}, "app", "127.1.2.3:5000", "app", true},
		{Config{Host: "localhost:5000"}, "app", "localhost:5000", "app", true},
		{Config{Host: "[::1]:5000"}, "app", "[::1]:5000", "app", true},
		{Config{Host: "127.0.0.1:5000", TLS: &tlsConfig}, "app", "127.0.0.1:5000", "app", false},
		{Config{Host: "registry.example:5000"}, "app", "registry.example:5000", "app", false},
		{Config{Host: "registry.example", PlainHTTP: true}, "app", "registry.example", "app", true},
		{Config{Host: "localhost.example.com"}, "app", "localhost.example.com", "app", false},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Host+"/"+tt.repo, func(t *testing.T) {
			if got := tt.cfg.endpoint(); got != tt.endpoint {
				t.Errorf("endpoint = %q, want %q", got, tt.endpoint)
			}
			if got := tt.cfg.repoName(tt.repo); got != tt.repoName {
				t.Errorf("repoName = %q, want %q", got, tt.repoName)
			}
			if got := tt.cfg.plainHTTP(); got != tt.plain {
				t.Errorf("plainHTTP = %v, want %v", got, tt.plain)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		name   string
		err    *Error
		target error
		want   bool
	}{
		{"404", &Error{StatusCode: http.StatusNotFound, Err: errors.New("x")}, errdefs.ErrNotFound, true},
		{"oras not found", &Error{Err: fmt.Errorf("d: %w", oraserr.ErrNotFound)}, errdefs.ErrNotFound, true},
		{"401", &Error{StatusCode: http.StatusUnauthorized, Err: errors.New("x")}, errdefs.ErrUnauthorized, true},
		{"403", &Error{StatusCode: http.StatusForbidden, Err: errors.New("x")}, errdefs.ErrUnauthorized, true},
		{"500 not found", &Error{StatusCode: 500, Err: errors.New("x")}, errdefs.ErrNotFound, false},
		{"404 unauthorized", &Error{StatusCode: 404, Err: errors.New("x")}, errdefs.ErrUnauthorized, false},
		{"wrapped mismatch", &Error{Err: fmt.Errorf("blob: %w", errdefs.ErrDigestMismatch)}, errdefs.ErrDigestMismatch, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(fmt.Errorf("outer: %w", tt.err), tt.target); got != tt.want {
				t.Fatalf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}
}
