package store

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestUmociReadsStore checks that umoci lists the names Tag records and
// unpacks an image from the store into a bundle.
func TestUmociReadsStore(t *testing.T) {
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("umoci not installed: cannot check the layout against another reader")
	}
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "busybox", tarGz("bin/busybox", []byte("#!/bin/sh\n")))
	const name = "docker.io/library/busybox:latest"
	if err := s.Tag(ctx, img.manifest, name); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(umoci, "ls", "--layout", s.Dir()).CombinedOutput()
	if err != nil || string(out) != name+"\n" {
		t.Fatalf("umoci ls = %q, %v", out, err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err = exec.Command(umoci, "unpack", "--rootless", "--image", s.Dir()+":"+name, bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v: %s", err, out)
	}
	for _, f := range []string{"rootfs/busybox", "rootfs/bin/busybox"} {
		if _, err := os.Stat(filepath.Join(bundle, f)); err != nil {
			t.Errorf("unpacked bundle lacks %s: %v", f, err)
		}
	}
}

// TestSkopeoReadsStore checks that skopeo reads a store as an OCI layout:
// inspect finds images by the full names Tag records, and copy reads every
// blob back out and verifies it.
func TestSkopeoReadsStore(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo not installed: cannot check the layout against another reader")
	}
	ctx := context.Background()
	s := newStore(t)
	img := mustImage(t, s, "busybox", tarGz("bin/busybox", content(11, 1<<20)))
	other := mustImage(t, s, "other")
	names := []string{
		"docker.io/library/busybox:latest",
		"127.0.0.1:5000/team/app:v1.2",
		"latest",
	}
	for _, n := range names {
		if err := s.Tag(ctx, img.manifest, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tag(ctx, other.manifest, "docker.io/library/other:1"); err != nil {
		t.Fatal(err)
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+s.Dir()+":"+name).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo inspect --raw: %v: %s", err, out)
			}
			raw, _ := os.ReadFile(s.BlobPath(img.manifest.Digest))
			if !bytes.Equal(bytes.TrimSpace(out), raw) {
				t.Fatalf("skopeo read manifest %s, want %s", out, raw)
			}
			out, err = exec.Command(skopeo, "inspect", "oci:"+s.Dir()+":"+name).Output()
			if err != nil {
				t.Fatalf("skopeo inspect: %v", err)
			}
			var info struct {
				Digest string
				Labels map[string]string
				Layers []string
			}
			if err := json.Unmarshal(out, &info); err != nil {
				t.Fatalf("skopeo inspect output %s: %v", out, err)
			}
			if info.Digest != img.manifest.Digest.String() || info.Labels["seed"] != "busybox" || len(info.Layers) != 2 {
				t.Fatalf("skopeo inspect = %+v, want digest %s", info, img.manifest.Digest)
			}
		})
	}

	dst := filepath.Join(t.TempDir(), "copy")
	out, err := exec.Command(skopeo, "copy", "--quiet", "oci:"+s.Dir()+":"+names[0], "oci:"+dst+":copied").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
	// And the store reads what skopeo wrote.
	s2, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := s2.Resolve(ctx, "copied")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s2.ReadManifest(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if ok, err := s2.Exists(ctx, l); !ok || err != nil {
			t.Fatalf("blob %s missing after skopeo copy (%v)", l.Digest, err)
		}
	}
}
