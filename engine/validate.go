package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// Severity grades a problem: errors stop a deploy, warnings do not.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one thing wrong with a flow, located as precisely as known.
type Problem struct {
	NodeID   string `json:"id,omitempty"`
	NodeType string `json:"type,omitempty"`
	// Field is the config field, "rules[1].condition" for a table cell, or
	// "wires" / "z" / "type" for the standard keys; empty for the node as a
	// whole.
	Field    string   `json:"field,omitempty"`
	Line     int      `json:"line,omitempty"`
	Column   int      `json:"column,omitempty"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// String formats the problem as `node "id" (type) field: message`.
func (p Problem) String() string {
	var b strings.Builder
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	if p.NodeID != "" || p.NodeType != "" {
		fmt.Fprintf(&b, "node %q", p.NodeID)
		if p.NodeType != "" {
			fmt.Fprintf(&b, " (%s)", p.NodeType)
		}
		if p.Field != "" {
			b.WriteString(" " + p.Field)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", p.Line, p.Column)
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is the result of validation.
type Problems []Problem

// HasErrors reports whether any problem is an error.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the error-severity problems.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == SeverityError {
			out = append(out, p)
		}
	}
	return out
}

// Err returns a *ValidationError holding the error-severity problems, or
// nil when there are none.
func (ps Problems) Err() error {
	if errs := ps.Errors(); len(errs) > 0 {
		return &ValidationError{Problems: errs}
	}
	return nil
}

// ValidationError is a flow that cannot be deployed.
type ValidationError struct {
	Problems Problems
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid flow: " + strings.Join(lines, "; ")
}

// ProblemsFromError turns a ParseFlow or Deploy error into problems, so
// callers can report syntax errors and validation errors the same way.
func ProblemsFromError(err error) Problems {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	var se *SyntaxError
	if errors.As(err, &se) {
		return Problems{{Line: se.Line, Column: se.Column, Severity: SeverityError, Message: se.Msg}}
	}
	return Problems{{Severity: SeverityError, Message: err.Error()}}
}

// LookupEnv looks up an environment variable for ${NAME} references.
type LookupEnv func(name string) (string, bool)

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} references; it returns the names not found.
func expandEnv(s string, lookup LookupEnv) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing []string
	out := envRefRE.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	return out, missing
}

// IsEnvRef reports whether s is exactly one ${NAME} reference.
func IsEnvRef(s string) bool {
	m := envRefRE.FindStringIndex(s)
	return m != nil && m[0] == 0 && m[1] == len(s)
}

// Validate checks a flow against the registry and returns every problem
// found: unknown types, missing, invalid and unknown fields, config
// references to missing nodes or nodes of the wrong type, dangling wires,
// wires from or to ports that do not exist, cycles, and expressions that do
// not compile. lookup resolves ${NAME} references (nil means the process
// environment); an undefined variable is a warning.
func (r *Registry) Validate(f *Flow, lookup LookupEnv) Problems {
	return r.validate(context.Background(), f, lookup, "")
}

// ValidateContext is Validate that stops once ctx ends; the problems then
// end with one saying so, and ctx.Err() tells the caller.
func (r *Registry) ValidateContext(ctx context.Context, f *Flow, lookup LookupEnv) Problems {
	return r.validate(ctx, f, lookup, "")
}

// validate is Validate with data-path fields resolved against dataDir
// (see [Field.DataPath]); "" leaves them relative.
func (r *Registry) validate(ctx context.Context, f *Flow, lookup LookupEnv, dataDir string) Problems {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v := validator{reg: r, flow: f, rc: resolveCtx{lookup: lookup, dataDir: dataDir}, byID: map[string]*NodeDef{}, ctx: ctx}
	return v.run()
}

// cancelled reports, every 1024 nodes, whether the caller gave up.
func (v *validator) cancelled(i int) bool {
	if i%1024 != 0 || v.ctx.Err() == nil {
		return false
	}
	v.out = append(v.out, Problem{Severity: SeverityError, Message: "validation stopped: " + v.ctx.Err().Error()})
	return true
}

type validator struct {
	reg  *Registry
	flow *Flow
	rc   resolveCtx
	byID map[string]*NodeDef
	pos  map[string]int // file position by id, for cycles
	out  Problems
	ctx  context.Context
}

func (v *validator) add(n *NodeDef, field string, sev Severity, format string, args ...any) {
	p := Problem{Field: field, Severity: sev, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.NodeID, p.NodeType, p.Line = n.ID, n.Type, n.Line
	}
	v.out = append(v.out, p)
}

func (v *validator) run() Problems {
	for _, n := range v.flow.Nodes {
		switch {
		case n.ID == "":
			v.add(n, "id", SeverityError, "missing node id")
			continue
		case v.byID[n.ID] != nil:
			v.add(n, "id", SeverityError, "duplicate node id (also used on line %d)", v.byID[n.ID].Line)
			continue
		}
		v.byID[n.ID] = n
	}
	for i, n := range v.flow.Nodes {
		if v.cancelled(i) {
			return v.out
		}
		if n.ID == "" || v.byID[n.ID] != n {
			continue
		}
		v.node(n)
	}
	if v.cancelled(0) {
		return v.out
	}
	v.cycles()
	return v.out
}

func (v *validator) node(n *NodeDef) {
	switch n.Type {
	case "":
		v.add(n, "type", SeverityError, "missing node type")
		return
	case "tab", "group", "comment":
		return
	}
	t, ok := v.reg.Lookup(n.Type)
	if !ok {
		v.add(n, "type", SeverityError, "unknown node type %q", n.Type)
		return
	}
	if n.Z != "" {
		if z := v.byID[n.Z]; z == nil || z.Type != "tab" {
			v.add(n, "z", SeverityError, "tab %q does not exist", n.Z)
		}
	}
	if _, err := resolveConfig(t, n, v.rc, v.refCheck(n), func(field string, sev Severity, msg string) {
		v.add(n, field, sev, "%s", msg)
	}); err != nil {
		v.add(n, "", SeverityError, "%s", err.Error())
	}
	v.wires(t, n)
}

func (v *validator) refCheck(n *NodeDef) func(f Field, id string) string {
	return func(f Field, id string) string {
		target := v.byID[id]
		if target == nil {
			return fmt.Sprintf("config node %q does not exist", id)
		}
		if target.Type != f.Ref {
			return fmt.Sprintf("node %q is a %s, want a %s", id, target.Type, f.Ref)
		}
		return ""
	}
}

// outputs returns the number of output ports of node n of type t.
func outputsOf(t *Type, n *NodeDef) int {
	if t.OutputsField == "" {
		return t.Outputs
	}
	v, ok := n.Fields[t.OutputsField]
	if !ok {
		f, _ := t.Field(t.OutputsField)
		v = f.Default
	}
	switch x := v.(type) {
	case []any:
		return len(x)
	case float64:
		if x >= 0 && x <= maxOutputs {
			return int(x)
		}
	case int:
		if x >= 0 && x <= maxOutputs {
			return x
		}
	}
	return 0
}

// maxOutputs bounds a node's output count taken from a number field.
const maxOutputs = 64

func (v *validator) wires(t *Type, n *NodeDef) {
	if t.ConfigNode {
		for _, p := range n.Wires {
			if len(p) > 0 {
				v.add(n, "wires", SeverityError, "config nodes have no wires")
				return
			}
		}
		return
	}
	outs := outputsOf(t, n)
	for port, targets := range n.Wires {
		if port >= outs && len(targets) > 0 {
			v.add(n, "wires", SeverityError, "output %d does not exist (%s has %d output(s))", port+1, t.Name, outs)
			continue
		}
		for _, id := range targets {
			target := v.byID[id]
			if target == nil {
				v.add(n, "wires", SeverityError, "output %d is wired to %q, which does not exist", port+1, id)
				continue
			}
			tt, ok := v.reg.Lookup(target.Type)
			if !ok {
				continue // reported on the target
			}
			if tt.Inputs == 0 {
				v.add(n, "wires", SeverityError, "output %d is wired to %q (%s), which has no input", port+1, id, target.Type)
			}
		}
	}
}

// cycles reports every strongly connected component of the wire graph.
func (v *validator) cycles() {
	index := map[string]int{}
	low := map[string]int{}
	on := map[string]bool{}
	var stack []string
	next := 0
	var strong func(id string)
	strong = func(id string) {
		index[id], low[id] = next, next
		next++
		stack = append(stack, id)
		on[id] = true
		self := false
		for _, port := range v.byID[id].Wires {
			for _, w := range port {
				if v.byID[w] == nil {
					continue
				}
				if w == id {
					self = true
				}
				if _, seen := index[w]; !seen {
					strong(w)
					low[id] = min(low[id], low[w])
				} else if on[w] {
					low[id] = min(low[id], index[w])
				}
			}
		}
		if low[id] == index[id] {
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp = append(comp, w)
				if w == id {
					break
				}
			}
			if len(comp) > 1 || self {
				comp = v.cyclePath(comp)
				first := v.byID[comp[0]]
				quoted := make([]string, len(comp))
				for i, c := range comp {
					quoted[i] = fmt.Sprintf("%q", c)
				}
				v.add(first, "wires", SeverityError, "cycle through %s (flows must not loop)", strings.Join(quoted, " → "))
			}
		}
	}
	for _, n := range v.flow.Nodes {
		if n.ID == "" || v.byID[n.ID] != n {
			continue
		}
		if _, seen := index[n.ID]; !seen {
			strong(n.ID)
		}
	}
}

// cyclePath orders a strongly connected component along its wires,
// starting at the node that comes first in the file.
func (v *validator) cyclePath(comp []string) []string {
	if v.pos == nil {
		v.pos = map[string]int{}
		for i, n := range v.flow.Nodes {
			if _, seen := v.pos[n.ID]; !seen {
				v.pos[n.ID] = i
			}
		}
	}
	pos := v.pos
	in := map[string]bool{}
	for _, c := range comp {
		in[c] = true
	}
	sort.Slice(comp, func(i, j int) bool { return pos[comp[i]] < pos[comp[j]] })
	path := []string{comp[0]}
	seen := map[string]bool{comp[0]: true}
	for cur := comp[0]; len(path) < len(comp); {
		next := ""
		for _, port := range v.byID[cur].Wires {
			for _, w := range port {
				if in[w] && !seen[w] && (next == "" || pos[w] < pos[next]) {
					next = w
				}
			}
		}
		if next == "" {
			// no unvisited successor: list the rest in file order
			for _, c := range comp {
				if !seen[c] {
					path = append(path, c)
				}
			}
			break
		}
		path = append(path, next)
		seen[next] = true
		cur = next
	}
	return path
}

// resolveConfig turns a node's fields into its decoded config struct:
// defaults applied, ${NAME} references expanded, every value checked
// against its field spec, unknown fields rejected, config references checked
// with ref, and the struct's Validator called. Problems go to report; the
// returned error is non-nil when the config could not be decoded.
func resolveConfig(t *Type, n *NodeDef, rc resolveCtx, ref func(Field, string) string, report func(field string, sev Severity, msg string)) (_ any, err error) {
	if rc.lookup == nil {
		rc.lookup = os.LookupEnv
	}
	rc.lookup = guardLookup(rc.lookup)
	// No message names a value that came from the environment or a secret.
	rd := newRedactor(t, n, rc.lookup)
	defer func() {
		if err != nil {
			err = errors.New(rd.apply(err.Error()))
		}
	}()
	failed := false
	rep := func(field string, sev Severity, msg string) {
		if sev == SeverityError {
			failed = true
		}
		report(field, sev, rd.apply(msg))
	}
	keys := make([]string, 0, len(n.Fields))
	for k := range n.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if standardKeys[k] {
			continue
		}
		if _, ok := t.Field(k); !ok {
			rep(k, SeverityError, fmt.Sprintf("unknown field %q%s", k, suggest(k, t.Fields)))
		}
	}
	values := make(map[string]any, len(t.Fields))
	for _, f := range t.Fields {
		raw, present := n.Fields[f.Name]
		if !f.Applies(n.Fields, t.Fields) {
			// A field that does not apply is not checked: its default
			// (if any) is what the node gets.
			raw, present = nil, false
			f.Required = false
		}
		val, ok := resolveValue(f, raw, present, f.Name, rc, ref, rep)
		if ok {
			values[f.Name] = val
		}
	}
	if failed {
		return nil, nil
	}
	conf, err := decodeConfig(t, values)
	if err != nil {
		return nil, err
	}
	if cv, ok := conf.(Validator); ok {
		if err := cv.Validate(); err != nil {
			for _, e := range flattenErrors(err) {
				var fe *FieldError
				if errors.As(e, &fe) {
					rep(fe.Field, SeverityError, fe.Message)
				} else {
					rep("", SeverityError, e.Error())
				}
			}
			return nil, nil
		}
	}
	return conf, nil
}

func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

func suggest(name string, fields []Field) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return fmt.Sprintf(" (did you mean %q?)", f.Name)
		}
	}
	return ""
}

// resolveValue checks one value (or applies the default) and returns the
// value to decode.
func resolveValue(f Field, raw any, present bool, path string, rc resolveCtx, ref func(Field, string) string, rep func(string, Severity, string)) (any, bool) {
	if !present || raw == nil {
		if f.Required {
			rep(path, SeverityError, "required")
			return nil, false
		}
		if f.Default == nil {
			return nil, false
		}
		return CloneValue(f.Default), true
	}
	if s, ok := raw.(string); ok && strings.Contains(s, "${") {
		exp, missing := expandEnv(s, rc.lookup)
		for _, m := range missing {
			if reservedEnv(m) {
				rep(path, SeverityError, fmt.Sprintf("environment variable %q is reserved for the editor's own credentials", m))
				continue
			}
			rep(path, SeverityWarning, fmt.Sprintf("environment variable %q is not set", m))
		}
		if len(missing) > 0 {
			// Cannot check the value; leave it to run time.
			return nil, false
		}
		raw = exp
		switch f.Kind {
		case KindNumber, KindInt, KindBool, KindJSON:
			var v any
			if err := json.Unmarshal([]byte(exp), &v); err == nil {
				raw = v
			}
		}
	}
	if s, ok := raw.(string); ok && s == "" && f.Required {
		rep(path, SeverityError, "required")
		return nil, false
	}
	if s, ok := raw.(string); ok && s == SecretPlaceholder && f.isSecret() {
		rep(path, SeverityError, "secret has no value (the placeholder was not replaced)")
		return nil, false
	}
	if f.DataPath {
		p, msg := dataPath(raw, rc.dataDir)
		if msg != "" {
			rep(path, SeverityError, msg)
			return nil, false
		}
		raw = p
	}
	ps := checkValue(f, raw, ref)
	for _, p := range ps {
		field := path
		if p.Field != "" {
			field = path + p.Field
		}
		rep(field, p.Severity, p.Message)
	}
	if len(ps) > 0 {
		return nil, false
	}
	if f.Kind == KindTable {
		rows := raw.([]any)
		out := make([]any, len(rows))
		ok := true
		for i, row := range rows {
			obj := row.(map[string]any)
			res := map[string]any{}
			for _, sub := range f.Fields {
				sv, present := obj[sub.Name]
				if !sub.Applies(obj, f.Fields) {
					sv, present = nil, false
					sub.Required = false
				}
				val, good := resolveValue(sub, sv, present, fmt.Sprintf("%s[%d].%s", path, i, sub.Name), rc, ref, rep)
				if good {
					res[sub.Name] = val
				}
			}
			for k := range obj {
				if _, known := fieldIn(f.Fields, k); !known {
					rep(fmt.Sprintf("%s[%d].%s", path, i, k), SeverityError, fmt.Sprintf("unknown field %q", k))
					ok = false
				}
			}
			out[i] = res
		}
		return out, ok
	}
	return raw, true
}

func fieldIn(fields []Field, name string) (Field, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// checkValue checks a present, non-nil value against the field's kind and
// bounds. Problems carry a Field suffix for table cells.
func checkValue(f Field, v any, ref func(Field, string) string) []Problem {
	bad := func(format string, args ...any) []Problem {
		return []Problem{{Severity: SeverityError, Message: fmt.Sprintf(format, args...)}}
	}
	bounds := func(x float64, what string) []Problem {
		if f.Min != nil && x < *f.Min {
			return bad("%s %v is below the minimum %v", what, x, *f.Min)
		}
		if f.Max != nil && x > *f.Max {
			return bad("%s %v is above the maximum %v", what, x, *f.Max)
		}
		return nil
	}
	switch f.Kind {
	case KindString, KindSecret:
		if _, ok := v.(string); !ok {
			return bad("must be a string, got %s", jsonKind(v))
		}
	case KindEnum:
		s, ok := v.(string)
		if !ok {
			return bad("must be one of %s, got %s", quoteList(f.Enum), jsonKind(v))
		}
		for _, e := range f.Enum {
			if e == s {
				return nil
			}
		}
		return bad("%q is not one of %s", s, quoteList(f.Enum))
	case KindNumber:
		x, ok := v.(float64)
		if !ok {
			return bad("must be a number, got %s", jsonKind(v))
		}
		return bounds(x, "value")
	case KindInt:
		x, ok := v.(float64)
		if !ok {
			if i, isInt := v.(int); isInt {
				x, ok = float64(i), true
			}
		}
		if !ok {
			return bad("must be an integer, got %s", jsonKind(v))
		}
		if x != math.Trunc(x) {
			return bad("must be an integer, got %v", x)
		}
		return bounds(x, "value")
	case KindBool:
		if _, ok := v.(bool); !ok {
			return bad("must be true or false, got %s", jsonKind(v))
		}
	case KindJSON:
		// any JSON value
	case KindDuration:
		d, err := parseDurationValue(v)
		if err != nil {
			return bad("%s", err.Error())
		}
		if d < 0 {
			return bad("duration must not be negative")
		}
		return bounds(d.Seconds(), "duration (seconds)")
	case KindExpr:
		s, ok := v.(string)
		if !ok {
			return bad("must be an expression string, got %s", jsonKind(v))
		}
		if _, err := CompileExpr(s); err != nil {
			return bad("expression does not compile: %s", err.Error())
		}
	case KindConfigRef:
		s, ok := v.(string)
		if !ok {
			return bad("must be the id of a %s config node, got %s", f.Ref, jsonKind(v))
		}
		if ref != nil {
			if msg := ref(f, s); msg != "" {
				return bad("%s", msg)
			}
		}
	case KindTable:
		rows, ok := v.([]any)
		if !ok {
			return bad("must be an array of objects, got %s", jsonKind(v))
		}
		if ps := bounds(float64(len(rows)), "row count"); ps != nil {
			return ps
		}
		var out []Problem
		for i, row := range rows {
			if _, ok := row.(map[string]any); !ok {
				out = append(out, Problem{Field: fmt.Sprintf("[%d]", i), Severity: SeverityError, Message: fmt.Sprintf("must be an object, got %s", jsonKind(row))})
			}
		}
		return out
	}
	return nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// decodeConfig decodes resolved values into a new config struct, strictly.
func decodeConfig(t *Type, values map[string]any) (any, error) {
	ct := t.New.ConfigType()
	ptr := reflect.New(ct)
	b, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ptr.Interface()); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return ptr.Interface(), nil
}
