package tb

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		windows int
		bad     bool
	}{
		{"", 0, false},
		{"100:1", 1, false},
		{"100:1,3000:60", 2, false},
		{" 10:1 , 20:2 ", 2, false},
		{"100", 0, true},
		{"a:1", 0, true},
		{"0:1", 0, true},
		{"10:-1", 0, true},
	} {
		l, err := ParseRateLimit(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseRateLimit(%q): want error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRateLimit(%q): %v", tc.in, err)
			continue
		}
		if tc.windows == 0 {
			if l != nil {
				t.Errorf("ParseRateLimit(%q): want nil limiter", tc.in)
			}
			continue
		}
		if len(l.windows) != tc.windows {
			t.Errorf("ParseRateLimit(%q): %d windows, want %d", tc.in, len(l.windows), tc.windows)
		}
	}
}

// The limiter lets a full window through at once and then exactly the
// sustained rate: it never throttles below the limit.
func TestLimiterAllowsFullLimit(t *testing.T) {
	l, err := ParseRateLimit("10:1,100:60")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		if d := l.reserve(1); d != 0 {
			t.Fatalf("message %d of the first window had to wait %v", i, d)
		}
	}
	if d := l.reserve(1); d <= 0 || d > 100*time.Millisecond+time.Millisecond {
		t.Fatalf("11th message waits %v, want about 100ms (10/s refill)", d)
	}
	// After a second the 10:1 window is full again, but the 100:60 window
	// has used 11 of 100.
	now = now.Add(2 * time.Second)
	for i := 0; i < 10; i++ {
		if d := l.reserve(1); d != 0 {
			t.Fatalf("after refill, message %d waited %v", i, d)
		}
	}
	var nilLimiter *Limiter
	if err := nilLimiter.Wait(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	l, _ := ParseRateLimit("1:100")
	if err := l.Wait(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestCountDataPoints(t *testing.T) {
	for in, want := range map[string]int{
		`{"a":1,"b":2}`:                             2,
		`{"ts":1,"values":{"a":1,"b":2,"c":3}}`:     3,
		`[{"a":1},{"ts":1,"values":{"b":1,"c":2}}]`: 3,
		`{"ts":5}`: 1,
		`{"Dev A":[{"a":1,"b":2}],"Dev B":[{"c":1}]}`: 3,
		`not json`: 1,
		`{"Dev A":[{"ts":1,"values":{"x":1}}],"Dev B":[]}`: 1,
	} {
		var doc any
		_ = json.Unmarshal([]byte(in), &doc)
		if got := countDataPoints(doc); got != want {
			t.Errorf("countDataPoints(%s) = %d, want %d", in, got, want)
		}
	}
}

func TestEncodeTelemetryShapes(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	good := map[string]struct {
		in   any
		want string
	}{
		"flat map":        {map[string]any{"t": 21.5}, `{"t":21.5}`},
		"ts values":       {Telemetry{Ts: ts, Values: map[string]any{"t": 1}}, `{"ts":1700000000123,"values":{"t":1}}`},
		"zero ts is flat": {Telemetry{Values: map[string]any{"t": 1}}, `{"t":1}`},
		"slice":           {[]Telemetry{{Ts: ts, Values: map[string]any{"a": 1}}, {Values: map[string]any{"b": 2}}}, `[{"ts":1700000000123,"values":{"a":1}},{"b":2}]`},
		"raw object":      {json.RawMessage(`{"a":1}`), `{"a":1}`},
		"raw array":       {[]byte(` [{"a":1}]`), ` [{"a":1}]`},
		"struct":          {struct{ A int }{3}, `{"A":3}`},
		"integral float":  {map[string]any{"t": 21.0, "n": json.Number("12345678901234567890"), "i": 7}, `{"i":7,"n":12345678901234567890,"t":21.0}`},
		"float forms":     {map[string]any{"a": 1e21, "b": 1e-7, "c": 0.0, "d": float32(2)}, `{"a":1e+21,"b":1e-7,"c":0.0,"d":2.0}`},
		"nested float":    {map[string]any{"o": map[string]any{"x": []any{3.0, "s<"}}}, `{"o":{"x":[3.0,"s\u003c"]}}`},
	}
	for name, tc := range good {
		b, err := encodeTelemetry(tc.in, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(b) != tc.want {
			t.Errorf("%s: got %s, want %s", name, b, tc.want)
		}
	}
	bad := map[string]any{
		"nil":            nil,
		"scalar":         42,
		"string json":    `"x"`,
		"empty array":    []map[string]any{},
		"array of ints":  json.RawMessage(`[1,2]`),
		"invalid json":   []byte(`{"a":`),
		"unmarshallable": map[string]any{"f": func() {}},
		"values scalar":  json.RawMessage(`{"ts":1,"values":5}`),
		"ts not number":  json.RawMessage(`[{"ts":"soon","values":{}}]`),
		"NaN":            map[string]any{"f": math.NaN()},
	}
	for name, in := range bad {
		if _, err := encodeTelemetry(in, nil); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("%s: error %v, want ErrInvalidPayload", name, err)
		}
	}
	if _, err := encodeAttributes([]any{map[string]any{"a": 1}}); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("attributes array: error %v, want ErrInvalidPayload", err)
	}
	// A string longer than the server's limit (counted in UTF-16 units).
	if err := checkStrings([]byte(`{"a":"𝄞𝄞"}`), 3); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("4 UTF-16 units under a limit of 3: %v", err)
	}
	if err := checkStrings([]byte(`[{"ts":1,"values":{"a":"abc","o":{"s":"xy"}}}]`), 3); err != nil {
		t.Errorf("strings within the limit: %v", err)
	}
	// Records without a timestamp are stamped, strictly increasing.
	var k clock
	stamp := func() int64 { return k.stamp("") }
	b, err := encodeTelemetry([]map[string]any{{"a": 1.0}, {"a": 2.0}}, stamp)
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Ts     int64          `json:"ts"`
		Values map[string]any `json:"values"`
	}
	if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 2 || recs[0].Ts == 0 || recs[1].Ts <= recs[0].Ts || recs[1].Values["a"] != 2.0 {
		t.Fatalf("stamped %s (%v)", b, err)
	}
	if b, _ := encodeTelemetry(Telemetry{Ts: ts, Values: map[string]any{"t": 1}}, stamp); string(b) != `{"ts":1700000000123,"values":{"t":1}}` {
		t.Fatalf("a record with its own ts was changed: %s", b)
	}
}

