package tbsim

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestValueTyping(t *testing.T) {
	cases := []struct {
		in   string
		want any
	}{
		{`true`, true},
		{`false`, false},
		{`42`, int64(42)},
		{`-7`, int64(-7)},
		{`42.0`, 42.0},
		{`1e3`, int64(1000)},
		{`1.5e3`, int64(1500)}, // not a "simple double": has an exponent
		{`1E2`, int64(100)},
		{`1e-3`, 0.001},
		{`0.1`, 0.1},
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`9223372036854775808`, "9223372036854775808"},
		{`-9223372036854775809`, "-9223372036854775809"},
		{`1e30`, "1000000000000000000000000000000"},
		{`0.12345678901234567`, "0.12345678901234567"}, // scale 17 > 16
		{`0.1234567890123456`, 0.1234567890123456},
		{`1e-20`, "0.00000000000000000001"},
		{`"42"`, int64(42)},
		{`"-7"`, int64(-7)},
		{`"3.14"`, 3.14},
		{`"007"`, int64(7)},
		{`".5"`, 0.5},
		{`"5."`, "5."},
		{`"1e3"`, "1e3"},
		{`"+5"`, "+5"},
		{`"-"`, "-"},
		{`"abc"`, "abc"},
		{`""`, ""},
		{`"99999999999999999999"`, "99999999999999999999"},
		{`{"a": [1, 2]}`, json.RawMessage(`{"a":[1,2]}`)},
		{`[1,"x"]`, json.RawMessage(`[1,"x"]`)},
	}
	for _, tc := range cases {
		v, skip, err := typeValue(json.RawMessage(tc.in))
		if err != nil || skip {
			t.Errorf("%s: err %v skip %v", tc.in, err, skip)
			continue
		}
		if !reflect.DeepEqual(v, tc.want) {
			t.Errorf("%s: got %#v (%T), want %#v (%T)", tc.in, v, v, tc.want, tc.want)
		}
	}
	if _, skip, _ := typeValue(json.RawMessage(`null`)); !skip {
		t.Error("null not skipped")
	}
}

