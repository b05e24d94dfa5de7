package core

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/tbflow/tbflow/engine"
)

// maxFilterTopics bounds how many topics a filter remembers.
const maxFilterTopics = 10_000

func init() {
	engine.Register(engine.Type{
		Name: "filter", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "filter", Color: "#e2d96e", Icon: "filter",
		Summary:      "Report by exception: passes a message only when its value changed (Node-RED's rbe / filter node).",
		OutputLabels: []string{"changed values"},
		Help: `Passes a message on only when **property** changed, per the mode **func**:

- ` + "`rbe`" + `: when the value differs from the last one (objects compared deeply); ` + "`rbei`" + ` also blocks the first value;
- ` + "`deadband`" + `: when a number moved by more than **gap** from the last one (` + "`deadbandEq`" + `: by at least gap);
- ` + "`narrowband`" + `: when a number moved by less than **gap** (` + "`narrowbandEq`" + `: by at most gap); **start** sets the first reference.

**gap** is a number or a percentage of the last value (` + "`10%`" + `). With **inout** ` + "`out`" + ` the value is compared
with the last value passed, with ` + "`in`" + ` with the last value received. **septopics** keeps one reference per
topic (read from **topi**). A message with ` + "`msg.reset`" + ` clears the references.`,
		Fields: []engine.Field{
			{Name: "func", Kind: engine.KindEnum, Label: "Mode", Enum: []string{"rbe", "rbei", "deadband", "deadbandEq", "narrowband", "narrowbandEq"}, Default: "rbe", Help: "When a message passes."},
			{Name: "gap", Kind: engine.KindString, Label: "Gap", Default: "", Help: "Band for the numeric modes: a number, or a percentage such as `10%`.",
				ShowIf: map[string][]any{"func": {"deadband", "deadbandEq", "narrowband", "narrowbandEq"}}},
			{Name: "start", Kind: engine.KindString, Label: "Start value", Default: "", Help: "narrowband: the first reference value; empty uses the first value received.",
				ShowIf: map[string][]any{"func": {"narrowband", "narrowbandEq"}}},
			{Name: "inout", Kind: engine.KindEnum, Label: "Compare with", Enum: []string{"out", "in"}, Default: "out", Help: "`out`: the last value passed on; `in`: the last value received.",
				ShowIf: map[string][]any{"func": {"deadband", "deadbandEq", "narrowband", "narrowbandEq"}}},
			{Name: "septopics", Kind: engine.KindBool, Label: "Per topic", Default: true, Help: "Keep a separate reference for each topic."},
			{Name: "property", Kind: engine.KindString, Label: "Property", Default: "payload", Help: "The message property to watch."},
			{Name: "topi", Kind: engine.KindString, Label: "Topic property", Default: "topic", Help: "The message property that names the topic."},
		},
		New: engine.Construct(newFilter),
	})
}

type filterConfig struct {
	Func      string `json:"func"`
	Gap       string `json:"gap"`
	Start     string `json:"start"`
	Inout     string `json:"inout"`
	Septopics bool   `json:"septopics"`
	Property  string `json:"property"`
	Topi      string `json:"topi"`
}

func (c *filterConfig) Validate() error {
	_, _, err := parseGap(c.Gap)
	if err != nil {
		return &engine.FieldError{Field: "gap", Message: err.Error()}
	}
	if s := strings.TrimSpace(c.Start); s != "" {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return &engine.FieldError{Field: "start", Message: fmt.Sprintf("%q is not a number", c.Start)}
		}
	}
	if _, err := parsePath(c.Property); err != nil {
		return &engine.FieldError{Field: "property", Message: err.Error()}
	}
	return nil
}

func parseGap(s string) (float64, bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	pc := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a number or a percentage", s)
	}
	return f, pc, nil
}

type filterNode struct {
	nc        *engine.NodeContext
	c         *filterConfig
	gap       float64
	pc        bool
	start     *float64
	path      []any
	topicPath []any

	mu   sync.Mutex
	prev map[string]any
}

func newFilter(nc *engine.NodeContext, c *filterConfig) (engine.Node, error) {
	n := &filterNode{nc: nc, c: c, prev: map[string]any{}}
	var err error
	if n.gap, n.pc, err = parseGap(c.Gap); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(c.Start); s != "" {
		f, _ := strconv.ParseFloat(s, 64)
		n.start = &f
	}
	if n.path, err = parsePath(c.Property); err != nil {
		return nil, err
	}
	if c.Topi == "" {
		c.Topi = "topic"
	}
	if n.topicPath, err = parsePath(c.Topi); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *filterNode) Start(context.Context) error { return nil }
func (n *filterNode) Stop(context.Context) error  { return nil }

func (n *filterNode) Handle(ctx context.Context, m *engine.Msg) error {
	if pass := n.check(m); pass {
		return n.nc.Send(ctx, m)
	}
	return nil
}

func (n *filterNode) check(m *engine.Msg) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := "_no_topic"
	if n.c.Septopics {
		if v, ok := msgGet(m, n.topicPath); ok {
			t = toString(v)
		}
	}
	if _, reset := m.Get("reset"); reset {
		if n.c.Septopics && t != "_no_topic" {
			delete(n.prev, t)
		} else {
			clear(n.prev)
		}
		return false
	}
	value, ok := msgGet(m, n.path)
	if !ok {
		return false
	}
	if _, known := n.prev[t]; !known && len(n.prev) >= maxFilterTopics {
		return false
	}
	switch n.c.Func {
	case "rbe", "rbei", "":
		prev, had := n.prev[t]
		send := n.c.Func != "rbei" || had
		if had && reflect.DeepEqual(normalise(prev), normalise(value)) {
			return false
		}
		n.prev[t] = engine.CloneValue(value)
		return send
	}
	x, ok := number(value)
	if !ok {
		n.nc.Logger().Warn("filter: the value is not a number", "value", value)
		return false
	}
	fn := n.c.Func
	prevV, had := n.prev[t]
	prev, _ := prevV.(float64)
	if !had && (fn == "narrowband" || fn == "narrowbandEq") {
		prev, had = x, true
		if n.start != nil {
			prev = *n.start
		}
	}
	gap := n.gap
	if n.pc {
		gap = 0
		if had {
			gap = math.Abs(prev * n.gap / 100)
		}
	}
	if !had {
		prev = x - gap - 1
	}
	d := math.Abs(x - prev)
	pass := false
	switch {
	case d == gap:
		pass = fn == "deadbandEq" || fn == "narrowband"
	case d > gap:
		pass = fn == "deadband" || fn == "deadbandEq"
	default:
		pass = fn == "narrowband" || fn == "narrowbandEq"
	}
	if (pass && n.c.Inout != "in") || n.c.Inout == "in" {
		prev = x
	}
	n.prev[t] = prev
	return pass
}

// normalise makes numbers of different Go types compare equal.
func normalise(v any) any {
	switch t := v.(type) {
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = normalise(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalise(x)
		}
		return out
	}
	return v
}

func number(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	case bool:
		return 0, false
	}
	return 0, false
}
