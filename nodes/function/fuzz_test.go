package function

import (
	"testing"

	"github.com/tbflow/tbflow/engine"
)

// FuzzFunctionSource validates a function node holding arbitrary code and
// runs the code that validates on a message, with a short budget:
// validation and construction agree, and nothing panics or hangs.
func FuzzFunctionSource(f *testing.F) {
	for _, s := range []string{
		"return msg;", "msg.payload = msg.payload * 2;\nreturn msg;", "return [msg, [msg, msg], null];",
		"while (true) {}", "return msg +;", "const a = {}; a.a = a; return {payload: a};",
		"node.send({payload: 1}); return null;", "await new Promise(r => setTimeout(r, 1)); return msg;",
		"throw new Error('x')", "return 5;", "context.set('k', [1, {a: 2}]); return {payload: context.get('k')};",
		"function f() { return f(); } f();", "require('fs')",
	} {
		f.Add(s)
	}
	reg := engine.DefaultRegistry()
	f.Fuzz(func(t *testing.T, src string) {
		fl := &engine.Flow{Nodes: []*engine.NodeDef{{ID: "f", Type: "function",
			Fields: map[string]any{"func": src, "outputs": 2.0, "timeout": 0.05}, Wires: [][]string{{}, {}}}}}
		ps := reg.Validate(fl, nil)
		e := engine.New(engine.Options{Registry: reg})
		nodes, err := e.Construct(fl)
		if ps.HasErrors() != (err != nil) {
			t.Fatalf("validation (%v) and construction (%v) disagree on %q", ps.Err(), err, src)
		}
		if err != nil {
			return
		}
		n := nodes["f"]
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer n.Stop(t.Context())
		n.(engine.Handler).Handle(t.Context(), engine.NewMsg(1.0))
	})
}
