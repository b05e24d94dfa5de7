package thingsboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	_ "github.com/tbflow/tbflow/nodes/core"
	"github.com/tbflow/tbflow/nodes/thingsboard"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// sim starts a tbsim with a device "dev" (token dev-token) and a gateway
// "gw" (token gw-token).
func sim(t *testing.T, opts tbsim.Options) *tbsim.Server {
	t.Helper()
	s, err := tbsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, d := range []tbsim.Device{{Name: "dev", Token: "dev-token"}, {Name: "gw", Token: "gw-token", Gateway: true}} {
		if err := s.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
	t.Cleanup(cancel)
	return ctx
}

// conn is a tb-connection object for s.
func conn(s *tbsim.Server, id, mode, token string) map[string]any {
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	var p float64
	fmt.Sscan(port, &p)
	return map[string]any{"id": id, "type": "tb-connection", "host": host, "port": p, "mode": mode,
		"accessToken": token, "reconnectMin": "10ms", "reconnectMax": "100ms", "requestTimeout": "5s"}
}

func node(id, typ string, fields map[string]any, wires ...[]string) map[string]any {
	n := map[string]any{"id": id, "type": typ, "z": "tab", "x": 0, "y": 0}
	w := []any{}
	for _, port := range wires {
		ids := []any{}
		for _, x := range port {
			ids = append(ids, x)
		}
		w = append(w, ids)
	}
	n["wires"] = w
	for k, v := range fields {
		n[k] = v
	}
	return n
}

func deploy(h *enginetest.Harness, mode engine.DeployMode, objs ...map[string]any) {
	h.T.Helper()
	all := []any{map[string]any{"id": "tab", "type": "tab", "label": "t"}}
	for _, o := range objs {
		if o["type"] == enginetest.CaptureType {
			o["z"] = "tab"
		}
		all = append(all, o)
	}
	b, err := json.Marshal(all)
	if err != nil {
		h.T.Fatal(err)
	}
	h.Deploy(b, mode)
}

func TestConformance(t *testing.T) {
	// The conformance suite checks the lifecycle, not the protocol: the
	// connections point at a listener that never answers, so no broker sees
	// a connection attempt abandoned by a node stopping mid-connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var p float64
	fmt.Sscan(port, &p)
	mute := func(mode string) map[string]any {
		return map[string]any{"id": "conn", "type": "tb-connection", "host": "127.0.0.1", "port": p, "mode": mode,
			"accessToken": "token", "requestTimeout": "100ms", "reconnectMin": "50ms", "reconnectMax": "100ms"}
	}
	dev, gw := mute("device"), mute("gateway")
	ref := map[string]any{"connection": "conn"}
	cases := map[string]enginetest.ConformanceOptions{
		"tb-connection":    {Settings: map[string]any{"host": "127.0.0.1", "port": p, "accessToken": "token"}},
		"tb-telemetry-out": {Settings: ref, Extra: []map[string]any{dev}, Input: engine.NewMsg(map[string]any{"t": 1.0})},
		"tb-attr-out":      {Settings: ref, Extra: []map[string]any{dev}, Input: engine.NewMsg(map[string]any{"a": 1.0})},
		"tb-attr-in":       {Settings: ref, Extra: []map[string]any{dev}},
		"tb-rpc-in":        {Settings: ref, Extra: []map[string]any{dev}},
		"tb-rpc-out":       {Settings: ref, Extra: []map[string]any{dev}},
		"tb-rpc-call":      {Settings: map[string]any{"connection": "conn", "method": "getSessionLimits", "timeout": "100ms"}, Extra: []map[string]any{dev}},
		"gw-device":        {Settings: map[string]any{"connection": "conn", "device": "Meter A"}, Extra: []map[string]any{gw}},
	}
	for typ, opts := range cases {
		t.Run(typ, func(t *testing.T) { enginetest.Conformance(t, typ, opts) })
	}
	for _, tt := range engine.DefaultRegistry().Types() {
		if _, ok := cases[tt.Name]; !ok && (tt.Category == "thingsboard" || strings.HasPrefix(tt.Name, "tb-")) {
			t.Errorf("type %q has no conformance case", tt.Name)
		}
	}
}

func TestTelemetryBatchStampsEachMessage(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	// A linger far longer than the test (1 minute): the batch goes when maxBatch
	// messages are there, so the test does not depend on timing.
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "1m", "maxBatch": 3, "batching": "linger"}))
	for i := 1; i <= 3; i++ {
		h.Send("out", engine.NewMsg(map[string]any{"v": float64(i)}))
		time.Sleep(2 * time.Millisecond) // distinct arrival times, so distinct timestamps
	}
	ctx := waitCtx(t)
	if err := s.WaitTelemetry(ctx, "dev", "v", 3); err != nil {
		t.Fatal(err)
	}
	hist := s.History("dev", "v")
	// The payloads' values are float64: written 1.0, stored as doubles.
	for i, tv := range hist {
		if tv.Value != float64(i+1) {
			t.Errorf("value %d = %v (%T), want %d", i, tv.Value, tv.Value, i+1)
		}
		if i > 0 && tv.Ts <= hist[i-1].Ts {
			t.Errorf("timestamps not increasing: %v", hist)
		}
	}
	if n := s.Stats().PublishesByTopic["v1/devices/me/telemetry"]; n != 1 {
		t.Errorf("%d telemetry publishes, want 1 batch", n)
	}
}

