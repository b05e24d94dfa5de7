package tb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// UnmarshalExact decodes JSON into v like encoding/json, except that
// numbers are never rounded through float64: an integer that fits int64
// becomes an int64, one that fits uint64 a uint64, a larger integer stays
// a json.Number holding its exact text, and any other number becomes a
// float64. ThingsBoard stores integers as 64-bit longs, so a value such
// as 12345678901234567890 reaches a register write exactly.
func UnmarshalExact(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("invalid JSON: data after the value")
	}
	*v = exactNumbers(x)
	return nil
}

// decodeObject decodes a JSON object with exact numbers.
func decodeObject(b []byte) (map[string]any, error) {
	var v any
	if err := UnmarshalExact(b, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// exactNumbers replaces the json.Numbers in a decoded value (in place for
// maps and slices).
func exactNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		return exactNumber(t)
	case map[string]any:
		for k, e := range t {
			t[k] = exactNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = exactNumbers(e)
		}
	}
	return v
}

func exactNumber(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u
		}
		return n // beyond 64 bits: keep the exact text
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n
}
