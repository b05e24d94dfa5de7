// Package enginetest runs tbflow nodes and flows in tests: a [Harness]
// that deploys a flow on a real engine, feeds messages in and collects what
// comes out (outputs, debug events, statuses, errors), and a conformance
// suite ([Conformance]) every node type's tests call.
package enginetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// CaptureType is the node type the harness wires to outputs it collects.
const CaptureType = "enginetest-capture"

// WaitLimit bounds every wait of the harness. It guards against hangs; it
// is not a performance assertion.
var WaitLimit = 30 * time.Second

var (
	collectors sync.Map // harness key → *collector
	nextKey    atomic.Int64
)

type collector struct {
	mu   sync.Mutex
	msgs map[string][]*engine.Msg // capture node id → messages
}

type captureConfig struct {
	Sink string `json:"sink"`
}

type captureNode struct {
	id string
	c  *collector
}

func (n *captureNode) Start(context.Context) error { return nil }
func (n *captureNode) Stop(context.Context) error  { return nil }
func (n *captureNode) Handle(_ context.Context, m *engine.Msg) error {
	n.c.mu.Lock()
	n.c.msgs[n.id] = append(n.c.msgs[n.id], m)
	n.c.mu.Unlock()
	return nil
}

// WithCapture returns a copy of reg with the capture node type added.
func WithCapture(reg *engine.Registry) *engine.Registry {
	if reg == nil {
		reg = engine.DefaultRegistry()
	}
	reg = reg.Clone()
	if _, ok := reg.Lookup(CaptureType); ok {
		return reg
	}
	reg.Register(engine.Type{
		Name: CaptureType, Category: "test", Inputs: 1, Summary: "Collects messages for a test.",
		Help:   "Collects every message it receives for the test harness.",
		Fields: []engine.Field{{Name: "sink", Kind: engine.KindString, Help: "Harness key."}},
		New: engine.Construct(func(nc *engine.NodeContext, c *captureConfig) (engine.Node, error) {
			v, ok := collectors.Load(c.Sink)
			if !ok {
				return nil, fmt.Errorf("no harness %q", c.Sink)
			}
			return &captureNode{id: nc.ID(), c: v.(*collector)}, nil
		}),
	})
	return reg
}

// Harness runs one flow on its own engine for the length of a test.
type Harness struct {
	T      testing.TB
	Engine *engine.Engine
	key    string
	col    *collector
	events *engine.Subscription
	mu     sync.Mutex
	seen   []engine.Event
}

// Options tune a harness.
type Options struct {
	// Registry is the registry to use; nil means the default one. The
	// capture type is added to a copy.
	Registry *engine.Registry
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// InboxSize is passed to the engine (0: the default).
	InboxSize int
	// LookupEnv resolves ${NAME} references (nil: the process environment).
	LookupEnv engine.LookupEnv
}

// New returns a harness with nothing deployed. The engine is stopped when
// the test ends.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	key := fmt.Sprintf("h%d", nextKey.Add(1))
	col := &collector{msgs: map[string][]*engine.Msg{}}
	collectors.Store(key, col)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := engine.New(engine.Options{
		Registry: WithCapture(opts.Registry), Logger: log, InboxSize: opts.InboxSize,
		LookupEnv: opts.LookupEnv, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	h := &Harness{T: t, Engine: e, key: key, col: col, events: e.Subscribe("#", 1<<16)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stopping engine: %v", err)
		}
		h.events.Close()
		collectors.Delete(key)
	})
	return h
}

// Capture returns a capture node object (for a flow) with the given id.
func (h *Harness) Capture(id string) map[string]any {
	return map[string]any{"id": id, "type": CaptureType, "sink": h.key, "x": 0, "y": 0, "wires": []any{}}
}

// Deploy parses and deploys flow JSON, failing the test on any problem.
// Every node of type CaptureType gets this harness's sink.
func (h *Harness) Deploy(flowJSON []byte, mode engine.DeployMode) string {
	h.T.Helper()
	f, err := engine.ParseFlow(flowJSON)
	if err != nil {
		h.T.Fatalf("parsing flow: %v", err)
	}
	return h.DeployFlow(f, mode)
}