// Adaptive batching: a message goes at once when nothing awaits an
// acknowledgement; what arrives while something does waits for it (not
// for the 1-minute linger) and goes as one batch.
func TestTelemetryAdaptiveBatching(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "1m", "maxBatch": 100}))
	ctx := waitCtx(t)
	s.SetPubAckDelay(time.Second)
	publishes := func() uint64 { return s.Stats().PublishesByTopic["v1/devices/me/telemetry"] }
	h.Send("out", engine.NewMsg(map[string]any{"v": 1.0}))
	for publishes() < 1 { // sent at once, long before its acknowledgement
		select {
		case <-ctx.Done():
			t.Fatal("the first message was not sent at once")
		case <-time.After(time.Millisecond):
		}
	}
	for i := 2; i <= 4; i++ {
		h.Send("out", engine.NewMsg(map[string]any{"v": float64(i)}))
	}
	if err := s.WaitTelemetry(ctx, "dev", "v", 4); err != nil {
		t.Fatal(err, s.History("dev", "v"), publishes(), s.Stats())
	}
	if n := publishes(); n != 2 {
		t.Errorf("%d telemetry publishes, want 2 (one at once, one batch after the acknowledgement)", n)
	}
}

// The records waiting in the node are bounded by the memory they hold, not
// only by their count: one message of 9,000 records of 10 values (about
// 5 MB by recordCost) is over maxPendingBytes and goes at once, long
// before the 1-minute linger and although it is a single message of the
// 100 a batch may hold.
func TestTelemetryPendingBoundedByBytes(t *testing.T) {
	const n = 9000
	recs := make([]any, n)
	var cost int64
	for i := range recs {
		m := map[string]any{"seq": float64(i)}
		for k := range 9 {
			m[fmt.Sprintf("v%d", k)] = float64(k)
		}
		recs[i] = m
		cost += thingsboard.RecordCost(m)
	}
	if cost < thingsboard.MaxPendingBytes {
		t.Fatalf("test records cost %d bytes, want over %d", cost, thingsboard.MaxPendingBytes)
	}
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "1m", "maxBatch": 100, "batching": "linger"}))
	h.Send("out", engine.NewMsg(recs))
	if err := s.WaitTelemetry(waitCtx(t), "dev", "seq", n); err != nil {
		t.Fatal(err, len(s.History("dev", "seq")), h.Errors())
	}
}

