package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

type actKeyConfig struct {
	Key string `json:"key"`
}

type actKeyNode struct {
	key     string
	stopped *atomic.Int32
}

func (n *actKeyNode) Start(context.Context) error { return nil }
func (n *actKeyNode) Stop(context.Context) error {
	n.stopped.Add(1)
	return nil
}

type actUserConfig struct {
	Account string `json:"account"`
}

type actUserNode struct{ account string }

func (actUserNode) Start(context.Context) error { return nil }
func (actUserNode) Stop(context.Context) error  { return nil }

// TestRunAction: an action sees the node and its config node built from
// the posted settings, with deployed secrets behind placeholders; only
// those nodes are taken from the flow, and they are stopped afterwards.
func TestRunAction(t *testing.T) {
	var stopped atomic.Int32
	reg := NewRegistry()
	reg.Register(Type{Name: "test-account", ConfigNode: true, Category: CategoryConfig, Summary: "s", Help: "h",
		Fields: []Field{{Name: "key", Kind: KindSecret, Help: "h"}},
		New: Construct(func(_ *NodeContext, c *actKeyConfig) (Node, error) {
			return &actKeyNode{key: c.Key, stopped: &stopped}, nil
		})})
	reg.Register(Type{Name: "test-user", Category: "test", Summary: "s", Help: "h", Outputs: 1,
		Fields: []Field{{Name: "account", Kind: KindConfigRef, Ref: "test-account", Required: true, Help: "h"}},
		New:    Construct(func(_ *NodeContext, c *actUserConfig) (Node, error) { return actUserNode{account: c.Account}, nil })})
	RegisterAction("test-user", ActionSpec{Name: "peek", Label: "Peek", Run: func(_ context.Context, req *ActionRequest) (any, error) {
		acc, err := req.ConfigNode(req.Node.(actUserNode).account)
		if err != nil {
			return nil, err
		}
		return acc.(*actKeyNode).key + " " + string(req.Args), nil
	}})
	if got := Actions("test-user"); len(got) != 1 || got[0].Name != "peek" {
		t.Fatalf("Actions: %v", got)
	}
	e := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer e.Stop(context.Background())
	deployed, _ := ParseFlow([]byte(`[{"id":"acc","type":"test-account","key":"s3cret"}]`))
	if _, err := e.Deploy(context.Background(), deployed, "", DeployFull); err != nil {
		t.Fatal(err)
	}
	f, _ := ParseFlow([]byte(`[{"id":"tab","type":"tab"},
	  {"id":"acc","type":"test-account","key":"__SECRET__"},
	  {"id":"u","type":"test-user","z":"tab","account":"acc","wires":[["gone"]]},
	  {"id":"other","type":"nope"}]`))
	res, err := e.RunAction(context.Background(), f, "u", "peek", json.RawMessage(`{"a":1}`))
	if err != nil || res != `s3cret {"a":1}` {
		t.Fatalf("RunAction = %v, %v", res, err)
	}
	if n := stopped.Load(); n != 1 {
		t.Errorf("the action's config node was stopped %d times, want 1", n)
	}
	if _, err := e.RunAction(context.Background(), f, "u", "nope", nil); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := e.RunAction(context.Background(), f, "ghost", "peek", nil); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}
	bad, _ := ParseFlow([]byte(`[{"id":"u","type":"test-user","wires":[]}]`))
	if _, err := e.RunAction(context.Background(), bad, "u", "peek", nil); err == nil || !strings.Contains(err.Error(), "account") {
		t.Errorf("invalid settings: %v", err)
	}
}
