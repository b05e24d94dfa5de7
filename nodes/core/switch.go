package core

import (
	"context"
	"fmt"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "switch", Category: engine.CategoryFunction, Inputs: 1, OutputsField: "rules",
		Label: "switch", Color: "#e2d96e", Icon: "switch",
		Summary: "Routes messages to outputs by conditions.",
		Help: `Each row of **rules** is a boolean expression ([expr language](https://expr-lang.org/docs/language-definition),
seeing ` + "`msg`" + `, ` + "`payload`" + ` and ` + "`topic`" + `) and has its own output, in order. With **mode** ` + "`first`" + ` a message
leaves on the output of the first rule that holds; with ` + "`all`" + ` it leaves on every matching output (each
gets its own copy). A message no rule matches is dropped; add a last rule ` + "`true`" + ` for "otherwise".

Example rules: ` + "`payload > 50`" + `, ` + "`topic == \"alarm\"`" + `, ` + "`msg.device != nil`" + `.`,
		Fields: []engine.Field{
			{Name: "rules", Kind: engine.KindTable, Label: "Rules", Min: engine.Float(1), Help: "Conditions, one output each.",
				Default: []any{map[string]any{"condition": "true", "label": "otherwise"}},
				Fields: []engine.Field{
					{Name: "condition", Kind: engine.KindExpr, Label: "Condition", Required: true, Help: "Boolean expression."},
					{Name: "label", Kind: engine.KindString, Label: "Output label", Default: "", Help: "Output label shown in the editor."},
				}},
			{Name: "mode", Kind: engine.KindEnum, Label: "Mode", Default: "first", Enum: []string{"first", "all"}, Help: "Stop at the first match or send to all matches."},
		},
		New: engine.Construct(newSwitch),
	})
}

type switchRule struct {
	Condition string `json:"condition"`
	Label     string `json:"label"`
}

type switchConfig struct {
	Rules []switchRule `json:"rules"`
	Mode  string       `json:"mode"`
}

type switchNode struct {
	nc    *engine.NodeContext
	conds []*engine.Expr
	all   bool
}

func newSwitch(nc *engine.NodeContext, c *switchConfig) (engine.Node, error) {
	n := &switchNode{nc: nc, all: c.Mode == "all"}
	for i, r := range c.Rules {
		e, err := engine.CompileExpr(r.Condition)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].condition: %w", i, err)
		}
		n.conds = append(n.conds, e)
	}
	return n, nil
}

func (n *switchNode) Start(context.Context) error { return nil }
func (n *switchNode) Stop(context.Context) error  { return nil }

func (n *switchNode) Handle(ctx context.Context, m *engine.Msg) error {
	var matched []int
	for i, c := range n.conds {
		ok, err := c.EvalBoolContext(ctx, m)
		if err != nil {
			return fmt.Errorf("rule %d: %w", i+1, err)
		}
		if ok {
			matched = append(matched, i)
			if !n.all {
				break
			}
		}
	}
	for j, port := range matched {
		out := m
		if j < len(matched)-1 {
			out = m.Clone()
		}
		if err := n.nc.SendTo(ctx, port, out); err != nil {
			return err
		}
	}
	return nil
}

var _ engine.Handler = (*switchNode)(nil)
