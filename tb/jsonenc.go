package tb

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// appendJSON appends v as JSON, like encoding/json except that a float
// whose value is integral keeps a decimal point (21.0, not 21):
// ThingsBoard stores 21 as a long and 21.0 as a double, so a key written
// from float values would otherwise flip between the two types. Maps,
// slices and the common scalars are written without reflection; anything
// else goes through encoding/json.
func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > 1000 {
		return nil, fmt.Errorf("%w: value nested too deeply", ErrInvalidPayload)
	}
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case float64:
		return appendFloat(b, t, 64)
	case float32:
		return appendFloat(b, float64(t), 32)
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(t), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(t), 10), nil
	case uint64:
		return strconv.AppendUint(b, t, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(t), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(t), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(t), 10), nil
	case json.Number:
		if !json.Valid([]byte(t)) || t == "" {
			return nil, fmt.Errorf("%w: invalid number %q", ErrInvalidPayload, string(t))
		}
		return append(b, t...), nil
	case json.RawMessage:
		if !json.Valid(t) {
			return nil, fmt.Errorf("%w: invalid raw JSON", ErrInvalidPayload)
		}
		return append(b, t...), nil
	case map[string]any:
		var small [16]string // most records have a few keys: no allocation
		keys := small[:0]
		if len(t) > len(small) {
			keys = make([]string, 0, len(t))
		}
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, t[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []float64:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendFloat(b, e, 64); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case Telemetry:
		return t.appendJSON(b, depth)
	case []Telemetry:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = e.appendJSON(b, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []map[string]any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return append(b, enc...), nil
}

// appendFloat writes f as encoding/json does, adding ".0" to an integral
// value so that it stays a double.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%w: unsupported number %v", ErrInvalidPayload, f)
	}
	start := len(b)
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
		return b, nil
	}
	for _, c := range b[start:] {
		if c == '.' {
			return b, nil
		}
	}
	return append(b, ".0"...), nil
}

// appendString writes s as a JSON string (HTML-safe escaping, as
// encoding/json; invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (t Telemetry) appendJSON(b []byte, depth int) ([]byte, error) {
	if t.Ts.IsZero() {
		if t.Values == nil {
			return append(b, "{}"...), nil
		}
		return appendJSON(b, t.Values, depth+1)
	}
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, t.Ts.UnixMilli(), 10)
	b = append(b, `,"values":`...)
	if t.Values == nil {
		return append(b, "{}}"...), nil
	}
	b, err := appendJSON(b, t.Values, depth+1)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// marshalJSON is appendJSON into a new buffer.
func marshalJSON(v any) ([]byte, error) { return appendJSON(nil, v, 0) }

// clock stamps records that carry no timestamp with the time they were
// accepted, strictly increasing per device: the outbox may send them much
// later (after an outage or a restart), and ThingsBoard keeps one value
// per key and millisecond, so two records stamped alike would overwrite.
type clock struct {
	mu   sync.Mutex
	last map[string]int64
}

// stamp returns the next timestamp (ms) for device ("" = the device
// itself).
func (k *clock) stamp(device string) int64 {
	now := time.Now().UnixMilli()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil {
		k.last = map[string]int64{}
	}
	if l := k.last[device]; now <= l {
		now = l + 1
	}
	if len(k.last) > 100000 {
		clear(k.last)
	}
	k.last[device] = now
	return now
}

// checkAndStamp checks an encoded telemetry payload as ThingsBoard's
// JsonConverter would, and, when stamp is not nil, gives every record
// without a timestamp one: a flat object becomes {"ts", "values"}.
func checkAndStamp(b []byte, stamp func() int64) ([]byte, error) {
	switch firstByte(b) {
	case '{':
		out, _, err := stampRecord(b, stamp)
		return out, err
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
		}
		if len(elems) == 0 {
			// ThingsBoard parses [] but never acknowledges it.
			return nil, fmt.Errorf("%w: empty telemetry array", ErrInvalidPayload)
		}
		changed := false
		for i, e := range elems {
			if firstByte(e) != '{' {
				return nil, fmt.Errorf("%w: telemetry array element %d is not an object", ErrInvalidPayload, i)
			}
			out, ch, err := stampRecord(e, stamp)
			if err != nil {
				return nil, fmt.Errorf("telemetry array element %d: %w", i, err)
			}
			elems[i], changed = out, changed || ch
		}
		if !changed {
			return b, nil
		}
		out := make([]byte, 0, len(b)+len(elems)*32)
		out = append(out, '[')
		for i, e := range elems {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, e...)
		}
		return append(out, ']'), nil
	}
	return nil, fmt.Errorf("%w: telemetry must be a JSON object or an array of objects", ErrInvalidPayload)
}

// stampRecord checks one record object and stamps it when it has no ts.
func stampRecord(b []byte, stamp func() int64) ([]byte, bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	ts, hasTs := m["ts"]
	vals, hasVals := m["values"]
	if hasTs && hasVals {
		// ThingsBoard's {ts, values} form: ts a number (or numeric
		// string), values an object.
		if firstByte(vals) != '{' {
			return nil, false, fmt.Errorf("%w: \"values\" must be a JSON object", ErrInvalidPayload)
		}
		var n json.Number
		if err := json.Unmarshal(ts, &n); err != nil {
			var str string
			if json.Unmarshal(ts, &str) != nil || !isDecimal(str) {
				return nil, false, fmt.Errorf("%w: \"ts\" must be a number of milliseconds", ErrInvalidPayload)
			}
		} else if _, err := n.Int64(); err != nil {
			return nil, false, fmt.Errorf("%w: \"ts\" must be an integer number of milliseconds", ErrInvalidPayload)
		}
		return b, false, nil
	}
	if stamp == nil {
		return b, false, nil
	}
	out := make([]byte, 0, len(b)+32)
	out = append(out, `{"ts":`...)
	out = strconv.AppendInt(out, stamp(), 10)
	out = append(out, `,"values":`...)
	out = append(out, b...)
	return append(out, '}'), true, nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if (c < '0' || c > '9') && !(i == 0 && c == '-') {
			return false
		}
	}
	return s != "-"
}
