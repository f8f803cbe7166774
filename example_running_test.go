package dock_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/dockkit/dock"
)

// Run a command in a running container and read its output and exit code.
func ExampleContainer_Exec() {
	ctx := context.Background()
	host, err := dock.Open(ctx, dock.WithRoot("/var/lib/dock"))
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	c, err := host.Container(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	p, err := c.Exec(ctx, []string{"cat", "/etc/os-release"},
		dock.WithOutput(&out, os.Stderr), dock.WithExecUser("nobody"), dock.WithExecEnv("LANG=C"))
	if err != nil {
		log.Fatal(err)
	}
	ps, err := p.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(out.String())
	fmt.Println("exit", ps.ExitCode)
}

// React to containers dying or turning unhealthy, without polling: the
// events come from the containers' monitors, whichever program started
// them.
func ExampleHost_Events() {
	ctx := context.Background()
	host, err := dock.Open(ctx, dock.WithRoot("/var/lib/dock"))
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	events, err := host.Events(ctx, dock.EventsOfType(dock.EventDied, dock.EventHealth))
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		fmt.Println(ev.Time.Format(time.RFC3339), ev.ContainerName, ev.Type, ev.Attributes)
	}
}

// Keep a service running: restarted by its monitor when it fails, even
// with no program of the caller alive, and checked by exec every 10s.
func ExampleWithRestartPolicy() {
	ctx := context.Background()
	host, err := dock.Open(ctx, dock.WithRoot("/var/lib/dock"))
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	img, err := host.Image(ctx, "docker.io/library/nginx:1.27")
	if err != nil {
		log.Fatal(err)
	}
	c, err := host.Create(ctx, img, dock.WithName("web"),
		dock.WithRestartPolicy("on-failure:5"),
		dock.WithHealthcheck(dock.Healthcheck{Test: []string{"CMD-SHELL", "wget -q -O /dev/null localhost"}, Interval: 10 * time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
}
