package core

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "range", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "range", Color: "#e2d96e", Icon: "range",
		Summary:      "Maps a number from one range onto another (Node-RED's range node).",
		OutputLabels: []string{"scaled message"},
		Help: `Maps the number in **property** linearly from **minin**–**maxin** onto **minout**–**maxout**.
**action** decides what happens outside the input range: ` + "`scale`" + ` extrapolates, ` + "`clamp`" + ` limits to the
output range, ` + "`roll`" + ` wraps around within it, ` + "`drop`" + ` drops the message. A value that is not a
number is an error (to ` + "`catch`" + `).`,
		Fields: []engine.Field{
			{Name: "minin", Kind: engine.KindNumber, Label: "Input from", Default: 0.0, Help: "Lower end of the input range."},
			{Name: "maxin", Kind: engine.KindNumber, Label: "Input to", Default: 10.0, Help: "Upper end of the input range."},
			{Name: "minout", Kind: engine.KindNumber, Label: "Output from", Default: 0.0, Help: "Lower end of the output range."},
			{Name: "maxout", Kind: engine.KindNumber, Label: "Output to", Default: 100.0, Help: "Upper end of the output range."},
			{Name: "action", Kind: engine.KindEnum, Label: "Outside the range", Enum: []string{"scale", "clamp", "roll", "drop"}, Default: "scale", Help: "What to do with values outside the input range."},
			{Name: "round", Kind: engine.KindBool, Label: "Round", Default: false, Help: "Round the result to the nearest integer."},
			{Name: "property", Kind: engine.KindString, Label: "Property", Default: "payload", Help: "The message property holding the number."},
		},
		New: engine.Construct(newRange),
	})
	engine.Register(engine.Type{
		Name: "json", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "json", Color: "#debd5c", Icon: "json",
		Summary:      "Converts between JSON text and objects (Node-RED's json node).",
		OutputLabels: []string{"converted message"},
		Help: `Converts **property**: with **action** empty it toggles (JSON text becomes an object, anything
else becomes JSON text); ` + "`str`" + ` always makes text, ` + "`obj`" + ` always makes an object. **pretty** indents
the text. Text that is not JSON is an error (to ` + "`catch`" + `).`,
		Fields: []engine.Field{
			{Name: "action", Kind: engine.KindEnum, Label: "Action", Enum: []string{"", "str", "obj"}, Default: "", Help: "Empty: convert either way; `str`: always to JSON text; `obj`: always to an object."},
			{Name: "property", Kind: engine.KindString, Label: "Property", Default: "payload", Help: "The message property to convert."},
			{Name: "pretty", Kind: engine.KindBool, Label: "Pretty", Default: false, Help: "Indent the JSON text."},
		},
		New: engine.Construct(newJSON),
	})
}

type rangeConfig struct {
	Minin    float64 `json:"minin"`
	Maxin    float64 `json:"maxin"`
	Minout   float64 `json:"minout"`
	Maxout   float64 `json:"maxout"`
	Action   string  `json:"action"`
	Round    bool    `json:"round"`
	Property string  `json:"property"`
}

func (c *rangeConfig) Validate() error {
	if c.Minin == c.Maxin {
		return &engine.FieldError{Field: "maxin", Message: "the input range is empty (from = to)"}
	}
	_, err := parsePath(c.Property)
	if err != nil {
		return &engine.FieldError{Field: "property", Message: err.Error()}
	}
	return nil
}

type rangeNode struct {
	nc   *engine.NodeContext
	c    *rangeConfig
	path []any
}

func newRange(nc *engine.NodeContext, c *rangeConfig) (engine.Node, error) {
	path, err := parsePath(c.Property)
	if err != nil {
		return nil, err
	}
	return &rangeNode{nc: nc, c: c, path: path}, nil
}

func (n *rangeNode) Start(context.Context) error { return nil }
func (n *rangeNode) Stop(context.Context) error  { return nil }

func (n *rangeNode) Handle(ctx context.Context, m *engine.Msg) error {
	v, ok := msgGet(m, n.path)
	if !ok {
		return n.nc.Send(ctx, m)
	}
	var x float64
	switch t := v.(type) {
	case float64:
		x = t
	case int:
		x = float64(t)
	case int64:
		x = float64(t)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return fmt.Errorf("range: %q is not a number", t)
		}
		x = f
	default:
		return fmt.Errorf("range: %v is not a number", v)
	}
	c := n.c
	switch c.Action {
	case "drop":
		if x < c.Minin || x > c.Maxin {
			return nil
		}
	case "clamp":
		x = math.Min(math.Max(x, math.Min(c.Minin, c.Maxin)), math.Max(c.Minin, c.Maxin))
	case "roll":
		d := c.Maxin - c.Minin
		x = math.Mod(math.Mod(x-c.Minin, d)+d, d) + c.Minin
	}
	y := (x-c.Minin)/(c.Maxin-c.Minin)*(c.Maxout-c.Minout) + c.Minout
	if c.Round {
		y = math.Round(y)
	}
	if err := msgSet(m, n.path, y); err != nil {
		return err
	}
	return n.nc.Send(ctx, m)
}

type jsonConfig struct {
	Action   string `json:"action"`
	Property string `json:"property"`
	Pretty   bool   `json:"pretty"`
}

func (c *jsonConfig) Validate() error {
	if _, err := parsePath(c.Property); err != nil {
		return &engine.FieldError{Field: "property", Message: err.Error()}
	}
	return nil
}

type jsonNode struct {
	nc   *engine.NodeContext
	c    *jsonConfig
	path []any
}

func newJSON(nc *engine.NodeContext, c *jsonConfig) (engine.Node, error) {
	path, err := parsePath(c.Property)
	if err != nil {
		return nil, err
	}
	return &jsonNode{nc: nc, c: c, path: path}, nil
}

func (n *jsonNode) Start(context.Context) error { return nil }
func (n *jsonNode) Stop(context.Context) error  { return nil }

func (n *jsonNode) Handle(ctx context.Context, m *engine.Msg) error {
	v, ok := msgGet(m, n.path)
	if !ok {
		return n.nc.Send(ctx, m)
	}
	var out any
	switch t := v.(type) {
	case string:
		if n.c.Action == "str" {
			return n.nc.Send(ctx, m)
		}
		if err := json.Unmarshal([]byte(t), &out); err != nil {
			return fmt.Errorf("json: %v", err)
		}
	case []byte:
		if n.c.Action == "str" {
			out = string(t)
			break
		}
		if err := json.Unmarshal(t, &out); err != nil {
			return fmt.Errorf("json: %v", err)
		}
	default:
		if n.c.Action == "obj" {
			return n.nc.Send(ctx, m)
		}
		var b []byte
		var err error
		if n.c.Pretty {
			b, err = json.MarshalIndent(v, "", "    ")
		} else {
			b, err = json.Marshal(v)
		}
		if err != nil {
			return fmt.Errorf("json: %v", err)
		}
		out = string(b)
	}
	if err := msgSet(m, n.path, out); err != nil {
		return err
	}
	return n.nc.Send(ctx, m)
}
