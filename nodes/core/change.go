package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Value types of the editor's enums: Node-RED's, with expr for tbflow's
// expressions and jsonata kept so an unconverted import is named, not lost.
var (
	toTypes   = []string{"str", "num", "bool", "json", "date", "env", "msg", "flow", "global", "expr", "jsonata"}
	fromTypes = []string{"str", "num", "bool", "re", "env", "msg", "flow", "global", "expr", "jsonata"}
	scopes    = []string{"msg", "flow", "global"}
)

func init() {
	engine.Register(engine.Type{
		Name: "change", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "change", Color: "#e2d96e", Icon: "swap",
		Summary:      "Sets, changes, deletes or moves message and context properties (Node-RED's change node).",
		OutputLabels: []string{"changed message"},
		Help: `Applies its **rules** in order to every message, then sends it on. Each rule works on a property
of ` + "`msg`" + `, ` + "`flow`" + ` (this tab's context) or ` + "`global`" + ` context, with dots and indexes for nested values
(` + "`payload.values[0]`" + `):

- **set** the property to a value;
- **change** (search and replace) a string, number or boolean inside the property, or a regular expression match;
- **delete** the property;
- **move** the property to another one.

Values have a type: ` + "`str`" + `, ` + "`num`" + `, ` + "`bool`" + `, ` + "`json`" + `, ` + "`date`" + ` (now, in Unix ms), ` + "`env`" + ` (an environment
variable), ` + "`msg`" + ` / ` + "`flow`" + ` / ` + "`global`" + ` (another property), or ` + "`expr`" + ` (an expression, see transform).
Node-RED's JSONata values are converted to ` + "`expr`" + ` on import where they map; one that does not stays as
` + "`jsonata`" + ` and is reported until rewritten.`,
		Fields: []engine.Field{
			{Name: "rules", Kind: engine.KindTable, Label: "Rules",
				Help:    "Rules applied in order.",
				Default: []any{map[string]any{"t": "set", "p": "payload", "pt": "msg", "to": "", "tot": "str"}},
				Fields: []engine.Field{
					{Name: "t", Kind: engine.KindEnum, Label: "Action", Enum: []string{"set", "change", "delete", "move"}, Default: "set", Help: "What the rule does."},
					{Name: "p", Kind: engine.KindString, Label: "Property", Required: true, Help: "The property the rule works on, e.g. `payload.temperature`."},
					{Name: "pt", Kind: engine.KindEnum, Label: "Property scope", Enum: scopes, Default: "msg", Help: "Where the property lives: the message, flow (tab) context or global context."},
					{Name: "to", Kind: engine.KindString, Label: "Value", Default: "", Help: "The value to set, the replacement (change) or the target property (move)."},
					{Name: "tot", Kind: engine.KindEnum, Label: "Value type", Enum: toTypes, Default: "str", Help: "How Value is read; for move, the target's scope (msg, flow or global)."},
					{Name: "from", Kind: engine.KindString, Label: "Search for", Default: "", Help: "change: what to look for inside the property."},
					{Name: "fromt", Kind: engine.KindEnum, Label: "Search type", Enum: fromTypes, Default: "str", Help: "change: how Search for is read; `re` is a regular expression."},
					{Name: "dc", Kind: engine.KindBool, Label: "Deep copy", Default: false, Help: "set from msg/flow/global: copy the value (always done in tbflow; kept for Node-RED)."},
				}},
		},
		New: engine.Construct(newChange),
	})
}

type changeRule struct {
	T     string `json:"t"`
	P     string `json:"p"`
	Pt    string `json:"pt"`
	To    string `json:"to"`
	Tot   string `json:"tot"`
	From  string `json:"from"`
	Fromt string `json:"fromt"`
	Dc    bool   `json:"dc"`
}

type changeConfig struct {
	Rules []changeRule `json:"rules"`
}

// Validate reports rules that cannot run, naming the row.
func (c *changeConfig) Validate() error {
	_, err := compileRules(c.Rules)
	return err
}

type compiledRule struct {
	t      string
	p      prop
	to     *typedValue
	target prop // move
	from   *typedValue
	re     *regexp.Regexp
}