func TestChecksumVectors(t *testing.T) {
	data := []byte("123456789")
	// CRC32 of "123456789" is 0xCBF43926; ThingsBoard (Guava) writes its
	// bytes little-endian.
	for alg, want := range map[string]string{
		"CRC32":  "2639f4cb",
		"MD5":    "25f9e794323b453885f5181f1b624d0b",
		"SHA256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
		"sha384": "eb455d56d2c1a69de64e832011f3393d45f3fa31d6842f21af92d2fe469c499da5e3179847334a18479c8d1dedea1be3",
		// MurmurHash3 x86_32 of "123456789", seed 0, is 0xB4FEF382.
		"MURMUR3_32": "82f3feb4",
	} {
		got, err := Checksum(alg, data)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", alg, got, want)
		}
		if err := VerifyChecksum(alg, data, want); err != nil {
			t.Errorf("VerifyChecksum %s: %v", alg, err)
		}
	}
	m128, _ := Checksum("MURMUR3_128", nil)
	if m128 != "00000000000000000000000000000000" {
		t.Errorf("MURMUR3_128 of empty input = %s", m128)
	}
	if _, err := Checksum("SHA1", data); err == nil {
		t.Error("unknown algorithm accepted")
	}
	if err := VerifyChecksum("SHA256", data, "00"); err == nil {
		t.Error("mismatch not reported")
	}
}

