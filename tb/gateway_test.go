package tb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

func newGatewaySim(t *testing.T) (*tbsim.Server, *tb.Gateway) {
	t.Helper()
	s := newSim(t, tbsim.Options{})
	if err := s.AddDevice(tbsim.Device{Name: "gw", Token: "gw-token", Gateway: true}); err != nil {
		t.Fatal(err)
	}
	cfg := simConfig(s, "gw-token")
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	cfg.RequestTimeout = 10 * time.Second
	g, err := tb.ConnectGateway(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Close(ctx)
	})
	return s, g
}

// ackOK returns a function that fails the test unless a publish was
// accepted and acknowledged: ackOK(t)(g.PublishDeviceTelemetry(...)).
func ackOK(t *testing.T) func(*tb.Ack, error) {
	return func(a *tb.Ack, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Wait(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGatewayUplinks(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	a, err := g.ConnectDevice(ctx, "Meter A", "energy-meter")
	ackOK(t)(a, err)
	if subs := s.SubDevices("gw"); !slices.Contains(subs, "Meter A") {
		t.Fatalf("sub-devices %v", subs)
	}
	for _, d := range s.Devices() {
		if d.Name == "Meter A" && d.Type != "energy-meter" {
			t.Fatalf("device type %q", d.Type)
		}
	}
	if err := g.SendDeviceTelemetry(ctx, "Meter A", map[string]any{"power": 1520.5}); err != nil {
		t.Fatal(err)
	}
	if v := s.Latest("Meter A")["power"].Value; v != 1520.5 {
		t.Fatalf("power %v", v)
	}
	if err := g.SendDeviceTelemetry(ctx, "Meter A", []tb.Telemetry{
		{Ts: time.UnixMilli(1700000000000), Values: map[string]any{"energy": 1}},
		{Ts: time.UnixMilli(1700000001000), Values: map[string]any{"energy": 2}},
	}); err != nil {
		t.Fatal(err)
	}
	if h := s.History("Meter A", "energy"); len(h) != 2 || h[0].Ts != 1700000000000 {
		t.Fatalf("energy history %+v", h)
	}
	// Many devices in one message; an unknown one is connected implicitly.
	ackOK(t)(g.PublishTelemetryBatch(ctx, map[string]any{
		"Meter A": map[string]any{"voltage": 230},
		"Meter B": map[string]any{"voltage": 231},
		"Meter C": tb.Telemetry{Values: map[string]any{"voltage": 229}},
	}))
	for dev, want := range map[string]float64{"Meter A": 230, "Meter B": 231, "Meter C": 229} {
		if v := asFloat(s.Latest(dev)["voltage"].Value); v != want {
			t.Errorf("%s voltage %v", dev, v)
		}
	}
	if subs := s.SubDevices("gw"); !slices.Contains(subs, "Meter C") {
		t.Fatalf("implicitly connected device missing: %v", subs)
	}
	if got := g.ConnectedDevices(); !slices.Contains(got, "Meter C") {
		t.Fatalf("gateway does not remember Meter C: %v", got)
	}
	if err := g.SendDeviceAttributes(ctx, "Meter B", map[string]any{"serial": "B-42", "model": "X"}); err != nil {
		t.Fatal(err)
	}
	if v := s.ClientAttributes("Meter B")["serial"]; v != "B-42" {
		t.Fatalf("client attribute %v", v)
	}
	// The gateway is also a device.
	if err := g.SendTelemetry(ctx, map[string]any{"uptime": 5}); err != nil {
		t.Fatal(err)
	}
	if v := asFloat(s.Latest("gw")["uptime"].Value); v != 5 {
		t.Fatalf("gateway's own telemetry %v", v)
	}
	if err := g.ClaimDevice(ctx, "Meter B", "claim-me", time.Hour); err != nil {
		t.Fatal(err)
	}
	eventually(t, "claim", func() bool { c := s.Claims("Meter B"); return len(c) == 1 && c[0].SecretKey == "claim-me" })
	a, err = g.DisconnectDevice(ctx, "Meter C")
	ackOK(t)(a, err)
	if subs := s.SubDevices("gw"); slices.Contains(subs, "Meter C") {
		t.Fatalf("Meter C still connected: %v", subs)
	}
	// Bad input is refused before anything is sent.
	if _, err := g.ConnectDevice(ctx, "", "x"); !errors.Is(err, tb.ErrInvalidPayload) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := g.PublishDeviceTelemetry(ctx, "Meter A", 42); !errors.Is(err, tb.ErrInvalidPayload) {
		t.Fatalf("scalar telemetry: %v", err)
	}
	if _, err := g.PublishDeviceAttributes(ctx, "Meter A", []int{1}); !errors.Is(err, tb.ErrInvalidPayload) {
		t.Fatalf("array attributes: %v", err)
	}
	if _, err := g.RequestDeviceAttributes(ctx, "Meter A", true); !errors.Is(err, tb.ErrInvalidPayload) {
		t.Fatalf("request without keys: %v", err)
	}
	if _, err := tb.NewGateway(tb.Config{Host: "127.0.0.1", AccessToken: "x", QoS0: true}); err == nil {
		t.Fatal("QoS 0 gateway accepted")
	}
}

func TestGatewayAttributeRequests(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	if err := g.SendDeviceAttributes(ctx, "Pump 1", map[string]any{"serial": "P1", "model": "Z"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("Pump 1", map[string]any{"target": 3.5, "mode": "auto"}); err != nil {
		t.Fatal(err)
	}
	one, err := g.RequestDeviceAttributes(ctx, "Pump 1", true, "serial")
	if err != nil || one["serial"] != "P1" || len(one) != 1 {
		t.Fatalf("one client key: %v %v", one, err)
	}
	many, err := g.RequestDeviceAttributes(ctx, "Pump 1", false, "target", "mode", "missing")
	if err != nil || asFloat(many["target"]) != 3.5 || many["mode"] != "auto" || len(many) != 2 {
		t.Fatalf("shared keys: %v %v", many, err)
	}
	none, err := g.RequestDeviceAttributes(ctx, "Pump 1", false, "missing")
	if err != nil || len(none) != 0 {
		t.Fatalf("missing key: %v %v", none, err)
	}
}

func TestGatewayUpdatesAndRPC(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	ackOK(t)(g.ConnectDevice(ctx, "Valve 1", "valve"))
	ackOK(t)(g.ConnectDevice(ctx, "Valve 2", "valve"))
	var mu sync.Mutex
	got := map[string][]tb.AttributeUpdate{}
	record := func(name string) func(tb.AttributeUpdate) {
		return func(u tb.AttributeUpdate) {
			mu.Lock()
			got[name] = append(got[name], u)
			mu.Unlock()
		}
	}
	count := func(name string) int { mu.Lock(); defer mu.Unlock(); return len(got[name]) }
	unsub1, err := g.SubscribeDeviceAttributes("Valve 1", []string{"open"}, record("first"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.SubscribeDeviceAttributes("Valve 1", []string{"open"}, record("second")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SubscribeDeviceAttributes("Valve 2", nil, record("all-v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("Valve 1", map[string]any{"open": true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both subscribers", func() bool { return count("first") >= 1 && count("second") >= 1 })
	mu.Lock()
	u := got["first"][len(got["first"])-1]
	mu.Unlock()
	if u.Device != "Valve 1" || u.Values["open"] != true {
		t.Fatalf("update %+v", u)
	}
	unsub1()
	if err := s.DeleteShared("Valve 1", "open"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deletion", func() bool {
		mu.Lock()
		defer mu.Unlock()
		l := got["second"]
		return len(l) >= 2 && len(l[len(l)-1].Deleted) == 1
	})
	// The first watcher may have seen the value twice (the resync after
	// subscribing and the push can both carry it), but never the deletion
	// made after it unsubscribed.
	mu.Lock()
	for _, u := range got["first"] {
		if len(u.Deleted) > 0 {
			t.Errorf("unsubscribed watcher got the deletion: %+v", u)
		}
	}
	mu.Unlock()
	if err := s.SetShared("Valve 2", map[string]any{"a": 1, "b": 2}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all-keys subscriber", func() bool { return count("all-v2") >= 1 })

	var calls atomic.Int32
	g.HandleDeviceRPC("Valve 1", func(_ context.Context, req tb.RPCRequest) (any, error) {
		calls.Add(1)
		return map[string]any{"device": req.Device, "method": req.Method, "id": req.ID}, nil
	})
	g.HandleDeviceRPC("", func(_ context.Context, req tb.RPCRequest) (any, error) {
		if req.Method == "boom" {
			panic("handler bug")
		}
		return "default:" + req.Device, nil
	})
	for i := 0; i < 2; i++ {
		r, err := s.RPC(ctx, "Valve 1", "open", map[string]any{"pct": 50}, false)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if json.Unmarshal(r, &m) != nil || m["device"] != "Valve 1" || asFloat(m["id"]) != float64(i) {
			t.Fatalf("reply %d: %s", i, r)
		}
	}
	r, err := s.RPC(ctx, "Valve 2", "close", nil, false)
	if err != nil || string(r) != `"default:Valve 2"` {
		t.Fatalf("default handler: %s %v", r, err)
	}
	r, err = s.RPC(ctx, "Valve 2", "boom", nil, false)
	if err != nil || !json.Valid(r) {
		t.Fatalf("panicking handler: %s %v", r, err)
	}
	var e map[string]any
	if json.Unmarshal(r, &e) != nil || e["error"] == nil {
		t.Fatalf("panicking handler replied %s", r)
	}
	// Still working after the panic.
	if r, err := s.RPC(ctx, "Valve 2", "close", nil, false); err != nil || string(r) != `"default:Valve 2"` {
		t.Fatalf("after panic: %s %v", r, err)
	}
}

// The broker goes away while an RPC and an attribute change are pending and
// telemetry is being published; after it returns the gateway connects its
// devices again, the RPC is answered, the change is delivered and no
// telemetry is lost.
func TestGatewayReconnect(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	for _, n := range []string{"Dev 1", "Dev 2", "Dev 3"} {
		ackOK(t)(g.ConnectDevice(ctx, n, "sensor"))
	}
	if err := s.SetShared("Dev 2", map[string]any{"setpoint": 10}); err != nil {
		t.Fatal(err)
	}
	updates := make(chan tb.AttributeUpdate, 10)
	if _, err := g.SubscribeDeviceAttributes("Dev 2", []string{"setpoint"}, func(u tb.AttributeUpdate) { updates <- u }); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-updates:
		// A push or the resync after subscribing, whichever came first.
		if asFloat(u.Values["setpoint"]) != 10 {
			t.Fatalf("initial %+v", u)
		}
	case <-time.After(waitFor):
		t.Fatal("no initial value")
	}
	g.HandleDeviceRPC("", func(_ context.Context, req tb.RPCRequest) (any, error) { return "done " + req.Method, nil })

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "offline", func() bool { return g.Status().State != tb.StateConnected })
	if err := s.SetShared("Dev 2", map[string]any{"setpoint": 12}); err != nil {
		t.Fatal(err)
	}
	rpc := make(chan error, 1)
	go func() {
		r, err := s.RPC(ctx, "Dev 3", "reset", nil, false)
		if err == nil && string(r) != `"done reset"` {
			err = fmt.Errorf("reply %s", r)
		}
		rpc <- err
	}()
	var acks []*tb.Ack
	for i := 0; i < 100; i++ {
		a, err := g.PublishDeviceTelemetry(ctx, "Dev 1", map[string]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	waitAcks(t, ctx, acks)
	if err := <-rpc; err != nil {
		t.Fatalf("rpc pending across the outage: %v", err)
	}
	select {
	case u := <-updates:
		if !u.Resync || asFloat(u.Values["setpoint"]) != 12 {
			t.Fatalf("change made while offline: %+v", u)
		}
	case <-time.After(waitFor):
		t.Fatal("change made while offline not delivered")
	}
	eventually(t, "devices connected again", func() bool { return len(s.SubDevices("gw")) == 3 })
	if n := len(s.History("Dev 1", "n")); n != 100 {
		t.Fatalf("server has %d of 100 records", n)
	}
}

// TestGatewayScale connects 1,000 sub-devices through one gateway and
// round-trips telemetry, an attribute update and an RPC for each.
func TestGatewayScale(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	const n = 1000
	name := func(i int) string { return fmt.Sprintf("sensor-%04d", i) }
	var acks []*tb.Ack
	for i := 0; i < n; i++ {
		a, err := g.ConnectDevice(ctx, name(i), "sensor")
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	waitAcks(t, ctx, acks)
	if got := len(s.SubDevices("gw")); got != n {
		t.Fatalf("%d sub-devices connected, want %d", got, n)
	}
	batch := map[string]any{}
	for i := 0; i < n; i++ {
		batch[name(i)] = map[string]any{"temperature": i, "humidity": 40}
	}
	ackOK(t)(g.PublishTelemetryBatch(ctx, batch))
	for i := 0; i < n; i++ {
		if v := asFloat(s.Latest(name(i))["temperature"].Value); v != float64(i) {
			t.Fatalf("%s temperature %v", name(i), v)
		}
	}
	var updated atomic.Int32
	for i := 0; i < n; i++ {
		if _, err := g.SubscribeDeviceAttributes(name(i), []string{"interval"}, func(u tb.AttributeUpdate) {
			if !u.Resync && u.Values["interval"] != nil {
				updated.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := s.SetShared(name(i), map[string]any{"interval": i}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every attribute update", func() bool { return updated.Load() == n })
	g.HandleDeviceRPC("", func(_ context.Context, req tb.RPCRequest) (any, error) { return req.Device, nil })
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			r, err := s.RPC(ctx, name(i), "whoami", nil, false)
			if err == nil && string(r) != `"`+name(i)+`"` {
				err = fmt.Errorf("%s replied %s", name(i), r)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestGatewaySessionLimits(t *testing.T) {
	s, g0 := newGatewaySim(t)
	g0.Close(ctxT(t))
	s.SetGatewayRateLimits("gw", tbsim.RateLimits{Messages: "5:1,50:60"})
	var offline atomic.Int32
	cfg := simConfig(s, "gw-token")
	cfg.OnStatus = func(st tb.Status) {
		if st.State == tb.StateOffline {
			offline.Add(1)
		}
	}
	g, err := tb.ConnectGateway(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctxT(t))
	eventually(t, "session limits", func() bool { return g.SessionLimits() != nil })
	if gl := g.SessionLimits().GatewayRateLimits; gl == nil || gl.Messages != "5:1,50:60" {
		t.Fatalf("gateway rate limits %+v", g.SessionLimits())
	}
	ctx := ctxT(t)
	var acks []*tb.Ack
	for i := 0; i < 12; i++ {
		a, err := g.PublishDeviceTelemetry(ctx, "Limited", map[string]any{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	waitAcks(t, ctx, acks)
	if n := offline.Load(); n != 0 {
		t.Fatalf("gateway disconnected %d times: sub-device limits not honoured", n)
	}
	if n := len(s.History("Limited", "i")); n != 12 {
		t.Fatalf("server has %d of 12", n)
	}
}

func TestGatewayReplyLaterAndAllAttributes(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	ackOK(t)(g.ConnectDevice(ctx, "Relay", "relay"))
	ackOK(t)(g.ConnectDevice(ctx, "Lamp", "lamp"))
	all := make(chan tb.AttributeUpdate, 4)
	unsub := g.SubscribeAllDeviceAttributes(func(u tb.AttributeUpdate) { all <- u })
	if err := s.SetShared("Lamp", map[string]any{"on": true}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-all:
		if u.Device != "Lamp" || u.Values["on"] != true {
			t.Fatalf("update %+v", u)
		}
	case <-time.After(waitFor):
		t.Fatal("no update for the all-devices subscriber")
	}
	unsub()

	// A handler defers its reply; another part of the program answers.
	pending := make(chan tb.RPCRequest, 1)
	g.HandleDeviceRPC("Relay", func(_ context.Context, req tb.RPCRequest) (any, error) {
		pending <- req
		return tb.ReplyLater, nil
	})
	reply := make(chan string, 1)
	go func() {
		r, err := s.RPC(ctx, "Relay", "toggle", nil, false)
		if err != nil {
			reply <- err.Error()
			return
		}
		reply <- string(r)
	}()
	req := <-pending
	if err := g.ReplyDeviceRPC(req, map[string]any{"state": "on"}); err != nil {
		t.Fatal(err)
	}
	if r := <-reply; r != `{"state":"on"}` {
		t.Fatalf("deferred reply %s", r)
	}
	if err := g.ReplyDeviceRPC(req, "again"); !errors.Is(err, tb.ErrUnknownRequest) {
		t.Fatalf("second reply: %v, want ErrUnknownRequest", err)
	}
}

func TestDeviceReplyLater(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	d := connect(t, &simPeer{s}, func(c *tb.Config) { c.RPCHandlerTimeout = 2 * time.Second })
	pending := make(chan tb.RPCRequest, 2)
	d.HandleRPC("", func(_ context.Context, req tb.RPCRequest) (any, error) {
		pending <- req
		return tb.ReplyLater, nil
	})
	ctx := ctxT(t)
	reply := make(chan string, 1)
	go func() {
		r, err := s.RPC(ctx, simDevice, "slow", nil, false)
		if err != nil {
			reply <- err.Error()
			return
		}
		reply <- string(r)
	}()
	req := <-pending
	if err := d.ReplyRPC(req, errors.New("valve jammed")); err != nil {
		t.Fatal(err)
	}
	if r := <-reply; r != `{"error":"valve jammed"}` {
		t.Fatalf("deferred error reply %s", r)
	}
	if err := d.ReplyRPC(tb.RPCRequest{ID: 999}, "x"); !errors.Is(err, tb.ErrUnknownRequest) {
		t.Fatalf("unknown request: %v", err)
	}
	// A deferred request nobody answers expires.
	go func() {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, _ = s.RPC(c, simDevice, "forgotten", nil, false)
	}()
	late := <-pending
	time.Sleep(2500 * time.Millisecond)
	if err := d.ReplyRPC(late, "too late"); !errors.Is(err, tb.ErrUnknownRequest) {
		t.Fatalf("expired request: %v, want ErrUnknownRequest", err)
	}
}
