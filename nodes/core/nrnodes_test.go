package core_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/nodes/core"
)

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func outPayloads(ms []*engine.Msg) string {
	var s []string
	for _, m := range ms {
		s = append(s, js(m.Payload))
	}
	return strings.Join(s, ",")
}

func TestChangeRules(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{LookupEnv: func(k string) (string, bool) { return "v-" + k, true }}, "change", map[string]any{"rules": []any{
		map[string]any{"t": "set", "p": "payload.a[1]", "pt": "msg", "to": "5", "tot": "num"},
		map[string]any{"t": "set", "p": "count", "pt": "flow", "to": `{"n":1}`, "tot": "json"},
		map[string]any{"t": "set", "p": "fromFlow", "pt": "msg", "to": "count.n", "tot": "flow"},
		map[string]any{"t": "set", "p": "e", "pt": "msg", "to": "HOME", "tot": "env"},
		map[string]any{"t": "change", "p": "topic", "pt": "msg", "from": "o", "fromt": "str", "to": "0", "tot": "str"},
		map[string]any{"t": "change", "p": "word", "pt": "msg", "from": "(\\w+)-(\\w+)", "fromt": "re", "to": "$2+$1", "tot": "str"},
		map[string]any{"t": "move", "p": "old", "pt": "msg", "to": "stash", "tot": "global"},
		map[string]any{"t": "set", "p": "back", "pt": "msg", "to": "stash", "tot": "global"},
		map[string]any{"t": "delete", "p": "gone", "pt": "msg"},
		map[string]any{"t": "set", "p": "x", "pt": "msg", "to": "payload.a[1] * 2", "tot": "expr"},
	}})
	m := engine.NewMsg(map[string]any{"a": []any{1.0}})
	m.Topic = "foo"
	m.Set("word", "left-right")
	m.Set("old", "kept")
	m.Set("gone", 1.0)
	n.Send(m)
	out := n.WaitOut(0, 1)[0]
	got := js(out)
	for _, want := range []string{`"payload":{"a":[1,5]}`, `"fromFlow":1`, `"e":"v-HOME"`, `"topic":"f00"`, `"word":"right+left"`, `"back":"kept"`, `"x":10`} {
		if !strings.Contains(got, want) {
			t.Errorf("message %s lacks %s", got, want)
		}
	}
	if strings.Contains(got, `"gone"`) || strings.Contains(got, `"old"`) {
		t.Errorf("delete/move left %s", got)
	}
}

func TestChangeRefusesUnconvertedJSONata(t *testing.T) {
	f, rep, err := engine.DefaultRegistry().ImportNodeRED([]byte(`[{"id":"t","type":"tab"},
	 {"id":"c","type":"change","z":"t","rules":[{"t":"set","p":"payload","pt":"msg","to":"$sum(payload.values)","tot":"jsonata"},
	   {"t":"set","p":"topic","pt":"msg","to":"\"id-\" & payload.id","tot":"jsonata"}],"x":1,"y":1,"wires":[[]]}]`))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(rep.Notes, "\n")
	if !strings.Contains(notes, `JSONata "$sum(payload.values)" has no expr equivalent`) || !strings.Contains(notes, `became the expression "string(\"id-\") + string(payload.id)"`) {
		t.Fatalf("notes = %s", notes)
	}
	ps := engine.DefaultRegistry().Validate(f, nil)
	if !strings.Contains(ps.Err().Error(), `rules[0].to: JSONata expression "$sum(payload.values)" was not converted`) || len(ps.Errors()) != 1 {
		t.Fatalf("problems = %v", ps)
	}
}

