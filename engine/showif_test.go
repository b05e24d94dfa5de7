package engine

import (
	"strings"
	"testing"
)

type linkConfig struct {
	Transport string `json:"transport"`
	Host      string `json:"host"`
	Device    string `json:"device"`
	Baud      int    `json:"baud"`
	Rows      []struct {
		Type   string `json:"type"`
		Length int    `json:"length"`
	} `json:"rows"`
}

func showIfRegistry(t *testing.T) *Registry {
	t.Helper()
	r := NewRegistry()
	r.Register(Type{Name: "link", Category: "test", Inputs: 1, Outputs: 2, OutputLabels: []string{"ok", "failed"}, Help: "A link.",
		Fields: []Field{
			{Name: "transport", Kind: KindEnum, Enum: []string{"tcp", "rtu"}, Default: "tcp", Help: "How."},
			{Name: "host", Kind: KindString, Required: true, ShowIf: map[string][]any{"transport": {"tcp"}}, Help: "Host."},
			{Name: "device", Kind: KindString, Required: true, ShowIf: map[string][]any{"transport": {"rtu"}}, Help: "Serial device."},
			{Name: "baud", Kind: KindInt, Default: 9600, Min: Float(300), ShowIf: map[string][]any{"transport": {"rtu"}}, Help: "Baud rate."},
			{Name: "rows", Kind: KindTable, Help: "Rows.", Fields: []Field{
				{Name: "type", Kind: KindEnum, Enum: []string{"uint16", "string"}, Default: "uint16", Help: "Type."},
				{Name: "length", Kind: KindInt, Min: Float(1), Required: true, ShowIf: map[string][]any{"type": {"string"}}, Help: "Registers."},
			}},
		},
		New: Construct(func(nc *NodeContext, _ *linkConfig) (Node, error) { return &passNode{nc}, nil })})
	return r
}

func TestShowIfValidation(t *testing.T) {
	r := showIfRegistry(t)
	cases := []struct {
		name string
		node string
		want []string
	}{
		{"tcp needs a host only", `{"id":"l","type":"link"}`, []string{"host: required"}},
		{"rtu needs a device only", `{"id":"l","type":"link","transport":"rtu","host":""}`, []string{"device: required"}},
		{"a field that does not apply is not checked", `{"id":"l","type":"link","host":"h","baud":1}`, nil},
		{"a field that applies is checked", `{"id":"l","type":"link","transport":"rtu","device":"/dev/x","baud":1}`, []string{"baud: value 1 is below the minimum 300"}},
		{"table cells follow their row", `{"id":"l","type":"link","host":"h","rows":[{"type":"uint16"},{"type":"string"},{"type":"uint16","length":0}]}`, []string{"rows[1].length: required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseFlow([]byte(`[{"id":"t","type":"tab"},` + strings.Replace(c.node, `"type":"link"`, `"type":"link","z":"t","wires":[]`, 1) + `]`))
			if err != nil {
				t.Fatal(err)
			}
			ps := r.Validate(f, func(string) (string, bool) { return "", false })
			if len(ps) != len(c.want) {
				t.Fatalf("problems %v, want %d like %v", ps, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(ps[i].String(), w) {
					t.Errorf("problem %d is %q, want %q", i, ps[i], w)
				}
			}
		})
	}
}

func TestShowIfDocs(t *testing.T) {
	r := showIfRegistry(t)
	lt, _ := r.Lookup("link")
	md := lt.Markdown()
	for _, want := range []string{
		"| `device` | string |  | (required, only when `transport` is rtu) Serial device. |",
		"| `rows[].length` | int |  | (required, min 1, only when `type` is string) Registers. |",
		"Outputs: 2 (1 ok; 2 failed).",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("docs lack %q:\n%s", want, md)
		}
	}
}

func TestShowIfSpecChecks(t *testing.T) {
	bad := []Field{
		{Name: "a", Kind: KindEnum, Enum: []string{"x"}, Default: "x", Help: "A."},
		{Name: "b", Kind: KindString, ShowIf: map[string][]any{"nope": {"x"}}, Help: "B."},
		{Name: "c", Kind: KindString, ShowIf: map[string][]any{"a": {"y"}}, Help: "C."},
	}
	errs := checkFields(bad, "", true)
	if len(errs) != 2 || !strings.Contains(errs[0].Error()+errs[1].Error(), `no sibling field "nope"`) || !strings.Contains(errs[0].Error()+errs[1].Error(), `value y is not one of`) {
		t.Fatalf("errors %v", errs)
	}
	applies := Field{ShowIf: map[string][]any{"n": {1}}}
	if !applies.Applies(map[string]any{"n": 1.0}, nil) || applies.Applies(map[string]any{"n": 2.0}, nil) {
		t.Error("a number listed as int does not match the same float64 from JSON")
	}
}

func TestShowIfSchema(t *testing.T) {
	r := showIfRegistry(t)
	link := r.JSONSchema()["$defs"].(map[string]any)["link"].(map[string]any)
	if req := link["required"].([]string); len(req) != 2 {
		t.Errorf("required %v: a field that applies only sometimes is required by the schema", req)
	}
}
