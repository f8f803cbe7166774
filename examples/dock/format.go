package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"
)

// rowFormat is a parsed --format of a listing (ps, images). A table
// prints a header of the fields' names first, and aligns the columns, as
// docker's does.
type rowFormat struct {
	tmpl   *template.Template
	table  bool
	header string
}

// parseRowFormat parses --format: nil for none. headers maps a field,
// as "{{.ID}}", to its column's header.
func parseRowFormat(format string, headers ...string) (*rowFormat, error) {
	if format == "" || format == "table" {
		return nil, nil
	}
	rest, table := strings.CutPrefix(format, "table")
	rest = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.TrimLeft(rest, " "))
	tmpl, err := inspectFormat(rest + "\n")
	if err != nil {
		return nil, err
	}
	return &rowFormat{tmpl: tmpl, table: table, header: strings.NewReplacer(headers...).Replace(rest)}, nil
}

// printRows prints rows through f.
func printRows[R any](f *rowFormat, rows []R) error {
	if !f.table {
		for _, r := range rows {
			if err := f.tmpl.Execute(os.Stdout, r); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, f.header)
	for _, r := range rows {
		if err := f.tmpl.Execute(w, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
	}
	return w.Flush()
}
