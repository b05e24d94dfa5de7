package tbsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// payloadError is a publish payload ThingsBoard cannot use. Its kind decides
// the reaction (§1.6): a format error (TB's AdaptorException) closes an MQTT
// 3.1.1 connection and answers PUBACK 0x99 on MQTT 5; a runtime error (an
// exception escaping the adaptor) closes the connection in both versions
// (MQTT 5: DISCONNECT 0x8B first).
type payloadError struct {
	runtime bool
	msg     string
}

func (e *payloadError) Error() string { return e.msg }

func malformed(format string, a ...any) error {
	return &payloadError{msg: fmt.Sprintf(format, a...)}
}

func runtimeFailure(format string, a ...any) error {
	return &payloadError{runtime: true, msg: fmt.Sprintf(format, a...)}
}

func isRuntime(err error) bool {
	var pe *payloadError
	return errors.As(err, &pe) && pe.runtime
}

// kv is one typed key/value pair. Value is bool, int64, float64, string or
// json.RawMessage (a JSON object or array, compact).
type kv struct {
	Key   string
	Value any
}

// tsRecord is one telemetry record; Ts is 0 with HasTs false when the
// server assigns the time.
type tsRecord struct {
	Ts    int64
	HasTs bool
	KV    []kv
}

// member is one member of a JSON object, in document order.
type member struct {
	key string
	raw json.RawMessage
}

// maxPlainDigits bounds the text ThingsBoard would produce for numbers such
// as 1e999999; beyond it tbsim rejects the payload instead of allocating.
const maxPlainDigits = 4096

// parseJSON checks payload is one strict JSON document and returns it trimmed.
func parseJSON(payload []byte) (json.RawMessage, error) {
	t := bytes.TrimSpace(payload)
	if len(t) == 0 {
		return nil, malformed("empty payload")
	}
	if !json.Valid(t) {
		return nil, malformed("invalid json")
	}
	return t, nil
}

// objectMembers returns the members of a JSON object in document order; a
// repeated key keeps its first position and its last value (as Gson does).
func objectMembers(raw json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed("invalid json: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, malformed("not a json object")
	}
	var out []member
	index := map[string]int{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, malformed("invalid json: %v", err)
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, malformed("invalid json: %v", err)
		}
		if i, ok := index[key]; ok {
			out[i].raw = v
			continue
		}
		index[key] = len(out)
		out = append(out, member{key: key, raw: v})
	}
	return out, nil
}

func arrayElements(raw json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, malformed("invalid json array: %v", err)
	}
	return out, nil
}

func kind(raw json.RawMessage) byte {
	if len(raw) == 0 {
		return 0
	}
	switch c := raw[0]; c {
	case '{', '[', '"', 't', 'f', 'n':
		return c
	default:
		return '0'
	}
}

func findMember(ms []member, key string) (json.RawMessage, bool) {
	for _, m := range ms {
		if m.key == key {
			return m.raw, true
		}
	}
	return nil, false
}

