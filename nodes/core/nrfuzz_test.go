package core_test

import (
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/core"
)

// FuzzJSONataToExpr converts arbitrary JSONata: a conversion either fails
// or gives an expression that compiles, bounded in size; nothing panics.
func FuzzJSONataToExpr(f *testing.F) {
	for _, s := range []string{
		"payload * 2", "(payload % 2) = 0", `"[" & topic & "] " & payload`, "$round(payload)",
		"payload.a[0].b > 3 and topic != 'x'", "$now()", "a%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1%1",
		"((((", "'unterminated", "$sum(payload)", "payload ? 1 : 2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, ok := core.JSONataToExpr(src)
		if !ok {
			return
		}
		if len(out) > 20_000+len(src)*4 {
			t.Fatalf("%q became %d bytes", src, len(out))
		}
		if _, err := engine.CompileExpr(out); err != nil {
			t.Fatalf("%q became %q, which does not compile: %v", src, out, err)
		}
	})
}

// FuzzChangeRules validates a change node with an arbitrary property path
// and value, constructs the ones that validate and runs them on a message:
// validation and construction agree and nothing panics.
func FuzzChangeRules(f *testing.F) {
	for _, s := range [][3]string{
		{"payload.a[0]", "5", "num"}, {"payload[\"k\"].x", "{\"a\":1}", "json"}, {"a..b", "x", "str"},
		{"payload[99999999]", "1", "num"}, {"topic", "payload * 2", "expr"}, {"[", "", "str"},
		{"payload.x", "y.z", "msg"}, {"p", "$now()", "jsonata"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	reg := engine.DefaultRegistry()
	f.Fuzz(func(t *testing.T, path, value, typ string) {
		if len(path) > 2000 || strings.ContainsRune(path, 0) {
			return
		}
		rules := []any{map[string]any{"t": "set", "p": path, "pt": "msg", "to": value, "tot": typ}}
		fl := &engine.Flow{Nodes: []*engine.NodeDef{{ID: "c", Type: "change", Fields: map[string]any{"rules": rules}, Wires: [][]string{{}}}}}
		ps := reg.Validate(fl, nil)
		e := engine.New(engine.Options{Registry: reg})
		nodes, err := e.Construct(fl)
		if ps.HasErrors() != (err != nil) {
			t.Fatalf("validation (%v) and construction (%v) disagree on %q %q %q", ps.Err(), err, path, value, typ)
		}
		if err != nil {
			return
		}
		m := engine.NewMsg(map[string]any{"a": []any{1.0}})
		nodes["c"].(engine.Handler).Handle(t.Context(), m)
	})
}
