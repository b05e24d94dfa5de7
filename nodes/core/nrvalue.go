package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// Property paths and typed values as Node-RED's change, trigger, template
// and filter nodes use them: "payload.a[0].b" on msg, flow or global.

// maxPathLen bounds a property path; maxIndex bounds an array index a
// path may create.
const (
	maxPathLen = 1000
	maxIndex   = 10_000
)

// parsePath splits a property path into keys (strings) and indexes (ints):
// `a.b[0]["c d"]` → a, b, 0, "c d". It is linear in the path's length.
func parsePath(p string) ([]any, error) {
	if len(p) > maxPathLen {
		return nil, fmt.Errorf("property path longer than %d characters", maxPathLen)
	}
	var out []any
	i := 0
	start := 0
	flush := func(end int) error {
		if end > start {
			out = append(out, p[start:end])
		} else if end == start && (end == len(p) || p[end] == '.') {
			return fmt.Errorf("empty key in property path %q", p)
		}
		return nil
	}
	for i < len(p) {
		switch p[i] {
		case '.':
			if err := flush(i); err != nil {
				return nil, err
			}
			i++
			start = i
		case '[':
			if i > start {
				out = append(out, p[start:i])
			}
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ in property path %q", p)
			}
			inner := strings.TrimSpace(p[i+1 : i+j])
			if n, err := strconv.Atoi(inner); err == nil {
				out = append(out, n)
			} else if len(inner) >= 2 && (inner[0] == '"' || inner[0] == '\'') && inner[len(inner)-1] == inner[0] {
				out = append(out, inner[1:len(inner)-1])
			} else {
				return nil, fmt.Errorf("bad index %q in property path %q", inner, p)
			}
			i += j + 1
			if i < len(p) && p[i] == '.' {
				i++
			}
			start = i
		default:
			i++
		}
	}
	if start < len(p) {
		out = append(out, p[start:])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty property path")
	}
	return out, nil
}

// getPath reads path below root.
func getPath(root any, path []any) (any, bool) {
	cur := root
	for _, k := range path {
		switch c := cur.(type) {
		case map[string]any:
			s, ok := k.(string)
			if !ok {
				s = strconv.Itoa(k.(int))
			}
			v, ok := c[s]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			idx, ok := k.(int)
			if !ok || idx < 0 || idx >= len(c) {
				return nil, false
			}
			cur = c[idx]
		default:
			return nil, false
		}
	}
	return cur, true
}

// setPath sets path below root (a map), creating objects (or arrays, for
// an index) on the way, and returns the new root.
func setPath(root any, path []any, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	switch c := root.(type) {
	case map[string]any:
		s, ok := path[0].(string)
		if !ok {
			s = strconv.Itoa(path[0].(int))
		}
		nv, err := setPath(c[s], path[1:], v)
		if err != nil {
			return nil, err
		}
		c[s] = nv
		return c, nil
	case []any:
		idx, ok := path[0].(int)
		if !ok || idx < 0 || idx > maxIndex {
			return nil, fmt.Errorf("cannot set %v on an array", path[0])
		}
		for len(c) <= idx {
			c = append(c, nil)
		}
		nv, err := setPath(c[idx], path[1:], v)
		if err != nil {
			return nil, err
		}
		c[idx] = nv
		return c, nil
	case nil:
		if _, isIdx := path[0].(int); isIdx {
			return setPath([]any{}, path, v)
		}
		return setPath(map[string]any{}, path, v)
	}
	return nil, fmt.Errorf("cannot set property %v of a %T", path[0], root)
}

// deletePath removes path below root.
func deletePath(root any, path []any) {
	if len(path) == 0 {
		return
	}
	parent, ok := getPath(root, path[:len(path)-1])
	if !ok {
		return
	}
	switch c := parent.(type) {
	case map[string]any:
		if s, ok := path[len(path)-1].(string); ok {
			delete(c, s)
		}
	case []any:
		if i, ok := path[len(path)-1].(int); ok && i >= 0 && i < len(c) {
			c[i] = nil
		}
	}
}

// Msg properties.

func msgGet(m *engine.Msg, path []any) (any, bool) {
	k, _ := path[0].(string)
	v, ok := m.Get(k)
	if !ok || len(path) == 1 {
		return v, ok
	}
	return getPath(v, path[1:])
}

func msgSet(m *engine.Msg, path []any, v any) error {
	k, ok := path[0].(string)
	if !ok {
		return errors.New("a message property path starts with a name")
	}
	if len(path) == 1 {
		m.Set(k, v)
		return nil
	}
	cur, _ := m.Get(k)
	nv, err := setPath(cur, path[1:], v)
	if err != nil {
		return err
	}
	m.Set(k, nv)
	return nil
}

