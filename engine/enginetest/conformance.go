package enginetest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// ConformanceOptions describe how to instantiate the type under test.
type ConformanceOptions struct {
	// Registry holds the type; nil means the default registry.
	Registry *engine.Registry
	// Settings are values for required fields that have no default, such
	// as a config-node reference. Defaults cover everything else.
	Settings map[string]any
	// Extra are further flow objects the node needs, such as the config
	// node its Settings reference.
	Extra []map[string]any
	// Input is a message to hand to Handle; nil means {"payload": 1}.
	Input *engine.Msg
}

// Conformance checks what every node type must do:
//
//   - the declaration is complete: help text, summary, category, a help
//     line for every field, and field specs that agree with the config
//     struct's json tags and Go types;
//   - its spec serialises to JSON (the editor's form) and to Markdown;
//   - a node with default settings (plus opts.Settings) validates;
//   - constructing does not start goroutines (no side effects);
//   - Stop without Start is safe, and Stop is idempotent;
//   - Start, Handle and Run return promptly when their ctx is cancelled;
//   - the node deploys, takes a message and stops cleanly in an engine.
func Conformance(t *testing.T, typ string, opts ConformanceOptions) {
	t.Helper()
	reg := opts.Registry
	if reg == nil {
		reg = engine.DefaultRegistry()
	}
	tt, ok := reg.Lookup(typ)
	if !ok {
		t.Fatalf("node type %q is not registered", typ)
	}
	flow := func() *engine.Flow {
		node := map[string]any{"id": "node", "type": typ}
		if !tt.ConfigNode {
			node["z"], node["x"], node["y"], node["wires"] = "tab", 100.0, 100.0, []any{}
		}
		for k, v := range opts.Settings {
			node[k] = v
		}
		objs := []any{map[string]any{"id": "tab", "type": "tab", "label": "conformance"}, node}
		for _, x := range opts.Extra {
			objs = append(objs, x)
		}
		data, _ := json.Marshal(objs)
		f, err := engine.ParseFlow(data)
		if err != nil {
			t.Fatalf("building flow: %v", err)
		}
		return f
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	construct := func(t *testing.T) engine.Node {
		t.Helper()
		e := engine.New(engine.Options{Registry: reg, Logger: quiet})
		nodes, err := e.Construct(flow())
		if err != nil {
			t.Fatalf("constructing: %v", err)
		}
		return nodes["node"]
	}
	within := func(t *testing.T, what string, fn func()) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn()
		}()
		select {
		case <-done:
		case <-time.After(WaitLimit):
			t.Fatalf("%s did not return after its context was cancelled", what)
		}
	}

	t.Run("declaration", func(t *testing.T) {
		if strings.TrimSpace(tt.Help) == "" {
			t.Error("no help text")
		}
		if strings.TrimSpace(tt.Summary) == "" {
			t.Error("no summary")
		}
		if tt.Category == "" {
			t.Error("no category")
		}
		var check func(fs []engine.Field, prefix string)
		check = func(fs []engine.Field, prefix string) {
			for _, f := range fs {
				if strings.TrimSpace(f.Help) == "" {
					t.Errorf("field %q has no help text", prefix+f.Name)
				}
				check(f.Fields, prefix+f.Name+".")
			}
		}
		check(tt.Fields, "")
		if err := engine.CheckConfigStruct(tt); err != nil {
			t.Errorf("spec and config struct disagree: %v", err)
		}
		b, err := json.Marshal(tt)
		if err != nil {
			t.Fatalf("spec does not serialise to JSON: %v", err)
		}
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil || back["type"] != typ {
			t.Errorf("spec JSON does not name the type: %s", b)
		}
		if md := tt.Markdown(); !strings.Contains(md, typ) {
			t.Errorf("Markdown does not name the type:\n%s", md)
		}
	})

	t.Run("defaults validate", func(t *testing.T) {
		if ps := reg.Validate(flow(), nil); ps.HasErrors() {
			t.Fatalf("node with default settings does not validate: %v", ps.Err())
		}
	})

	t.Run("constructor has no side effects", func(t *testing.T) {
		construct(t) // warm up lazily started runtime goroutines
		before := runtime.NumGoroutine()
		var nodes []engine.Node
		for range 20 {
			nodes = append(nodes, construct(t))
		}
		after := runtime.NumGoroutine()
		if after > before+2 {
			t.Errorf("constructing 20 nodes started %d goroutines", after-before)
		}
		for _, n := range nodes {
			n.Stop(context.Background())
		}
	})

	t.Run("stop without start, twice", func(t *testing.T) {
		n := construct(t)
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("first Stop: %v", err)
		}
		if err := n.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})

	t.Run("cancelled contexts return promptly", func(t *testing.T) {
		n := construct(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		within(t, "Start", func() { n.Start(ctx) })
		if r, ok := n.(engine.Runner); ok {
			within(t, "Run", func() { r.Run(ctx) })
		}
		if h, ok := n.(engine.Handler); ok {
			in := opts.Input
			if in == nil {
				in = engine.NewMsg(1.0)
			}
			within(t, "Handle", func() { h.Handle(ctx, in.Clone()) })
		}
		within(t, "Stop", func() { n.Stop(ctx) })
		if err := n.Stop(context.Background()); err != nil {
			t.Errorf("Stop after Stop: %v", err)
		}
	})

	t.Run("runs in an engine", func(t *testing.T) {
		h := New(t, Options{Registry: reg})
		f := flow()
		h.DeployFlow(f, engine.DeployFull)
		if tt.Inputs > 0 {
			in := opts.Input
			if in == nil {
				in = engine.NewMsg(1.0)
			}
			h.Send("node", in.Clone())
		}
		ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
		defer cancel()
		if err := h.Engine.Stop(ctx); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
}