// parseTelemetry parses a telemetry payload (§2.2): a flat object, an object
// with both "ts" and "values", or an array of those.
func parseTelemetry(payload []byte) ([]tsRecord, error) {
	raw, err := parseJSON(payload)
	if err != nil {
		return nil, err
	}
	switch kind(raw) {
	case '{':
		r, err := parseTelemetryObject(raw)
		if err != nil {
			return nil, err
		}
		return []tsRecord{r}, nil
	case '[':
		elems, err := arrayElements(raw)
		if err != nil {
			return nil, err
		}
		out := make([]tsRecord, 0, len(elems))
		for _, e := range elems {
			if kind(e) != '{' {
				return nil, malformed("can't parse value: %s", e)
			}
			r, err := parseTelemetryObject(e)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	default:
		return nil, malformed("can't parse value: %s", raw)
	}
}

func parseTelemetryObject(raw json.RawMessage) (tsRecord, error) {
	ms, err := objectMembers(raw)
	if err != nil {
		return tsRecord{}, err
	}
	return parseTelemetryMembers(ms)
}

// parseTelemetryMembers is parseTelemetryObject for an object's members.
func parseTelemetryMembers(ms []member) (tsRecord, error) {
	tsRaw, hasTs := findMember(ms, "ts")
	valuesRaw, hasValues := findMember(ms, "values")
	if !hasTs || !hasValues {
		kvs, err := typeMembers(ms)
		return tsRecord{KV: kvs}, err
	}
	ts, err := gsonLong(tsRaw)
	if err != nil {
		return tsRecord{}, err
	}
	if kind(valuesRaw) != '{' {
		return tsRecord{}, malformed("values is not a json object")
	}
	vms, err := objectMembers(valuesRaw)
	if err != nil {
		return tsRecord{}, err
	}
	kvs, err := typeMembers(vms)
	return tsRecord{Ts: ts, HasTs: true, KV: kvs}, err
}

// gsonLong mirrors Gson's JsonElement.getAsLong: numbers are truncated,
// strings must be a Java long, anything else throws (a runtime error).
func gsonLong(raw json.RawMessage) (int64, error) {
	switch kind(raw) {
	case '0':
		s := string(raw)
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, nil
		}
		unscaled, scale, err := parseDecimal(s)
		if err != nil {
			return 0, err
		}
		// BigDecimal.longValue: truncate, keep the low 64 bits.
		v := new(big.Int).Set(unscaled)
		if scale > 0 {
			v.Quo(v, pow10(scale))
		} else if scale < 0 {
			v.Mul(v, pow10(-scale))
		}
		mask := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
		return int64(new(big.Int).And(v, mask).Uint64()), nil
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		v, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
		if err != nil || s == "" || strings.HasPrefix(s, "+-") {
			return 0, runtimeFailure("ts %q is not a long", s)
		}
		return v, nil
	default:
		return 0, runtimeFailure("ts %s is not a long", raw)
	}
}

// parseAttributes parses a client-attributes payload (§2.3): a JSON object.
func parseAttributes(payload []byte) ([]kv, error) {
	raw, err := parseJSON(payload)
	if err != nil {
		return nil, err
	}
	if kind(raw) != '{' {
		return nil, malformed("can't parse value: %s", raw)
	}
	ms, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	return typeMembers(ms)
}

// typeMembers types every member by §2.2; nulls are skipped.
func typeMembers(ms []member) ([]kv, error) {
	out := make([]kv, 0, len(ms))
	for _, m := range ms {
		v, skip, err := typeValue(m.raw)
		if err != nil {
			return nil, err
		}
		if !skip {
			out = append(out, kv{Key: m.key, Value: v})
		}
	}
	return out, nil
}

// typeValue types one JSON value as ThingsBoard's JsonConverter does.
func typeValue(raw json.RawMessage) (v any, skip bool, err error) {
	switch kind(raw) {
	case 'n':
		return nil, true, nil
	case 't':
		return true, false, nil
	case 'f':
		return false, false, nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, false, malformed("invalid json: %v", err)
		}
		return json.RawMessage(buf.Bytes()), false, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false, malformed("invalid json string: %v", err)
		}
		if isParsable(s) {
			if n, err := typeNumber(s); err == nil {
				return n, false, nil
			}
		}
		return s, false, nil
	default:
		n, err := typeNumber(string(raw))
		return n, false, err
	}
}

// isParsable is commons-lang3 NumberUtils.isParsable restricted to ASCII
// digits: an optional leading '-', digits and at most one '.', not ending
// with '.'.
func isParsable(s string) bool {
	if s == "" || s[len(s)-1] == '.' {
		return false
	}
	i := 0
	if s[0] == '-' {
		if len(s) == 1 {
			return false
		}
		i = 1
	}
	dots := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			dots++
			if dots > 1 {
				return false
			}
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseDecimal parses a decimal number text like java.math.BigDecimal does:
// value = unscaled × 10^-scale.
func parseDecimal(s string) (*big.Int, int64, error) {
	t := s
	neg := false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg = t[0] == '-'
		t = t[1:]
	}
	var exp int64
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.ParseInt(t[i+1:], 10, 64)
		if err != nil || e > maxPlainDigits || e < -maxPlainDigits {
			return nil, 0, malformed("number %q out of range", s)
		}
		exp = e
		t = t[:i]
	}
	intPart, frac, _ := strings.Cut(t, ".")
	digits := intPart + frac
	if digits == "" {
		return nil, 0, malformed("number %q has no digits", s)
	}
	u, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, 0, malformed("invalid number %q", s)
	}
	if neg {
		u.Neg(u)
	}
	return u, int64(len(frac)) - exp, nil
}

