package core

import (
	"context"

	"github.com/tbflow/tbflow/engine"
)

var scopeFields = []engine.Field{
	{Name: "scope", Kind: engine.KindEnum, Label: "Scope", Default: "all", Enum: []string{"all", "nodes"}, Help: "`all` nodes on this tab, or only the listed `nodes`."},
	{Name: "nodes", Kind: engine.KindTable, Label: "Nodes to watch", ShowIf: map[string][]any{"scope": {"nodes"}}, Default: []any{}, Help: "The nodes to watch when scope is `nodes`.",
		Fields: []engine.Field{{Name: "node", Kind: engine.KindString, Label: "Node id", Required: true, Help: "Node id."}}},
}

func init() {
	engine.Register(engine.Type{
		Name: "catch", Category: engine.CategoryCommon, Inputs: 0, Outputs: 1,
		Label: "catch", OutputLabels: []string{"error"}, Color: "#e49191", Icon: "alert",
		Summary: "Receives errors reported by nodes on the same tab.",
		Help: `Sends a message for every error a node on the same tab reports (with **scope** ` + "`nodes`" + `, only
for the listed nodes). The message is a copy of the message that failed, when there was one, with an
` + "`error`" + ` property: ` + "`{\"message\": \"…\", \"source\": {\"id\", \"type\", \"name\"}}`" + `.

Errors are also published on the ` + "`error`" + ` event stream and logged when no catch node takes them. A catch
node never blocks the failing node: if its queue is full the error only reaches the event stream.`,
		Fields: scopeFields,
		New:    engine.Construct(newCatch),
	})
	engine.Register(engine.Type{
		Name: "status", Category: engine.CategoryCommon, Inputs: 0, Outputs: 1,
		Label: "status", OutputLabels: []string{"status change"}, Color: "#94c1d0", Icon: "status",
		Summary: "Receives status changes of nodes on the same tab.",
		Help: `Sends a message whenever a node on the same tab (with **scope** ` + "`nodes`" + `, one of the listed
nodes) changes its status, such as a connection going from ` + "`connecting`" + ` to ` + "`connected`" + `. The message has a
` + "`status`" + ` property: ` + "`{\"fill\", \"shape\", \"text\", \"source\": {\"id\", \"type\", \"name\"}}`" + `.`,
		Fields: scopeFields,
		New:    engine.Construct(newStatus),
	})
}

type scopeRow struct {
	Node string `json:"node"`
}

type scopeConfig struct {
	Scope string     `json:"scope"`
	Nodes []scopeRow `json:"nodes"`
}

type scope struct {
	all bool
	ids map[string]bool
}

func newScope(c *scopeConfig) scope {
	s := scope{all: c.Scope != "nodes", ids: map[string]bool{}}
	for _, r := range c.Nodes {
		s.ids[r.Node] = true
	}
	return s
}

func (s scope) has(ref engine.NodeRef) bool { return s.all || s.ids[ref.ID] }

type catchNode struct {
	nc *engine.NodeContext
	scope
}

func newCatch(nc *engine.NodeContext, c *scopeConfig) (engine.Node, error) {
	return &catchNode{nc: nc, scope: newScope(c)}, nil
}

func (n *catchNode) Start(context.Context) error                     { return nil }
func (n *catchNode) Stop(context.Context) error                      { return nil }
func (n *catchNode) Catches(src engine.NodeRef) bool                 { return n.has(src) }
func (n *catchNode) Handle(ctx context.Context, m *engine.Msg) error { return n.nc.Send(ctx, m) }

type statusNode struct {
	nc *engine.NodeContext
	scope
}

func newStatus(nc *engine.NodeContext, c *scopeConfig) (engine.Node, error) {
	return &statusNode{nc: nc, scope: newScope(c)}, nil
}

func (n *statusNode) Start(context.Context) error                     { return nil }
func (n *statusNode) Stop(context.Context) error                      { return nil }
func (n *statusNode) WatchesStatus(src engine.NodeRef) bool           { return n.has(src) }
func (n *statusNode) Handle(ctx context.Context, m *engine.Msg) error { return n.nc.Send(ctx, m) }

var (
	_ engine.ErrorCatcher  = (*catchNode)(nil)
	_ engine.Handler       = (*catchNode)(nil)
	_ engine.StatusWatcher = (*statusNode)(nil)
	_ engine.Handler       = (*statusNode)(nil)
)
