package conformance

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
)

// Timing of a run: the pause after each inject, and how long the debug
// output must stay quiet (at most settleMax) before it is compared.
const (
	injectGap = 250 * time.Millisecond
	quiet     = 1000 * time.Millisecond
	settleMax = 6 * time.Second
)

// example is one of Node-RED's example flows.
type example struct {
	name string // "function/change/01 - Set payload value"
	data []byte
}

func examples(t *testing.T, dir string) []example {
	t.Helper()
	var out []example
	root := filepath.Join(dir, "@node-red", "nodes", "examples")
	for _, group := range []string{"common", "function"} {
		files, _ := filepath.Glob(filepath.Join(root, group, "*", "*.json"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, f)
			out = append(out, example{name: strings.TrimSuffix(rel, ".json"), data: data})
		}
	}
	if len(out) < 40 {
		t.Fatalf("found only %d examples under %s", len(out), root)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// lookupEnv is what tbflow sees: the environment Node-RED runs with.
func lookupEnv(k string) (string, bool) {
	if k == "GREETING" {
		return "hello from env", true
	}
	return os.LookupEnv(k)
}

// knownDifferences are examples that convert but cannot behave the same,
// with the reason.
var knownDifferences = map[string]string{
	"function/function/08 - Using external modules": "reads Node.js's os module from global context (functionGlobalContext); tbflow's function node has no Node.js modules",
}

// skipReason says why an example cannot run in tbflow, or "".
func skipReason(reg *engine.Registry, ex example) (string, *engine.Flow) {
	f, rep, err := reg.ImportNodeRED(ex.data)
	if err != nil {
		return "does not parse: " + err.Error(), nil
	}
	if types := rep.UnsupportedTypes(); len(types) > 0 {
		var why []string
		for _, ty := range types {
			r := rep.Reasons[ty]
			if r == "" {
				r = "no tbflow equivalent"
			}
			why = append(why, fmt.Sprintf("%s (%s)", ty, r))
		}
		return "needs " + strings.Join(why, ", "), nil
	}
	if why, ok := knownDifferences[ex.name]; ok {
		return why, nil
	}
	ps := reg.Validate(f, lookupEnv)
	if ps.HasErrors() {
		var msgs []string
		for _, p := range ps.Errors() {
			msgs = append(msgs, p.String())
		}
		return "converts with problems: " + strings.Join(msgs, "; "), nil
	}
	for _, n := range f.Nodes {
		if n.Type == "inject" {
			if iv, _ := n.Fields["interval"].(string); iv != "" && iv != "0s" {
				return "timer-driven (inject repeats every " + iv + "): not compared within a bounded test", nil
			}
			if s, _ := n.Fields["schedule"].(string); s != "" {
				return "timer-driven (inject on cron schedule " + s + "): not compared within a bounded test", nil
			}
		}
	}
	for _, note := range rep.Notes {
		if strings.Contains(note, "is not supported") || strings.Contains(note, "is not set by") {
			return "converts with a loss: " + note, nil
		}
	}
	return "", f
}

// TestNodeREDExamples runs Node-RED's example flows in Node-RED and in
// tbflow and compares what every debug node printed, in order. Examples
// that need what tbflow lacks are listed with the reason; the test fails
// if one of the examples for tbflow's Node-RED nodes cannot run.
func TestNodeREDExamples(t *testing.T) {
	dir := nodeREDDir(t)
	nr := startNodeRED(t)
	reg := engine.DefaultRegistry()
	// Examples of the nodes tbflow implements must all run, except these,
	// whose reason is a documented gap.
	mustRun := regexp.MustCompile(`^(common/(debug|link|catch|status|inject)|function/(change|function|range|switch|template|trigger))/`)
	allowedGap := regexp.MustCompile(`external modules|Node.js's os module|JSONata|node\.linkcall|timer-driven|is not set by tbflow's inject|(?i:yaml)|sequence|complete|as the node.s status|console-only|switch on (flow|global) properties`)
	var skipped []string
	ran, printed := 0, 0
	for _, ex := range examples(t, dir) {
		reason, f := skipReason(reg, ex)
		if reason != "" {
			skipped = append(skipped, fmt.Sprintf("%s: %s", ex.name, reason))
			if mustRun.MatchString(ex.name) && !allowedGap.MatchString(reason) {
				t.Errorf("%s does not run in tbflow: %s", ex.name, reason)
			}
			continue
		}
		ran++
		t.Run(ex.name, func(t *testing.T) { printed += compare(t, nr, ex, f) })
	}
	t.Logf("compared %d examples; not run in tbflow (%d):\n  %s", ran, len(skipped), strings.Join(skipped, "\n  "))
	if f := flag.Lookup("test.run"); (f == nil || !strings.Contains(f.Value.String(), "/")) && (ran < 35 || printed < 60) {
		t.Errorf("only %d examples ran, printing %d debug messages in Node-RED", ran, printed)
	}
}

// compare runs one example on both sides and returns how many debug
// messages Node-RED printed.
func compare(t *testing.T, nr *nodeRED, ex example, f *engine.Flow) int {
	var src []map[string]any
	if err := json.Unmarshal(ex.data, &src); err != nil {
		t.Fatal(err)
	}
	// Node-RED needs the tab the example's nodes sit on.
	tabs := map[string]bool{}
	for _, n := range src {
		if n["type"] == "tab" {
			tabs[n["id"].(string)] = true
		}
	}
	nrFlow := append([]map[string]any{}, src...)
	for _, n := range src {
		if z, _ := n["z"].(string); z != "" && !tabs[z] {
			tabs[z] = true
			nrFlow = append(nrFlow, map[string]any{"id": z, "type": "tab", "label": "example"})
		}
	}
	nrData, _ := json.Marshal(nrFlow)

	e := engine.New(engine.Options{Registry: engine.DefaultRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LookupEnv: lookupEnv})
	var mu sync.Mutex
	var tb []debugValue
	cancel := e.SubscribeFunc(engine.TopicDebug, func(ev engine.Event) {
		d := ev.Data.(*engine.DebugData)
		b, _ := json.Marshal(d.Value)
		var v any
		json.Unmarshal(b, &v)
		mu.Lock()
		tb = append(tb, debugValue{ev.Node.ID, v})
		mu.Unlock()
	})
	defer cancel()
	defer e.Stop(context.Background())

	if err := nr.deploy(nrData); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Deploy(context.Background(), f, "", engine.DeployFull); err != nil {
		t.Fatalf("deploying in tbflow: %v", err)
	}
	time.Sleep(injectGap) // once-injects fire after 0.1 s on both sides
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, n := range src {
		if n["type"] != "inject" || n["once"] == true {
			continue
		}
		id := n["id"].(string)
		if err := nr.inject(ctx, id); err != nil {
			t.Fatalf("Node-RED: %v", err)
		}
		if err := e.Inject(ctx, id); err != nil {
			t.Fatalf("tbflow: %v", err)
		}
		time.Sleep(injectGap)
	}
	// Wait at least as long as the flow's triggers and delays hold messages.
	wait, limit := quiet, settleMax
	for _, n := range f.Nodes {
		var d time.Duration
		switch n.Type {
		case "trigger":
			if v, ok := n.Fields["duration"].(float64); ok && v > 0 {
				u := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "hr": time.Hour}[fmt.Sprint(n.Fields["units"])]
				if u == 0 {
					u = time.Millisecond
				}
				d = time.Duration(v * float64(u))
			}
		case "delay":
			d, _ = time.ParseDuration(fmt.Sprint(n.Fields["delay"]))
		}
		if d > 0 && d < time.Minute {
			wait = max(wait, d+700*time.Millisecond)
			limit = max(limit, d+wait+2*time.Second)
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(tb) + len(nr.debugSeen())
	}
	last, since := count(), time.Now()
	for start := time.Now(); time.Since(start) < limit; time.Sleep(50 * time.Millisecond) {
		if c := count(); c != last {
			last, since = c, time.Now()
		} else if time.Since(since) > wait {
			break
		}
	}
	var want []debugValue
	for _, d := range nr.debugSeen() {
		want = append(want, debugValue{d.ID, decodeDebug(d)})
	}
	mu.Lock()
	got := append([]debugValue(nil), tb...)
	mu.Unlock()
	w, g := byNode(want), byNode(got)
	if !reflect.DeepEqual(w, g) {
		wb, _ := json.MarshalIndent(w, "", " ")
		gb, _ := json.MarshalIndent(g, "", " ")
		t.Errorf("debug output differs\nNode-RED:\n%s\ntbflow:\n%s", wb, gb)
	}
	if len(want) == 0 {
		t.Logf("no debug output in Node-RED (log: %s)", lastLines(nr.logText(), 5))
	}
	return len(want)
}

type debugValue struct {
	Node  string
	Value any
}

// byNode groups the normalised values by debug node, in arrival order.
func byNode(vs []debugValue) map[string][]any {
	out := map[string][]any{}
	for _, v := range vs {
		out[v.Node] = append(out[v.Node], normalise(v.Value, 0))
	}
	return out
}

var (
	timeMS  = regexp.MustCompile(`\b1[6-9]\d{11}\b`)
	isoTime = regexp.MustCompile(`\b20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b`)
)

// normalise hides what legitimately differs between two runs: message
// ids, times (Unix milliseconds or ISO text near now), the "ts" stamp
// tbflow's inject adds, Node-RED's internal _event and _error marks, an
// empty topic (tbflow leaves it out), and a caught error's stack, count
// and depth.
func normalise(v any, depth int) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			if depth == 0 && (k == "_msgid" || k == "ts" || k == "_error" || k == "_event") {
				continue
			}
			if depth == 0 && k == "error" {
				x = errorCore(x)
			}
			if depth == 0 && k == "topic" && x == "" {
				continue
			}
			out[k] = normalise(x, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalise(x, depth+1)
		}
		return out
	case float64:
		now := float64(time.Now().UnixMilli())
		if t > now-86400e3 && t < now+86400e3 {
			return "<time>"
		}
	case string:
		t = timeMS.ReplaceAllString(t, "<time>")
		return isoTime.ReplaceAllString(t, "<time>")
	}
	return v
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errorCore keeps what a caught error means: its message and the node it
// came from (Node-RED adds a stack and a count, tbflow a depth).
func errorCore(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{"message": m["message"]}
	if src, ok := m["source"].(map[string]any); ok {
		out["source"] = map[string]any{"id": src["id"], "type": src["type"], "name": src["name"]}
	}
	return out
}