func TestDecodeProvisionResponse(t *testing.T) {
	r, err := decodeProvisionResponse([]byte(`{"credentialsValue":"tok123","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}`))
	if err != nil || r.AccessToken != "tok123" {
		t.Fatalf("access token: %+v %v", r, err)
	}
	r, err = decodeProvisionResponse([]byte(`{"credentialsValue":{"clientId":"c","userName":"u","password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}`))
	if err != nil || r.ClientID != "c" || r.Username != "u" || r.Password != "p" {
		t.Fatalf("basic: %+v %v", r, err)
	}
	cfg := r.Apply(Config{Host: "h", AccessToken: "old"})
	if cfg.AccessToken != "" || cfg.Username != "u" {
		t.Fatalf("Apply: %+v", cfg)
	}
	_, err = decodeProvisionResponse([]byte(`{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}`))
	var pe *ProvisionError
	if !errors.As(err, &pe) || pe.Status != "NOT_FOUND" || pe.Message != "Provision data was not found!" {
		t.Fatalf("not found: %v", err)
	}
	for _, bad := range []string{`nope`, `{}`, `{"status":"SUCCESS","credentialsType":"WEIRD"}`, `{"status":"SUCCESS","credentialsType":"MQTT_BASIC","credentialsValue":"x"}`} {
		if _, err := decodeProvisionResponse([]byte(bad)); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	if _, err := (&Config{AccessToken: "x"}).withDefaults(); err == nil {
		t.Error("missing host accepted")
	}
	if _, err := (&Config{Host: "h"}).withDefaults(); err == nil {
		t.Error("missing credentials accepted")
	}
	if _, err := (&Config{Host: "h", AccessToken: "x", QoS: 2}).withDefaults(); err == nil {
		t.Error("qos 2 accepted")
	}
	if _, err := (&Config{Host: "h", AccessToken: "x", Username: "u"}).withDefaults(); err == nil {
		t.Error("token and username accepted together")
	}
	c, err := (&Config{Host: "h", AccessToken: "x", TLS: &TLSConfig{}}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8883 || c.QoS != 1 || c.brokerURL() != "ssl://h:8883" {
		t.Errorf("defaults: port %d qos %d url %s", c.Port, c.QoS, c.brokerURL())
	}
	c, _ = (&Config{Host: "h", AccessToken: "x", QoS0: true}).withDefaults()
	if c.QoS != 0 || c.brokerURL() != "tcp://h:1883" {
		t.Errorf("qos0: %d %s", c.QoS, c.brokerURL())
	}
	if _, err := ParseOutboxFullPolicy("sometimes"); err == nil {
		t.Error("bad policy accepted")
	}
}

func TestBackoffBounds(t *testing.T) {
	c := &client{cfg: Config{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second}}
	for failures := 1; failures < 20; failures++ {
		d := c.backoff(failures)
		ceiling := c.cfg.ReconnectMin << (failures - 1)
		if ceiling > c.cfg.ReconnectMax || ceiling <= 0 {
			ceiling = c.cfg.ReconnectMax
		}
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("backoff(%d) = %v, want within [%v, %v]", failures, d, ceiling/2, ceiling)
		}
	}
}

// Gateway publishes count against ONE bucket shared by all sub-devices
// (ThingsBoard keys gatewayRateLimits by the gateway): one message per
// device named, its implicit connect and session open the first time in a
// session, and for data its data points. The gateway's own limits apply
// to its own device-API messages only. Session closes are charged when the
// connection ends, and the bucket carries over to the next connection.
func TestGatewaySharedLimitAccounting(t *testing.T) {
	sl := &SessionLimits{
		RateLimits:        RateLimits{TelemetryDataPoints: "100:1"},
		GatewayRateLimits: &RateLimits{Messages: "100:1", TelemetryMessages: "100:1", TelemetryDataPoints: "100:1"},
	}
	l, err := newLimits(sl, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A frozen clock: the buckets do not refill between publishes.
	frozen := time.Unix(1700000000, 0)
	for _, x := range []*Limiter{l.own.dataPoints, l.gw.messages, l.gw.telemetry, l.gw.dataPoints} {
		x.now = func() time.Time { return frozen }
	}
	used := func(x *Limiter) float64 {
		if x.windows[0].last.IsZero() {
			return 0
		}
		return x.windows[0].capacity - x.windows[0].tokens
	}
	ctx := context.Background()
	for _, p := range []struct{ topic, payload string }{
		{topicGatewayConnect, `{"device":"C","type":"meter"}`},                           // 1 + session open
		{topicGatewayTelemetry, `{"A":[{"a":1,"b":2}],"B":[{"ts":1,"values":{"x":1}}]}`}, // 2×(1 + 2 implicit)
		{topicGatewayAttributes, `{"A":{"k":1}}`},                                        // 1
		{topicGatewayTelemetry, `{"C":[{"a":1}]}`},                                       // 1 (connected)
		{topicTelemetry, `{"A":[{"a":1}]}`},                                              // own bucket
	} {
		if err := l.wait(ctx, p.topic, []byte(p.payload)); err != nil {
			t.Fatalf("%s %s: %v", p.topic, p.payload, err)
		}
	}
	if got, want := [3]float64{used(l.gw.messages), used(l.gw.telemetry), used(l.gw.dataPoints)}, [3]float64{2 + 6 + 1 + 1, 4, 5}; got != want {
		t.Errorf("shared bucket used messages, telemetry, data points %v, want %v", got, want)
	}
	if got := used(l.own.dataPoints); got != 1 {
		t.Errorf("own data points used %v, want 1", got)
	}
	// The connection ends: three sub-device sessions close.
	l.closeSession()
	if got := used(l.gw.messages); got != 13 {
		t.Errorf("after the close the shared bucket used %v messages, want 13", got)
	}
	// Same limits on the next connection: the buckets carry on.
	next, err := newLimits(sl, l)
	if err != nil || next.gw != l.gw || next.own != l.own {
		t.Fatalf("buckets not carried over: %v", err)
	}
	// No batch may charge more than a window holds.
	small, _ := newLimits(&SessionLimits{GatewayRateLimits: &RateLimits{Messages: "30:1", TelemetryDataPoints: "40:1"}}, nil)
	if e, p := small.gatewayBurst(); e != 10 || p != 40 {
		t.Errorf("gatewayBurst = %d entries, %d points; want 10, 40", e, p)
	}
}

// A telemetry array with more data points than the device's data-point
// limit holds at once is split into messages that fit.
func TestSplitForBurst(t *testing.T) {
	lim, err := newLimits(&SessionLimits{RateLimits: RateLimits{TelemetryDataPoints: "5:1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(`[{"ts":1,"values":{"a":1,"b":2}},{"ts":2,"values":{"a":1,"b":2}},{"ts":3,"values":{"a":1,"b":2,"c":3}}]`)
	parts, err := splitForBurst(b, lim)
	if err != nil || len(parts) != 2 || string(parts[1]) != `[{"ts":3,"values":{"a":1,"b":2,"c":3}}]` {
		t.Fatalf("split %q, %v", parts, err)
	}
	if _, err := splitForBurst([]byte(`[{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}]`), lim); !errors.Is(err, ErrInvalidPayload) {
		t.Fatalf("a record over the limit: %v", err)
	}
	if parts, _ := splitForBurst(b, &limits{}); len(parts) != 1 {
		t.Fatal("split without a limit")
	}
}