func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{
		21.5: "21.5", 21: "21.0", 1e10: "1.0E10", 1.5e-5: "1.5E-5", 0.001: "0.001",
		9999999: "9999999.0", 1e7: "1.0E7", -2.5: "-2.5", 0: "0.0",
	} {
		if got := javaDouble(f); got != want {
			t.Errorf("javaDouble(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestParseTelemetryForms(t *testing.T) {
	recs, err := parseTelemetry([]byte(`[{"a":1},{"ts":"123","values":{"b":"x"}},{"ts":5}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].HasTs || recs[1].Ts != 123 || !recs[1].HasTs {
		t.Fatalf("%+v", recs)
	}
	// ts without values is a flat object: ts becomes a key
	if recs[2].HasTs || recs[2].KV[0].Key != "ts" || recs[2].KV[0].Value != int64(5) {
		t.Fatalf("%+v", recs[2])
	}
	recs, err = parseTelemetry([]byte(`{"ts":1.9e0,"values":{},"other":1}`))
	if err != nil || recs[0].Ts != 1 || len(recs[0].KV) != 0 {
		t.Fatalf("%+v %v", recs, err)
	}
	for _, bad := range []string{``, `x`, `42`, `"s"`, `null`, `[1]`, `[{"a":1},2]`, `{"ts":1,"values":[1]}`, `{"a":1}x`, `{"a":1e99999}`} {
		if _, err := parseTelemetry([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if isRuntime(err) {
			t.Errorf("%q: runtime error, want format error", bad)
		}
	}
	for _, rt := range []string{`{"ts":true,"values":{}}`, `{"ts":"1.5","values":{}}`, `{"ts":null,"values":{}}`} {
		if _, err := parseTelemetry([]byte(rt)); !isRuntime(err) {
			t.Errorf("%q: err %v, want runtime error", rt, err)
		}
	}
	if _, err := parseAttributes([]byte(`[{"a":1}]`)); err == nil {
		t.Error("attribute array accepted")
	}
}

func TestJavaSplitComma(t *testing.T) {
	for in, want := range map[string][]string{
		"a,b": {"a", "b"}, "a, b": {"a", " b"}, "a,b,": {"a", "b"}, ",a": {"", "a"}, "": {""}, ",": {}, "a": {"a"},
	} {
		if got := javaSplitComma(in); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("split %q = %q, want %q", in, got, want)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `[{"a":1},{"ts":1,"values":{"b":"2"}}]`, `{"ts":"5","values":{"x":1e3}}`, `[]`, `{}`,
		`{"a":"1.5","b":null,"c":{"d":[1]}}`, `{"a":99999999999999999999999}`, `{"a":1e-30}`, `x`, `{"ts":1e400,"values":{}}`,
		// Gateway payloads.
		`{"device":"Dev A","type":"t"}`, `{"device":["x"],"type":null}`,
		`{"Dev A":[{"ts":1,"values":{"t":1}},{"h":2,"metadata":{"connector":"c"}}],"B":{"x":1}}`,
		`{"id":"7","device":"Dev A","client":"TRUE","keys":["a","a","b"]}`, `{"id":1.9,"device":"d","client":[true],"key":"k"}`,
		`{"device":"Dev A","id":0,"data":{"ok":[1, 2]}}`, `{"Dev A":{"secretKey":"s","durationMs":"60000"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := parseTelemetry(b)
		if err == nil {
			for _, r := range recs {
				for _, e := range r.KV {
					switch e.Value.(type) {
					case bool, int64, float64, string, json.RawMessage:
					default:
						t.Fatalf("value %#v of type %T", e.Value, e.Value)
					}
					_ = jsonValue(e.Value)
				}
			}
		}
		fuzzGatewayParsers(t, b)
		if kvs, err := parseAttributes(b); err == nil {
			m := map[string]any{}
			for _, e := range kvs {
				m[e.Key] = e.Value
			}
			if out := jsonObject(m); !json.Valid(out) && !hasNonFinite(m) {
				t.Fatalf("invalid json %s", out)
			}
		}
	})
}

func hasNonFinite(m map[string]any) bool {
	for _, v := range m {
		if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			return true
		}
	}
	return false
}

// fuzzGatewayParsers checks the gateway payload parsers on b: no panics,
// failures are payloadErrors, results are well-formed.
func fuzzGatewayParsers(t *testing.T, b []byte) {
	isPayloadErr := func(what string, err error) {
		var pe *payloadError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("%s: error %v is not a payload error", what, err)
		}
	}
	if name, typ, err := parseGatewayConnect(b); err == nil {
		if name == "" || typ == "" {
			t.Fatalf("connect: empty name %q or type %q", name, typ)
		}
	} else {
		isPayloadErr("connect", err)
	}
	if name, err := parseGatewayDisconnect(b); err == nil && name == "" {
		t.Fatal("disconnect: empty name")
	} else {
		isPayloadErr("disconnect", err)
	}
	for _, want := range []byte{'[', '{'} {
		entries, err := parseGatewayEntries(b, want)
		isPayloadErr("entries", err)
		if err == nil && len(entries) == 0 {
			t.Fatal("entries: none and no error")
		}
		for _, e := range entries {
			if e.device == "" || kind(e.raw) != want {
				t.Fatalf("entry %q %s", e.device, e.raw)
			}
			switch want {
			case '[':
				recs, err := parseGatewayTelemetryDevice(e.raw)
				isPayloadErr("telemetry", err)
				for _, r := range recs {
					for _, x := range r.KV {
						if x.Key == "metadata" && !r.HasTs {
							t.Fatalf("metadata kept in %s", e.raw)
						}
					}
				}
			case '{':
				ms, err := objectMembers(e.raw)
				if err == nil {
					_, err = parseClaimMembers(ms)
					isPayloadErr("claim", err)
				}
			}
		}
	}
	if req, err := parseGatewayAttrRequest(b); err == nil {
		if req.device == "" {
			t.Fatalf("attribute request %+v", req)
		}
		found := map[string]any{}
		for i, k := range req.keys {
			if i%2 == 0 {
				found[k] = k
			}
		}
		if out := gwAttrResponse(req, found, found); !json.Valid(out) {
			t.Fatalf("attribute response %s", out)
		}
		seen := map[string]bool{}
		for _, k := range req.keys {
			if seen[k] {
				t.Fatalf("duplicate key %q", k)
			}
			seen[k] = true
		}
	} else {
		isPayloadErr("attribute request", err)
	}
	if name, _, data, err := parseGatewayRPCReply(b); err == nil {
		if name == "" || !json.Valid(data) {
			t.Fatalf("rpc reply %q %s", name, data)
		}
	} else {
		isPayloadErr("rpc reply", err)
	}
}

// TestSameMillisecondOverwrites: ThingsBoard keys a value by (key, ts), so
// the values of one message, stamped with one server time, keep the last.
func TestSameMillisecondOverwrites(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("DEV")
		if code := c.publishAck("v1/devices/me/telemetry", `[{"t":1},{"t":2},{"t":3}]`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		if h := s.History("dev", "t"); len(h) != 1 || h[0].Value != int64(3) {
			t.Fatalf("history %+v", h)
		}
		if code := c.publishAck("v1/devices/me/telemetry", `[{"ts":5,"values":{"t":1}},{"ts":5,"values":{"t":2}}]`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		if h := s.History("dev", "t"); len(h) != 2 || h[0] != (TsValue{Ts: 5, Value: int64(2)}) {
			t.Fatalf("history %+v", h)
		}
		g := dialGateway(t, s, v)
		g.publishOK(topicGwTelemetry, `{"A":[{"t":1},{"t":2}]}`)
		if h := s.History("A", "t"); len(h) != 1 || h[0].Value != int64(2) {
			t.Fatalf("gateway history %+v", h)
		}
	})
}
