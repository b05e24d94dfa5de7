package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// Link nodes: a link out sends to the link in nodes it names, on any tab;
// a link call sends to a link in and waits for a link out in return mode
// to hand the message back. Calls are tracked in msg._linkSource, as in
// Node-RED.

// maxLinkCalls bounds the calls one link call node waits for at once.
const maxLinkCalls = 10_000

func init() {
	linksField := func(help string) engine.Field {
		return engine.Field{Name: "links", Kind: engine.KindJSON, Label: "Links", Default: []any{}, Help: help}
	}
	engine.Register(engine.Type{
		Name: "link-in", Category: engine.CategoryCommon, Inputs: 0, Outputs: 1,
		Label: "link in", Color: "#ddd", Icon: "link-in",
		Summary:      "Receives what link out and link call nodes send to it, from any tab.",
		OutputLabels: []string{"linked message"},
		Help: `A virtual wire's end: it has no input port; messages arrive from the ` + "`link out`" + ` nodes that
list it (on this tab or another) and from ` + "`link call`" + ` nodes, and leave on its output. Its **name** is
what a dynamic link call's ` + "`msg.target`" + ` may use.`,
		Fields: []engine.Field{linksField("Ids of the link out nodes that send here (kept for the editor; the link out's list decides).")},
		New: engine.Construct(func(nc *engine.NodeContext, _ *linkInConfig) (engine.Node, error) {
			return &linkIn{nc: nc}, nil
		}),
	})
	engine.Register(engine.Type{
		Name: "link-out", Category: engine.CategoryCommon, Inputs: 1, Outputs: 0,
		Label: "link out", Color: "#ddd", Icon: "link-out",
		Summary: "Sends messages to link in nodes, or back to the link call that called.",
		Help: `With **mode** ` + "`link`" + ` every message goes to each ` + "`link in`" + ` node in **links** (on any tab). With
` + "`return`" + ` the message goes back to the ` + "`link call`" + ` node whose call led here.`,
		Fields: []engine.Field{
			{Name: "mode", Kind: engine.KindEnum, Label: "Mode", Enum: []string{"link", "return"}, Default: "link", Help: "`link`: send to the listed link in nodes; `return`: answer the calling link call."},
			func() engine.Field {
				f := linksField("Ids of the link in nodes to send to.")
				f.ShowIf = map[string][]any{"mode": {"link"}}
				return f
			}(),
		},
		New: engine.Construct(newLinkOut),
	})
	engine.Register(engine.Type{
		Name: "link-call", Category: engine.CategoryCommon, Inputs: 1, Outputs: 1,
		Label: "link call", Color: "#ddd", Icon: "link-call",
		Summary:      "Calls a link in node like a subroutine and sends on what comes back.",
		OutputLabels: []string{"returned message"},
		Help: `Sends each message to a ` + "`link in`" + ` node and waits until a ` + "`link out`" + ` in ` + "`return`" + ` mode hands
it back; the returned message leaves on the output. **linkType** ` + "`static`" + ` calls the first node in
**links**; ` + "`dynamic`" + ` calls the link in whose id or name is in ` + "`msg.target`" + `. A call not answered within
**timeout** seconds is an error (to ` + "`catch`" + `).`,
		Fields: []engine.Field{
			{Name: "linkType", Kind: engine.KindEnum, Label: "Target", Enum: []string{"static", "dynamic"}, Default: "static", Help: "`static`: the link in in links; `dynamic`: the one msg.target names."},
			func() engine.Field {
				f := linksField("Id of the link in node to call.")
				f.ShowIf = map[string][]any{"linkType": {"static"}}
				return f
			}(),
			{Name: "timeout", Kind: engine.KindNumber, Label: "Timeout (s)", Default: 30.0, Min: engine.Float(0), Help: "Seconds to wait for the return; 0 waits 30 seconds."},
		},
		New: engine.Construct(newLinkCall),
	})
}

type linkInConfig struct {
	Links any `json:"links"`
}

type linkIn struct{ nc *engine.NodeContext }

func (n *linkIn) Start(context.Context) error { return nil }
func (n *linkIn) Stop(context.Context) error  { return nil }
func (n *linkIn) Handle(ctx context.Context, m *engine.Msg) error {
	return n.nc.Send(ctx, m)
}

