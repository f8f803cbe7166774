// Command quickstart shows dock end to end with nothing from the network:
// it builds a busybox image from the host's static busybox with dock's own
// API, runs a container from it with memory, CPU and pids limits, and
// prints what the container printed.
//
//	sudo go run ./examples/quickstart
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/dockkit/dock"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	root := flag.String("root", "/var/lib/dock-quickstart", "dock state root")
	busybox := flag.String("busybox", "/bin/busybox", "a statically linked busybox")
	flag.Parse()
	log.SetFlags(0)
	if err := run(context.Background(), *root, *busybox); err != nil {
		log.Fatal("quickstart: ", err)
	}
}

func run(ctx context.Context, root, busybox string) error {
	host, err := dock.Open(ctx, dock.WithRoot(root))
	if err != nil {
		return err
	}
	defer host.Close()

	// 1. An image, built offline: one layer holding busybox and its applets.
	layer, err := busyboxLayer(busybox)
	if err != nil {
		return err
	}
	img, err := host.Import(ctx, bytes.NewReader(layer), "quickstart/busybox:latest",
		dock.WithImageConfig(ocispec.ImageConfig{
			Cmd: []string{"sh"},
			Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		}))
	if err != nil {
		return err
	}
	fmt.Printf("image %s  %s  %d layer(s)\n", img.Reference().Familiar(), img.Digest.Encoded()[:12], len(img.Layers))

	// 2. A container with limits, isolated in its own namespaces.
	script := `echo "hello from $(hostname), pid $$, $(id)"
echo "processes visible: $(ls -d /proc/[0-9]* | wc -l)"
echo "network interfaces: $(ls /sys/class/net | tr '\n' ' ')"
echo "capabilities: $(grep CapEff /proc/self/status)"
echo "seccomp mode: $(grep '^Seccomp:' /proc/self/status | cut -f2)"`
	start := time.Now()
	c, err := host.Create(ctx, img,
		dock.WithCmd("sh", "-c", script),
		dock.WithHostname("quickstart"),
		dock.WithMemoryLimit(64<<20), dock.WithCPUs(0.5), dock.WithPidsLimit(64),
		dock.WithUser("nobody"))
	if err != nil {
		return err
	}
	defer c.Remove(context.WithoutCancel(ctx), true)
	var out bytes.Buffer
	if err := c.Start(ctx, dock.WithOutput(&out, os.Stderr)); err != nil {
		return err
	}
	st, err := c.Wait(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("container %s ran in %v, exit code %d:\n", c.Name, time.Since(start).Round(time.Millisecond), st.ExitCode)
	fmt.Print(indent(out.String()))
	if st.ExitCode != 0 {
		return fmt.Errorf("container exited with %d", st.ExitCode)
	}
	return nil
}

// busyboxLayer writes a tar holding busybox, a link for each applet, and the
// few files a shell expects.
func busyboxLayer(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin/", "etc/", "root/", "proc/", "sys/", "dev/", "home/"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")); err != nil {
		return nil, err
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}
