package http

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// fieldPath reads a dotted path ("meta.device.name") from a JSON object.
func fieldPath(v any, path string) (any, bool) {
	for p := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// deleteFieldPath removes a dotted path from a JSON object.
func deleteFieldPath(v any, path string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		v = obj[p]
	}
	if obj, ok := v.(map[string]any); ok {
		delete(obj, parts[len(parts)-1])
	}
}

// nameOf turns a value into text for a device name or a URL.
func nameOf(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, t != ""
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case int:
		return strconv.Itoa(t), true
	case int64:
		return strconv.FormatInt(t, 10), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// template is text with {{path}} references to message fields.
type template struct {
	parts []string // literal, path, literal, path, …, literal
}

func parseTemplate(s string) (template, error) {
	var t template
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			t.parts = append(t.parts, s)
			return t, nil
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return t, errors.New("`{{` without a closing `}}`")
		}
		path := strings.TrimSpace(s[i+2 : i+j])
		if path == "" {
			return t, errors.New("empty `{{}}`")
		}
		t.parts = append(t.parts, s[:i], path)
		s = s[i+j+2:]
	}
}

// static reports whether the template has no references.
func (t template) static() bool { return len(t.parts) == 1 }

// expand fills the references from m; escape encodes each value (for a
// URL, url.PathEscape).
func (t template) expand(m *engine.Msg, escape func(string) string) (string, error) {
	if t.static() {
		return t.parts[0], nil
	}
	var b strings.Builder
	var root map[string]any
	if m != nil {
		root = m.Map()
	}
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, ok := fieldPath(root, p)
		if !ok {
			return "", fmt.Errorf("the URL refers to msg.%s, which the message lacks", p)
		}
		s, ok := nameOf(v)
		if !ok {
			return "", fmt.Errorf("msg.%s must be text or a number to go into the URL", p)
		}
		b.WriteString(escape(s))
	}
	return b.String(), nil
}
