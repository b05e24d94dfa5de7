package tb

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// slowEncode is the general path: encode, then check and stamp the bytes.
func slowEncode(v any, stamp func() int64) ([]byte, error) {
	b, err := encodeAny(v)
	if err != nil {
		return nil, err
	}
	return checkAndStamp(b, stamp)
}

func counter() func() int64 {
	n := int64(1700000000000)
	return func() int64 { n++; return n }
}

// The direct encoder writes exactly what encoding and then checking
// writes, and refuses exactly what that refuses.
func TestAppendTelemetryMatchesCheckedEncoding(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	vals := map[string]any{"t": 21.0, "h": 40, "s": "x<", "n": json.Number("12345678901234567890"), "o": map[string]any{"a": []any{1.5, true, nil}}}
	cases := map[string]any{
		"flat":                        vals,
		"empty map":                   map[string]any{},
		"nil map":                     map[string]any(nil),
		"ts values":                   map[string]any{"ts": int64(1700000000000), "values": vals},
		"ts values extra key":         map[string]any{"ts": 1700000000000, "values": vals, "x": 1},
		"ts string":                   map[string]any{"ts": "1700000000000", "values": vals},
		"ts only":                     map[string]any{"ts": 1700000000000, "x": 1},
		"values only":                 map[string]any{"values": vals},
		"telemetry":                   Telemetry{Ts: ts, Values: vals},
		"telemetry zero ts":           Telemetry{Values: vals},
		"telemetry nil values":        Telemetry{},
		"telemetry slice":             []Telemetry{{Ts: ts, Values: vals}, {Values: vals}},
		"map slice":                   []map[string]any{vals, {"ts": 5, "values": map[string]any{"a": 1}}},
		"any slice":                   []any{vals, Telemetry{Ts: ts, Values: vals}, map[string]any{"a": 2.5}},
		"uint ts":                     map[string]any{"ts": uint64(5), "values": vals},
		"bad: float ts":               map[string]any{"ts": 1.7e12, "values": vals},
		"bad: huge uint ts":           map[string]any{"ts": uint64(math.MaxUint64), "values": vals},
		"bad: string ts":              map[string]any{"ts": "soon", "values": vals},
		"bad: NaN":                    map[string]any{"f": math.NaN()},
		"bad: func":                   map[string]any{"f": func() {}},
		"bad: empty slice":            []Telemetry{},
		"bad: empty map slice":        []map[string]any{},
		"bad: empty any slice":        []any{},
		"bad: scalar element":         []any{vals, 42},
		"bad: nil element":            []any{nil},
		"bad: NaN in 2nd":             []map[string]any{vals, {"f": math.Inf(1)}},
		"values not map (slow)":       map[string]any{"ts": 1, "values": 5},
		"values raw (slow)":           map[string]any{"ts": 1, "values": json.RawMessage(`{"a":1}`)},
		"struct element (slow)":       []any{struct{ A int }{1}},
		"json.Number ts (slow)":       map[string]any{"ts": json.Number("17"), "values": vals},
		"json.Number ts float (slow)": map[string]any{"ts": json.Number("1.5"), "values": vals},
	}
	for name, v := range cases {
		for _, stamped := range []bool{false, true} {
			var s1, s2 func() int64
			if stamped {
				s1, s2 = counter(), counter()
			}
			want, werr := slowEncode(v, s1)
			got, gerr := encodeTelemetry(v, s2)
			if (werr == nil) != (gerr == nil) || string(got) != string(want) {
				t.Errorf("%s (stamped %v): got %s, %v; want %s, %v", name, stamped, got, gerr, want, werr)
			}
			if gerr != nil && !errors.Is(gerr, ErrInvalidPayload) {
				t.Errorf("%s: error %v does not match ErrInvalidPayload", name, gerr)
			}
			_, handled, _ := appendTelemetry(nil, v, s2)
			if slow := strings.HasSuffix(name, "(slow)"); handled == slow && !strings.HasPrefix(name, "bad:") {
				t.Errorf("%s: handled directly = %v", name, handled)
			}
		}
	}
}

// A pooled buffer is reused only after the payload was copied.
func TestEncodeTelemetryIntoReusesBuffers(t *testing.T) {
	v := []map[string]any{{"a": 1.5}, {"b": 2}}
	b, bp, err := encodeTelemetryInto(v, counter())
	if err != nil || bp == nil {
		t.Fatalf("direct encode: %v, pooled %v", err, bp != nil)
	}
	want := string(b)
	putPayloadBuf(bp, b)
	if raw, bp, err := encodeTelemetryInto(json.RawMessage(`{"a":1}`), nil); err != nil || bp != nil || string(raw) != `{"a":1}` {
		t.Fatalf("raw JSON: %s, pooled %v, %v", raw, bp != nil, err)
	}
	if want == "" || want[0] != '[' {
		t.Fatalf("encoded %q", want)
	}
}

func BenchmarkEncodeTelemetryBatch(b *testing.B) {
	batch := make([]Telemetry, 100)
	for i := range batch {
		batch[i] = Telemetry{Values: map[string]any{"temperature": 21.5 + float64(i), "humidity": 40 + i, "seq": int64(i)}}
	}
	var k clock
	stamp := func() int64 { return k.stamp("") }
	var base time.Duration
	b.Run("encode-then-check", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for range b.N {
			if _, err := slowEncode(batch, stamp); err != nil {
				b.Fatal(err)
			}
		}
		base = time.Since(start) / time.Duration(b.N)
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for range b.N {
			out, bp, err := encodeTelemetryInto(batch, stamp)
			if err != nil {
				b.Fatal(err)
			}
			putPayloadBuf(bp, out)
		}
		per := time.Since(start) / time.Duration(b.N)
		if base > 0 {
			b.ReportMetric(float64(base)/float64(per), "x-faster-than-check")
		}
	})
}
