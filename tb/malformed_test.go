package tb

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb/tbsim"
)

// Malformed downlinks (as a broken or hostile server could send) are
// reported, never crash the client, and leave it working.
func TestMalformedDownlinksContained(t *testing.T) {
	s, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddDevice(tbsim.Device{Name: "d", Token: "tok"}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	p, _ := strconv.Atoi(port)
	var reported atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := Connect(ctx, Config{Host: host, Port: p, Protocol: os.Getenv("TBFLOW_TEST_MQTT"), AccessToken: "tok", OnError: func(error) { reported.Add(1) }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	// A pending attribute request answered with garbage fails cleanly. The
	// server is paused so that only the garbage can answer.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.RequestAttributes(ctx, []string{"a"}, nil)
		done <- err
	}()
	var pendingTopic string
	for pendingTopic == "" {
		d.c.mu.Lock()
		for topic := range d.c.pending {
			if len(topic) > len(topicAttrResponse) && topic[:len(topicAttrResponse)] == topicAttrResponse {
				pendingTopic = topic
			}
		}
		d.c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	d.c.dispatch(pendingTopic, []byte("{not json"))
	if err := <-done; err == nil {
		t.Fatal("garbage attribute response accepted")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	// Subscribed only now, so that the only pending request above was
	// the test's own.
	var updates atomic.Int32
	d.SubscribeAttributes(nil, func(AttributeUpdate) { updates.Add(1) })
	d.HandleRPC("", func(context.Context, RPCRequest) (any, error) { return "ok", nil })

	before := reported.Load()
	for topic, payload := range map[string]string{
		topicAttributes:             `[1,2`,
		topicRPCRequest + "7":       `{"method":`,
		topicRPCRequest + "x":       `{"method":"m"}`,
		topicRPCRequest + "8":       `{"params":1}`,
		"v2/fw/error":               `NOT_FOUND`,
		"unexpected/topic":          `?`,
		topicRPCResponse + "999999": `{"stray":true}`,
	} {
		d.c.dispatch(topic, []byte(payload))
	}
	eventuallyT(t, func() bool { return reported.Load() >= before+4 })

	// Still working: telemetry, RPC and attribute pushes.
	if err := d.SendTelemetry(ctx, map[string]any{"after": 1}); err != nil {
		t.Fatal(err)
	}
	r, err := s.RPC(ctx, "d", "ping", nil, false)
	if err != nil || string(r) != `"ok"` {
		t.Fatalf("rpc after garbage: %s %v", r, err)
	}
	if err := s.SetShared("d", map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	eventuallyT(t, func() bool { return updates.Load() > 0 })
}

func eventuallyT(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func FuzzDecodeAttributes(f *testing.F) {
	for _, s := range []string{`{}`, `{"client":{"a":1},"shared":{"b":"x"}}`, `{"client":null}`, `[]`, `{"client":5}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAttributes(b)
		if err == nil && (a.Client == nil || a.Shared == nil) {
			t.Fatal("nil scope map without error")
		}
	})
}

func FuzzDecodeProvisionResponse(f *testing.F) {
	for _, s := range []string{
		`{"credentialsValue":"t","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}`,
		`{"credentialsValue":{"clientId":"c","userName":"u","password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}`,
		`{"errorMsg":"Failed to provision device!","status":"FAILURE"}`, `{"status":"SUCCESS"}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeProvisionResponse(b)
		if err == nil && r == nil {
			t.Fatal("nil result without error")
		}
	})
}

func FuzzSessionLimits(f *testing.F) {
	for _, s := range []string{
		`{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"10:1","telemetryMessages":null,"telemetryDataPoints":"100:1,1000:60"}}`,
		`{"rateLimits":null}`, `{"rateLimits":{"messages":"x"}}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var sl SessionLimits
		if json.Unmarshal(b, &sl) != nil {
			return
		}
		l, err := newLimits(&sl, nil)
		if err == nil && l.maxPayload <= 0 {
			t.Fatal("non-positive payload limit")
		}
	})
}

func FuzzTelemetryShape(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[{"a":1}]`, `[]`, `[1]`, `"s"`, `{"ts":1,"values":{}}`, ` `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := encodeTelemetry(json.RawMessage(b), nil)
		if err != nil {
			return
		}
		// What passes must be an object or a non-empty array of objects.
		var v any
		if json.Unmarshal(out, &v) != nil {
			t.Fatalf("accepted invalid JSON %q", out)
		}
		switch x := v.(type) {
		case map[string]any:
		case []any:
			if len(x) == 0 {
				t.Fatal("accepted empty array")
			}
			for _, e := range x {
				if _, ok := e.(map[string]any); !ok {
					t.Fatalf("accepted array element %v", e)
				}
			}
		default:
			t.Fatalf("accepted %T", v)
		}
	})
}

// testLogger logs through t.Log, shown for failing tests.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
