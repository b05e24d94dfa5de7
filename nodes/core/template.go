package core

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/cbroglie/mustache"
	"go.yaml.in/yaml/v2"

	"github.com/tbflow/tbflow/engine"
)

// maxTemplate bounds a template's source.
const maxTemplate = 256 << 10

func init() {
	engine.Register(engine.Type{
		Name: "template", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "template", Color: "#e2d96e", Icon: "template",
		Summary:      "Fills a Mustache template from the message (Node-RED's template node).",
		OutputLabels: []string{"message with the text"},
		Help: `Renders **template** with [Mustache](https://mustache.github.io/mustache.5.html) and puts the result
into **field**. The template sees the message's properties (` + "`{{payload}}`" + `, ` + "`{{topic}}`" + `,
` + "`{{payload.name}}`" + `), ` + "`{{flow.key}}`" + ` and ` + "`{{global.key}}`" + ` (context) and ` + "`{{env.NAME}}`" + `. ` + "`{{x}}`" + ` escapes
HTML, ` + "`{{{x}}}`" + ` does not; sections (` + "`{{#payload}}…{{/payload}}`" + `) repeat over arrays. With **syntax**
` + "`plain`" + ` the template is used as it is. **output** ` + "`json`" + ` or ` + "`yaml`" + ` parses the result.`,
		Fields: []engine.Field{
			{Name: "template", Kind: engine.KindString, Label: "Template", Default: "This is the payload: {{payload}} !", Help: "The Mustache template."},
			{Name: "field", Kind: engine.KindString, Label: "Property", Default: "payload", Help: "Where the result goes."},
			{Name: "fieldType", Kind: engine.KindEnum, Label: "Property scope", Enum: scopes, Default: "msg", Help: "Put the result into the message, flow or global context."},
			{Name: "format", Kind: engine.KindString, Label: "Highlight", Default: "handlebars", Help: "Node-RED's editor highlighting mode (kept, not used)."},
			{Name: "syntax", Kind: engine.KindEnum, Label: "Syntax", Enum: []string{"mustache", "plain"}, Default: "mustache", Help: "`mustache` fills the template; `plain` uses it as it is."},
			{Name: "output", Kind: engine.KindEnum, Label: "Output as", Enum: []string{"str", "json", "yaml"}, Default: "str", Help: "`str`: text; `json`: the text parsed as JSON; `yaml`: parsed as YAML."},
		},
		New: engine.Construct(newTemplate),
	})
}

type templateConfig struct {
	Template  string `json:"template"`
	Field     string `json:"field"`
	FieldType string `json:"fieldType"`
	Format    string `json:"format"`
	Syntax    string `json:"syntax"`
	Output    string `json:"output"`
}

func (c *templateConfig) Validate() error {
	if len(c.Template) > maxTemplate {
		return &engine.FieldError{Field: "template", Message: fmt.Sprintf("longer than %d bytes", maxTemplate)}
	}
	if c.Syntax != "plain" {
		if _, err := mustache.ParseString(c.Template); err != nil {
			return &engine.FieldError{Field: "template", Message: err.Error()}
		}
	}
	if _, err := newProp(c.FieldType, c.Field); err != nil {
		return &engine.FieldError{Field: "field", Message: err.Error()}
	}
	return nil
}

// mustacheJSEscape escapes as mustache.js (Node-RED's template) does.
var mustacheJSEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;", "/", "&#x2F;", "`", "&#x60;", "=", "&#x3D;")

var envRefRE = regexp.MustCompile(`env\.([A-Za-z_][A-Za-z0-9_]*)`)

type templateNode struct {
	nc     *engine.NodeContext
	c      *templateConfig
	tmpl   *mustache.Template
	target prop
	envs   []string
}

func newTemplate(nc *engine.NodeContext, c *templateConfig) (engine.Node, error) {
	n := &templateNode{nc: nc, c: c}
	var err error
	if n.target, err = newProp(c.FieldType, c.Field); err != nil {
		return nil, err
	}
	if c.Syntax != "plain" {
		if n.tmpl, err = mustache.ParseString(c.Template); err != nil {
			return nil, err
		}
		n.tmpl.Escape(mustacheJSEscape.Replace)
		for _, m := range envRefRE.FindAllStringSubmatch(c.Template, -1) {
			n.envs = append(n.envs, m[1])
		}
	}
	return n, nil
}

func (n *templateNode) Start(context.Context) error { return nil }
func (n *templateNode) Stop(context.Context) error  { return nil }

func (n *templateNode) Handle(ctx context.Context, m *engine.Msg) error {
	out := n.c.Template
	if n.tmpl != nil {
		data := m.Map()
		if m.Topic == "" {
			delete(data, engine.KeyTopic)
		}
		scope := map[string]any{}
		env := map[string]any{}
		for _, k := range n.envs {
			v, _ := n.nc.LookupEnv(k)
			env[k] = v
		}
		scope["env"] = env
		scope["flow"] = storeMap(n.nc.Context(engine.ContextFlow))
		scope["global"] = storeMap(n.nc.Context(engine.ContextGlobal))
		s, err := n.tmpl.Render(data, scope)
		if err != nil {
			return fmt.Errorf("template: %w", err)
		}
		out = s
	}
	var v any = out
	switch n.c.Output {
	case "json":
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return fmt.Errorf("template: the result is not JSON: %v", err)
		}
	case "yaml":
		var y any
		if err := yaml.Unmarshal([]byte(out), &y); err != nil {
			return fmt.Errorf("template: the result is not YAML: %v", err)
		}
		v = fromYAML(y, 0)
	}
	if err := n.target.set(n.nc, m, v); err != nil {
		return err
	}
	return n.nc.Send(ctx, m)
}

func storeMap(s *engine.ContextStore) map[string]any {
	out := map[string]any{}
	for _, k := range s.Keys() {
		v, _ := s.Get(k)
		out[k] = v
	}
	return out
}

// fromYAML turns YAML's decoded values into JSON-like ones (string keys,
// float64 numbers), at most 64 levels deep.
func fromYAML(v any, depth int) any {
	if depth > 64 {
		return nil
	}
	switch t := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = fromYAML(x, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = fromYAML(x, depth+1)
		}
		return out
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	}
	return v
}
