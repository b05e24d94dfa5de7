package function

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	_ "github.com/tbflow/tbflow/nodes/core"
)

func run(t *testing.T, settings map[string]any) *enginetest.NodeHarness {
	t.Helper()
	return enginetest.RunNode(t, enginetest.Options{LookupEnv: func(k string) (string, bool) {
		if k == "SITE" {
			return "north", true
		}
		return "", false
	}}, "function", settings)
}

func payloads(ms []*engine.Msg) string {
	var out []string
	for _, m := range ms {
		b, _ := json.Marshal(m.Payload)
		out = append(out, string(b))
	}
	return strings.Join(out, ",")
}

func TestConformance(t *testing.T) {
	enginetest.Conformance(t, "function", enginetest.ConformanceOptions{})
}

func TestReturnMsg(t *testing.T) {
	n := run(t, map[string]any{"func": `msg.payload = "Hello, " + msg.payload + "!"; msg.extra = {a: [1, 2.5]}; return msg;`})
	in := engine.NewMsg("World")
	n.Send(in)
	out := n.WaitOut(0, 1)
	if out[0].Payload != "Hello, World!" || out[0].ID != in.ID {
		t.Fatalf("got %+v", out[0])
	}
	b, _ := json.Marshal(out[0].Fields["extra"])
	if string(b) != `{"a":[1,2.5]}` {
		t.Fatalf("extra = %s", b)
	}
}

func TestOutputsArraysAndNull(t *testing.T) {
	n := run(t, map[string]any{"outputs": 3, "func": `
if (msg.payload === 0) return null;
if (msg.payload === 1) return [msg, null, {payload: "b"}];
return [[{payload: "a1"}, {payload: "a2"}], null, null];`})
	for _, p := range []float64{0, 1, 2} {
		n.Send(engine.NewMsg(p))
	}
	n.WaitIdle()
	if got := payloads(n.Out(0)); got != `1,"a1","a2"` {
		t.Fatalf("output 1 = %s", got)
	}
	if got := payloads(n.Out(1)); got != `` {
		t.Fatalf("output 2 = %s", got)
	}
	if got := payloads(n.Out(2)); got != `"b"` {
		t.Fatalf("output 3 = %s", got)
	}
}

func TestNodeSendTimersAndAwait(t *testing.T) {
	n := run(t, map[string]any{"func": `
const id = setTimeout(() => node.send({payload: "never"}), 5);
clearTimeout(id);
setTimeout((p) => { node.send({payload: p}); node.done(); }, 5, "later");
await new Promise(r => setTimeout(r, 10));
msg.payload = "awaited";
return msg;`})
	n.Send(engine.NewMsg(1))
	out := n.WaitOut(0, 2)
	time.Sleep(20 * time.Millisecond)
	if got := payloads(n.Out(0)); got != `"later","awaited"` {
		t.Fatalf("got %s (first %v)", got, out[0].Payload)
	}
}

func TestInterval(t *testing.T) {
	n := run(t, map[string]any{"func": `
let k = 0;
const id = setInterval(() => { k++; node.send({payload: k}); if (k === 3) clearInterval(id); }, 2);
return null;`})
	n.Send(engine.NewMsg(1))
	n.WaitOut(0, 3)
	time.Sleep(20 * time.Millisecond)
	if got := payloads(n.Out(0)); got != "1,2,3" {
		t.Fatalf("got %s", got)
	}
}

func TestContextFlowGlobalEnvAndStatus(t *testing.T) {
	n := run(t, map[string]any{
		"initialize": `context.set("count", 10); global.set("g", {site: env.get("SITE")});`,
		"func": `
let c = context.get("count") || 0;
c++;
context.set("count", c);
flow.set("last", msg.payload);
node.status({fill: "green", shape: "dot", text: "n=" + c});
msg.payload = {count: c, last: flow.get("last"), g: global.get("g"), missing: env.get("NOPE"), id: env.get("NR_NODE_ID"), keys: context.keys()};
return msg;`})
	n.Send(engine.NewMsg("a"))
	n.Send(engine.NewMsg("b"))
	out := n.WaitOut(0, 2)
	b, _ := json.Marshal(out[1].Payload)
	if string(b) != `{"count":12,"g":{"site":"north"},"id":"node","keys":["count"],"last":"b"}` {
		t.Fatalf("payload = %s", b)
	}
	st := n.Statuses("node")
	if len(st) == 0 || st[len(st)-1].Text != "n=12" || st[len(st)-1].Fill != "green" {
		t.Fatalf("statuses = %+v", st)
	}
}

