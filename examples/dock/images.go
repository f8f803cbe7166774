package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/dockkit/dock"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func (c *cli) pullCmd() *cobra.Command {
	var platform string
	var noUnpack, quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] REF",
		Short: "Pull an image from a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			var opts []dock.PullOption
			if platform != "" {
				opts = append(opts, dock.WithPlatform(platform))
			}
			if noUnpack {
				opts = append(opts, dock.WithoutUnpack())
			}
			var pr *progressPrinter
			if !quiet {
				pr = newProgressPrinter(os.Stderr)
				opts = append(opts, dock.WithProgress(pr.update))
			}
			img, err := h.Pull(cmd.Context(), args[0], opts...)
			if pr != nil {
				pr.finish()
			}
			if err != nil {
				return err
			}
			fmt.Printf("%s: %s\n", img.Reference().Familiar(), img.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform to pull, os/arch[/variant]")
	cmd.Flags().BoolVar(&noUnpack, "no-unpack", false, "store the image without unpacking its layers")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no progress")
	return cmd
}

func (c *cli) pushCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] REF",
		Short: "Push an image to a registry",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			// The store looks names up without checking their spelling.
			if _, err := dock.ParseReference(args[0]); err != nil {
				return err
			}
			img, err := h.Image(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var opts []dock.PushOption
			var pr *progressPrinter
			if !quiet {
				pr = newProgressPrinter(os.Stderr)
				opts = append(opts, dock.WithProgress(pr.update))
			}
			err = h.Push(cmd.Context(), img, args[0], opts...)
			if pr != nil {
				pr.finish()
			}
			if err != nil {
				return err
			}
			fmt.Printf("%s: %s\n", img.Reference().Familiar(), img.Digest)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no progress")
	return cmd
}

func (c *cli) imagesCmd() *cobra.Command {
	var quiet, noTrunc, digests bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:   "images [OPTIONS]",
		Short: "List images",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			match, err := imageMatcher(filters)
			if err != nil {
				return err
			}
			tmpl, err := parseRowFormat(format, imageHeaders...)
			if err != nil {
				return err
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			imgs, err := h.Images(cmd.Context())
			if err != nil {
				return err
			}
			var rows []imageRow
			for _, img := range imgs {
				if r := newImageRow(cmd.Context(), h, img, !noTrunc); match(r) {
					rows = append(rows, r)
				}
			}
			switch {
			case quiet:
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			case tmpl != nil:
				return printRows(tmpl, rows)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
			if digests {
				fmt.Fprintln(w, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE\tUNPACKED")
			} else {
				fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tUNPACKED")
			}
			for _, r := range rows {
				if digests {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, r.ID, r.CreatedSince, r.Size, r.Unpacked)
				} else {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size, r.Unpacked)
				}
			}
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&quiet, "quiet", "q", false, "print image IDs only")
	fl.BoolVar(&noTrunc, "no-trunc", false, "print whole image IDs")
	fl.BoolVar(&digests, "digests", false, "show the manifests' digests")
	fl.BoolP("all", "a", false, "accepted for docker's sake: dock keeps no intermediate images")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "show only images matching KEY=VALUE: dangling, reference, label")
	fl.StringVar(&format, "format", "", "print each image through a Go template, as docker images --format")
	return cmd
}

func (c *cli) inspectCmd() *cobra.Command {
	return c.inspectCommand("inspect [-f TEMPLATE] NAME|REF...", "Print what dock knows of containers, images or volumes, as JSON",
		"print each object through a Go template, as docker inspect -f",
		func(cmd *cobra.Command, h *dock.Host, name string) (any, error) { return c.inspectOne(cmd, h, name) })
}

// inspectCommand makes an inspect command: each name through one, printed
// as JSON or through --format.
func (c *cli) inspectCommand(use, short, formatHelp string, one func(*cobra.Command, *dock.Host, string) (any, error)) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := inspectFormat(format)
			if err != nil {
				return err
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			return printInspected(tmpl, args, func(name string) (any, error) { return one(cmd, h, name) })
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", formatHelp)
	return cmd
}

