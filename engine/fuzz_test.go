package engine

import (
	"testing"
)

// FuzzParseFlow feeds arbitrary bytes to the loader and the validator: they
// must never panic, and whatever parses must survive a round trip.
func FuzzParseFlow(f *testing.F) {
	f.Add([]byte(validFlow))
	f.Add([]byte(`[{"id":"a","type":"pass","wires":[["a"]]}]`))
	f.Add([]byte(`{"flows":[{"id":"t","type":"tab"}],"rev":"1"}`))
	f.Add([]byte(`[{"id":"u","type":"user","connection":"c","rows":[{"name":"x","conn":3}],"n":"${N}","cond":"payload >"}]`))
	f.Add([]byte("[\n{\"id\": }\n]"))
	f.Add([]byte(`[{"id":"c","type":"conn","host":"h","token":"__SECRET__","x":1e308,"y":-0}]`))
	f.Add([]byte(`[]`))
	reg, _ := newTestRegistry(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := ParseFlow(data)
		if err != nil {
			if ps := ProblemsFromError(err); len(ps) == 0 {
				t.Fatal("an error without problems")
			}
			return
		}
		reg.Validate(fl, func(string) (string, bool) { return "1", true })
		out, err := fl.MarshalJSON()
		if err != nil {
			return // e.g. NaN cannot occur from JSON; other values may not encode
		}
		back, err := ParseFlow(out)
		if err != nil {
			t.Fatalf("re-parsing our own output: %v\n%s", err, out)
		}
		if back.Revision() != fl.Revision() {
			t.Fatalf("round trip changed the flow:\n%s", out)
		}
	})
}

// FuzzCompileExpr compiles arbitrary expressions (as transform and switch
// do at deploy) and evaluates those that compile: no panics, errors only.
func FuzzCompileExpr(f *testing.F) {
	for _, s := range []string{
		"payload * 2", "msg.payload.t / 10", `{"a": payload, "ts": timestamp()}`, "topic + '/x'",
		"payload >", "len(payload) > 3 ? upper(topic) : env('HOME')", "now().Year()",
		"[1,2,3] | map(# * payload)", "fromJSON(toJSON(msg))", "1 ?? 2", "((((((((((1))))))))))",
		"payload.a.b.c", "let x = 1; x + payload",
	} {
		f.Add(s)
	}
	m := NewMsg(map[string]any{"t": 215.0, "a": []any{1.0}})
	m.Topic = "meter"
	f.Fuzz(func(t *testing.T, src string) {
		e, err := CompileExpr(src)
		if err != nil {
			if _, ok := err.(*ExprError); !ok {
				t.Fatalf("compile error %T is not an *ExprError", err)
			}
			return
		}
		e.Eval(m.Clone())
	})
}
