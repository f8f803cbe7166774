package dock_test

import (
	"context"
	"fmt"
	"log"

	"github.com/dockkit/dock"
)

// Pull an image for another platform, reporting progress, and list what the
// store holds.
func ExampleHost_Pull() {
	ctx := context.Background()
	host, err := dock.Open(ctx, dock.WithRoot("/var/lib/dock"))
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()

	img, err := host.Pull(ctx, "docker.io/library/alpine:3.20",
		dock.WithPlatform("linux/arm64"),
		dock.WithProgress(func(p dock.Progress) {
			if p.State == dock.ProgressDone {
				fmt.Println("fetched", p.Digest)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Name, img.Digest, len(img.Layers), "layers")
}

// Push an image from the store to a registry that needs a password, trusting
// a private CA.
func ExampleHost_Push() {
	ctx := context.Background()
	host, err := dock.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()

	img, err := host.Image(ctx, "alpine:3.20")
	if err != nil {
		log.Fatal(err)
	}
	caPEM := []byte("-----BEGIN CERTIFICATE-----\n...")
	reg, err := dock.NewRegistry("registry.example.com:5000",
		dock.WithBasicAuth("ci", "secret"), dock.WithCA(caPEM))
	if err != nil {
		log.Fatal(err)
	}
	err = host.Push(ctx, img, "registry.example.com:5000/team/alpine:3.20",
		dock.WithRegistry(reg))
	if err != nil {
		log.Fatal(err)
	}
}

// References are normalized as Docker reads them.
func ExampleParseReference() {
	for _, s := range []string{"alpine", "127.0.0.1:5000/team/app:v2"} {
		r, err := dock.ParseReference(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Domain, r.Path, r.Tag)
	}
	// Output:
	// docker.io library/alpine latest
	// 127.0.0.1:5000 team/app v2
}
