package core

import (
	"context"
	"fmt"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "transform", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "transform", OutputLabels: []string{"result"}, Color: "#fdd0a2", Icon: "function",
		Summary: "Computes a new payload (or a whole new message) with an expression.",
		Help: `Evaluates **expression** ([expr language](https://expr-lang.org/docs/language-definition)) for
every message. The expression is compiled once, when the flow is deployed; a syntax error stops the
deploy and names the node and the column.

The expression sees ` + "`msg`" + ` (the whole message: ` + "`msg.payload`" + `, ` + "`msg.topic`" + `, ` + "`msg.device`" + `, ...),
` + "`payload`" + ` and ` + "`topic`" + `, and helper functions: ` + "`now()`" + `, ` + "`timestamp()`" + ` (Unix milliseconds),
` + "`env(\"NAME\")`" + `, ` + "`len`" + `, ` + "`upper`" + `, ` + "`round`" + `, ` + "`toJSON`" + `, ` + "`fromJSON`" + ` and the rest of expr's built-ins.

Each evaluation runs under a memory and a time budget (` + "`--expr-memory`" + `, ` + "`--expr-timeout`" + `; 32 MiB and 1 s by
default): a message whose expression runs out of either fails to ` + "`catch`" + `.

With **target** ` + "`payload`" + ` the result replaces the payload. With ` + "`msg`" + ` the result must be an object and
becomes the whole message (keep ` + "`_msgid`" + ` by including it, or a new id is given).

Examples: ` + "`payload * 0.1`" + `, ` + "`{\"temperature\": payload.t / 10, \"ts\": timestamp()}`" + `,
` + "`{\"payload\": payload, \"topic\": \"meter/\" + topic, \"device\": \"Meter A\"}`" + ` (target msg).`,
		Fields: []engine.Field{
			{Name: "expression", Kind: engine.KindExpr, Label: "Expression", Required: true, Help: "The expression to evaluate.", Example: "payload * 0.1"},
			{Name: "target", Kind: engine.KindEnum, Label: "Result replaces", Default: "payload", Enum: []string{"payload", "msg"}, Help: "What the result replaces."},
		},
		New: engine.Construct(newTransform),
	})
}

type transformConfig struct {
	Expression string `json:"expression"`
	Target     string `json:"target"`
}

type transformNode struct {
	nc     *engine.NodeContext
	expr   *engine.Expr
	target string
}

func newTransform(nc *engine.NodeContext, c *transformConfig) (engine.Node, error) {
	e, err := engine.CompileExpr(c.Expression)
	if err != nil {
		return nil, fmt.Errorf("expression: %w", err)
	}
	return &transformNode{nc: nc, expr: e, target: c.Target}, nil
}

func (n *transformNode) Start(context.Context) error { return nil }
func (n *transformNode) Stop(context.Context) error  { return nil }

func (n *transformNode) Handle(ctx context.Context, m *engine.Msg) error {
	v, err := n.expr.EvalContext(ctx, m)
	if err != nil {
		return err
	}
	if n.target == "msg" {
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("expression result is %T, want an object to become the message", v)
		}
		out := engine.MsgFromMap(obj)
		return n.nc.Send(ctx, out)
	}
	m.Payload = v
	return n.nc.Send(ctx, m)
}

var _ engine.Handler = (*transformNode)(nil)
