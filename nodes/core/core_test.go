package core_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	_ "github.com/tbflow/tbflow/nodes/core"
)

func TestConformance(t *testing.T) {
	cases := map[string]enginetest.ConformanceOptions{
		"inject":     {},
		"debug":      {},
		"transform":  {Settings: map[string]any{"expression": "payload + 1"}},
		"switch":     {},
		"delay":      {Settings: map[string]any{"delay": "1ms"}},
		"rate-limit": {},
		"catch":      {},
		"status":     {},
		"link-in":    {},
		"link-out":   {},
		"link-call":  {},
		"change":     {},
		"range":      {},
		"json":       {},
		"template":   {},
		"filter":     {},
		"trigger":    {},
	}
	for _, typ := range []string{"inject", "debug", "transform", "switch", "delay", "rate-limit", "catch", "status",
		"link-in", "link-out", "link-call", "change", "range", "json", "template", "filter", "trigger"} {
		t.Run(typ, func(t *testing.T) { enginetest.Conformance(t, typ, cases[typ]) })
	}
	for _, tt := range engine.DefaultRegistry().Types() {
		if _, ok := cases[tt.Name]; !ok && strings.HasPrefix(tt.Category, "common") {
			t.Errorf("type %q has no conformance case", tt.Name)
		}
	}
}

func TestTransformPayload(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "transform", map[string]any{"expression": "payload * 2"})
	h.Send(engine.NewMsg(21.0))
	out := h.WaitOut(0, 1)
	if out[0].Payload != 42.0 {
		t.Fatalf("payload = %v, want 42", out[0].Payload)
	}
}

func TestTransformWholeMessage(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "transform", map[string]any{
		"expression": `{"payload": {"t": payload / 10}, "topic": "meter/" + topic, "device": "Meter A"}`,
		"target":     "msg",
	})
	m := engine.NewMsg(215.0)
	m.Topic = "a"
	h.Send(m)
	out := h.WaitOut(0, 1)[0]
	if out.Topic != "meter/a" || out.Fields["device"] != "Meter A" || out.Payload.(map[string]any)["t"] != 21.5 {
		t.Fatalf("got %+v", out)
	}
	if out.ID == "" {
		t.Fatal("message has no id")
	}
}

func TestTransformErrorGoesToCatch(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy([]byte(`[
	 {"id":"tab","type":"tab","label":"t"},
	 {"id":"tr","type":"transform","z":"tab","expression":"payload.x.y","wires":[[]]},
	 {"id":"c","type":"catch","z":"tab","wires":[["out"]]},
	 {"id":"out","type":"enginetest-capture","z":"tab","wires":[]}
	]`), engine.DeployFull)
	h.Send("tr", engine.NewMsg("not an object"))
	got := h.WaitOutputs("out", 1)
	e, _ := got[0].Fields["error"].(map[string]any)
	src, _ := e["source"].(map[string]any)
	if src["id"] != "tr" || !strings.Contains(e["message"].(string), "payload.x.y") {
		t.Fatalf("error message = %v", got[0].Fields["error"])
	}
	if got[0].Payload != "not an object" {
		t.Fatalf("catch lost the failed message: %v", got[0].Payload)
	}
	errs := h.Errors()
	if len(errs) != 1 || !errs[0].Caught {
		t.Fatalf("error events = %+v", errs)
	}
}

func TestSwitchFirstAndAll(t *testing.T) {
	rules := []any{
		map[string]any{"condition": "payload > 10"},
		map[string]any{"condition": "payload > 5"},
		map[string]any{"condition": "true"},
	}
	first := enginetest.RunNode(t, enginetest.Options{}, "switch", map[string]any{"rules": rules})
	all := enginetest.RunNode(t, enginetest.Options{}, "switch", map[string]any{"rules": rules, "mode": "all"})
	for _, v := range []float64{20, 7, 1} {
		first.Send(engine.NewMsg(v))
		all.Send(engine.NewMsg(v))
	}
	first.WaitIdle()
	all.WaitIdle()
	count := func(h *enginetest.NodeHarness) [3]int {
		return [3]int{len(h.Out(0)), len(h.Out(1)), len(h.Out(2))}
	}
	if got := count(first); got != [3]int{1, 1, 1} {
		t.Errorf("first: outputs %v, want [1 1 1]", got)
	}
	if got := count(all); got != [3]int{1, 2, 3} {
		t.Errorf("all: outputs %v, want [1 2 3]", got)
	}
	// every copy is its own message
	if all.Out(0)[0] == all.Out(1)[0] {
		t.Error("mode all sent the same message object to two outputs")
	}
}

