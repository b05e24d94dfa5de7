package conformance

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// coreFlow uses every tbflow node type Node-RED also has.
const coreFlow = `[
 {"id":"core-tab","type":"tab","label":"core"},
 {"id":"c-in","type":"inject","z":"core-tab","payloadType":"number","payload":"21","topic":"t","x":100,"y":40,"wires":[["c-fn"]]},
 {"id":"c-fn","type":"function","z":"core-tab","func":"msg.payload = msg.payload * 2;\nreturn [msg, {payload: 'second'}];","outputs":2,"x":250,"y":40,"wires":[["c-ch","c-sw"],["c-dbg2"]]},
 {"id":"c-ch","type":"change","z":"core-tab","rules":[{"t":"set","p":"topic","pt":"msg","to":"changed","tot":"str"},{"t":"set","p":"extra","pt":"msg","to":"{\"a\":1}","tot":"json"}],"x":400,"y":40,"wires":[["c-range"]]},
 {"id":"c-range","type":"range","z":"core-tab","minin":0,"maxin":100,"minout":0,"maxout":1,"action":"scale","round":false,"property":"payload","x":550,"y":40,"wires":[["c-json"]]},
 {"id":"c-json","type":"json","z":"core-tab","action":"str","property":"extra","x":700,"y":40,"wires":[["c-tpl"]]},
 {"id":"c-tpl","type":"template","z":"core-tab","field":"text","template":"{{topic}}: {{payload}} {{extra}}","x":850,"y":40,"wires":[["c-filter"]]},
 {"id":"c-filter","type":"filter","z":"core-tab","func":"rbe","property":"payload","x":1000,"y":40,"wires":[["c-lo"]]},
 {"id":"c-lo","type":"link-out","z":"core-tab","links":["c-li"],"x":1100,"y":40},
 {"id":"c-li","type":"link-in","z":"core-tab","links":["c-lo"],"x":100,"y":140,"wires":[["c-dbg"]]},
 {"id":"c-dbg","type":"debug","z":"core-tab","property":"msg","x":300,"y":140,"wires":[]},
 {"id":"c-dbg2","type":"debug","z":"core-tab","x":400,"y":100,"wires":[]},
 {"id":"c-sw","type":"switch","z":"core-tab","rules":[{"condition":"msg.payload > 10","label":"big"},{"condition":"true","label":"else"}],"x":400,"y":200,"wires":[["c-trig"],[]]},
 {"id":"c-trig","type":"trigger","z":"core-tab","op1":"on","op1type":"str","op2":"off","op2type":"str","duration":50,"units":"ms","x":550,"y":200,"wires":[["c-delay"]]},
 {"id":"c-delay","type":"delay","z":"core-tab","delay":"10ms","x":700,"y":200,"wires":[["c-dbg3"]]},
 {"id":"c-dbg3","type":"debug","z":"core-tab","x":850,"y":200,"wires":[]},
 {"id":"c-catch","type":"catch","z":"core-tab","x":100,"y":260,"wires":[["c-dbg3"]]}
]`

// TestExportLoadsInNodeRED exports the demo flow (Modbus, ThingsBoard and
// transform nodes) together with a flow of every shared node type, loads
// it into Node-RED and checks that Node-RED misses exactly tbflow's own
// types; then it runs the shared part in both and compares debug output.
func TestExportLoadsInNodeRED(t *testing.T) {
	nr := startNodeRED(t)
	reg := engine.DefaultRegistry()
	demo, err := os.ReadFile(filepath.Join(repoRoot(t), "flows", "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a, b []any
	json.Unmarshal(demo, &a)
	json.Unmarshal([]byte(coreFlow), &b)
	both, _ := json.Marshal(append(a, b...))
	f, err := engine.ParseFlow(both)
	if err != nil {
		t.Fatal(err)
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("test flow invalid: %v", ps.Err())
	}
	out, rep := reg.ExportNodeRED(f)
	wantMissing := []string{}
	for _, n := range f.Nodes {
		if strings.HasPrefix(n.Type, "tb-") || strings.HasPrefix(n.Type, "modbus-") || n.Type == "gw-device" || n.Type == "transform" {
			if !slices.Contains(wantMissing, n.Type) {
				wantMissing = append(wantMissing, n.Type)
			}
		}
	}
	slices.Sort(wantMissing)
	if got := rep.MissingTypes(); !reflect.DeepEqual(got, wantMissing) {
		t.Fatalf("export report misses %v, want %v", got, wantMissing)
	}
	data, _ := out.MarshalJSON()
	if err := nr.deploy(data); err != nil {
		t.Fatal(err)
	}
	missing := waitMissingTypes(t, nr)
	if !reflect.DeepEqual(missing, wantMissing) {
		t.Fatalf("Node-RED waits for %v, want only tbflow's types %v\n%s", missing, wantMissing, lastLines(nr.logText(), 30))
	}

	// The shared part alone starts in Node-RED and behaves as in tbflow.
	core, err := engine.ParseFlow([]byte(coreFlow))
	if err != nil {
		t.Fatal(err)
	}
	coreOut, _ := reg.ExportNodeRED(core)
	data, _ = coreOut.MarshalJSON()
	before := len(nr.logText())
	if err := nr.deploy(data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(nr.logText()[before:], "Started flows") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(nr.logText()[before:], "missing types") {
		t.Fatalf("Node-RED misses types of the shared flow:\n%s", nr.logText()[before:])
	}

	e := engine.New(engine.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var mu sync.Mutex
	var tb []debugValue
	cancel := e.SubscribeFunc(engine.TopicDebug, func(ev engine.Event) {
		d := ev.Data.(*engine.DebugData)
		raw, _ := json.Marshal(d.Value)
		var v any
		json.Unmarshal(raw, &v)
		mu.Lock()
		tb = append(tb, debugValue{ev.Node.ID, v})
		mu.Unlock()
	})
	defer cancel()
	defer e.Stop(context.Background())
	if _, err := e.Deploy(context.Background(), core, "", engine.DeployFull); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ctx := context.Background()
	for range 2 { // the second run shows the filter blocking a repeat
		if err := nr.inject(ctx, "c-in"); err != nil {
			t.Fatal(err)
		}
		if err := e.Inject(ctx, "c-in"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	var want []debugValue
	for _, d := range nr.debugSeen() {
		want = append(want, debugValue{d.ID, decodeDebug(d)})
	}
	mu.Lock()
	got := append([]debugValue(nil), tb...)
	mu.Unlock()
	if w, g := byNode(want), byNode(got); !reflect.DeepEqual(w, g) || len(want) < 5 {
		wb, _ := json.MarshalIndent(w, "", " ")
		gb, _ := json.MarshalIndent(g, "", " ")
		t.Errorf("debug output of the exported flow differs\nNode-RED:\n%s\ntbflow:\n%s", wb, gb)
	}
}

var missingLine = regexp.MustCompile(`\[(?:info|warn)\]\s+-\s+(\S+)`)

// waitMissingTypes waits for Node-RED's "Waiting for missing types" list.
func waitMissingTypes(t *testing.T, nr *nodeRED) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		log := nr.logText()
		if i := strings.LastIndex(log, "Waiting for missing types"); i >= 0 {
			time.Sleep(300 * time.Millisecond) // the list follows line by line
			var out []string
			for _, m := range missingLine.FindAllStringSubmatch(nr.logText()[i:], -1) {
				if !slices.Contains(out, m[1]) {
					out = append(out, m[1])
				}
			}
			slices.Sort(out)
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Node-RED did not report missing types:\n%s", lastLines(nr.logText(), 20))
	return nil
}
