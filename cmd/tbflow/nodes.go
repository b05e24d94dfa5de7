package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
)

func init() {
	register("nodes", "print the node reference (Markdown), the node specs or a flow JSON Schema", runNodes)
}

func runNodes(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("nodes", stderr)
	schema := fs.Bool("schema", false, "print a JSON Schema for flow files instead")
	specs := fs.Bool("json", false, "print the node specs as JSON (what the editor renders forms from)")
	setUsage(fs, stderr,
		"usage: tbflow nodes [--schema | --json] [TYPE...]",
		"",
		"Prints the reference of every node type (or the named ones) as Markdown,",
		"generated from the same specs that drive validation and the editor.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	reg := engine.DefaultRegistry()
	if fs.NArg() > 0 {
		sub := engine.NewRegistry()
		for _, name := range fs.Args() {
			t, ok := reg.Lookup(name)
			if !ok {
				fmt.Fprintf(stderr, "tbflow nodes: unknown node type %q\n", name)
				return 1
			}
			sub.Register(*t)
		}
		reg = sub
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	switch {
	case *schema:
		enc.Encode(reg.JSONSchema())
	case *specs:
		enc.Encode(reg)
	default:
		io.WriteString(stdout, reg.Markdown())
	}
	return 0
}
