package main

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// importer converts another tool's configuration into a tbflow flow: one
// `tbflow import <kind> FILE` subcommand.
type importer struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// importers is filled by the init functions of the import_*.go files.
var importers = map[string]importer{}

func registerImporter(kind, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	if _, dup := importers[kind]; dup {
		panic("tbflow: importer registered twice: " + kind)
	}
	importers[kind] = importer{summary: summary, run: run}
}

func init() {
	register("import", "convert another tool's configuration into a tbflow flow", runImport)
}

func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		importUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	im, ok := importers[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tbflow import: unknown kind %q\n\n", args[0])
		importUsage(stderr)
		return 2
	}
	return im.run(ctx, args[1:], stdout, stderr)
}

func importUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: tbflow import <kind> [flags] FILE")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "kinds:")
	kinds := make([]string, 0, len(importers))
	for k := range importers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-12s %s\n", k, importers[k].summary)
	}
	if len(kinds) == 0 {
		fmt.Fprintln(w, "  (none built in)")
	}
}
