// Command dock is a docker-like command line built only on dock's public
// API: pull, push, build and run images without a daemon.
//
// Global flags (before or after the subcommand): --root DIR (default
// $DOCK_ROOT, else /var/lib/dock), --insecure-registry HOST:PORT (plain
// HTTP), --certs-dir DIR (default $DOCK_CERTS_DIR, else
// /etc/docker/certs.d: HOST:PORT/*.crt are the CAs trusted for that
// registry), --debug. Credentials stored by `dock login` or `docker login`
// are read from $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
//
// Exit status: 0, or the container's status for run (126 not executable,
// 127 not found, 128+N killed by signal N), 1 when a command on several
// containers failed for one, 125 when dock itself failed; errors are one
// line on stderr starting with "dock: ".
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/dockkit/dock"
	_ "github.com/dockkit/dock/examples/internal/runahead" // before most packages: see there
	"github.com/dockkit/dock/examples/internal/shortlived"
	"github.com/spf13/cobra"
)

// cli holds the global flags and the host they open.
type cli struct {
	root     string
	insecure []string
	certsDir string
	remap    string
	debug    bool
	host     *dock.Host
}

// exitError carries an exit status out of a command without printing.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// A command lives for one operation, most with a heap of a few MiB:
	// the first collection, at 4 MiB by default, costs more than it frees
	// before the exit. Twice the default heap growth puts it at 8 MiB,
	// past what run, exec or ps allocate. GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	// The heap has grown past what the package advised at its start.
	shortlived.Advise()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	c := &cli{}
	root := c.command()
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
	if c.debug {
		// The layers of the error, outermost first, with their types.
		for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(os.Stderr, "  %T: %s\n", e, oneLine(e.Error()))
		}
	}
	return 125
}

// command builds the dock command with all its subcommands.
func (c *cli) command() *cobra.Command {
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
	defCerts := os.Getenv("DOCK_CERTS_DIR")
	if defCerts == "" {
		defCerts = defaultCertsDir
	}
	pf.StringVar(&c.certsDir, "certs-dir", defCerts, "directory of HOST[:PORT]/*.crt CA files trusted for registries, as docker's certs.d")
	pf.StringVar(&c.remap, "userns-remap", "", "run containers in a user namespace whose root is the host's UID:GID (ids UID..UID+SIZE-1; SIZE 65536 unless given as UID:GID:SIZE)")
	pf.BoolVar(&c.debug, "debug", false, "print more about failures")

	root.AddCommand(
		c.pullCmd(), c.pushCmd(), c.imagesCmd(), c.inspectCmd(), c.tagCmd(), c.rmiCmd(),
		c.loadCmd(), c.saveCmd(), c.loginCmd(), c.commitCmd(), c.imageCmd(), c.importCmd(), c.layerCmd(), c.volumeCmd(),
	)
	root.AddCommand(c.containerCmds()...)
	root.AddCommand(c.runningCmds()...)
	return root
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
	regs, err := c.trustedRegistries()
	if err != nil {
		return nil, err
	}
	if len(regs) > 0 {
		opts = append(opts, dock.WithRegistries(regs...))
	}
	if c.remap != "" {
		ns, err := remappedNamespaces(c.remap)
		if err != nil {
			return nil, err
		}
		opts = append(opts, dock.WithNamespaces(ns))
	}
	h, err := dock.Open(ctx, opts...)
	if err != nil {
		return nil, err
	}
	c.host = h
	return h, nil
}

// container opens the host and finds the container name (or ID) in it.
func (c *cli) container(ctx context.Context, name string) (*dock.Container, error) {
	h, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return h.Container(ctx, name)
}

// remappedNamespaces parses --userns-remap's UID:GID[:SIZE].
func remappedNamespaces(v string) (dock.Namespaces, error) {
	f := strings.Split(v, ":")
	if len(f) == 2 {
		f = append(f, "65536")
	}
	var n [3]uint32
	for i, s := range f {
		x, err := strconv.ParseUint(s, 10, 32)
		if err != nil || len(f) != 3 {
			return nil, fmt.Errorf("--userns-remap %q: want UID:GID or UID:GID:SIZE: %w", v, dock.ErrInvalidArgument)
		}
		n[i] = uint32(x)
	}
	return dock.RemappedNamespaces(n[0], n[1], n[2])
}

// defaultCertsDir is where docker keeps the CA certificates of registries.
const defaultCertsDir = "/etc/docker/certs.d"

// registryCA returns the PEM certificates found in the certs directory for
// host (every *.crt file, as docker reads them), or nil when there are none.
func (c *cli) registryCA(host string) ([]byte, error) {
	if c.certsDir == "" || host == "" || strings.ContainsAny(host, "/\\") || host == "." || host == ".." {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(c.certsDir, host, "*.crt"))
	if err != nil {
		return nil, err
	}
	var pem []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("registry CA: %w", err)
		}
		pem = append(append(pem, b...), '\n')
	}
	return pem, nil
}

// trustedRegistries describes every registry with a CA in the certs
// directory, so that its TLS certificate is verified against that CA.
// Registries named by --insecure-registry are left to plain HTTP.
func (c *cli) trustedRegistries() ([]*dock.Registry, error) {
	if c.certsDir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(c.certsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--certs-dir: %w", err)
	}
	var regs []*dock.Registry
	for _, e := range entries {
		if !e.IsDir() || slices.Contains(c.insecure, e.Name()) {
			continue
		}
		pem, err := c.registryCA(e.Name())
		if err != nil {
			return nil, err
		}
		if len(pem) == 0 {
			continue
		}
		r, err := dock.NewRegistry(e.Name(), dock.WithCA(pem))
		if err != nil {
			return nil, fmt.Errorf("--certs-dir %s: %w", filepath.Join(c.certsDir, e.Name()), err)
		}
		regs = append(regs, r)
	}
	return regs, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// exactArgs wants n arguments and says so with the command's usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%q takes %d argument(s), got %d; usage: %s: %w", cmd.CommandPath(), n, len(args), usage(cmd), dock.ErrInvalidArgument)
		}
		return nil
	}
}

// minArgs wants at least n arguments and says so with the command's usage.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q needs at least %d argument(s); usage: %s: %w", cmd.CommandPath(), n, usage(cmd), dock.ErrInvalidArgument)
		}
		return nil
	}
}

func usage(cmd *cobra.Command) string { return strings.TrimSuffix(cmd.UseLine(), " [flags]") }
