package engine

import (
	"errors"
	"strings"
	"testing"
)

const validFlow = `[
 {"id":"tab1","type":"tab","label":"Site"},
 {"id":"c1","type":"conn","host":"127.0.0.1","token":"${TB_TOKEN}"},
 {"id":"s","type":"src","z":"tab1","x":1,"y":2,"wires":[["u"]]},
 {"id":"u","type":"user","z":"tab1","connection":"c1","cond":"payload > 1","rows":[{"name":"a","conn":"c1"}],"wires":[["k"]]},
 {"id":"k","type":"sink","z":"tab1","wires":[]}
]`

func TestValidate(t *testing.T) {
	reg, _ := newTestRegistry(t)
	env := func(name string) (string, bool) {
		if name == "TB_TOKEN" {
			return "secret", true
		}
		return "", false
	}
	cases := []struct {
		name string
		flow string
		want []string // one substring per expected problem, in order
	}{
		{"valid", validFlow, nil},
		{"unknown type", `[{"id":"a","type":"nope","wires":[]}]`, []string{`node "a" (nope) type: unknown node type "nope"`}},
		{"missing id and type", `[{"type":"pass"},{"id":"b"}]`, []string{`id: missing node id`, `node "b" type: missing node type`}},
		{"duplicate id", `[{"id":"a","type":"pass"},{"id":"a","type":"pass"}]`, []string{`node "a" (pass) id: duplicate node id (also used on line 1)`}},
		{"missing tab", `[{"id":"a","type":"pass","z":"nowhere"}]`, []string{`node "a" (pass) z: tab "nowhere" does not exist`}},
		{"missing required", `[{"id":"c","type":"conn"}]`, []string{`node "c" (conn) host: required`}},
		{"empty required", `[{"id":"c","type":"conn","host":""}]`, []string{`node "c" (conn) host: required`}},
		{"bad kinds", `[{"id":"c","type":"conn","host":"h"},{"id":"u","type":"user","connection":"c","mode":"z","n":11,"every":"soon","scale":"big","cond":3}]`, []string{
			`node "u" (user) cond: must be an expression string, got number`,
			`node "u" (user) mode: "z" is not one of "a", "b"`,
			`node "u" (user) n: value 11 is above the maximum 10`,
			`node "u" (user) every: invalid duration "soon"`,
			`node "u" (user) scale: must be a number, got string`,
		}},
		{"not an integer", `[{"id":"c","type":"conn","host":"h"},{"id":"u","type":"user","connection":"c","n":1.5}]`, []string{`node "u" (user) n: must be an integer, got 1.5`}},
		{"unknown field", `[{"id":"c","type":"conn","host":"h","Token":"x","port":1}]`, []string{
			`node "c" (conn) Token: unknown field "Token" (did you mean "token"?)`,
			`node "c" (conn) port: unknown field "port"`,
		}},
		{"config ref missing", `[{"id":"u","type":"user","connection":"c9"}]`, []string{`node "u" (user) connection: config node "c9" does not exist`}},
		{"config ref wrong type", `[{"id":"p","type":"pass"},{"id":"u","type":"user","connection":"p"}]`, []string{`node "u" (user) connection: node "p" is a pass, want a conn`}},
		{"table cells", `[{"id":"c","type":"conn","host":"h"},{"id":"u","type":"user","connection":"c","rows":[{"name":"a"},{"conn":"p"},{"name":"b","x":1},3]}]`, []string{
			`node "u" (user) rows[3]: must be an object, got number`,
		}},
		{"table cell problems", `[{"id":"c","type":"conn","host":"h"},{"id":"u","type":"user","connection":"c","rows":[{"name":"a"},{"conn":"zz"},{"name":"b","x":1}]}]`, []string{
			`node "u" (user) rows[1].name: required`,
			`node "u" (user) rows[1].conn: config node "zz" does not exist`,
			`node "u" (user) rows[2].x: unknown field "x"`,
		}},
		{"expression", `[{"id":"c","type":"conn","host":"h"},{"id":"u","type":"user","connection":"c","cond":"payload >"}]`, []string{
			`node "u" (user) cond: expression does not compile: line 1, column`,
		}},
		{"dangling wire", `[{"id":"s","type":"src","wires":[["gone"]]}]`, []string{`node "s" (src) wires: output 1 is wired to "gone", which does not exist`}},
		{"port does not exist", `[{"id":"s","type":"src","wires":[["k"],["k"]]},{"id":"k","type":"sink"}]`, []string{`node "s" (src) wires: output 2 does not exist (src has 1 output(s))`}},
		{"target has no input", `[{"id":"s","type":"src","wires":[["t"]]},{"id":"t","type":"src"}]`, []string{`node "s" (src) wires: output 1 is wired to "t" (src), which has no input`}},
		{"config node wired", `[{"id":"c","type":"conn","host":"h","wires":[["k"]]},{"id":"k","type":"sink"}]`, []string{`node "c" (conn) wires: config nodes have no wires`}},
		{"cycle", `[{"id":"a","type":"pass","wires":[["b"]]},{"id":"b","type":"two","wires":[[],["c"]]},{"id":"c","type":"pass","wires":[["a"]]}]`, []string{
			`node "a" (pass) wires: cycle through "a" → "b" → "c" (flows must not loop)`,
		}},
		{"self loop", `[{"id":"a","type":"pass","wires":[["a"]]}]`, []string{`node "a" (pass) wires: cycle through "a"`}},
		{"undefined env is a warning", `[{"id":"c","type":"conn","host":"${NOPE}"}]`, []string{`warning: node "c" (conn) host: environment variable "NOPE" is not set`}},
		{"placeholder left", `[{"id":"c","type":"conn","host":"h","token":"__SECRET__"}]`, []string{`node "c" (conn) token: secret has no value`}},
		{"everything at once", `[
		  {"id":"a","type":"nope"},
		  {"id":"c","type":"conn"},
		  {"id":"s","type":"src","wires":[["gone"]]},
		  {"id":"u","type":"user","connection":"s","cond":"1 +"}
		 ]`, []string{
			`node "a" (nope) type: unknown node type`,
			`node "c" (conn) host: required`,
			`node "s" (src) wires: output 1 is wired to "gone"`,
			`node "u" (user) connection: node "s" is a src, want a conn`,
			`node "u" (user) cond: expression does not compile`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustParse(t, c.flow)
			ps := reg.Validate(f, env)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestProblemsCarryLines(t *testing.T) {
	reg, _ := newTestRegistry(t)
	f := mustParse(t, "[\n {\"id\":\"a\",\"type\":\"pass\"},\n\n {\"id\":\"b\",\"type\":\"nope\"}\n]")
	ps := reg.Validate(f, nil)
	if len(ps) != 1 || ps[0].Line != 4 || ps[0].NodeID != "b" || ps[0].Field != "type" {
		t.Fatalf("problems = %+v", ps)
	}
}

func TestParseFlowSyntaxErrors(t *testing.T) {
	cases := []struct {
		in         string
		line, col  int
		msgContain string
	}{
		{"[\n  {\"id\": \"a\",\n   \"type\": \"pass\",,\n  }\n]", 3, 19, "invalid character ','"},
		{"[{\"id\":\"a\"}", 1, 11, "unexpected end of JSON input"},
		{"{\"id\":\"a\"}", 1, 1, "a flow is a JSON array"},
		{"\n\n  42", 3, 3, "a flow is a JSON array"},
		{"[1]", 1, 2, "must be a JSON object"},
		{`[{"id":"a","wires":"x"}]`, 1, 2, `"wires" must be an array`},
		{`[{"id":3}]`, 1, 2, `"id" must be a string`},
	}
	for _, c := range cases {
		_, err := ParseFlow([]byte(c.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v is not a *SyntaxError", c.in, err)
			continue
		}
		if se.Line != c.line || se.Column != c.col || !strings.Contains(se.Msg, c.msgContain) {
			t.Errorf("%q: got line %d column %d %q, want line %d column %d containing %q", c.in, se.Line, se.Column, se.Msg, c.line, c.col, c.msgContain)
		}
	}
}

func TestParseFlowRoundTrip(t *testing.T) {
	in := `{"flows":[
 {"id":"t","type":"tab","label":"Site","info":"notes"},
 {"id":"c","type":"conn","host":"h"},
 {"id":"a","type":"pass","z":"t","name":"A","d":true,"x":10,"y":20.5,"wires":[["b"],[]],"custom":{"k":[1,2]}}
],"rev":"abc"}`
	f, err := ParseFlow([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if f.Nodes[2].Line != 4 || !f.Nodes[2].Disabled || *f.Nodes[2].Y != 20.5 || f.Nodes[2].Name != "A" {
		t.Fatalf("node = %+v", f.Nodes[2])
	}
	out, err := f.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseFlow(out)
	if err != nil {
		t.Fatalf("re-parsing %s: %v", out, err)
	}
	if f.Revision() != g.Revision() {
		t.Fatalf("revision changed over a round trip:\n%s", out)
	}
	if !strings.Contains(string(out), `{"id":"a","type":"pass","z":"t","name":"A","d":true,"custom":{"k":[1,2]},"x":10,"y":20.5,"wires":[["b"],[]]}`) {
		t.Fatalf("unexpected encoding:\n%s", out)
	}
}

func TestRegisterPanics(t *testing.T) {
	ok := Type{Name: "ok-type", Category: "test", Help: "h", New: Construct(func(*NodeContext, *emptyConfig) (Node, error) { return &passNode{}, nil })}
	cases := map[string]func(*Type){
		"empty name":        func(t *Type) { t.Name = "" },
		"not kebab":         func(t *Type) { t.Name = "Bad_Name" },
		"reserved":          func(t *Type) { t.Name = "tab" },
		"nil constructor":   func(t *Type) { t.New = nil },
		"no help":           func(t *Type) { t.Help = " " },
		"unknown kind":      func(t *Type) { t.Fields = []Field{{Name: "x", Kind: "blob"}} },
		"enum without":      func(t *Type) { t.Fields = []Field{{Name: "x", Kind: KindEnum}} },
		"ref without type":  func(t *Type) { t.Fields = []Field{{Name: "x", Kind: KindConfigRef}} },
		"reserved field":    func(t *Type) { t.Fields = []Field{{Name: "wires", Kind: KindString}} },
		"bad default":       func(t *Type) { t.Fields = []Field{{Name: "x", Kind: KindInt, Default: "one"}} },
		"struct disagrees":  func(t *Type) { t.Fields = []Field{{Name: "x", Kind: KindString}} },
		"config with ports": func(t *Type) { t.ConfigNode, t.Outputs = true, 1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			typ := ok
			mutate(&typ)
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			NewRegistry().Register(typ)
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		r := NewRegistry()
		r.Register(ok)
		defer func() {
			if recover() == nil {
				t.Fatal("Register did not panic")
			}
		}()
		r.Register(ok)
	})
}

func TestCheckConfigStructKinds(t *testing.T) {
	type bad struct {
		A int    `json:"a"`
		B string `json:"b"`
		C string `json:"c"`
	}
	typ := &Type{Name: "x", Fields: []Field{{Name: "a", Kind: KindString}, {Name: "b", Kind: KindDuration}},
		New: Construct(func(*NodeContext, *bad) (Node, error) { return nil, nil })}
	err := CheckConfigStruct(typ)
	for _, w := range []string{`field "a" of kind string cannot decode into int`, `field "b" of kind duration cannot decode into string`, `json tag "c"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}