func TestInjectButtonAndPayloadTypes(t *testing.T) {
	cases := []struct {
		typ, payload string
		want         any
	}{
		{"json", `{"a":[1,2]}`, map[string]any{"a": []any{1.0, 2.0}}},
		{"number", "3.5", 3.5},
		{"string", "hi", "hi"},
		{"boolean", "true", true},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			h := enginetest.RunNode(t, enginetest.Options{}, "inject", map[string]any{"payloadType": c.typ, "payload": c.payload, "topic": "x"})
			if err := h.Engine.Inject(t.Context(), "node"); err != nil {
				t.Fatal(err)
			}
			out := h.WaitOut(0, 1)[0]
			if !equalJSON(out.Payload, c.want) || out.Topic != "x" {
				t.Fatalf("got %v (%s), want %v", out.Payload, out.Topic, c.want)
			}
			if _, ok := out.Fields["ts"]; !ok {
				t.Fatal("no ts")
			}
		})
	}
	h := enginetest.RunNode(t, enginetest.Options{}, "inject", nil)
	h.Engine.Inject(t.Context(), "node")
	if _, ok := h.WaitOut(0, 1)[0].Payload.(int64); !ok {
		t.Fatal("timestamp payload is not an integer")
	}
}

func TestInjectOnceAndInterval(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "inject", map[string]any{"once": true, "onceDelay": "0s", "interval": "5ms"})
	h.WaitOut(0, 3)
}

func TestDelayKeepsOrder(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "delay", map[string]any{"delay": "2ms"})
	for i := range 20 {
		h.Send(engine.NewMsg(float64(i)))
	}
	out := h.WaitOut(0, 20)
	for i, m := range out {
		if m.Payload != float64(i) {
			t.Fatalf("message %d has payload %v", i, m.Payload)
		}
	}
}

func TestRateLimitDrop(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "rate-limit", map[string]any{"rate": 3, "per": "1h", "drop": true})
	for i := range 10 {
		h.Send(engine.NewMsg(float64(i)))
	}
	h.WaitIdle()
	if got := len(h.Out(0)); got != 3 {
		t.Fatalf("%d messages passed, want 3", got)
	}
	if st := h.Statuses("node"); len(st) == 0 || !strings.Contains(st[0].Text, "dropped") {
		t.Fatalf("statuses = %v", st)
	}
}

func TestRateLimitQueues(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "rate-limit", map[string]any{"rate": 100, "per": "10ms"})
	for i := range 150 {
		h.Send(engine.NewMsg(float64(i)))
	}
	if got := len(h.WaitOut(0, 150)); got != 150 {
		t.Fatalf("%d messages passed, want 150", got)
	}
}

func TestDebugEvents(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{}, "debug", map[string]any{"property": "payload.t"})
	h.Send(engine.NewMsg(map[string]any{"t": 4.0}))
	ev := h.WaitEvents(engine.TopicDebug, 1)[0]
	if d := ev.Data.(*engine.DebugData); d.Value != 4.0 || d.Property != "payload.t" {
		t.Fatalf("debug event = %+v", d)
	}
	whole := enginetest.RunNode(t, enginetest.Options{}, "debug", map[string]any{"property": "msg"})
	whole.Send(engine.NewMsg("x"))
	ev = whole.WaitEvents(engine.TopicDebug, 1)[0]
	if m, ok := ev.Data.(*engine.DebugData).Value.(*engine.Msg); !ok || m.Payload != "x" {
		t.Fatalf("debug event = %+v", ev.Data)
	}
}

// syncBuffer is a log destination the engine's goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDebugConsoleLogsJSON: with console on, the value is logged as JSON
// text, as the flow would show it.
func TestDebugConsoleLogsJSON(t *testing.T) {
	var logs syncBuffer
	h := enginetest.RunNode(t, enginetest.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))},
		"debug", map[string]any{"console": true})
	h.Send(engine.NewMsg(map[string]any{"t": 4.0}))
	h.WaitIdle()
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "debug" {
			if rec["value"] != `{"t":4}` || rec["property"] != "payload" {
				t.Errorf("log record %s", line)
			}
			return
		}
	}
	t.Fatalf("no debug record in the log:\n%s", logs.String())
}

