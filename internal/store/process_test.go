package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// startChild re-executes the test binary in the given role against dir.
func startChild(t *testing.T, role, dir string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role, childDirEnv + "=" + dir}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// TestTagFromManyProcesses runs processes that each push an image (all
// sharing one 8 MiB layer, pushed at the same time) and tag it; every tag
// must survive the concurrent read-modify-writes of index.json.
func TestTagFromManyProcesses(t *testing.T) {
	s := newStore(t)
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range n {
		cmds[i], outs[i] = startChild(t, "tag", s.Dir(), childIDEnv+"="+strconv.Itoa(i))
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v: %s", i, err, outs[i])
		}
	}
	entries, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]ocispec.Descriptor{}
	for _, e := range entries {
		names[e.Name] = e.Descriptor
	}
	if len(entries) != n {
		t.Errorf("index.json has %d entries, want %d", len(entries), n)
	}
	for i := range n {
		desc, ok := names[procRef(strconv.Itoa(i))]
		if !ok {
			t.Errorf("tag %s lost", procRef(strconv.Itoa(i)))
			continue
		}
		m, err := s.ReadManifest(context.Background(), desc)
		if err != nil {
			t.Errorf("%s: %v", procRef(strconv.Itoa(i)), err)
			continue
		}
		for _, l := range m.Layers {
			if ok, err := s.Exists(context.Background(), l); !ok || err != nil {
				t.Errorf("%s: layer %s missing (%v)", procRef(strconv.Itoa(i)), l.Digest, err)
			}
		}
	}
	if names := ingestFiles(t, s); len(names) != 0 {
		t.Fatalf("ingest left %v", names)
	}
}

// waitIngest waits until an ingest temp file holds at least size bytes and
// returns its name.
func waitIngest(t *testing.T, s *Store, size int64, out *bytes.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range ingestFiles(t, s) {
			if fi, err := os.Stat(s.path(ingestDir, name)); err == nil && fi.Size() >= size {
				return name
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no ingest file of %d bytes appeared; child said: %s", size, out)
	return ""
}

// TestPushKilledMidWrite kills a process while it writes a large blob: no
// part of the blob may be visible, Open must leave the live writer's temp
// file alone but remove it once the writer is dead, and the push must then
// succeed.
func TestPushKilledMidWrite(t *testing.T) {
	s := newStore(t)
	const size = 32 << 20
	data := content(7, size)
	desc := blobDesc(ocispec.MediaTypeImageLayerGzip, data)

	cmd, out := startChild(t, "slowpush", s.Dir(), fmt.Sprintf("%s=%d", childSizeEnv, size))
	tmp := waitIngest(t, s, 4<<20, out)

	// The writer is alive: reopening must not take its file away.
	if _, err := Open(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path(ingestDir, tmp)); err != nil {
		t.Fatalf("Open removed a live writer's ingest file: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if ok, err := s.Exists(context.Background(), desc); ok || err != nil {
		t.Fatalf("after kill: Exists = %v, %v; want no visible blob", ok, err)
	}
	if _, err := os.Stat(s.path(ingestDir, tmp)); err != nil {
		t.Fatalf("the killed writer's temp file should remain until Open: %v", err)
	}

	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if names := ingestFiles(t, s2); len(names) != 0 {
		t.Fatalf("Open left stale ingest files %v", names)
	}
	if err := s2.Push(context.Background(), desc, bytes.NewReader(data)); err != nil {
		t.Fatalf("push after crash: %v", err)
	}
	got, err := os.ReadFile(s2.BlobPath(desc.Digest))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored blob differs after crash and retry (%v)", err)
	}
}

// TestOpenRemovesIndexTemp checks that index.json.tmp left by a writer that
// died before its rename is cleaned and index.json is still read.
func TestOpenRemovesIndexTemp(t *testing.T) {
	s := newStore(t)
	img := mustImage(t, s, "a")
	if err := s.Tag(context.Background(), img.manifest, "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path(indexTemp), []byte(`{"schemaVer`), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path(indexTemp)); !os.IsNotExist(err) {
		t.Fatalf("index.json.tmp still there: %v", err)
	}
	if _, err := s2.Resolve(context.Background(), "example.com/a:1"); err != nil {
		t.Fatal(err)
	}
}