func TestTelemetryShapes(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "0s"}))
	h.Send("out", engine.NewMsg(map[string]any{"ts": 1700000000000.0, "values": map[string]any{"a": 1.0}}))
	m := engine.NewMsg(map[string]any{"a": 2.0})
	m.Set("ts", 1700000001000.0)
	h.Send("out", m)
	h.Send("out", engine.NewMsg([]any{
		map[string]any{"ts": 1700000002000.0, "values": map[string]any{"a": 3.0}},
		map[string]any{"ts": 1700000003000.0, "values": map[string]any{"a": 4.0}},
	}))
	ctx := waitCtx(t)
	if err := s.WaitTelemetry(ctx, "dev", "a", 4); err != nil {
		t.Fatal(err)
	}
	for i, tv := range s.History("dev", "a") {
		if want := int64(1700000000000 + 1000*i); tv.Ts != want || tv.Value != float64(i+1) {
			t.Errorf("record %d = %+v, want ts %d value %d", i, tv, want, i+1)
		}
	}
}

func TestGatewayTelemetryForDevices(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("a", "gw-device", map[string]any{"connection": "c", "device": "Meter A", "deviceType": "meter"}, []string{"out"}),
		node("b", "gw-device", map[string]any{"connection": "c", "device": "Meter B"}, []string{"out"}),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "1m", "maxBatch": 2}))
	h.Send("a", engine.NewMsg(map[string]any{"p": 1.0}))
	h.Send("b", engine.NewMsg(map[string]any{"p": 2.0}))
	ctx := waitCtx(t)
	for dev, want := range map[string]float64{"Meter A": 1, "Meter B": 2} {
		if err := s.WaitTelemetry(ctx, dev, "p", 1); err != nil {
			t.Fatal(err)
		}
		if got := s.History(dev, "p")[0].Value; got != want {
			t.Errorf("%s: p = %v, want %v", dev, got, want)
		}
	}
	var typ string
	for _, d := range s.Devices() {
		if d.Name == "Meter A" {
			typ = d.Type
		}
	}
	if typ != "meter" {
		t.Errorf("Meter A has type %q, want meter", typ)
	}
}

// A gw-device without a device name takes the name from msg.device and
// the profile from msg.deviceType (as mqtt-in and http-in set them),
// falling back to its own deviceType.
func TestGatewayDeviceTypeFromMessage(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("g", "gw-device", map[string]any{"connection": "c", "deviceType": "fallback"}, []string{"out"}),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c"}))
	typed := engine.NewMsg(map[string]any{"p": int64(1)})
	typed.Set("device", "TH-1")
	typed.Set("deviceType", "thermometer")
	plain := engine.NewMsg(map[string]any{"p": int64(2)})
	plain.Set("device", "TH-2")
	h.Send("g", typed)
	h.Send("g", plain)
	ctx := waitCtx(t)
	for _, dev := range []string{"TH-1", "TH-2"} {
		if err := s.WaitTelemetry(ctx, dev, "p", 1); err != nil {
			t.Fatal(err)
		}
	}
	types := map[string]string{}
	for _, d := range s.Devices() {
		types[d.Name] = d.Type
	}
	if types["TH-1"] != "thermometer" || types["TH-2"] != "fallback" {
		t.Errorf("device types %v, want TH-1 thermometer and TH-2 fallback", types)
	}
}

// Batches for different devices one after the other: a batch's map is
// reused for a later one, and the devices of earlier batches it still
// names must not be sent as empty.
func TestGatewayTelemetryBatchesInTurn(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c"}))
	ctx := waitCtx(t)
	for i, dev := range []string{"Meter A", "Meter B", "Meter B", "Meter A", "Meter B"} {
		m := engine.NewMsg(map[string]any{"p": float64(i)})
		m.Set("device", dev)
		h.Send("out", m)
		want := 0
		for _, d := range []string{"Meter A", "Meter B", "Meter B", "Meter A", "Meter B"}[:i+1] {
			if d == dev {
				want++
			}
		}
		if err := s.WaitTelemetry(ctx, dev, "p", want); err != nil {
			t.Fatalf("message %d for %s: %v", i, dev, err)
		}
	}
	if errs := h.Errors(); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
}

