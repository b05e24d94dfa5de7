package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
)

// TestRunawayExpressionFailsToCatch: an expression that would run for
// minutes fails at its time budget, the message reaches catch, and
// neither reading the flow, a redeploy nor stopping waits for it.
func TestRunawayExpressionFailsToCatch(t *testing.T) {
	old := engine.CurrentExprLimits()
	engine.SetExprLimits(engine.ExprLimits{Time: 300 * time.Millisecond})
	t.Cleanup(func() { engine.SetExprLimits(old) })
	h := enginetest.New(t, enginetest.Options{})
	flow := []byte(`[
	 {"id":"tab","type":"tab","label":"t"},
	 {"id":"tr","type":"transform","z":"tab","expression":"all(payload, {all(payload, {all(payload, {# >= 0})})})","wires":[[]]},
	 {"id":"sw","type":"switch","z":"tab","rules":[{"condition":"len(repeat(repeat(\"a\", 999999), 1000000)) > 0"}],"wires":[[]]},
	 {"id":"c","type":"catch","z":"tab","wires":[["out"]]},
	 {"id":"out","type":"enginetest-capture","z":"tab","wires":[]}
	]`)
	h.Deploy(flow, engine.DeployFull)
	arr := make([]any, 5000)
	for i := range arr {
		arr[i] = float64(i)
	}
	h.Send("tr", engine.NewMsg(arr))
	h.Send("sw", engine.NewMsg("x"))
	time.Sleep(50 * time.Millisecond) // the transform is evaluating
	start := time.Now()
	if _, rev := h.Engine.Flows(); rev == "" || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("reading the flow during an evaluation took %s", time.Since(start))
	}
	got := h.WaitOutputs("out", 2)
	msgs := map[string]string{}
	for _, m := range got {
		e := m.Fields["error"].(map[string]any)
		msgs[e["source"].(map[string]any)["id"].(string)] = e["message"].(string)
	}
	if !strings.Contains(msgs["tr"], "time budget") || !strings.Contains(msgs["sw"], "memory budget") {
		t.Fatalf("caught errors: %v", msgs)
	}
	// A redeploy while an evaluation runs is held up by one budget at most.
	h.Send("tr", engine.NewMsg(arr))
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	h.Deploy(flow, engine.DeployFull)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("redeploy waited %s for an expression", d)
	}
	// Stopping with a short deadline abandons a running evaluation even
	// under a long time budget.
	engine.SetExprLimits(engine.ExprLimits{Time: time.Hour})
	h.Send("tr", engine.NewMsg(arr))
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	h.Engine.Stop(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop waited %s for an expression", d)
	}
}
