package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dockkit/dock"
	"github.com/spf13/cobra"
)

// volumeCmd is `dock volume ...`: named volumes.
func (c *cli) volumeCmd() *cobra.Command {
	v := &cobra.Command{
		Use: "volume COMMAND", Short: "Manage volumes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return fmt.Errorf("unknown command %q for %q: %w", args[0], cmd.CommandPath(), dock.ErrInvalidArgument)
		},
	}
	v.AddCommand(c.volumeLsCmd(), c.volumeCreateCmd(), c.volumeRmCmd(), c.volumePruneCmd(), c.volumeInspectCmd())
	return v
}

func (c *cli) volumeLsCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls [-q]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			vols, err := h.Volumes(cmd.Context())
			if err != nil {
				return err
			}
			if quiet {
				for _, v := range vols {
					fmt.Println(v.Name)
				}
				return nil
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 5, ' ', 0)
			fmt.Fprintln(w, "DRIVER\tVOLUME NAME")
			for _, v := range vols {
				fmt.Fprintf(w, "local\t%s\n", v.Name)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print volume names only")
	return cmd
}

func (c *cli) volumeCreateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a volume, filled from the image of a container that mounts it while it is empty",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%q takes at most 1 argument, got %d; usage: %s: %w", cmd.CommandPath(), len(args), usage(cmd), dock.ErrInvalidArgument)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			v, err := h.CreateVolume(cmd.Context(), name)
			if err != nil {
				return err
			}
			fmt.Println(v.Name)
			return nil
		},
	}
}

func (c *cli) volumeRmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [-f] NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes that no container uses",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			// As docker: each name is tried, failures are reported one
			// a line, and the status says one failed.
			var failed error
			for _, name := range args {
				if err := h.RemoveVolume(cmd.Context(), name, force); err != nil {
					fmt.Fprintln(os.Stderr, "dock: "+oneLine(err.Error()))
					failed = exitError{1}
					continue
				}
				fmt.Println(name)
			}
			return failed
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not fail on a volume that does not exist")
	return cmd
}

func (c *cli) volumePruneCmd() *cobra.Command {
	var force, all bool
	cmd := &cobra.Command{
		Use:   "prune [-f] [-a]",
		Short: "Remove the anonymous volumes no container uses; with -a, every unused volume",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				if all {
					fmt.Print("WARNING! This will remove all volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ")
				} else {
					fmt.Print("WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ")
				}
				answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if !strings.HasSuffix(answer, "\n") {
					fmt.Println() // stdin ended: the prompt's line
				}
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return nil
				}
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			var po []dock.PruneVolumesOption
			if !all {
				po = append(po, dock.AnonymousOnly())
			}
			removed, err := h.PruneVolumes(cmd.Context(), po...)
			if len(removed) > 0 {
				fmt.Println("Deleted Volumes:")
				for _, name := range removed {
					fmt.Println(name)
				}
				fmt.Println()
			}
			fmt.Printf("Total: %d volume(s)\n", len(removed))
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove named volumes no container uses too")
	return cmd
}

// volumeJSON is what inspect prints of a volume, named as docker names it.
type volumeJSON struct {
	CreatedAt  time.Time
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func volumeInfo(v dock.VolumeInfo) volumeJSON {
	return volumeJSON{CreatedAt: v.Created.Truncate(time.Second), Driver: "local",
		Mountpoint: v.Mountpoint, Name: v.Name, Scope: "local"}
}

func (c *cli) volumeInspectCmd() *cobra.Command {
	return c.inspectCommand("inspect [-f TEMPLATE] NAME...", "Print what dock knows of volumes, as JSON",
		"print each volume through a Go template, as docker volume inspect -f",
		func(cmd *cobra.Command, h *dock.Host, name string) (any, error) {
			v, err := h.Volume(cmd.Context(), name)
			if err != nil {
				return nil, err
			}
			return volumeInfo(v), nil
		})
}