func TestRPCDeviceRoundTrip(t *testing.T) {
	s := sim(t, tbsim.Options{HTTPAddr: "127.0.0.1:0"})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("in", "tb-rpc-in", map[string]any{"connection": "c", "method": "double"}, []string{"calc"}),
		node("in2", "tb-rpc-in", map[string]any{"connection": "c", "method": "hello"}, []string{"hi"}),
		node("calc", "transform", map[string]any{"expression": `{"result": payload.x * 2}`}, []string{"reply"}),
		node("hi", "transform", map[string]any{"expression": `"hello " + payload`}, []string{"reply"}),
		node("reply", "tb-rpc-out", map[string]any{"connection": "c"}))
	ctx := waitCtx(t)
	if err := s.WaitConnected(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	// Through the HTTP API, as a person would.
	res := httpRPC(t, s, "dev", `{"method":"double","params":{"x":21},"timeoutMs":20000}`)
	if strings.ReplaceAll(res, " ", "") != `{"result":42}` {
		t.Errorf("double: reply %s", res)
	}
	for _, e := range h.Errors() {
		t.Logf("flow error: %s", e.Message)
	}
	got, err := s.RPC(ctx, "dev", "hello", "world", false)
	if err != nil || string(got) != `"hello world"` {
		t.Errorf("hello: reply %s, %v", got, err)
	}
	// No node takes this method: an error reply once the connection's
	// grace for nodes still starting (2 s) is over.
	got, err = s.RPC(ctx, "dev", "reboot", nil, false)
	if err != nil || !strings.Contains(string(got), "error") {
		t.Errorf("reboot: reply %s, %v; want an error reply", got, err)
	}
}

// TestRPCOutRepliesWithCaughtError: a request whose handling fails is
// answered {"error": message} when the catch node's message reaches
// tb-rpc-out (sendErrors, on by default).
func TestRPCOutRepliesWithCaughtError(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("in", "tb-rpc-in", map[string]any{"connection": "c"}, []string{"calc"}),
		node("calc", "transform", map[string]any{"expression": "payload.x.y"}, []string{"reply"}),
		node("catch", "catch", nil, []string{"reply"}),
		node("reply", "tb-rpc-out", map[string]any{"connection": "c"}))
	ctx := waitCtx(t)
	if err := s.WaitConnected(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	got, err := s.RPC(ctx, "dev", "calc", "not an object", false)
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	if err := json.Unmarshal(got, &reply); err != nil {
		t.Fatalf("reply %s: %v", got, err)
	}
	if msg, _ := reply["error"].(string); len(reply) != 1 || !strings.Contains(msg, "payload.x.y") {
		t.Errorf("reply %s, want {\"error\": the transform's error}", got)
	}
}

func httpRPC(t *testing.T, s *tbsim.Server, device, body string) string {
	t.Helper()
	req, err := httpPost(s.HTTPURL()+"/api/devices/"+strings.ReplaceAll(device, " ", "%20")+"/rpc", body)
	if err != nil {
		t.Error(err)
	}
	return strings.TrimSpace(req)
}