func TestContextSurvivesRedeployOfUnchangedNode(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	flow := func(other string) []byte {
		return fmt.Appendf(nil, `[{"id":"tab","type":"tab","label":"t"},
		 {"id":"f","type":"function","z":"tab","func":"context.set('n', (context.get('n')||0)+1); flow.set('n', (flow.get('n')||0)+1); msg.payload=[context.get('n'), flow.get('n')]; return msg;","x":1,"y":1,"wires":[["out"]]},
		 {"id":"o","type":"function","z":"tab","func":%q,"x":1,"y":2,"wires":[[]]},
		 {"id":"out","type":"%s","z":"tab","x":1,"y":3,"wires":[]}]`, other, enginetest.CaptureType)
	}
	h.Deploy(flow("return msg;"), engine.DeployFull)
	h.Send("f", engine.NewMsg(0))
	h.WaitOutputs("out", 1)
	h.Deploy(flow("return null;"), engine.DeployModified)
	h.Send("f", engine.NewMsg(0))
	h.Deploy(flow("return 1;"), engine.DeployFull)
	h.Send("f", engine.NewMsg(0))
	out := h.WaitOutputs("out", 3)
	if got := payloads(out); got != "[1,1],[2,2],[3,3]" {
		t.Fatalf("got %s", got)
	}
}

func TestBudgetInterruptsAndGoesToCatch(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy(fmt.Appendf(nil, `[{"id":"tab","type":"tab","label":"t"},
	 {"id":"f","type":"function","z":"tab","timeout":0.05,"func":"if (msg.payload) { while (true) {} } return msg;","x":1,"y":1,"wires":[["out"]]},
	 {"id":"c","type":"catch","z":"tab","x":1,"y":2,"wires":[["caught"]]},
	 {"id":"out","type":"%[1]s","z":"tab","x":1,"y":3,"wires":[]},
	 {"id":"caught","type":"%[1]s","z":"tab","x":1,"y":4,"wires":[]}]`, enginetest.CaptureType), engine.DeployFull)
	h.Send("f", engine.NewMsg(true))
	h.Send("f", engine.NewMsg(false))
	caught := h.WaitOutputs("caught", 1)
	em, _ := caught[0].Fields["error"].(map[string]any)
	if msg, _ := em["message"].(string); !strings.Contains(msg, "budget of 50ms") {
		t.Fatalf("error = %v", em)
	}
	if out := h.WaitOutputs("out", 1); out[0].Payload != false {
		t.Fatalf("the runtime did not recover: %v", out[0].Payload)
	}
}

