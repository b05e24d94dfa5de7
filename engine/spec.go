package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of value a config field holds. The editor picks its
// input widget from the kind; validation checks values against it.
type Kind string

// Field kinds.
const (
	// KindString is free text. JSON: string.
	KindString Kind = "string"
	// KindNumber is a floating-point number. JSON: number.
	KindNumber Kind = "number"
	// KindInt is an integer. JSON: number without fraction.
	KindInt Kind = "int"
	// KindBool is true or false.
	KindBool Kind = "bool"
	// KindEnum is one of [Field.Enum]. JSON: string.
	KindEnum Kind = "enum"
	// KindJSON is any JSON value; a string value must itself hold JSON text
	// only when the field says so in its help.
	KindJSON Kind = "json"
	// KindDuration is a Go duration string such as "500ms", "5s" or "1h30m".
	// Decode it into a [Duration].
	KindDuration Kind = "duration"
	// KindExpr is an expression (expr-lang) that must compile; see
	// [CompileExpr] for what it sees. JSON: string.
	KindExpr Kind = "expr"
	// KindTable is a list of objects whose columns are [Field.Fields], for
	// example a Modbus register map. JSON: array of objects.
	KindTable Kind = "table"
	// KindConfigRef is the id of a config node of type [Field.Ref].
	// JSON: string.
	KindConfigRef Kind = "config-ref"
	// KindSecret is a secret string (token, password, private key). It
	// implies [Field.Secret].
	KindSecret Kind = "secret"
)

var kinds = map[Kind]bool{
	KindString: true, KindNumber: true, KindInt: true, KindBool: true, KindEnum: true,
	KindJSON: true, KindDuration: true, KindExpr: true, KindTable: true,
	KindConfigRef: true, KindSecret: true,
}

// Field declares one config field of a node type. The field's name is the
// JSON key in the flow file and must match the json tag of the config
// struct field it decodes into.
type Field struct {
	// Name is the JSON key (camelCase by convention, as in Node-RED).
	Name string `json:"name"`
	// Kind is the value kind.
	Kind Kind `json:"kind"`
	// Label is the form label; it defaults to Name.
	Label string `json:"label,omitempty"`
	// Help explains the field to users (Markdown, one or two sentences).
	Help string `json:"help,omitempty"`
	// Default is used when the field is absent. A field without a default
	// is optional unless Required is set.
	Default any `json:"default,omitempty"`
	// Required rejects an absent or empty value.
	Required bool `json:"required,omitempty"`
	// Enum lists the allowed values of a KindEnum field.
	Enum []string `json:"enum,omitempty"`
	// Min and Max bound KindNumber and KindInt values, the length of
	// KindTable values, and KindDuration values (in seconds).
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Secret keeps the value out of flow files, exports and the browser.
	Secret bool `json:"secret,omitempty"`
	// Identity marks a field that says which server a config node talks
	// to (host, port, TLS settings). A deploy that changes one keeps no
	// stored secret of the node: the secrets must be entered again, so a
	// token is never sent to a server it was not entered for.
	Identity bool `json:"identity,omitempty"`
	// DataPath marks a file the node writes (an outbox). It must be a
	// relative path without "..", or an absolute path inside the engine's
	// data directory ([Options.DataDir]), where relative paths resolve.
	DataPath bool `json:"dataPath,omitempty"`
	// Ref names the config-node type a KindConfigRef field points to.
	Ref string `json:"ref,omitempty"`
	// Fields are the columns of a KindTable field.
	Fields []Field `json:"fields,omitempty"`
	// Advanced fields are folded away in the editor.
	Advanced bool `json:"advanced,omitempty"`
	// Example is an example value shown in docs and as a placeholder.
	Example any `json:"example,omitempty"`
	// ShowIf, when set, makes the field apply only when every named
	// sibling field has one of the listed values, e.g.
	// {"transport": {"rtu"}}. The editor hides a field that does not
	// apply, validation skips it and the generated docs say when it
	// applies.
	ShowIf map[string][]any `json:"showIf,omitempty"`
}

// Float returns a pointer to f, for [Field.Min] and [Field.Max].
func Float(f float64) *float64 { return &f }

func (f Field) label() string {
	if f.Label != "" {
		return f.Label
	}
	return f.Name
}

