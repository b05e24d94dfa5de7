package engine

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Applies reports whether the field applies to a node (or table row) whose
// values are values: true without a ShowIf, otherwise when every named
// sibling has one of the listed values. A sibling that is absent counts as
// its default (looked up in siblings).
func (f Field) Applies(values map[string]any, siblings []Field) bool {
	for name, allowed := range f.ShowIf {
		v, ok := values[name]
		if !ok || v == nil {
			if s, found := fieldIn(siblings, name); found {
				v = s.Default
			}
		}
		if !containsValue(allowed, v) {
			return false
		}
	}
	return true
}

func containsValue(list []any, v any) bool {
	key := showIfKey(v)
	for _, a := range list {
		if showIfKey(a) == key {
			return true
		}
	}
	return false
}

// showIfKey compares values as JSON, so 1 and 1.0 (and an int in a spec
// and a float64 from a flow file) are equal.
func showIfKey(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// ShowIfText says in words when a field applies ("transport is rtu"), or
// "" without a ShowIf.
func (f Field) ShowIfText() string {
	if len(f.ShowIf) == 0 {
		return ""
	}
	names := make([]string, 0, len(f.ShowIf))
	for k := range f.ShowIf {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		vals := make([]string, 0, len(f.ShowIf[k]))
		for _, v := range f.ShowIf[k] {
			if s, ok := v.(string); ok {
				vals = append(vals, s)
			} else {
				vals = append(vals, showIfKey(v))
			}
		}
		verb := " is "
		if len(vals) > 1 {
			verb = " is one of "
		}
		parts = append(parts, "`"+k+"`"+verb+strings.Join(vals, ", "))
	}
	return strings.Join(parts, " and ")
}

// checkShowIf reports a ShowIf that names no sibling field, or a value
// that an enum sibling cannot take.
func checkShowIf(fields []Field, prefix string) []error {
	var errs []error
	for _, f := range fields {
		for name, vals := range f.ShowIf {
			s, ok := fieldIn(fields, name)
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("field %q: showIf names no sibling field %q", prefix+f.Name, name))
			case name == f.Name:
				errs = append(errs, fmt.Errorf("field %q: showIf names the field itself", prefix+f.Name))
			case len(vals) == 0:
				errs = append(errs, fmt.Errorf("field %q: showIf %q lists no values", prefix+f.Name, name))
			case s.Kind == KindEnum:
				for _, v := range vals {
					if str, isStr := v.(string); !isStr || !containsString(s.Enum, str) {
						errs = append(errs, fmt.Errorf("field %q: showIf %q value %v is not one of its values", prefix+f.Name, name, v))
					}
				}
			}
		}
	}
	return errs
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
