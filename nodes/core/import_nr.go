package core

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Import rules for the Node-RED nodes whose tbflow counterparts keep
// Node-RED's field names: the values are coerced to the spec's kinds
// (Node-RED keeps many numbers as strings) and anything left over is
// named in a note.
func init() {
	engine.RegisterImport("change", importChange)
	engine.RegisterImport("range", importAs("range", "name"))
	engine.RegisterImport("json", importAs("json", "name"))
	engine.RegisterImport("template", importAs("template", "name"))
	engine.RegisterImport("rbe", importAs("filter", "name"))
	engine.RegisterImport("filter", importAs("filter", "name"))
	engine.RegisterImport("trigger", importAs("trigger", "name"))
	engine.RegisterImport("link in", importAs("link-in", "name"))
	engine.RegisterImport("link out", importAs("link-out", "name"))
	engine.RegisterImport("link call", importAs("link-call", "name"))
}

// importAs maps a Node-RED node onto tbflow type typ field by field.
// ignore lists Node-RED keys dropped without a note.
func importAs(typ string, ignore ...string) engine.ImportFunc {
	return func(in map[string]any) (string, map[string]any, []string, error) {
		t, ok := engine.DefaultRegistry().Lookup(typ)
		if !ok {
			return "", nil, nil, fmt.Errorf("type %s is not available", typ)
		}
		out, notes := coerceFields(t.Fields, in, "")
		for k, v := range in {
			if _, ok := t.Field(k); ok || slices.Contains(ignore, k) || isEmpty(v) {
				continue
			}
			notes = append(notes, fmt.Sprintf("setting %s = %s has no tbflow equivalent and was dropped", k, short(v)))
		}
		slices.Sort(notes)
		return typ, out, notes, nil
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case bool:
		return !t
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	case float64:
		return t == 0
	}
	return false
}

// coerceFields converts the values of in that fields declare.
func coerceFields(fields []engine.Field, in map[string]any, prefix string) (map[string]any, []string) {
	out := map[string]any{}
	var notes []string
	for _, f := range fields {
		v, ok := in[f.Name]
		if !ok {
			continue
		}
		cv, err := coerce(f, v)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s%s: %v; the default is used", prefix, f.Name, err))
			continue
		}
		if cv != nil {
			out[f.Name] = cv
		}
	}
	return out, notes
}

func coerce(f engine.Field, v any) (any, error) {
	switch f.Kind {
	case engine.KindNumber, engine.KindInt:
		switch t := v.(type) {
		case float64:
			return t, nil
		case string:
			if strings.TrimSpace(t) == "" {
				return nil, nil
			}
			n, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", t)
			}
			return n, nil
		case bool:
			if t {
				return 1.0, nil
			}
			return 0.0, nil
		}
	case engine.KindBool:
		switch t := v.(type) {
		case bool:
			return t, nil
		case string:
			return t == "true", nil
		case float64:
			return t != 0, nil
		}
	case engine.KindString:
		switch t := v.(type) {
		case string:
			return t, nil
		case float64, bool:
			return str(map[string]any{"v": t}, "v"), nil
		case nil:
			return nil, nil
		}
	case engine.KindEnum:
		s := str(map[string]any{"v": v}, "v")
		if slices.Contains(f.Enum, s) {
			return s, nil
		}
		return nil, fmt.Errorf("%q is not supported (one of %s)", s, strings.Join(f.Enum, ", "))
	case engine.KindJSON:
		return v, nil
	case engine.KindTable:
		rows, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("not a list")
		}
		// Rows keep what does not convert, for validation to name.
		out := make([]any, 0, len(rows))
		for _, r := range rows {
			rm, _ := r.(map[string]any)
			row := map[string]any{}
			for _, c := range f.Fields {
				x, ok := rm[c.Name]
				if !ok {
					continue
				}
				if cv, err := coerce(c, x); err == nil && cv != nil {
					row[c.Name] = cv
				} else if err != nil {
					row[c.Name] = x
				}
			}
			out = append(out, row)
		}
		return out, nil
	default:
		return v, nil
	}
	return nil, fmt.Errorf("%s is not a %s", short(v), f.Kind)
}

// importChange converts the rules; JSONata values become expr
// expressions where they map and stay "jsonata" (reported, refused by
// validation until rewritten) where they do not.
func importChange(in map[string]any) (string, map[string]any, []string, error) {
	rules, _ := in["rules"].([]any)
	if len(rules) == 0 {
		// Node-RED 0.x kept one rule in action / property / from / to.
		if a := str(in, "action"); a != "" {
			rules = []any{map[string]any{"t": map[string]string{"replace": "set"}[a], "p": str(in, "property"), "to": str(in, "to"), "from": str(in, "from")}}
		}
	}
	var notes []string
	var out []any
	for i, r := range rules {
		rm, _ := r.(map[string]any)
		row := map[string]any{}
		for k, v := range rm {
			row[k] = v
		}
		if row["t"] == "move" || row["t"] == "delete" {
			delete(row, "from")
			delete(row, "fromt")
		}
		for _, k := range []string{"tot", "fromt"} {
			if row[k] != "jsonata" {
				continue
			}
			src := str(row, strings.TrimSuffix(k, "t"))
			if ex, ok := JSONataToExpr(src); ok {
				row[k], row[strings.TrimSuffix(k, "t")] = "expr", ex
				notes = append(notes, fmt.Sprintf("rule %d: JSONata %q became the expression %q", i+1, src, ex))
			} else {
				notes = append(notes, fmt.Sprintf("rule %d: JSONata %q has no expr equivalent; rewrite it as an expr expression (the flow does not deploy until then)", i+1, src))
			}
		}
		out = append(out, row)
	}
	typ, fields, more, err := importAs("change", "name", "action", "property", "from", "to", "reg")(map[string]any{"rules": out})
	return typ, fields, append(notes, more...), err
}