// inspectFormat reads an inspect command's --format: nil for none.
func inspectFormat(format string) (*template.Template, error) {
	if format == "" {
		return nil, nil
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{"json": toJSON}).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("--format: %v: %w", err, dock.ErrInvalidArgument)
	}
	return tmpl, nil
}

// printInspected prints what one returns for each of names, as JSON, or
// through tmpl when there is one, as docker's inspect commands do.
func printInspected(tmpl *template.Template, names []string, one func(string) (any, error)) error {
	var out []any
	for _, n := range names {
		v, err := one(n)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	if tmpl != nil {
		return printTemplate(tmpl, out)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	return enc.Encode(out)
}

// printTemplate prints each object through tmpl, one a line. The template
// sees the object as its JSON reads (maps, lists), as docker's does.
func printTemplate(tmpl *template.Template, objs []any) error {
	var b strings.Builder
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // numbers print as JSON writes them
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if err := tmpl.Execute(&b, v); err != nil {
			return fmt.Errorf("--format: %v: %w", err, dock.ErrInvalidArgument)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(os.Stdout, b.String())
	return err
}

// toJSON is the template function json, as docker's.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// imageJSON is what inspect prints of an image, named as docker names it.
type imageJSON struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	Created     time.Time
	Size        int64
	Unpacked    int64
	Os          string
	Arch        string `json:"Architecture"`
	Variant     string `json:",omitempty"`
	Config      any
	RootFS      any
	Layers      []string
}

func imageInfo(cmd *cobra.Command, h *dock.Host, img *dock.Image) imageJSON {
	j := imageJSON{
		RepoTags: []string{}, RepoDigests: []string{}, Layers: []string{},
		ID: img.ID.String(), Created: img.Created, Size: img.Size,
		Unpacked: h.UnpackedSize(cmd.Context(), img),
		Os:       img.Config.OS, Arch: img.Config.Architecture, Variant: img.Config.Variant,
		Config: img.Config.Config, RootFS: img.Config.RootFS,
	}
	if img.Name != "" {
		r := img.Reference()
		j.RepoTags = []string{r.Familiar()}
		j.RepoDigests = []string{r.Name() + "@" + img.Digest.String()}
	}
	for _, l := range img.Layers {
		j.Layers = append(j.Layers, l.Digest.String())
	}
	return j
}

func (c *cli) tagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SRC DST",
		Short: "Give an image another name",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			return h.Tag(cmd.Context(), args[0], args[1])
		},
	}
}

func (c *cli) rmiCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [-f] REF...",
		Short: "Remove images",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			for _, a := range args {
				if err := h.RemoveImage(cmd.Context(), a, force); err != nil {
					return err
				}
				fmt.Println("Untagged: " + a)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove an image ID with several names, or one a container uses")
	return cmd
}

func (c *cli) loadCmd() *cobra.Command {
	var input string
	var noUnpack bool
	cmd := &cobra.Command{
		Use:   "load [-i] [DIR|TAR]",
		Short: "Load images from an OCI layout (directory or tar) or a docker save tar; a tar may come on standard input",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				input = args[0]
			}
			if input == "" || input == "-" {
				if term.IsTerminal(int(os.Stdin.Fd())) {
					return fmt.Errorf("load: name a directory or tar, or pipe a tar to standard input: %w", dock.ErrInvalidArgument)
				}
				tmp, err := stdinToFile()
				if err != nil {
					return err
				}
				defer os.Remove(tmp)
				input = tmp
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			var opts []dock.LoadOption
			if noUnpack {
				opts = append(opts, dock.WithoutUnpack())
			}
			imgs, err := h.Load(cmd.Context(), input, opts...)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				name := img.Digest.String()
				if img.Name != "" {
					name = img.Reference().Familiar()
				}
				fmt.Println("Loaded image: " + name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read from this file or directory")
	cmd.Flags().BoolVar(&noUnpack, "no-unpack", false, "store the images without unpacking their layers")
	return cmd
}

// stdinToFile copies standard input to a temporary file, since an archive
// is read out of order, and returns its name.
func stdinToFile() (string, error) {
	f, err := os.CreateTemp("", "dock-load-*.tar")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, os.Stdin)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("load: read standard input: %w", err)
	}
	return f.Name(), nil
}

