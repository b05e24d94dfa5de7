package core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
)

const runawayFlow = `[
 {"id":"tab","type":"tab","label":"t"},
 {"id":"tr","type":"transform","z":"tab","expression":"all(payload, {all(payload, {all(payload, {# >= 0})})})","wires":[[]]},
 {"id":"sw","type":"switch","z":"tab","rules":[{"condition":"len(repeat(repeat(\"a\", 999999), 1000000)) > 0"}],"wires":[[]]},
 {"id":"c","type":"catch","z":"tab","wires":[["out"]]},
 {"id":"out","type":"enginetest-capture","z":"tab","wires":[]}
]`

func runawayPayload() []any {
	arr := make([]any, 5000)
	for i := range arr {
		arr[i] = float64(i)
	}
	return arr
}

func setLimits(t *testing.T, l engine.ExprLimits) {
	old := engine.CurrentExprLimits()
	engine.SetExprLimits(l)
	t.Cleanup(func() { engine.SetExprLimits(old) })
}

// TestRunawayExpressionFailsToCatch: expressions that would run for
// minutes or exhaust memory fail at their budget, and the message reaches
// catch naming the budget.
func TestRunawayExpressionFailsToCatch(t *testing.T) {
	setLimits(t, engine.ExprLimits{Time: 300 * time.Millisecond})
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy([]byte(runawayFlow), engine.DeployFull)
	h.Send("tr", engine.NewMsg(runawayPayload()))
	h.Send("sw", engine.NewMsg("x"))
	got := h.WaitOutputs("out", 2)
	msgs := map[string]string{}
	for _, m := range got {
		e := m.Fields["error"].(map[string]any)
		msgs[e["source"].(map[string]any)["id"].(string)] = e["message"].(string)
	}
	if !strings.Contains(msgs["tr"], "time budget") || !strings.Contains(msgs["sw"], "memory budget") {
		t.Fatalf("caught errors: %v", msgs)
	}
}

// TestRunawayExpressionHoldsNothing: while an expression runs (under a
// budget of an hour), reading the flow does not wait for a deploy that
// waits for it, the deploy ends at its stop timeout, and so does Stop.
func TestRunawayExpressionHoldsNothing(t *testing.T) {
	setLimits(t, engine.ExprLimits{Time: time.Hour})
	h := enginetest.New(t, enginetest.Options{})
	flow := `[{"id":"tab","type":"tab"},{"id":"tr","type":"transform","z":"tab","expression":"all(payload, {all(payload, {all(payload, {# >= 0})})})","wires":[[]]}]`
	h.Deploy([]byte(flow), engine.DeployFull)
	f, err := engine.ParseFlow([]byte(flow))
	if err != nil {
		t.Fatal(err)
	}
	h.Send("tr", engine.NewMsg(runawayPayload()))
	time.Sleep(100 * time.Millisecond) // the transform is evaluating
	deployed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := h.Engine.Deploy(ctx, f, "", engine.DeployFull)
		deployed <- err
	}()
	time.Sleep(50 * time.Millisecond) // the deploy is waiting for the transform
	if _, rev := h.Engine.Flows(); rev == "" || h.Engine.Rev() == "" {
		t.Fatal("no revision")
	}
	select {
	case err := <-deployed:
		t.Fatalf("the deploy ended (%v) before the flow could be read: reading waited for it", err)
	default:
	}
	select {
	case err := <-deployed:
		if err != nil {
			t.Fatalf("deploy: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the deploy waited for the expression past its stop timeout")
	}
	h.Send("tr", engine.NewMsg(runawayPayload()))
	time.Sleep(100 * time.Millisecond)
	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		h.Engine.Stop(ctx)
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("stopping waited for the expression past its stop timeout")
	}
}
