package engine

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Markdown renders the reference documentation of every registered type,
// grouped by category: summary, ports, help text and a table of settings.
func (r *Registry) Markdown() string {
	var b strings.Builder
	b.WriteString("# Node reference\n\n")
	b.WriteString("Generated from the node specs (`tbflow nodes`). Settings are top-level keys of the node's object in the flow file.\n")
	cat := ""
	for _, t := range r.Types() {
		if t.Category != cat {
			cat = t.Category
			fmt.Fprintf(&b, "\n## %s\n", cat)
		}
		b.WriteString(t.Markdown())
	}
	return b.String()
}

// Markdown renders one type's reference section.
func (t *Type) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### `%s`\n\n", t.Name)
	if t.Summary != "" {
		b.WriteString(t.Summary + "\n\n")
	}
	switch {
	case t.ConfigNode:
		b.WriteString("Config node (shared by the nodes that reference it).\n\n")
	case t.OutputsField != "":
		fmt.Fprintf(&b, "Inputs: %d. Outputs: one per row of `%s`.\n\n", t.Inputs, t.OutputsField)
	default:
		fmt.Fprintf(&b, "Inputs: %d. Outputs: %d", t.Inputs, t.Outputs)
		if len(t.OutputLabels) > 0 {
			labels := make([]string, len(t.OutputLabels))
			for i, l := range t.OutputLabels {
				labels[i] = fmt.Sprintf("%d %s", i+1, l)
			}
			fmt.Fprintf(&b, " (%s)", strings.Join(labels, "; "))
		}
		b.WriteString(".\n\n")
	}
	b.WriteString(strings.TrimSpace(t.Help) + "\n\n")
	if len(t.Fields) > 0 {
		b.WriteString("| setting | kind | default | description |\n|---|---|---|---|\n")
		writeFieldRows(&b, t.Fields, "")
	}
	return b.String()
}

func writeFieldRows(b *strings.Builder, fields []Field, prefix string) {
	for _, f := range fields {
		kind := string(f.Kind)
		switch f.Kind {
		case KindEnum:
			kind = "one of " + strings.Join(f.Enum, ", ")
		case KindConfigRef:
			kind = "config node `" + f.Ref + "`"
		}
		var notes []string
		if f.Required {
			notes = append(notes, "required")
		}
		if f.isSecret() {
			notes = append(notes, "secret")
		}
		if f.Min != nil {
			notes = append(notes, fmt.Sprintf("min %v", *f.Min))
		}
		if f.Max != nil {
			notes = append(notes, fmt.Sprintf("max %v", *f.Max))
		}
		def := ""
		if f.Default != nil {
			d, _ := json.Marshal(f.Default)
			def = "`" + string(d) + "`"
		}
		help := strings.ReplaceAll(f.Help, "\n", " ")
		help = strings.ReplaceAll(help, "|", "\\|")
		if w := f.ShowIfText(); w != "" {
			notes = append(notes, "only when "+w)
		}
		if len(notes) > 0 {
			help = "(" + strings.Join(notes, ", ") + ") " + help
		}
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, f.Name, kind, def, help)
		if f.Kind == KindTable {
			writeFieldRows(b, f.Fields, prefix+f.Name+"[].")
		}
	}
}

// JSONSchema returns a JSON Schema (draft 2020-12) for flow files made of
// the registered types: an array whose items are tabs, groups, comments or
// one of the node types, each with its settings as properties.
func (r *Registry) JSONSchema() map[string]any {
	defs := map[string]any{}
	var oneOf []any
	std := func(props map[string]any, t *Type) {
		props["id"] = map[string]any{"type": "string", "minLength": 1}
		props["name"] = map[string]any{"type": "string"}
		props["z"] = map[string]any{"type": "string", "description": "id of the tab"}
		props["g"] = map[string]any{"type": "string"}
		props["info"] = map[string]any{"type": "string"}
		props["d"] = map[string]any{"type": "boolean", "description": "disabled"}
		if t == nil || !t.ConfigNode {
			props["x"] = map[string]any{"type": "number"}
			props["y"] = map[string]any{"type": "number"}
			props["wires"] = map[string]any{"type": "array", "items": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}
		}
		for k := range standardKeys {
			if _, ok := props[k]; !ok {
				props[k] = true
			}
		}
	}
	for _, name := range []string{"tab", "group", "comment"} {
		props := map[string]any{"type": map[string]any{"const": name}, "label": map[string]any{"type": "string"}}
		std(props, nil)
		defs[name] = map[string]any{"type": "object", "properties": props, "required": []string{"id", "type"}}
		oneOf = append(oneOf, map[string]any{"$ref": "#/$defs/" + name})
	}
	for _, t := range r.Types() {
		props := map[string]any{"type": map[string]any{"const": t.Name}}
		std(props, t)
		required := []string{"id", "type"}
		for _, f := range t.Fields {
			props[f.Name] = fieldSchema(f)
			// A field that applies only sometimes (ShowIf) is not required
			// by the schema: validation knows when it is.
			if f.Required && len(f.ShowIf) == 0 {
				required = append(required, f.Name)
			}
		}
		s := map[string]any{
			"type": "object", "title": t.Name, "description": t.Summary,
			"properties": props, "required": required, "additionalProperties": false,
		}
		defs[t.Name] = s
		oneOf = append(oneOf, map[string]any{"$ref": "#/$defs/" + t.Name})
	}
	return map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     "https://tbflow.dev/schema/flow.json",
		"title":   "tbflow flow",
		"type":    "array",
		"items":   map[string]any{"oneOf": oneOf},
		"$defs":   defs,
	}
}

var envRefPattern = `^.*\$\{[A-Za-z_][A-Za-z0-9_]*\}.*$`

func fieldSchema(f Field) map[string]any {
	s := map[string]any{}
	if f.Help != "" {
		s["description"] = f.Help
	}
	if f.Default != nil {
		s["default"] = f.Default
	}
	if f.isSecret() {
		s["writeOnly"] = true
	}
	envOr := func(base map[string]any) map[string]any {
		// ${NAME} references are allowed wherever a value is.
		return map[string]any{"anyOf": []any{base, map[string]any{"type": "string", "pattern": envRefPattern}}}
	}
	var base map[string]any
	switch f.Kind {
	case KindString, KindExpr, KindSecret:
		base = map[string]any{"type": "string"}
	case KindConfigRef:
		base = map[string]any{"type": "string", "description": "id of a " + f.Ref + " config node"}
	case KindEnum:
		base = map[string]any{"type": "string", "enum": f.Enum}
	case KindNumber, KindInt:
		typ := "number"
		if f.Kind == KindInt {
			typ = "integer"
		}
		base = map[string]any{"type": typ}
		if f.Min != nil {
			base["minimum"] = *f.Min
		}
		if f.Max != nil {
			base["maximum"] = *f.Max
		}
	case KindBool:
		base = map[string]any{"type": "boolean"}
	case KindDuration:
		base = map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`}
	case KindJSON:
		base = map[string]any{}
	case KindTable:
		props := map[string]any{}
		var req []string
		for _, sub := range f.Fields {
			props[sub.Name] = fieldSchema(sub)
			if sub.Required && len(sub.ShowIf) == 0 {
				req = append(req, sub.Name)
			}
		}
		item := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			item["required"] = req
		}
		base = map[string]any{"type": "array", "items": item}
		if f.Min != nil {
			base["minItems"] = int(*f.Min)
		}
		if f.Max != nil {
			base["maxItems"] = int(*f.Max)
		}
	}
	for k, v := range envOr(base) {
		s[k] = v
	}
	return s
}