// imageCmd is `dock image ...`, docker's grouping of the image commands.
func (c *cli) imageCmd() *cobra.Command {
	img := &cobra.Command{
		Use: "image COMMAND", Short: "Manage images",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return fmt.Errorf("unknown command %q for %q: %w", args[0], cmd.CommandPath(), dock.ErrInvalidArgument)
		},
	}
	ls := c.imagesCmd()
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"list"}
	rm := c.rmiCmd()
	rm.Use, rm.Aliases = "rm [-f] REF...", []string{"remove"}
	img.AddCommand(ls, rm, c.pullCmd(), c.pushCmd(), c.inspectCmd(), c.tagCmd(), c.loadCmd(), c.saveCmd(), c.imagePruneCmd())
	return img
}

func (c *cli) imagePruneCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Remove the images that have no name left and no container uses",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			removed, err := h.PruneImages(cmd.Context())
			for _, d := range removed {
				fmt.Println("Deleted: " + d.String())
			}
			return err
		},
	}
}

func (c *cli) saveCmd() *cobra.Command {
	var output, format string
	cmd := &cobra.Command{
		Use:   "save -o FILE REF...",
		Short: "Save images to a tar (docker-archive, or an OCI layout with --format oci)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			var f dock.ArchiveFormat
			switch format {
			case "docker", "docker-archive":
				f = dock.DockerArchive
			case "oci", "oci-archive":
				f = dock.OCIArchive
			default:
				return fmt.Errorf("save: --format %q: want docker or oci: %w", format, dock.ErrInvalidArgument)
			}
			var w io.Writer = os.Stdout
			if output != "" && output != "-" {
				return saveToFile(cmd, h, output, f, args)
			}
			if term.IsTerminal(int(os.Stdout.Fd())) {
				return fmt.Errorf("save: refusing to write a tar to a terminal; use -o FILE: %w", dock.ErrInvalidArgument)
			}
			return h.Save(cmd.Context(), w, f, args...)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file")
	cmd.Flags().StringVar(&format, "format", "docker", "docker or oci")
	return cmd
}

// saveToFile writes the archive beside path and renames it into place, so
// that a failed save leaves no partial file.
func saveToFile(cmd *cobra.Command, h *dock.Host, path string, f dock.ArchiveFormat, refs []string) error {
	tmp, err := os.CreateTemp(dirOf(path), ".dock-save-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := h.Save(cmd.Context(), tmp, f, refs...); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (c *cli) loginCmd() *cobra.Command {
	var user, pass string
	var passStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [-p PASS | --password-stdin] [HOST]",
		Short: "Store credentials for a registry (docker.io unless named), as docker login does",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"docker.io"}
			}
			if passStdin {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" || pass == "" {
				return fmt.Errorf("login: -u and -p (or --password-stdin) are needed: %w", dock.ErrInvalidArgument)
			}
			var opts []dock.RegistryOption
			if slices.Contains(c.insecure, args[0]) {
				opts = append(opts, dock.WithPlainHTTP())
			} else {
				pem, err := c.registryCA(args[0])
				if err != nil {
					return err
				}
				if len(pem) > 0 {
					opts = append(opts, dock.WithCA(pem))
				}
			}
			reg, err := dock.NewRegistry(args[0], opts...)
			if err != nil {
				return err
			}
			if err := reg.Login(cmd.Context(), user, pass); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func (c *cli) commitCmd() *cobra.Command {
	var message, compression string
	cmd := &cobra.Command{
		Use:   "commit [-m MSG] NAME REF",
		Short: "Make an image from a container's changes",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctr, err := c.container(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var opts []dock.CommitOption
			if message != "" {
				opts = append(opts, dock.WithCommitComment(message))
			}
			if compression != "" {
				opts = append(opts, dock.WithCommitCompression(compression))
			}
			img, err := ctr.Commit(cmd.Context(), args[1], opts...)
			if err != nil {
				return err
			}
			fmt.Println(img.ID)
			return nil
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "comment recorded in the new layer's history")
	cmd.Flags().StringVar(&compression, "compression", "", "layer compression: gzip (default) or zstd")
	return cmd
}
