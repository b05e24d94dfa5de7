package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// bigFlow is a flow of n pass nodes, one per line, each wired to the next.
func bigFlow(n int) []byte {
	var b strings.Builder
	b.WriteString("[\n")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		next := ""
		if i+1 < n {
			next = fmt.Sprintf(`"n%d"`, i+1)
		}
		fmt.Fprintf(&b, `  {"id":"n%d","type":"pass","x":1,"y":2,"wires":[[%s]]}`, i, next)
	}
	b.WriteString("\n]")
	return []byte(b.String())
}

// TestParseFlowScansOnce: line numbers of every node come from one pass
// over the document (it used to rescan the document per node).
func TestParseFlowScansOnce(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		data := bigFlow(20000)
		if wrap {
			data = []byte(`{"rev":"x","flows":` + string(data) + `}`)
		}
		before := lineScan.Load()
		f, err := ParseFlow(data)
		if err != nil {
			t.Fatal(err)
		}
		if scanned := lineScan.Load() - before; scanned > int64(len(data)) {
			t.Errorf("scanned %d bytes for line numbers of a %d-byte document", scanned, len(data))
		}
		if last := f.Nodes[len(f.Nodes)-1]; last.Line != 20001 && !wrap {
			t.Errorf("last node on line %d, want 20001", last.Line)
		}
	}
}

// TestLoadingStopsWhenCancelled: parsing and validating give up once the
// caller is gone.
func TestLoadingStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := bigFlow(5000)
	if _, err := ParseFlowContext(ctx, data); err != context.Canceled {
		t.Fatalf("parse with a cancelled context: %v", err)
	}
	f, _ := ParseFlow(data)
	reg, _ := newTestRegistry(t)
	ps := reg.ValidateContext(ctx, f, nil)
	if len(ps) != 1 || !strings.Contains(ps[0].Message, "validation stopped") {
		t.Fatalf("validate with a cancelled context: %v", ps)
	}
}

func TestParseFlowBOMAndDuplicateWires(t *testing.T) {
	f, err := ParseFlow([]byte("\xEF\xBB\xBF[\n{\"id\":\"a\",\"type\":\"pass\",\"wires\":[[\"b\",\"b\",\"c\",\"b\"]]}]"))
	if err != nil {
		t.Fatalf("a flow file with a UTF-8 BOM: %v", err)
	}
	if got := f.Nodes[0].Wires[0]; len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("wires %v, want [b c]", got)
	}
	if f.Nodes[0].Line != 2 {
		t.Fatalf("line %d after a BOM, want 2", f.Nodes[0].Line)
	}
	// One delivery per target however often a wire is listed.
	reg, te := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	deploy(t, e, `[{"id":"a","type":"pass","wires":[["s","s","s"]]},{"id":"s","type":"sink"}]`, DeployFull)
	if err := e.Deliver(context.Background(), "a", NewMsg(1.0)); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
	if n := len(te.sink("s").got()); n != 1 {
		t.Fatalf("%d deliveries through a triplicated wire, want 1", n)
	}
}

// TestTopoOrderReverseChain: ordering a chain written in reverse takes one
// pass (it used to take one pass per node).
func TestTopoOrderReverseChain(t *testing.T) {
	reg, _ := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	var b strings.Builder
	b.WriteString("[")
	const n = 3000
	for i := n - 1; i >= 0; i-- {
		next := ""
		if i+1 < n {
			next = fmt.Sprintf(`"n%d"`, i+1)
		}
		fmt.Fprintf(&b, `{"id":"n%d","type":"pass","wires":[[%s]]}`, i, next)
		if i > 0 {
			b.WriteString(",")
		}
	}
	b.WriteString("]")
	deploy(t, e, b.String(), DeployFull)
	order := e.graph.Load().order
	for i, r := range order {
		if r.def.ID != fmt.Sprintf("n%d", i) {
			t.Fatalf("order[%d] = %s", i, r.def.ID)
		}
	}
}

// BenchmarkParseValidateScaling loads and validates a flow of 10,000 nodes
// per op and, in the same run, one of 40,000: x-time-4x-nodes is the time
// ratio, near 4 when loading is linear (it was about 16 when line numbers
// rescanned the document per node).
func BenchmarkParseValidateScaling(b *testing.B) {
	reg, _ := newTestRegistry(b)
	small, large := bigFlow(10000), bigFlow(40000)
	load := func(data []byte) time.Duration {
		start := time.Now()
		f, err := ParseFlow(data)
		if err != nil {
			b.Fatal(err)
		}
		reg.Validate(f, nil)
		return time.Since(start)
	}
	var ts, tl time.Duration
	for b.Loop() {
		ts += load(small)
		tl += load(large)
	}
	b.ReportMetric(float64(ts.Nanoseconds())/float64(b.N), "ns/10k-nodes")
	b.ReportMetric(float64(tl)/float64(ts), "x-time-4x-nodes")
}