func pow10(n int64) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(n), nil)
}

// typeNumber applies JsonConverter's numeric rule: an integral value whose
// text is not a "simple double" is a long (or, beyond 64 bits, a string of
// its plain digits); otherwise a double, unless the scale exceeds 16, when
// it is kept as the plain decimal string.
func typeNumber(text string) (any, error) {
	unscaled, scale, err := parseDecimal(text)
	if err != nil {
		return nil, err
	}
	su, sscale := new(big.Int).Set(unscaled), scale
	if su.Sign() == 0 {
		sscale = 0
	} else {
		ten, m := big.NewInt(10), new(big.Int)
		for {
			q, r := new(big.Int).QuoRem(su, ten, m)
			if r.Sign() != 0 {
				break
			}
			su, sscale = q, sscale-1
		}
	}
	simpleDouble := strings.Contains(text, ".") && !strings.ContainsAny(text, "eE")
	if sscale <= 0 && !simpleDouble {
		v := new(big.Int).Mul(su, pow10(-sscale))
		if v.IsInt64() {
			return v.Int64(), nil
		}
		return v.String(), nil
	}
	if scale <= 16 {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, malformed("invalid number %q", text)
		}
		if f == 0 {
			f = 0 // BigDecimal has no negative zero
		}
		return f, nil
	}
	return plainString(unscaled, scale), nil
}

// plainString is BigDecimal.toPlainString for a positive scale.
func plainString(unscaled *big.Int, scale int64) string {
	neg := unscaled.Sign() < 0
	d := new(big.Int).Abs(unscaled).String()
	if int64(len(d)) <= scale {
		d = strings.Repeat("0", int(scale)-len(d)+1) + d
	}
	p := int64(len(d)) - scale
	s := d[:p] + "." + d[p:]
	if neg {
		s = "-" + s
	}
	return s
}

// javaDouble formats f as Java's Double.toString, which is how ThingsBoard
// writes doubles into JSON it sends (1.0E10, 42.0, 1.5E-5).
func javaDouble(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	a := math.Abs(f)
	if a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// jsonValue encodes a stored value as ThingsBoard writes it in downlinks.
func jsonValue(v any) []byte {
	switch x := v.(type) {
	case bool:
		return strconv.AppendBool(nil, x)
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case float64:
		return []byte(javaDouble(x))
	case string:
		b, _ := json.Marshal(x)
		return b
	case json.RawMessage:
		return x
	default:
		b, _ := json.Marshal(x)
		return b
	}
}

// jsonObject encodes a map of stored values with sorted keys.
func jsonObject(m map[string]any) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(jsonValue(m[k]))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// normalizeValue converts a Go value given to the Go API into a stored value
// (bool, int64, float64, string or json.RawMessage).
func normalizeValue(v any) (any, bool, error) {
	switch x := v.(type) {
	case nil:
		return nil, true, nil
	case bool, int64, float64, string:
		return x, false, nil
	case int:
		return int64(x), false, nil
	case int8:
		return int64(x), false, nil
	case int16:
		return int64(x), false, nil
	case int32:
		return int64(x), false, nil
	case uint8:
		return int64(x), false, nil
	case uint16:
		return int64(x), false, nil
	case uint32:
		return int64(x), false, nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return strconv.FormatUint(uint64(x), 10), false, nil
		}
		return int64(x), false, nil
	case uint64:
		if x > math.MaxInt64 {
			return strconv.FormatUint(x, 10), false, nil
		}
		return int64(x), false, nil
	case float32:
		return float64(x), false, nil
	case json.Number:
		return typeValue(json.RawMessage(x))
	case json.RawMessage:
		t, err := parseJSON(x)
		if err != nil {
			return nil, false, err
		}
		return typeValue(t)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, false, fmt.Errorf("encoding value: %w", err)
		}
		return typeValue(b)
	}
}
