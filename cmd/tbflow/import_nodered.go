package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	registerImporter("nodered", "a Node-RED flow export (JSON) → a tbflow flow, with a report", runImportNodeRED)
}

func runImportNodeRED(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("import nodered", stderr)
	out := fs.String("o", "", "write the tbflow flow here (default: FILE with .tbflow.json instead of .json; - for stdout)")
	force := fs.Bool("force", false, "overwrite the output file if it exists")
	setUsage(fs, stderr,
		"usage: tbflow import nodered [flags] FILE",
		"",
		"Converts a Node-RED export (the JSON of Node-RED's Export dialog or its",
		"flows file) into a tbflow flow and prints what was converted, what was not",
		"and why. Tabs, groups, comments and link nodes are kept. The exit code is 1",
		"when the converted flow has validation errors (it is written all the same).",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	in := fs.Arg(0)
	data, err := os.ReadFile(in)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow import nodered: %v\n", err)
		return 1
	}
	reg := engine.DefaultRegistry()
	f, rep, err := reg.ImportNodeRED(data)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", in, err)
		return 1
	}
	b, err := f.MarshalJSON()
	if err != nil {
		fmt.Fprintf(stderr, "tbflow import nodered: %v\n", err)
		return 1
	}
	b = append(b, '\n')
	report := stdout
	dest := *out
	if dest == "" {
		dest = strings.TrimSuffix(in, filepath.Ext(in)) + ".tbflow.json"
	}
	if dest == "-" {
		stdout.Write(b)
		report = stderr
	} else {
		if _, err := os.Stat(dest); err == nil && !*force {
			fmt.Fprintf(stderr, "tbflow import nodered: %s exists (use --force to overwrite)\n", dest)
			return 1
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "tbflow import nodered: %v\n", err)
			return 1
		}
		if err := engine.WriteFileAtomic(dest, b, 0o644); err != nil {
			fmt.Fprintf(stderr, "tbflow import nodered: %v\n", err)
			return 1
		}
		fmt.Fprintf(report, "wrote %s\n", dest)
	}
	fmt.Fprint(report, rep.Text())
	ps := reg.Validate(f, nil)
	for _, p := range ps {
		fmt.Fprintf(report, "%s: %s\n", dest, p)
	}
	if ps.HasErrors() {
		return 1
	}
	return 0
}

// loadFlowFile loads a flow file with its credentials. A Node-RED export
// is converted in memory; hint then says so (and how to convert it for
// good), and the conversion report's lines are in notes.
func loadFlowFile(ctx context.Context, path string) (f *engine.Flow, hint string, notes []string, err error) {
	reg := engine.DefaultRegistry()
	f, err = (&engine.FileStore{Path: path, Registry: reg}).LoadContext(ctx)
	if err != nil || !reg.LooksLikeNodeRED(f) {
		return f, "", nil, err
	}
	conv, rep := reg.ImportNodeREDFlow(f)
	hint = fmt.Sprintf("%s is a Node-RED export: converted in memory (run `tbflow import nodered %s` to write the tbflow flow)", path, path)
	return conv, hint, strings.Split(strings.TrimSpace(rep.Text()), "\n"), nil
}
