package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dockkit/dock"
)

// importCmd is `dock import TAR|- REF`: a one-layer image from a root
// filesystem tar, as `docker import` makes.
func (c *cli) importCmd() *cobra.Command {
	var compression string
	cmd := &cobra.Command{
		Use:   "import TAR|- REF",
		Short: "Make a one-layer image from an uncompressed root filesystem tar",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			} else if term.IsTerminal(int(os.Stdin.Fd())) {
				return fmt.Errorf("import: name a tar, or pipe one to standard input: %w", dock.ErrInvalidArgument)
			}
			h, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			img, err := h.Import(cmd.Context(), r, args[1], dock.WithLayerCompression(compression))
			if err != nil {
				return err
			}
			fmt.Println(img.Digest.String())
			return nil
		},
	}
	cmd.Flags().StringVar(&compression, "compression", "gzip", "layer compression: gzip, zstd or none")
	return cmd
}
