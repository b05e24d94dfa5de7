package enginetest_test

import (
	"context"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
)

type upperConfig struct {
	Suffix string `json:"suffix"`
}

type upperNode struct {
	nc     *engine.NodeContext
	suffix string
}

func (n *upperNode) Start(context.Context) error { return nil }
func (n *upperNode) Stop(context.Context) error  { return nil }
func (n *upperNode) Handle(ctx context.Context, m *engine.Msg) error {
	s, _ := m.Payload.(string)
	m.Payload = s + n.suffix
	n.nc.Status(engine.Status{Fill: "green", Shape: "dot", Text: "ok"})
	return n.nc.Send(ctx, m)
}

func testRegistry() *engine.Registry {
	reg := engine.NewRegistry()
	reg.Register(engine.Type{
		Name: "suffix", Category: "test", Inputs: 1, Outputs: 1, Summary: "Appends a suffix.",
		Help:   "Appends **suffix** to string payloads.",
		Fields: []engine.Field{{Name: "suffix", Kind: engine.KindString, Default: "!", Help: "Text to append."}},
		New: engine.Construct(func(nc *engine.NodeContext, c *upperConfig) (engine.Node, error) {
			return &upperNode{nc: nc, suffix: c.Suffix}, nil
		}),
	})
	return reg
}

func TestConformanceOfATestType(t *testing.T) {
	enginetest.Conformance(t, "suffix", enginetest.ConformanceOptions{Registry: testRegistry(), Input: engine.NewMsg("a")})
}

func TestRunNodeCollectsOutputsAndStatuses(t *testing.T) {
	h := enginetest.RunNode(t, enginetest.Options{Registry: testRegistry()}, "suffix", map[string]any{"suffix": "?"})
	h.Send(engine.NewMsg("why"))
	if out := h.WaitOut(0, 1); out[0].Payload != "why?" {
		t.Fatalf("payload = %v", out[0].Payload)
	}
	h.WaitIdle()
	if st := h.Statuses("node"); len(st) != 1 || st[0].Text != "ok" {
		t.Fatalf("statuses = %v", st)
	}
	if errs := h.Errors(); len(errs) != 0 {
		t.Fatalf("errors = %v", errs)
	}
}
