package core_test

import (
	"encoding/json"
	"testing"

	"github.com/tbflow/tbflow/engine"
)

// FuzzTransformCompile validates a transform node holding an arbitrary
// expression, as a deploy does, and constructs and runs the ones that
// validate: validation must catch every expression that cannot compile,
// and nothing may panic.
func FuzzTransformCompile(f *testing.F) {
	for _, s := range []string{
		"payload * 2", `{"payload": payload, "topic": "x"}`, "payload.t / 10", "now().Unix()",
		"timestamp()", "payload +", "}{", "msg.device ?? 'none'", `upper(topic) + "/" + string(payload)`,
		"map(1..3, # * 2)", "len(msg)", "1/0", "payload[0]",
	} {
		f.Add(s)
	}
	reg := engine.DefaultRegistry()
	f.Fuzz(func(t *testing.T, expr string) {
		node, _ := json.Marshal(map[string]any{"id": "t", "type": "transform", "expression": expr, "wires": []any{[]any{}}})
		fl, err := engine.ParseFlow([]byte("[" + string(node) + "]"))
		if err != nil {
			t.Fatalf("parsing our own flow: %v", err)
		}
		ps := reg.Validate(fl, nil)
		e := engine.New(engine.Options{Registry: reg})
		nodes, err := e.Construct(fl)
		if ps.HasErrors() != (err != nil) {
			t.Fatalf("validation (%v) and construction (%v) disagree on %q", ps.Err(), err, expr)
		}
		if err != nil {
			return
		}
		h := nodes["t"].(engine.Handler)
		m := engine.NewMsg(map[string]any{"t": 215.0})
		m.Topic = "meter"
		h.Handle(t.Context(), m)
	})
}
