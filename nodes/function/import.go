package function

import (
	"fmt"
	"strconv"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.RegisterImport("function", importFunction)
}

// importFunction keeps Node-RED's function settings, which tbflow's
// function node shares; modules stay in libs, where validation names them.
func importFunction(in map[string]any) (string, map[string]any, []string, error) {
	out := map[string]any{}
	for _, k := range []string{"func", "initialize", "finalize"} {
		if s, ok := in[k].(string); ok {
			out[k] = s
		}
	}
	for _, k := range []string{"outputs", "timeout", "noerr"} {
		switch v := in[k].(type) {
		case float64:
			out[k] = v
		case string:
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = f
			}
		}
	}
	var notes []string
	if libs, ok := in["libs"].([]any); ok && len(libs) > 0 {
		out["libs"] = libs
		notes = append(notes, fmt.Sprintf("uses %d external module(s), which tbflow does not support", len(libs)))
	}
	return "function", out, notes, nil
}

func init() {
	engine.RegisterExport("function", exportFunction)
}

// exportFunction writes the settings Node-RED's function node has.
func exportFunction(in map[string]any) (string, map[string]any, []string) {
	out := map[string]any{"libs": []any{}}
	for k, v := range in {
		out[k] = engine.CloneValue(v)
	}
	return "function", out, nil
}