func TestStatusNode(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy([]byte(`[
	 {"id":"tab","type":"tab","label":"t"},
	 {"id":"rl","type":"rate-limit","z":"tab","rate":1,"per":"1h","drop":true,"wires":[[]]},
	 {"id":"st","type":"status","z":"tab","scope":"nodes","nodes":[{"node":"rl"}],"wires":[["out"]]},
	 {"id":"out","type":"enginetest-capture","z":"tab","wires":[]}
	]`), engine.DeployFull)
	h.Send("rl", engine.NewMsg(1.0))
	h.Send("rl", engine.NewMsg(2.0))
	m := h.WaitOutputs("out", 1)[0]
	st := m.Fields["status"].(map[string]any)
	if st["text"] != "dropped 1" || st["source"].(map[string]any)["id"] != "rl" {
		t.Fatalf("status message = %v", st)
	}
}

func TestValidationOfCoreFields(t *testing.T) {
	f, err := engine.ParseFlow([]byte(`[
	 {"id":"i","type":"inject","payloadType":"json","payload":"{bad","schedule":"99 * * * *","wires":[["t"]]},
	 {"id":"t","type":"transform","expression":"payload +","wires":[[]]},
	 {"id":"s","type":"switch","rules":[{"condition":"payload >"}],"wires":[[]]}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	ps := engine.DefaultRegistry().Validate(f, nil)
	want := []string{
		`node "i" (inject) payload: payload is not valid JSON`,
		`node "i" (inject) schedule: schedule "99 * * * *": minute`,
		`node "t" (transform) expression: expression does not compile: line 1, column 9`,
		`node "s" (switch) rules[0].condition: expression does not compile`,
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing problem %q in:\n%s", w, joined)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestImportNodeREDCoreNodes(t *testing.T) {
	export := `[
	 {"id":"f1","type":"tab","label":"Flow 1"},
	 {"id":"i","type":"inject","z":"f1","props":[{"p":"payload"},{"p":"topic","vt":"str"}],"repeat":"5","crontab":"","once":true,"onceDelay":0.1,"topic":"t","payload":"{\"a\":1}","payloadType":"json","x":100,"y":40,"wires":[["s"]]},
	 {"id":"s","type":"switch","z":"f1","property":"payload.a","propertyType":"msg","rules":[{"t":"gt","v":"10","vt":"num"},{"t":"eq","v":"x","vt":"str"},{"t":"else"}],"checkall":"false","outputs":3,"x":300,"y":40,"wires":[["d"],["dl"],["rl"]]},
	 {"id":"dl","type":"delay","z":"f1","pauseType":"delay","timeout":"2","timeoutUnits":"seconds","x":500,"y":80,"wires":[["d"]]},
	 {"id":"rl","type":"delay","z":"f1","pauseType":"rate","rate":"5","nbRateUnits":"1","rateUnits":"minute","drop":true,"x":500,"y":120,"wires":[["d"]]},
	 {"id":"d","type":"debug","z":"f1","active":true,"complete":"true","console":false,"x":700,"y":40,"wires":[]},
	 {"id":"c","type":"catch","z":"f1","scope":["s"],"x":100,"y":200,"wires":[["d"]]},
	 {"id":"fn","type":"function","z":"f1","func":"return msg","x":100,"y":300,"wires":[["d"]]},
	 {"id":"ch","type":"change","z":"f1","rules":[],"x":100,"y":340,"wires":[["d"]]}
	]`
	reg := engine.DefaultRegistry()
	f, rep, err := reg.ImportNodeRED([]byte(export))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.UnsupportedTypes(), ","); got != "function" { // its package is not linked here
		t.Fatalf("unsupported = %q", got)
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("imported flow does not validate: %v", ps.Err())
	}
	in := f.Node("i").Fields
	if in["payloadType"] != "json" || in["interval"] != "5s" || in["once"] != true || in["onceDelay"] != "0.1s" {
		t.Errorf("inject = %v", in)
	}
	rules := f.Node("s").Fields["rules"].([]any)
	if rules[0].(map[string]any)["condition"] != "msg.payload.a > 10" || rules[1].(map[string]any)["condition"] != `msg.payload.a == "x"` || f.Node("s").Fields["mode"] != "first" {
		t.Errorf("switch = %v", f.Node("s").Fields)
	}
	if f.Node("dl").Type != "delay" || f.Node("dl").Fields["delay"] != "2s" {
		t.Errorf("delay = %+v", f.Node("dl"))
	}
	if f.Node("rl").Type != "rate-limit" || f.Node("rl").Fields["per"] != "60s" || f.Node("rl").Fields["drop"] != true {
		t.Errorf("rate limit = %+v", f.Node("rl"))
	}
	if f.Node("d").Fields["property"] != "msg" || f.Node("c").Fields["scope"] != "nodes" {
		t.Errorf("debug/catch = %v %v", f.Node("d").Fields, f.Node("c").Fields)
	}
}