func msgDelete(m *engine.Msg, path []any) {
	k, _ := path[0].(string)
	if len(path) == 1 {
		m.Delete(k)
		return
	}
	cur, _ := m.Get(k)
	deletePath(cur, path[1:])
}

// Context properties: the first key names the stored value.

func ctxGet(s *engine.ContextStore, path []any) (any, bool) {
	k := fmt.Sprint(path[0])
	v, ok := s.Get(k)
	if !ok || len(path) == 1 {
		return engine.CloneValue(v), ok
	}
	v, ok = getPath(v, path[1:])
	return engine.CloneValue(v), ok
}

func ctxSet(s *engine.ContextStore, path []any, v any) error {
	k := fmt.Sprint(path[0])
	if len(path) == 1 {
		s.Set(k, v)
		return nil
	}
	cur, _ := s.Get(k)
	nv, err := setPath(engine.CloneValue(cur), path[1:], v)
	if err != nil {
		return err
	}
	s.Set(k, nv)
	return nil
}

func ctxDelete(s *engine.ContextStore, path []any) {
	k := fmt.Sprint(path[0])
	if len(path) == 1 {
		s.Set(k, nil)
		return
	}
	cur, _ := s.Get(k)
	cur = engine.CloneValue(cur)
	deletePath(cur, path[1:])
	s.Set(k, cur)
}

// prop is a property on msg, flow or global.
type prop struct {
	scope string // msg, flow, global
	path  []any
}

func newProp(scope, p string) (prop, error) {
	path, err := parsePath(p)
	if err != nil {
		return prop{}, err
	}
	switch scope {
	case "", "msg":
		scope = "msg"
	case "flow", "global":
	default:
		return prop{}, fmt.Errorf("property type %q is not msg, flow or global", scope)
	}
	return prop{scope: scope, path: path}, nil
}

func (p prop) get(nc *engine.NodeContext, m *engine.Msg) (any, bool) {
	if p.scope == "msg" {
		return msgGet(m, p.path)
	}
	return ctxGet(nc.Context(p.scope), p.path)
}

func (p prop) set(nc *engine.NodeContext, m *engine.Msg, v any) error {
	if p.scope == "msg" {
		return msgSet(m, p.path, v)
	}
	return ctxSet(nc.Context(p.scope), p.path, engine.CloneValue(v))
}

func (p prop) del(nc *engine.NodeContext, m *engine.Msg) {
	if p.scope == "msg" {
		msgDelete(m, p.path)
		return
	}
	ctxDelete(nc.Context(p.scope), p.path)
}

// typedValue is a value of one of Node-RED's value types, prepared once:
// str, num, bool, json, date, env, msg, flow, global, and expr (tbflow's
// expression, which JSONata values are converted to).
type typedValue struct {
	typ   string
	value any  // str, num, bool, json: the constant
	prop  prop // msg, flow, global
	env   string
	expr  *engine.Expr
	raw   string
}

// valueTypes are the value types typedValue understands.
var valueTypes = []string{"str", "num", "bool", "json", "date", "env", "msg", "flow", "global", "expr"}

func newTypedValue(typ, raw string) (*typedValue, error) {
	tv := &typedValue{typ: typ, raw: raw}
	switch typ {
	case "str", "":
		tv.typ, tv.value = "str", raw
	case "num":
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", raw)
		}
		tv.value = f
	case "bool":
		tv.value = strings.TrimSpace(raw) == "true"
	case "json":
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("invalid JSON %q: %v", raw, err)
		}
		tv.value = v
	case "date":
	case "env":
		tv.env = raw
	case "msg", "flow", "global":
		p, err := newProp(typ, raw)
		if err != nil {
			return nil, err
		}
		tv.prop = p
	case "expr":
		e, err := engine.CompileExpr(raw)
		if err != nil {
			return nil, err
		}
		tv.expr = e
	case "jsonata":
		return nil, fmt.Errorf("JSONata expression %q was not converted (tbflow has no JSONata); rewrite it as an expr expression and set the type to expr", raw)
	default:
		return nil, fmt.Errorf("value type %q is not supported", typ)
	}
	return tv, nil
}

// eval returns the value for message m.
func (tv *typedValue) eval(nc *engine.NodeContext, m *engine.Msg) (any, error) {
	switch tv.typ {
	case "str", "num", "bool", "json":
		return engine.CloneValue(tv.value), nil
	case "date":
		return float64(time.Now().UnixMilli()), nil
	case "env":
		v, _ := nc.LookupEnv(tv.env)
		return v, nil
	case "msg", "flow", "global":
		v, _ := tv.prop.get(nc, m)
		return engine.CloneValue(v), nil
	case "expr":
		return tv.expr.Eval(m)
	}
	return nil, fmt.Errorf("value type %q is not supported", tv.typ)
}
