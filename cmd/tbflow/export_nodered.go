package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	register("export", "write a flow in another tool's format (nodered)", runExport)
}

func runExport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "nodered" {
		fmt.Fprintln(stderr, "usage: tbflow export nodered [-o OUT] FILE")
		return 2
	}
	fs := newFlagSet("export nodered", stderr)
	out := fs.String("o", "-", "write the Node-RED flow here (- for stdout)")
	setUsage(fs, stderr,
		"usage: tbflow export nodered [flags] FILE",
		"",
		"Writes a tbflow flow as a Node-RED flow: nodes Node-RED also has get its",
		"type names, field names and values; transform and the ThingsBoard and",
		"Modbus nodes stay as they are (Node-RED lists them as missing types).",
		"Secrets are left out. The report goes to stderr.",
	)
	if code, done := parseFlags(fs, args[1:]); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	reg := engine.DefaultRegistry()
	f, err := (&engine.FileStore{Path: fs.Arg(0), Registry: reg}).Load()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Arg(0), err)
		return 1
	}
	nr, rep := reg.ExportNodeRED(f)
	b, err := nr.MarshalJSON()
	if err != nil {
		fmt.Fprintf(stderr, "tbflow export nodered: %v\n", err)
		return 1
	}
	b = append(b, '\n')
	if *out == "-" {
		stdout.Write(b)
	} else if err := engine.WriteFileAtomic(*out, b, 0o644); err != nil {
		fmt.Fprintf(stderr, "tbflow export nodered: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "exported %d object(s)\n", rep.Exported)
	for _, t := range rep.MissingTypes() {
		fmt.Fprintf(stderr, "tbflow only (Node-RED will list it as a missing type): %s (%d)\n", t, len(rep.Missing[t]))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	return 0
}
