// Package msgfield reads and writes the dotted field paths and {{path}}
// templates that connector nodes use to take a device name, a topic or a
// URL from a message or a decoded payload.
package msgfield

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Get reads a dotted path ("meta.device.name") from a JSON object.
func Get(v any, path string) (any, bool) {
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

// Delete removes a dotted path from a JSON object.
func Delete(v any, path string) {
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

// Text turns a value into text for a device name, a topic or a URL: text
// as it is (not empty), numbers of any decoded kind and booleans as
// written.
func Text(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, t != ""
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case int:
		return strconv.Itoa(t), true
	case int64:
		return strconv.FormatInt(t, 10), true
	case uint64:
		return strconv.FormatUint(t, 10), true
	case json.Number:
		return t.String(), true
	case bool:
		return strconv.FormatBool(t), true
	}
	return "", false
}

// Template is text with {{path}} references to message fields.
type Template struct {
	parts []string // literal, path, literal, path, …, literal
}

// ParseTemplate reads s; a `{{` without its `}}` or an empty `{{}}` is an
// error.
func ParseTemplate(s string) (Template, error) {
	var t Template
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

// Static reports whether the template has no references.
func (t Template) Static() bool { return len(t.parts) == 1 }

// Expand fills the references from m. what names the result in errors
// ("topic", "URL"); escape, when set, encodes each value (for a URL,
// url.PathEscape).
func (t Template) Expand(m *engine.Msg, what string, escape func(string) string) (string, error) {
	if t.Static() {
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
		v, ok := Get(root, p)
		if !ok {
			return "", fmt.Errorf("the %s refers to msg.%s, which the message lacks", what, p)
		}
		s, ok := Text(v)
		if !ok {
			return "", fmt.Errorf("msg.%s must be text or a number to go into the %s", p, what)
		}
		if escape != nil {
			s = escape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}
