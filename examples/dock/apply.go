package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/dockkit/dock"
)

// layerCmd is `dock layer apply DIR LAYER...`: applies layer tars, in
// order, onto a plain directory, as unpacking an image does. A maintenance
// command (for checking a layer, or timing the extraction alone); it needs
// no state root.
func (c *cli) layerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "layer",
		Short:  "Work with single layers",
		Hidden: true,
	}
	apply := &cobra.Command{
		Use:   "apply DIR LAYER...",
		Short: "Apply layer tars (gzip, zstd or plain), in order, onto a directory",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, p := range args[1:] {
				f, err := os.Open(p)
				if err != nil {
					return fmt.Errorf("layer apply: %w", err)
				}
				d, err := dock.ApplyLayer(cmd.Context(), args[0], f)
				f.Close()
				if err != nil {
					return fmt.Errorf("layer apply %s: %w", p, err)
				}
				fmt.Printf("%s %s\n", d, p)
			}
			return nil
		},
	}
	cmd.AddCommand(apply)
	return cmd
}