func compileRules(rules []changeRule) ([]compiledRule, error) {
	var errs []error
	out := make([]compiledRule, 0, len(rules))
	for i, r := range rules {
		fail := func(field string, err error) {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("rules[%d].%s", i, field), Message: err.Error()})
		}
		cr := compiledRule{t: r.T}
		p, err := newProp(r.Pt, r.P)
		if err != nil {
			fail("p", err)
			continue
		}
		cr.p = p
		switch r.T {
		case "set":
			if cr.to, err = newTypedValue(r.Tot, r.To); err != nil {
				fail("to", err)
			}
		case "move":
			if cr.target, err = newProp(r.Tot, r.To); err != nil {
				fail("to", err)
			}
		case "change":
			if cr.to, err = newTypedValue(r.Tot, r.To); err != nil {
				fail("to", err)
			}
			if r.Fromt == "re" {
				if cr.re, err = regexp.Compile(r.From); err != nil {
					fail("from", fmt.Errorf("regular expression: %v", err))
				}
			} else if cr.from, err = newTypedValue(r.Fromt, r.From); err != nil {
				fail("from", err)
			}
		case "delete":
		default:
			fail("t", fmt.Errorf("unknown action %q", r.T))
		}
		out = append(out, cr)
	}
	return out, errors.Join(errs...)
}

type changeNode struct {
	nc    *engine.NodeContext
	rules []compiledRule
}

func newChange(nc *engine.NodeContext, c *changeConfig) (engine.Node, error) {
	rules, err := compileRules(c.Rules)
	if err != nil {
		return nil, err
	}
	return &changeNode{nc: nc, rules: rules}, nil
}

func (n *changeNode) Start(context.Context) error { return nil }
func (n *changeNode) Stop(context.Context) error  { return nil }

func (n *changeNode) Handle(ctx context.Context, m *engine.Msg) error {
	for _, r := range n.rules {
		if err := n.apply(r, m); err != nil {
			return err
		}
	}
	return n.nc.Send(ctx, m)
}

func (n *changeNode) apply(r compiledRule, m *engine.Msg) error {
	switch r.t {
	case "set":
		v, err := r.to.eval(n.nc, m)
		if err != nil {
			return err
		}
		return r.p.set(n.nc, m, v)
	case "delete":
		r.p.del(n.nc, m)
	case "move":
		v, ok := r.p.get(n.nc, m)
		if !ok {
			return nil
		}
		r.p.del(n.nc, m)
		return r.target.set(n.nc, m, v)
	case "change":
		cur, ok := r.p.get(n.nc, m)
		if !ok {
			return nil
		}
		to, err := r.to.eval(n.nc, m)
		if err != nil {
			return err
		}
		nv, changed, err := n.replace(r, m, cur, to)
		if err != nil || !changed {
			return err
		}
		return r.p.set(n.nc, m, nv)
	}
	return nil
}

// replace does Node-RED's change: in a string, every match of from is
// replaced (the result keeps to's type when the whole string matched);
// a number or boolean equal to from becomes to.
func (n *changeNode) replace(r compiledRule, m *engine.Msg, cur, to any) (any, bool, error) {
	switch c := cur.(type) {
	case string:
		if r.re != nil {
			if _, isStr := to.(string); !isStr && r.re.FindString(c) == c && c != "" {
				return to, true, nil
			}
			return r.re.ReplaceAllString(c, jsReplacement(toString(to))), true, nil
		}
		from, err := r.from.eval(n.nc, m)
		if err != nil {
			return nil, false, err
		}
		fs := toString(from)
		if _, isStr := to.(string); !isStr && c == fs {
			return to, true, nil
		}
		if fs == "" {
			return nil, false, nil
		}
		return strings.ReplaceAll(c, fs, toString(to)), true, nil
	case float64, bool:
		if r.re != nil {
			return nil, false, nil
		}
		from, err := r.from.eval(n.nc, m)
		if err != nil {
			return nil, false, err
		}
		if fmt.Sprint(from) == fmt.Sprint(c) || toString(from) == toString(c) {
			return to, true, nil
		}
	}
	return nil, false, nil
}

// jsReplacement turns JavaScript's $1 / $& replacement syntax into Go's.
func jsReplacement(s string) string {
	s = strings.ReplaceAll(s, "$&", "${0}")
	return regexp.MustCompile(`\$(\d+)`).ReplaceAllString(s, "$${$1}")
}

func toString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

var _ engine.Handler = (*changeNode)(nil)
