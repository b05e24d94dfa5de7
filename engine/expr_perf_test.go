package engine

import "testing"

func TestExprBuildsMsgMapOnlyWhenNamed(t *testing.T) {
	for src, want := range map[string]bool{
		"payload * 2":             false,
		"topic + 'x'":             false,
		"msg.payload * 2":         true,
		"msg.device ?? 'none'":    true,
		"$env.payload":            true,
		"len(payload) > 0":        false,
		"payload.temperature > 2": false,
	} {
		e, err := CompileExpr(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if e.usesMsg != want {
			t.Errorf("%s: usesMsg = %v, want %v", src, e.usesMsg, want)
		}
	}
	m := &Msg{ID: "1", Topic: "t", Payload: 2.0, Fields: map[string]any{"device": "d"}}
	for src, want := range map[string]any{"payload * 2": 4.0, "msg.device": "d", "msg.payload + payload": 4.0, "topic": "t"} {
		e, err := CompileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // machines and environments are recycled
			got, err := e.Eval(m)
			if err != nil || got != want {
				t.Fatalf("%s = %v, %v; want %v", src, got, err, want)
			}
		}
	}
}
