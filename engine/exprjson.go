package engine

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// maxJSONDepth bounds the nesting toJSON and the size estimates follow.
const maxJSONDepth = 1000

// budgetToJSON is expr's toJSON (indented by two spaces, keys sorted) with
// every byte charged to the evaluation's budget before it is written, so
// deeply nested or repeated values fail instead of building a huge string.
func budgetToJSON(s *evalState, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("toJSON takes 1 argument, got %d", len(args))
	}
	w := &jsonWriter{s: s}
	if err := w.value(reflect.ValueOf(args[0]), 0); err != nil {
		return nil, err
	}
	return w.b.String(), nil
}

type jsonWriter struct {
	s *evalState
	b strings.Builder
}

func (w *jsonWriter) write(p string) error {
	if err := w.s.charge(int64(len(p))); err != nil {
		return err
	}
	w.b.WriteString(p)
	return nil
}

func (w *jsonWriter) newline(depth int) error {
	return w.write("\n" + strings.Repeat("  ", depth))
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func (w *jsonWriter) value(v reflect.Value, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("toJSON: value nested deeper than %d levels", maxJSONDepth)
	}
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return w.write("null")
		}
		if v.Type().Implements(marshalerType) || v.Type().Implements(textMarshalerType) {
			break
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return w.write("null")
	}
	if v.Type().Implements(marshalerType) || v.Type().Implements(textMarshalerType) {
		return w.leaf(v, depth)
	}
	switch v.Kind() {
	case reflect.String:
		// Escaping at most sextuples the text; the string exists already.
		if err := w.s.charge(int64(v.Len()) + 2); err != nil {
			return err
		}
		if str := v.String(); plainJSON(str) {
			w.b.WriteByte('"')
			w.b.WriteString(str)
			w.b.WriteByte('"')
			return nil
		}
		b, err := json.Marshal(v.String())
		if err != nil {
			return err
		}
		w.b.Write(b)
		return nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return w.write("null")
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return w.leaf(v, depth)
		}
		if v.Len() == 0 {
			return w.write("[]")
		}
		if err := w.write("["); err != nil {
			return err
		}
		for i := range v.Len() {
			if i > 0 {
				if err := w.write(","); err != nil {
					return err
				}
			}
			if err := w.newline(depth + 1); err != nil {
				return err
			}
			if err := w.value(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		if err := w.newline(depth); err != nil {
			return err
		}
		return w.write("]")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return w.leaf(v, depth)
		}
		if v.IsNil() {
			return w.write("null")
		}
		if v.Len() == 0 {
			return w.write("{}")
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		if err := w.write("{"); err != nil {
			return err
		}
		for i, k := range keys {
			if i > 0 {
				if err := w.write(","); err != nil {
					return err
				}
			}
			if err := w.newline(depth + 1); err != nil {
				return err
			}
			if err := w.value(reflect.ValueOf(k), depth+1); err != nil {
				return err
			}
			if err := w.write(": "); err != nil {
				return err
			}
			if err := w.value(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())), depth+1); err != nil {
				return err
			}
		}
		if err := w.newline(depth); err != nil {
			return err
		}
		return w.write("}")
	}
	return w.leaf(v, depth)
}

// plainJSON reports whether s needs no escaping in JSON (encoding/json
// also escapes <, > and &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// leaf writes a value encoding/json handles itself (numbers, times,
// structs), after charging an estimate of its size.
func (w *jsonWriter) leaf(v reflect.Value, depth int) error {
	if err := w.s.charge(sizeOf(v.Interface(), w.s.left)); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v.Interface(), strings.Repeat("  ", depth), "  ")
	if err != nil {
		return err
	}
	w.b.Write(b)
	return nil
}