func TestJSONataToExpr(t *testing.T) {
	cases := map[string]string{
		"payload * 2":                       "payload * 2",
		"payload.temp > 20 and topic = 'x'": `payload.temp > 20 and topic == "x"`,
		"$round(payload)":                   "round(payload)",
		"$millis()":                         "timestamp()",
		"count + 1":                         "msg.count + 1",
		"payload.values[0]":                 "payload.values[0]",
		"$uppercase(topic) & '!'":           `string(upper(topic)) + string("!")`,
	}
	for in, want := range cases {
		if got, ok := core.JSONataToExpr(in); !ok || got != want {
			t.Errorf("%q → %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"$sum(payload)", "payload.{'a': 1}", "$round(payload, 2)", "payload[x > 1]", "% 2", "$flowContext('a')"} {
		if got, ok := core.JSONataToExpr(in); ok {
			t.Errorf("%q converted to %q", in, got)
		}
	}
}

func TestRangeAndJSON(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{}, "range", map[string]any{"minin": 0.0, "maxin": 1023.0, "minout": 0.0, "maxout": 5.0, "action": "clamp"})
	for _, v := range []any{0.0, 512.0, 2000.0, "1023"} {
		n.Send(engine.NewMsg(v))
	}
	if got := outPayloads(n.WaitOut(0, 4)); got != "0,2.5024437927663734,5,5" {
		t.Fatalf("range = %s", got)
	}
	r := enginetest.RunNode(t, enginetest.Options{}, "range", map[string]any{"minin": 0.0, "maxin": 10.0, "minout": 0.0, "maxout": 100.0, "action": "roll", "round": true})
	r.Send(engine.NewMsg(12.0))
	if got := outPayloads(r.WaitOut(0, 1)); got != "20" {
		t.Fatalf("roll = %s", got)
	}
	j := enginetest.RunNode(t, enginetest.Options{}, "json", map[string]any{})
	j.Send(engine.NewMsg(`{"a":1}`))
	j.Send(engine.NewMsg(map[string]any{"b": true}))
	if got := outPayloads(j.WaitOut(0, 2)); got != `{"a":1},"{\"b\":true}"` {
		t.Fatalf("json = %s", got)
	}
}

func TestTemplate(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{LookupEnv: func(k string) (string, bool) { return "north", k == "SITE" }}, "template", map[string]any{
		"template": "# Price List of {{topic}} at {{env.SITE}}\n{{! comment }}\n{{#payload}}\n- {{name}}: {{price}}\n{{/payload}}\n<{{flow.x}}>",
	})
	m := engine.NewMsg([]any{map[string]any{"name": "apple", "price": 100.0}, map[string]any{"name": "a&b", "price": 80.5}})
	m.Topic = "Fruits"
	n.Send(m)
	want := "# Price List of Fruits at north\n- apple: 100\n- a&amp;b: 80.5\n<>"
	if got := n.WaitOut(0, 1)[0].Payload; got != want {
		t.Fatalf("template = %q, want %q", got, want)
	}
	p := enginetest.RunNode(t, enginetest.Options{}, "template", map[string]any{"template": `{"v": {{payload}}}`, "output": "json", "field": "out"})
	p.Send(engine.NewMsg(3.0))
	if got := js(p.WaitOut(0, 1)[0].Fields["out"]); got != `{"v":3}` {
		t.Fatalf("json template = %s", got)
	}
}

func TestFilterModes(t *testing.T) {
	send := func(settings map[string]any, vals ...any) string {
		n := enginetest.RunNode(t, enginetest.Options{}, "filter", settings)
		for _, v := range vals {
			n.Send(engine.NewMsg(v))
		}
		n.WaitIdle()
		return outPayloads(n.Out(0))
	}
	if got := send(map[string]any{"func": "rbe"}, 1.0, 1.0, 2.0, map[string]any{"a": 1.0}, map[string]any{"a": 1.0}, 1.0); got != `1,2,{"a":1},1` {
		t.Errorf("rbe = %s", got)
	}
	if got := send(map[string]any{"func": "rbei"}, 1.0, 1.0, 2.0); got != `2` {
		t.Errorf("rbei = %s", got)
	}
	if got := send(map[string]any{"func": "deadband", "gap": "10"}, 0.0, 5.0, 10.0, 11.0, 15.0, 22.0); got != `0,11,22` {
		t.Errorf("deadband = %s", got)
	}
	if got := send(map[string]any{"func": "deadbandEq", "gap": "10"}, 0.0, 10.0, 15.0); got != `0,10` {
		t.Errorf("deadbandEq = %s", got)
	}
	if got := send(map[string]any{"func": "narrowband", "gap": "10%", "start": "100"}, 105.0, 150.0, 108.0); got != `105,108` {
		t.Errorf("narrowband = %s", got)
	}
	if got := send(map[string]any{"func": "deadband", "gap": "5", "inout": "in"}, 0.0, 4.0, 8.0, 20.0); got != `0,20` {
		t.Errorf("deadband in = %s", got)
	}
}

func TestTrigger(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{}, "trigger", map[string]any{"op1": "1", "op1type": "str", "op2": "0", "op2type": "num", "duration": 30.0, "units": "ms"})
	n.Send(engine.NewMsg("a"))
	n.Send(engine.NewMsg("b")) // ignored while waiting
	out := n.WaitOut(0, 2)
	if got := outPayloads(out); got != `"1",0` {
		t.Fatalf("trigger = %s", got)
	}
	x := enginetest.RunNode(t, enginetest.Options{}, "trigger", map[string]any{"op1": "", "op1type": "pay", "op2": "", "op2type": "payl", "duration": 40.0, "extend": true, "outputs": 2})
	x.Send(engine.NewMsg("a"))
	time.Sleep(10 * time.Millisecond)
	x.Send(engine.NewMsg("b"))
	x.WaitOut(1, 1)
	if got := outPayloads(x.Out(0)) + "|" + outPayloads(x.Out(1)); got != `"a"|"b"` {
		t.Fatalf("pay/payl = %s", got)
	}
	r := enginetest.RunNode(t, enginetest.Options{}, "trigger", map[string]any{"duration": 20.0, "reset": "stop"})
	r.Send(engine.NewMsg("go"))
	r.Send(engine.NewMsg("stop"))
	time.Sleep(60 * time.Millisecond)
	if got := outPayloads(r.Out(0)); got != `"1"` {
		t.Fatalf("reset trigger = %s", got)
	}
}

