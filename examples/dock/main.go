// Command dock is a docker-like command line built only on dock's public
// API: pull, push, build and run images without a daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dockkit/dock"
	"github.com/spf13/cobra"
)

// cli holds the global flags and the host they open.
type cli struct {
	root     string
	insecure []string
	debug    bool
	host     *dock.Host
}

// exitError carries an exit status out of a command without printing.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	c := &cli{}
	root := &cobra.Command{
		Use:           "dock",
		Short:         "Pull, build and run containers without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPostRunE: func(*cobra.Command, []string) error {
			if c.host != nil {
				return c.host.Close()
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	defRoot := os.Getenv("DOCK_ROOT")
	if defRoot == "" {
		defRoot = dock.DefaultRoot
	}
	pf.StringVar(&c.root, "root", defRoot, "state root directory")
	pf.StringArrayVar(&c.insecure, "insecure-registry", nil, "registry HOST:PORT to reach over plain HTTP (repeatable)")
	pf.BoolVar(&c.debug, "debug", false, "print more about failures")

	root.AddCommand(
		c.pullCmd(), c.pushCmd(), c.imagesCmd(), c.inspectCmd(), c.tagCmd(), c.rmiCmd(),
		c.loadCmd(), c.saveCmd(), c.loginCmd(),
	)
	root.AddCommand(c.containerCmds()...)
	root.SetArgs(args)
	root.SetContext(ctx)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "dock: "+oneLine(err.Error()))
	return 125
}

// open opens the host named by the global flags, once.
func (c *cli) open(ctx context.Context) (*dock.Host, error) {
	if c.host != nil {
		return c.host, nil
	}
	opts := []dock.OpenOption{dock.WithRoot(c.root)}
	for _, r := range c.insecure {
		opts = append(opts, dock.WithInsecureRegistry(r))
	}
	h, err := dock.Open(ctx, opts...)
	if err != nil {
		return nil, err
	}
	c.host = h
	return h, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