func TestThrowGoesToCatchWithMsg(t *testing.T) {
	n := run(t, map[string]any{"func": `if (msg.payload > 1) throw new Error("too big"); node.error("soft", msg); return null;`})
	n.Send(engine.NewMsg(5.0))
	n.Send(engine.NewMsg(1.0))
	n.WaitIdle()
	errs := n.Errors()
	if len(errs) != 2 || !strings.Contains(errs[0].Message, "too big") || errs[0].Msg.Payload != 5.0 || errs[1].Message != "soft" {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestValidationProblems(t *testing.T) {
	reg := engine.DefaultRegistry()
	cases := []struct{ fields, want string }{
		{`"func":"var a = 1;\nreturn msg +;"`, "func: line 2, column 13"},
		{`"func":"const x = require('fs');"`, "func: line 1, column 11: require() is not supported"},
		{`"libs":[{"var":"fs","module":"fs-extra"}]`, "libs: external modules are not supported in tbflow (fs-extra)"},
		{`"initialize":"var = 1;"`, "initialize: line 1, column 5"},
	}
	for _, c := range cases {
		f, err := engine.ParseFlow([]byte(`[{"id":"t","type":"tab"},{"id":"f","type":"function","z":"t",` + c.fields + `,"x":1,"y":1,"wires":[[]]}]`))
		if err != nil {
			t.Fatal(err)
		}
		ps := reg.Validate(f, nil)
		if !strings.Contains(ps.Err().Error(), c.want) {
			t.Errorf("%s: problems %v, want %q", c.fields, ps, c.want)
		}
	}
}

func TestFinalizeRunsOnStop(t *testing.T) {
	h := enginetest.New(t, enginetest.Options{})
	flow := `[{"id":"tab","type":"tab","label":"t"},
	 {"id":"f","type":"function","z":"tab","func":"return msg;","finalize":"global.set('stopped', true);","x":1,"y":1,"wires":[["out"]]},
	 {"id":"out","type":"` + enginetest.CaptureType + `","z":"tab","x":1,"y":3,"wires":[]}]`
	h.Deploy([]byte(flow), engine.DeployFull)
	h.Send("f", engine.NewMsg(nil))
	h.WaitOutputs("out", 1) // started
	h.Deploy([]byte(`[{"id":"tab","type":"tab","label":"t"},
	 {"id":"g","type":"function","z":"tab","func":"msg.payload = global.get('stopped'); return msg;","x":1,"y":1,"wires":[["out"]]},
	 {"id":"out","type":"`+enginetest.CaptureType+`","z":"tab","x":1,"y":3,"wires":[]}]`), engine.DeployFull)
	h.Send("g", engine.NewMsg(nil))
	if out := h.WaitOutputs("out", 2); out[1].Payload != true {
		t.Fatalf("finalize did not run: %v", out[0].Payload)
	}
}

func TestCyclicResultIsRefused(t *testing.T) {
	n := run(t, map[string]any{"func": `const a = {}; a.self = a; msg.payload = a; return msg;`})
	n.Send(engine.NewMsg(1))
	n.WaitIdle()
	if errs := n.Errors(); len(errs) != 1 || !strings.Contains(errs[0].Message, "nested deeper than 64") {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestAwaitedRunsKeepTheirMessages(t *testing.T) {
	n := run(t, map[string]any{"func": `
const wait = msg.payload === "slow" ? 40 : 5;
await new Promise(r => setTimeout(r, wait));
if (msg.payload === "bad") throw new Error("bad after await");
msg.topic = "done-" + msg.payload;
return msg;`})
	slow, fast, bad := engine.NewMsg("slow"), engine.NewMsg("fast"), engine.NewMsg("bad")
	n.Send(slow)
	n.Send(fast)
	n.Send(bad)
	out := n.WaitOut(0, 2)
	time.Sleep(20 * time.Millisecond)
	byID := map[string]string{}
	for _, m := range n.Out(0) {
		byID[m.ID] = m.Topic
	}
	if byID[slow.ID] != "done-slow" || byID[fast.ID] != "done-fast" || len(out) != 2 {
		t.Fatalf("outputs %v", byID)
	}
	errs := n.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "bad after await") || errs[0].Msg == nil || errs[0].Msg.Payload != "bad" {
		t.Fatalf("errors = %+v", errs)
	}
}

func TestContextPaths(t *testing.T) {
	n := run(t, map[string]any{"func": `
flow.set("dev", {name: "m1", readings: [1, 2]});
flow.set("dev.readings[1]", 5);
flow.set("dev.site.id", "north");
msg.payload = [flow.get("dev.name"), flow.get("dev.readings[1]"), flow.get("dev.site"), flow.get("dev.none")];
return msg;`})
	n.Send(engine.NewMsg(nil))
	if got := payloads(n.WaitOut(0, 1)); got != `["m1",5,{"id":"north"},null]` {
		t.Fatalf("got %s", got)
	}
}