// DeployFlow deploys f, failing the test on any problem.
func (h *Harness) DeployFlow(f *engine.Flow, mode engine.DeployMode) string {
	h.T.Helper()
	for _, n := range f.Nodes {
		if n.Type == CaptureType {
			if n.Fields == nil {
				n.Fields = map[string]any{}
			}
			n.Fields["sink"] = h.key
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	rev, err := h.Engine.Deploy(ctx, f, "", mode)
	if err != nil {
		h.T.Fatalf("deploying: %v", err)
	}
	return rev
}

// Send delivers msg to node id's input.
func (h *Harness) Send(id string, msg *engine.Msg) {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	if err := h.Engine.Deliver(ctx, id, msg); err != nil {
		h.T.Fatalf("sending to %q: %v", id, err)
	}
}

// WaitIdle waits until nothing is queued or being handled.
func (h *Harness) WaitIdle() {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	if err := h.Engine.WaitIdle(ctx); err != nil {
		h.T.Fatalf("waiting for the flow to go idle: %v", err)
	}
}

// Outputs returns the messages capture node id has received so far.
func (h *Harness) Outputs(id string) []*engine.Msg {
	h.col.mu.Lock()
	defer h.col.mu.Unlock()
	return append([]*engine.Msg(nil), h.col.msgs[id]...)
}

// WaitOutputs waits until capture node id has received at least n
// messages and returns them.
func (h *Harness) WaitOutputs(id string, n int) []*engine.Msg {
	h.T.Helper()
	deadline := time.Now().Add(WaitLimit)
	for {
		out := h.Outputs(id)
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("capture %q: got %d messages, want %d", id, len(out), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Events returns the events seen so far whose topic matches pattern
// (exact topic, or a prefix ending in "/#").
func (h *Harness) Events(topic string) []engine.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		select {
		case ev := <-h.events.C:
			h.seen = append(h.seen, ev)
			continue
		default:
		}
		break
	}
	var out []engine.Event
	for _, ev := range h.seen {
		if topicMatches(topic, ev.Topic) {
			out = append(out, ev)
		}
	}
	return out
}

// WaitEvents waits until at least n events match topic and returns them.
func (h *Harness) WaitEvents(topic string, n int) []engine.Event {
	h.T.Helper()
	deadline := time.Now().Add(WaitLimit)
	for {
		out := h.Events(topic)
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("events %q: got %d, want %d", topic, len(out), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Debug returns the values of debug events, per debug node id.
func (h *Harness) Debug() map[string][]any {
	out := map[string][]any{}
	for _, ev := range h.Events(engine.TopicDebug) {
		d := ev.Data.(*engine.DebugData)
		out[ev.Node.ID] = append(out[ev.Node.ID], d.Value)
	}
	return out
}

// Errors returns the error events seen so far.
func (h *Harness) Errors() []*engine.ErrorData {
	var out []*engine.ErrorData
	for _, ev := range h.Events(engine.TopicError) {
		out = append(out, ev.Data.(*engine.ErrorData))
	}
	return out
}

// Statuses returns the status events of node id.
func (h *Harness) Statuses(id string) []engine.Status {
	var out []engine.Status
	for _, ev := range h.Events(engine.TopicStatusPrefix + id) {
		out = append(out, ev.Data.(engine.Status))
	}
	return out
}

func topicMatches(pattern, topic string) bool {
	if pattern == "#" || pattern == topic {
		return true
	}
	if len(pattern) >= 2 && pattern[len(pattern)-2:] == "/#" {
		p := pattern[:len(pattern)-1]
		return len(topic) >= len(p) && topic[:len(p)] == p
	}
	return false
}

// NodeHarness runs a single node: its outputs are wired to capture nodes
// "out0", "out1", ...
type NodeHarness struct {
	*Harness
	// ID is the node under test ("node").
	ID      string
	outputs int
}

// RunNode deploys one node of type typ with the given settings (plus
// extra objects such as the config nodes it references) and captures its
// outputs.
func RunNode(t testing.TB, opts Options, typ string, settings map[string]any, extra ...map[string]any) *NodeHarness {
	t.Helper()
	h := New(t, opts)
	reg := h.Engine.Registry()
	tt, ok := reg.Lookup(typ)
	if !ok {
		t.Fatalf("node type %q is not registered", typ)
	}
	node := map[string]any{"id": "node", "type": typ, "z": "tab", "x": 100, "y": 100}
	for k, v := range settings {
		node[k] = v
	}
	outs := tt.Outputs
	if tt.OutputsField != "" {
		v, ok := node[tt.OutputsField]
		if !ok {
			f, _ := tt.Field(tt.OutputsField)
			v = f.Default
		}
		switch x := v.(type) {
		case []any:
			outs = len(x)
		case int:
			outs = x
		case float64:
			outs = int(x)
		}
	}
	if tt.ConfigNode {
		delete(node, "x")
		delete(node, "y")
		delete(node, "z")
	} else {
		wires := make([]any, outs)
		for i := range wires {
			wires[i] = []any{fmt.Sprintf("out%d", i)}
		}
		node["wires"] = wires
	}
	objs := []any{map[string]any{"id": "tab", "type": "tab", "label": "test"}, node}
	for i := range outs {
		c := h.Capture(fmt.Sprintf("out%d", i))
		c["z"] = "tab"
		objs = append(objs, c)
	}
	for _, x := range extra {
		objs = append(objs, x)
	}
	data, err := json.Marshal(objs)
	if err != nil {
		t.Fatalf("encoding flow: %v", err)
	}
	h.Deploy(data, engine.DeployFull)
	return &NodeHarness{Harness: h, ID: "node", outputs: outs}
}

// Send delivers msg to the node under test.
func (n *NodeHarness) Send(msg *engine.Msg) { n.Harness.Send(n.ID, msg) }

// Out returns what output port has sent so far.
func (n *NodeHarness) Out(port int) []*engine.Msg { return n.Outputs(fmt.Sprintf("out%d", port)) }

// WaitOut waits for at least count messages on output port.
func (n *NodeHarness) WaitOut(port, count int) []*engine.Msg {
	n.T.Helper()
	return n.WaitOutputs(fmt.Sprintf("out%d", port), count)
}