func TestLinksAcrossTabsAndLinkCall(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy(fmt.Appendf(nil, `[{"id":"t1","type":"tab"},{"id":"t2","type":"tab"},
	 {"id":"lo","type":"link-out","z":"t1","links":["li","li2"],"x":1,"y":1},
	 {"id":"li","type":"link-in","z":"t2","name":"sub","x":1,"y":1,"wires":[["up"]]},
	 {"id":"li2","type":"link-in","z":"t1","x":1,"y":1,"wires":[["plain"]]},
	 {"id":"up","type":"transform","z":"t2","expression":"upper(payload)","x":1,"y":1,"wires":[["ret"]]},
	 {"id":"ret","type":"link-out","z":"t2","mode":"return","x":1,"y":1},
	 {"id":"call","type":"link-call","z":"t1","links":["li"],"x":1,"y":1,"wires":[["called"]]},
	 {"id":"dyn","type":"link-call","z":"t1","linkType":"dynamic","x":1,"y":1,"wires":[["called"]]},
	 {"id":"plain","type":"%[1]s","z":"t1","x":1,"y":1},
	 {"id":"called","type":"%[1]s","z":"t1","x":1,"y":1}]`, enginetest.CaptureType), engine.DeployFull)
	h.Send("lo", engine.NewMsg("x"))
	h.Send("call", engine.NewMsg("hello"))
	dm := engine.NewMsg("dynamic")
	dm.Set("target", "sub")
	h.Send("dyn", dm)
	if got := outPayloads(h.WaitOutputs("plain", 1)); got != `"x"` {
		t.Fatalf("link out → link in = %s", got)
	}
	called := h.WaitOutputs("called", 2)
	got := []string{js(called[0].Payload), js(called[1].Payload)}
	if !(got[0] == `"HELLO"` && got[1] == `"DYNAMIC"` || got[1] == `"HELLO"` && got[0] == `"DYNAMIC"`) {
		t.Fatalf("link call = %v", got)
	}
	for _, m := range called {
		if _, ok := m.Fields["_linkSource"]; ok {
			t.Fatalf("returned message keeps _linkSource: %v", js(m))
		}
		if _, ok := m.Fields["_linkReturn"]; ok {
			t.Fatalf("returned message keeps the return mark: %v", js(m))
		}
	}
	// The return to "call" passed by "ret"; "li" received two and "up" upper-cased "x" too.
	if got := outPayloads(h.Outputs("plain")); got != `"x"` {
		t.Fatalf("plain = %s", got)
	}
}

func TestLinkCallTimeoutGoesToCatch(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy(fmt.Appendf(nil, `[{"id":"t1","type":"tab"},
	 {"id":"li","type":"link-in","z":"t1","x":1,"y":1,"wires":[[]]},
	 {"id":"call","type":"link-call","z":"t1","links":["li"],"timeout":0.02,"x":1,"y":1,"wires":[[]]},
	 {"id":"c","type":"catch","z":"t1","x":1,"y":1,"wires":[["caught"]]},
	 {"id":"caught","type":"%[1]s","z":"t1","x":1,"y":1}]`, enginetest.CaptureType), engine.DeployFull)
	h.Send("call", engine.NewMsg("x"))
	c := h.WaitOutputs("caught", 1)[0]
	if !strings.Contains(js(c.Fields["error"]), "timed out") || c.Payload != "x" {
		t.Fatalf("caught = %s", js(c))
	}
}

func TestTemplateYAML(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{}, "template", map[string]any{"template": "key: {{topic}}\nvalue: {{payload}}\nlist: [1, 2.5]", "output": "yaml"})
	m := engine.NewMsg("Hello, World!")
	m.Topic = "message"
	n.Send(m)
	if got := js(n.WaitOut(0, 1)[0].Payload); got != `{"key":"message","list":[1,2.5],"value":"Hello, World!"}` {
		t.Fatalf("yaml = %s", got)
	}
}

func TestTriggerPerTopicAndRepeat(t *testing.T) {
	n := enginetest.RunNode(t, enginetest.Options{}, "trigger", map[string]any{"op1": "", "op1type": "pay", "op2": "done", "op2type": "str", "duration": 40.0, "bytopic": "topic"})
	for _, tp := range []string{"a", "b", "a"} {
		m := engine.NewMsg(tp)
		m.Topic = tp
		n.Send(m)
	}
	r := engine.NewMsg(nil)
	r.Topic = "b"
	r.Set("reset", true)
	n.Send(r)
	time.Sleep(100 * time.Millisecond)
	if got := outPayloads(n.Out(0)); got != `"a","b","done"` {
		t.Fatalf("per topic = %s", got)
	}
	rep := enginetest.RunNode(t, enginetest.Options{}, "trigger", map[string]any{"op1": "tick", "op1type": "str", "op2type": "nul", "duration": -10.0})
	rep.Send(engine.NewMsg("go"))
	rep.WaitOut(0, 3)
	stop := engine.NewMsg(nil)
	stop.Set("reset", true)
	rep.Send(stop)
	rep.WaitIdle()
	time.Sleep(30 * time.Millisecond)
	k := len(rep.Out(0))
	time.Sleep(50 * time.Millisecond)
	if len(rep.Out(0)) != k {
		t.Fatalf("repeat did not stop on reset: %d then %d", k, len(rep.Out(0)))
	}
}