func linkIDs(v any) []string {
	var out []string
	if arr, ok := v.([]any); ok {
		for _, x := range arr {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

type linkOutConfig struct {
	Mode  string `json:"mode"`
	Links any    `json:"links"`
}

func (c *linkOutConfig) Validate() error {
	if _, ok := c.Links.([]any); !ok && c.Links != nil {
		return &engine.FieldError{Field: "links", Message: "must be a list of link in node ids"}
	}
	return nil
}

type linkOut struct {
	nc     *engine.NodeContext
	ret    bool
	target []string
}

func newLinkOut(nc *engine.NodeContext, c *linkOutConfig) (engine.Node, error) {
	return &linkOut{nc: nc, ret: c.Mode == "return", target: linkIDs(c.Links)}, nil
}

func (n *linkOut) Start(context.Context) error { return nil }
func (n *linkOut) Stop(context.Context) error  { return nil }

func (n *linkOut) Handle(ctx context.Context, m *engine.Msg) error {
	if n.ret {
		stack, _ := m.Fields["_linkSource"].([]any)
		if len(stack) == 0 {
			return errors.New("link out (return): the message did not come from a link call")
		}
		top, _ := stack[len(stack)-1].(map[string]any)
		caller, _ := top["id"].(string)
		m.Set(linkReturnKey, top["event"])
		m.Set("_linkSource", stack[:len(stack)-1])
		return n.nc.DeliverTo(ctx, caller, m)
	}
	var errs []error
	for i, id := range n.target {
		mm := m
		if i < len(n.target)-1 {
			mm = m.Clone()
		}
		if err := n.nc.DeliverTo(ctx, id, mm); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// linkReturnKey marks a message coming back to a link call.
const linkReturnKey = "_linkReturn"

type linkCallConfig struct {
	LinkType string  `json:"linkType"`
	Links    any     `json:"links"`
	Timeout  float64 `json:"timeout"`
}

type linkCall struct {
	nc      *engine.NodeContext
	dynamic bool
	target  string
	timeout time.Duration

	mu      sync.Mutex
	seq     uint64
	pending map[string]*time.Timer
	life    context.Context
	cancel  context.CancelFunc
}

func newLinkCall(nc *engine.NodeContext, c *linkCallConfig) (engine.Node, error) {
	n := &linkCall{nc: nc, dynamic: c.LinkType == "dynamic", pending: map[string]*time.Timer{}}
	if ids := linkIDs(c.Links); len(ids) > 0 {
		n.target = ids[0]
	}
	n.timeout = time.Duration(c.Timeout * float64(time.Second))
	if n.timeout <= 0 {
		n.timeout = 30 * time.Second
	}
	n.life, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

func (n *linkCall) Start(context.Context) error { return nil }

func (n *linkCall) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, t := range n.pending {
		t.Stop()
		delete(n.pending, k)
	}
	n.cancel()
	return nil
}

func (n *linkCall) Handle(ctx context.Context, m *engine.Msg) error {
	if ev, ok := m.Fields[linkReturnKey]; ok {
		key := fmt.Sprint(ev)
		m.Delete(linkReturnKey)
		if s, _ := m.Fields["_linkSource"].([]any); len(s) == 0 {
			m.Delete("_linkSource")
		}
		n.mu.Lock()
		t := n.pending[key]
		delete(n.pending, key)
		n.mu.Unlock()
		if t == nil {
			return nil // timed out already
		}
		t.Stop()
		return n.nc.Send(ctx, m)
	}
	target := n.target
	if n.dynamic {
		name, _ := m.Get("target")
		s, _ := name.(string)
		target = n.resolve(s)
		if target == "" {
			return fmt.Errorf("link call: no link in node has the id or name %q", s)
		}
	}
	if target == "" {
		return errors.New("link call: no target link in node")
	}
	n.mu.Lock()
	if len(n.pending) >= maxLinkCalls {
		n.mu.Unlock()
		return fmt.Errorf("link call: more than %d calls waiting", maxLinkCalls)
	}
	n.seq++
	key := fmt.Sprintf("%s-%d", n.nc.ID(), n.seq)
	orig := m.Clone()
	n.pending[key] = time.AfterFunc(n.timeout, func() {
		n.mu.Lock()
		_, waiting := n.pending[key]
		delete(n.pending, key)
		n.mu.Unlock()
		if waiting {
			n.nc.Error(errors.New("link call: timed out waiting for the return"), orig)
		}
	})
	n.mu.Unlock()
	stack, _ := m.Fields["_linkSource"].([]any)
	m.Set("_linkSource", append(append([]any{}, stack...), map[string]any{"id": n.nc.ID(), "event": key}))
	return n.nc.DeliverTo(ctx, target, m)
}

// resolve finds a link in by id, or else by name.
func (n *linkCall) resolve(s string) string {
	if s == "" {
		return ""
	}
	if d := n.nc.DeployedNode(s); d != nil && d.Type == "link-in" {
		return s
	}
	return n.nc.DeployedByName("link-in", s)
}
