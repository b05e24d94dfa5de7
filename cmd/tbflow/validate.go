package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
)

func init() {
	register("validate", "check flow files and list every problem", runValidate)
}

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr)
	asJSON := fs.Bool("json", false, "print the problems as a JSON array (file, id, type, field, line, column, severity, message)")
	setUsage(fs, stderr,
		"usage: tbflow validate [flags] FILE...",
		"",
		"Checks flow files against the node specs and prints every problem as",
		`  FILE: node "id" (type) field: message`,
		"JSON syntax errors give the line and column. Undefined ${ENV} variables are",
		"warnings. The exit code is 1 when any file has an error, 2 on usage errors.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	type fileProblem struct {
		File string `json:"file"`
		engine.Problem
	}
	var all []fileProblem
	failed := false
	for _, file := range fs.Args() {
		ps := validateFile(ctx, file)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "tbflow validate: interrupted while checking %s\n", file)
			return 130
		}
		if ps.HasErrors() {
			failed = true
		}
		for _, p := range ps {
			all = append(all, fileProblem{File: file, Problem: p})
		}
		if !*asJSON {
			for _, p := range ps {
				fmt.Fprintf(stdout, "%s: %s\n", file, p)
			}
			if len(ps) == 0 {
				fmt.Fprintf(stdout, "%s: ok\n", file)
			}
		}
	}
	if *asJSON {
		if all == nil {
			all = []fileProblem{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(all)
	}
	if failed {
		return 1
	}
	return 0
}

// validateFile loads a flow (with its credentials file) and validates it.
// It stops early once ctx ends (SIGINT, SIGTERM).
func validateFile(ctx context.Context, path string) engine.Problems {
	if _, err := os.Stat(path); err != nil {
		return engine.Problems{{Severity: engine.SeverityError, Message: err.Error()}}
	}
	f, hint, notes, err := loadFlowFile(ctx, path)
	if err != nil {
		return engine.ProblemsFromError(err)
	}
	ps := append(engine.DefaultRegistry().ValidateContext(ctx, f, nil), fleet.CheckFlow(f)...)
	if hint != "" {
		// A Node-RED export: say so first, with what the conversion did.
		pre := engine.Problems{{Severity: engine.SeverityWarning, Message: hint}}
		for _, n := range notes {
			pre = append(pre, engine.Problem{Severity: engine.SeverityWarning, Message: "import: " + n})
		}
		ps = append(pre, ps...)
	}
	return ps
}
