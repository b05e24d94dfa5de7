package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "debug", Category: engine.CategoryCommon, Inputs: 1, Outputs: 0,
		Label: "debug", Color: "#87a980", Icon: "debug",
		Summary: "Shows messages in the editor's debug panel and, optionally, in the log.",
		Help: `Publishes every message it receives as a ` + "`debug`" + ` event, which the editor's debug panel shows.

**property** picks what to show: ` + "`payload`" + ` (default), ` + "`msg`" + ` for the whole message, or any other
message property, with dots for nested fields (` + "`payload.temperature`" + `). Turn **active** off to mute
the node without rewiring: the button on the node's right switches the running node on and off at
once, without a deploy, and the flow keeps the new state. Turn **console** on to also write the
value to the log as JSON text (useful with ` + "`tbflow run`" + `). A node switched off neither
publishes nor logs.`,
		Fields: []engine.Field{
			{Name: "property", Kind: engine.KindString, Label: "Property to show", Default: "payload", Help: "Message property to show; `msg` shows the whole message."},
			{Name: "active", Kind: engine.KindBool, Label: "Active", Default: true, Help: "Publish debug events. The node's button switches this at once, without a deploy."},
			{Name: "console", Kind: engine.KindBool, Label: "Also log it", Default: false, Help: "Also log the value, as JSON text, at info level."},
		},
		New: engine.Construct(newDebug),
	})
}

type debugConfig struct {
	Property string `json:"property"`
	Active   bool   `json:"active"`
	Console  bool   `json:"console"`
}

type debugNode struct {
	nc   *engine.NodeContext
	conf *debugConfig
	path []string
	// active starts as conf.Active; the editor's button switches it while
	// the node runs (engine.Switchable).
	active atomic.Bool
}

func newDebug(nc *engine.NodeContext, c *debugConfig) (engine.Node, error) {
	if c.Property == "" {
		c.Property = "payload"
	}
	n := &debugNode{nc: nc, conf: c, path: strings.Split(c.Property, ".")}
	n.active.Store(c.Active)
	return n, nil
}

// SetActive switches the node on or off while it runs.
func (n *debugNode) SetActive(on bool) { n.active.Store(on) }

func (n *debugNode) Start(context.Context) error { return nil }
func (n *debugNode) Stop(context.Context) error  { return nil }

// Handle publishes the property. The node is the message's last owner, so
// it hands the value over without copying.
func (n *debugNode) Handle(_ context.Context, m *engine.Msg) error {
	if !n.active.Load() {
		return nil
	}
	wanted := n.nc.DebugWanted()
	if !wanted && !n.conf.Console {
		return nil
	}
	var v any = m
	if n.conf.Property != "msg" {
		v, _ = lookupPath(m, n.path)
	}
	if n.conf.Console {
		n.nc.Logger().Info("debug", "property", n.conf.Property, "value", jsonText(v))
	}
	if wanted {
		n.nc.Debug(n.conf.Property, v)
	}
	return nil
}

// jsonText renders a value for the log.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// lookupPath resolves a dotted property path in a message.
func lookupPath(m *engine.Msg, path []string) (any, bool) {
	v, ok := m.Get(path[0])
	for _, p := range path[1:] {
		if !ok {
			return nil, false
		}
		obj, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		v, ok = obj[p]
	}
	return v, ok
}

var (
	_ engine.Handler    = (*debugNode)(nil)
	_ engine.Switchable = (*debugNode)(nil)
)