func TestRPCGatewayRoundTrip(t *testing.T) {
	s := sim(t, tbsim.Options{HTTPAddr: "127.0.0.1:0"})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("a", "gw-device", map[string]any{"connection": "c", "device": "Meter A"}, nil, []string{"ra"}),
		node("b", "gw-device", map[string]any{"connection": "c", "device": "Meter B"}, nil, []string{"rb"}),
		node("ra", "transform", map[string]any{"expression": `{"from": "A", "method": msg.method}`}, []string{"reply"}),
		node("rb", "transform", map[string]any{"expression": `{"from": "B", "device": msg.device}`}, []string{"reply"}),
		node("reply", "tb-rpc-out", map[string]any{"connection": "c"}))
	ctx := waitCtx(t)
	for _, d := range []string{"Meter A", "Meter B"} {
		if err := s.WaitConnected(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if res := httpRPC(t, s, "Meter A", `{"method":"status","params":{},"timeoutMs":20000}`); !strings.Contains(res, `"from":"A"`) || !strings.Contains(res, `"method":"status"`) {
		t.Errorf("Meter A: reply %s", res)
	}
	got, err := s.RPC(ctx, "Meter B", "status", nil, false)
	if err != nil || !strings.Contains(string(got), `"device":"Meter B"`) {
		t.Errorf("Meter B: reply %s, %v", got, err)
	}
}

func TestAttrInAfterOutage(t *testing.T) {
	s := sim(t, tbsim.Options{})
	if err := s.SetShared("dev", map[string]any{"interval": 5, "mode": "auto", "other": 1}); err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("in", "tb-attr-in", map[string]any{"connection": "c", "keys": "interval,mode"}, []string{"updates"}),
		h.Capture("updates"))
	first := h.WaitOutputs("updates", 1)[0]
	want := map[string]any{"interval": 5.0, "mode": "auto"}
	if !sameJSON(first.Payload, want) || first.Fields["resync"] != true {
		t.Fatalf("initial values: %v (resync %v), want %v", first.Payload, first.Fields["resync"], want)
	}
	// A push while connected.
	if err := s.SetShared("dev", map[string]any{"interval": 6}); err != nil {
		t.Fatal(err)
	}
	if m := h.WaitOutputs("updates", 2)[1]; !sameJSON(m.Payload, map[string]any{"interval": 6.0}) || m.Fields["resync"] != nil {
		t.Fatalf("push: %v %v", m.Payload, m.Fields)
	}
	// Changes made while the broker is down arrive after the reconnect.
	ctx := waitCtx(t)
	connects := s.Stats().Connects
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("dev", map[string]any{"interval": 30, "other": 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteShared("dev", "mode"); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	m := h.WaitOutputs("updates", 3)[2]
	if !sameJSON(m.Payload, map[string]any{"interval": 30.0}) || m.Fields["resync"] != true || !sameJSON(m.Fields["deleted"], []any{"mode"}) {
		t.Fatalf("after outage: payload %v fields %v", m.Payload, m.Fields)
	}
	if err := s.WaitConnected(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Connects <= connects {
		t.Error("no reconnect counted")
	}
	h.WaitIdle()
	if n := len(h.Outputs("updates")); n != 3 {
		t.Errorf("%d updates, want 3: %v", n, h.Outputs("updates"))
	}
}

func TestAttrRequestAnswered(t *testing.T) {
	s := sim(t, tbsim.Options{})
	if err := s.SetShared("dev", map[string]any{"interval": 5}); err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-attr-out", map[string]any{"connection": "c", "waitAck": true}),
		node("in", "tb-attr-in", map[string]any{"connection": "c", "initial": false}, []string{}, []string{"answers"}),
		h.Capture("answers"))
	h.Send("out", engine.NewMsg(map[string]any{"serial": "A-1"}))
	h.WaitIdle()
	req := engine.NewMsg(map[string]any{"client": []any{"serial"}, "shared": []any{"interval"}})
	req.Topic = "ask-1"
	h.Send("in", req)
	m := h.WaitOutputs("answers", 1)[0]
	want := map[string]any{"client": map[string]any{"serial": "A-1"}, "shared": map[string]any{"interval": 5.0}}
	if m.Topic != "ask-1" || m.ID != req.ID || !sameJSON(m.Payload, want) {
		t.Errorf("answer %v (topic %q, id %q), want %v for %q", m.Payload, m.Topic, m.ID, want, req.ID)
	}
}

func TestRedeployKeepsMQTTSession(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	flow := func(expr string) []map[string]any {
		return []map[string]any{conn(s, "c", "device", "dev-token"),
			node("calc", "transform", map[string]any{"expression": expr}, []string{"out"}),
			node("out", "tb-telemetry-out", map[string]any{"connection": "c"})}
	}
	deploy(h, engine.DeployFull, flow(`{"v": payload}`)...)
	h.Send("calc", engine.NewMsg(1.0))
	ctx := waitCtx(t)
	if err := s.WaitTelemetry(ctx, "dev", "v", 1); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Connects
	deploy(h, engine.DeployModified, flow(`{"v": payload * 10}`)...)
	h.Send("calc", engine.NewMsg(2.0))
	if err := s.WaitTelemetry(ctx, "dev", "v", 2); err != nil {
		t.Fatal(err)
	}
	if got := s.History("dev", "v")[1].Value; got != float64(20) {
		t.Errorf("after redeploy v = %v, want 20", got)
	}
	if after := s.Stats().Connects; after != before {
		t.Errorf("redeploy of a transform reconnected: %d CONNECTs before, %d after", before, after)
	}
}

func TestErrorsGoToCatch(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c"}),
		node("reply", "tb-rpc-out", map[string]any{"connection": "c"}),
		node("catch", "catch", nil, []string{"caught"}),
		h.Capture("caught"))
	h.Send("out", engine.NewMsg("not telemetry"))
	m := engine.NewMsg(map[string]any{"ok": true})
	m.Set("rpc", map[string]any{"id": 99.0, "method": "ghost", "connection": "c"})
	h.Send("reply", m)
	h.Send("reply", engine.NewMsg("no rpc"))
	got := h.WaitOutputs("caught", 3)
	var texts []string
	for _, c := range got {
		texts = append(texts, c.Fields["error"].(map[string]any)["message"].(string))
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"telemetry must be an object", "unknown, already answered or expired", "no msg.rpc"} {
		if !strings.Contains(all, want) {
			t.Errorf("no caught error mentions %q:\n%s", want, all)
		}
	}
}

func TestRPCCall(t *testing.T) {
	s := sim(t, tbsim.Options{ClientRPC: func(ctx context.Context, device, method string, params json.RawMessage) (json.RawMessage, error) {
		if method == "getTime" {
			return json.RawMessage(`{"time": 1700000000000, "echo": ` + string(params) + `}`), nil
		}
		return nil, errors.New("no such method")
	}})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"),
		node("call", "tb-rpc-call", map[string]any{"connection": "c"}, []string{"ok"}, []string{"failed"}),
		h.Capture("ok"), h.Capture("failed"))
	m := engine.NewMsg(map[string]any{"a": 1.0})
	m.Set("method", "getTime")
	h.Send("call", m)
	got := h.WaitOutputs("ok", 1)[0]
	if !sameJSON(got.Payload, map[string]any{"time": 1700000000000.0, "echo": map[string]any{"a": 1.0}}) {
		t.Errorf("response %v", got.Payload)
	}
	bad := engine.NewMsg(nil)
	bad.Set("method", "nope")
	h.Send("call", bad)
	f := h.WaitOutputs("failed", 1)[0]
	if _, ok := f.Fields["error"].(map[string]any)["message"].(string); !ok {
		t.Errorf("error output without msg.error.message: %v", f.Fields)
	}
}