func (f Field) isSecret() bool { return f.Secret || f.Kind == KindSecret }

// Category groups node types in the palette and the docs.
const (
	CategoryCommon   = "common"
	CategoryFunction = "function"
	CategoryConfig   = "config"
)

// Type declares a node type: everything the editor, validation, docs and
// the runtime need, in one value. Register it with [Register] in the node
// package's init function.
type Type struct {
	// Name is the type name used in flow files: kebab-case and stable
	// ("tb-telemetry-out").
	Name string
	// Category groups the type in the palette ("common", "function",
	// "thingsboard", "modbus", "config", ...).
	Category string
	// ConfigNode marks a config node: a shared resource such as a
	// connection, referenced by other nodes through KindConfigRef fields,
	// reference-counted by the engine and kept alive across hot deploys
	// while its settings do not change. Config nodes have no wires.
	ConfigNode bool
	// Inputs is 0 or 1.
	Inputs int
	// Outputs is the number of output ports, unless OutputsField is set.
	Outputs int
	// OutputsField names a KindTable field whose row count is the number
	// of output ports (a switch has one output per rule), or a KindInt
	// field holding the number itself (a function's "outputs").
	OutputsField string
	// Label is the palette label; it defaults to Name.
	Label string
	// Color is the node colour in the editor ("#a6bbcf").
	Color string
	// Icon is an icon name for the editor.
	Icon string
	// Summary is a one-line description.
	Summary string
	// Help is the user documentation in Markdown.
	Help string
	// Fields is the config spec.
	Fields []Field
	// OutputLabels names the output ports, in order ("telemetry",
	// "attributes", "rpc"); the editor shows them on hover and in help.
	OutputLabels []string
	// New constructs a node from its decoded config; see [Construct].
	New Constructor
}

// MarshalJSON writes the declaration the editor renders its palette and
// property forms from:
//
//	{"type":"inject","category":"common","configNode":false,"inputs":0,
//	 "outputs":1,"outputsField":"","label":"inject","color":"#a6bbcf",
//	 "icon":"inject","summary":"…","help":"…markdown…",
//	 "fields":[{"name":"interval","kind":"duration","default":"0s",...},
//	           {"name":"rules","kind":"table","fields":[…columns…]},
//	           {"name":"connection","kind":"config-ref","ref":"tb-connection"}]}
func (t *Type) MarshalJSON() ([]byte, error) {
	fields := t.Fields
	if fields == nil {
		fields = []Field{}
	}
	return json.Marshal(struct {
		Type         string   `json:"type"`
		Category     string   `json:"category"`
		ConfigNode   bool     `json:"configNode"`
		Inputs       int      `json:"inputs"`
		Outputs      int      `json:"outputs"`
		OutputsField string   `json:"outputsField,omitempty"`
		Label        string   `json:"label"`
		Color        string   `json:"color,omitempty"`
		Icon         string   `json:"icon,omitempty"`
		Summary      string   `json:"summary,omitempty"`
		Help         string   `json:"help"`
		Fields       []Field  `json:"fields"`
		OutputLabels []string `json:"outputLabels,omitempty"`
	}{t.Name, t.Category, t.ConfigNode, t.Inputs, t.Outputs, t.OutputsField,
		t.label(), t.Color, t.Icon, t.Summary, t.Help, fields, t.OutputLabels})
}

func (t *Type) label() string {
	if t.Label != "" {
		return t.Label
	}
	return t.Name
}

// Field returns the field spec called name.
func (t *Type) Field(name string) (Field, bool) {
	for _, f := range t.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Duration is a time.Duration that reads and writes Go duration strings
// ("1.5s") in JSON; plain numbers are read as seconds. Use it in config
// structs for KindDuration fields.
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := parseDurationJSON(b)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func parseDurationJSON(b []byte) (time.Duration, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, err
	}
	return parseDurationValue(v)
}

func parseDurationValue(v any) (time.Duration, error) {
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(strings.TrimSpace(t))
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use e.g. \"500ms\", \"5s\", \"1m\")", t)
		}
		return d, nil
	case float64:
		return time.Duration(t * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("duration must be a string such as \"5s\", got %s", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, int, int64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