func TestStatusShowsRefusedCredentials(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	c := conn(s, "c", "device", "wrong-token")
	// One attempt, then a long wait: the sim never closes while the client
	// is in the middle of connecting.
	c["reconnectMin"], c["reconnectMax"] = "1m", "1m"
	deploy(h, engine.DeployFull, c,
		node("out", "tb-telemetry-out", map[string]any{"connection": "c"}))
	deadline := time.Now().Add(enginetest.WaitLimit)
	for {
		for _, st := range h.Statuses("out") {
			if strings.HasPrefix(st.Text, "error:") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error status on the user node: %v", h.Statuses("out"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sameJSON(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return string(ab) == string(bb)
}

func httpPost(url, body string) (string, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	return string(b), err
}

func TestGatewayDeviceAttributesAfterOutage(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("a", "gw-device", map[string]any{"connection": "c", "device": "Meter A", "keys": "interval"}, nil, nil, []string{"attrs"}),
		h.Capture("attrs"))
	ctx := waitCtx(t)
	if err := s.WaitConnected(ctx, "Meter A"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("Meter A", map[string]any{"interval": 5}); err != nil {
		t.Fatal(err)
	}
	m := h.WaitOutputs("attrs", 1)[0]
	if !sameJSON(m.Payload, map[string]any{"interval": 5.0}) || m.Fields["device"] != "Meter A" {
		t.Fatalf("push: %v %v", m.Payload, m.Fields)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("Meter A", map[string]any{"interval": 60}); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	m = h.WaitOutputs("attrs", 2)[1]
	if !sameJSON(m.Payload, map[string]any{"interval": 60.0}) || m.Fields["resync"] != true || m.Fields["device"] != "Meter A" {
		t.Fatalf("after outage: %v %v", m.Payload, m.Fields)
	}
}

func TestAttrInRedeployedOntoLiveConnectionGetsCurrentValues(t *testing.T) {
	s := sim(t, tbsim.Options{})
	if err := s.SetShared("dev", map[string]any{"interval": 5}); err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(t, enginetest.Options{})
	flow := func(name string) []map[string]any {
		return []map[string]any{conn(s, "c", "device", "dev-token"),
			node("in", "tb-attr-in", map[string]any{"connection": "c", "keys": "interval", "name": name}, []string{"updates"}),
			h.Capture("updates")}
	}
	deploy(h, engine.DeployFull, flow("first")...)
	h.WaitOutputs("updates", 1)
	before := s.Stats().Connects
	deploy(h, engine.DeployModified, flow("second")...)
	m := h.WaitOutputs("updates", 2)[1]
	if !sameJSON(m.Payload, map[string]any{"interval": 5.0}) || m.Fields["resync"] != true {
		t.Fatalf("restarted node: %v %v", m.Payload, m.Fields)
	}
	if s.Stats().Connects != before {
		t.Error("redeploying tb-attr-in reconnected")
	}
}

// TestRPCNumbersExact: numbers pass through a flow exactly: an integer
// beyond float64's 53 bits (12345678901234567890, which a float64 turns
// into 12345678901234567168) comes back as sent, on a device and behind a
// gateway, and a float written 21.0 stays a float.
func TestRPCNumbersExact(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "dev-token"), conn(s, "g", "gateway", "gw-token"),
		node("in", "tb-rpc-in", map[string]any{"connection": "c", "method": "write"}, []string{"reply"}),
		node("reply", "tb-rpc-out", map[string]any{"connection": "c"}),
		node("gd", "gw-device", map[string]any{"connection": "g", "device": "Meter A"}, nil, []string{"greply"}),
		node("greply", "tb-rpc-out", map[string]any{"connection": "g"}))
	ctx := waitCtx(t)
	for _, d := range []string{"dev", "Meter A"} {
		if err := s.WaitConnected(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	params := json.RawMessage(`{"register":40001,"value":12345678901234567890,"neg":-9223372036854775808,"huge":123456789012345678901234567890,"temp":21.0}`)
	for _, device := range []string{"dev", "Meter A"} {
		got, err := s.RPC(ctx, device, "write", params, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"value":12345678901234567890`, `"neg":-9223372036854775808`, `"huge":123456789012345678901234567890`, `"temp":21.0`, `"register":40001`} {
			if !strings.Contains(string(got), want) {
				t.Errorf("%s: reply %s lacks %s", device, got, want)
			}
		}
	}
}
