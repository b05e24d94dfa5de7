package tb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestGatewaySharedLimitFiftyDevices: 50 sub-devices behind one gateway
// whose gatewayRateLimits are one bucket for all of them (as ThingsBoard
// keys them). Everything sent is delivered, nothing is dropped, and the
// gateway is never disconnected: delivered + dropped = sent, dropped = 0.
// A forced reconnect re-connects the 50 devices through the same bucket.
func TestGatewaySharedLimitFiftyDevices(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	if err := s.AddDevice(tbsim.Device{Name: "gw", Token: "gw-token", Gateway: true}); err != nil {
		t.Fatal(err)
	}
	s.SetGatewayRateLimits("gw", tbsim.RateLimits{Messages: "60:1,1000:60", TelemetryMessages: "40:1", TelemetryDataPoints: "80:1"})
	var offline atomic.Int32
	cfg := simConfig(s, "gw-token")
	cfg.OnStatus = func(st tb.Status) {
		if st.State == tb.StateOffline {
			offline.Add(1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := tb.ConnectGateway(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	const devices, rounds = 50, 4
	name := func(i int) string { return fmt.Sprintf("meter-%02d", i) }
	var acks []*tb.Ack
	sent := 0
	for r := range rounds {
		batch := map[string]any{}
		for i := range devices {
			batch[name(i)] = map[string]any{"v": r, "w": i}
		}
		a, err := g.PublishTelemetryBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
		sent += devices
		if r == 1 {
			// A reconnect half-way: the 50 re-connects count too.
			s.Kick("gw")
		}
	}
	waitAcks(t, ctx, acks)
	delivered, dropped := 0, 0
	for i := range devices {
		delivered += len(s.History(name(i), "v"))
		dropped += len(s.Dropped(name(i)))
	}
	dropped += len(s.Dropped("gw"))
	t.Logf("sent %d, delivered %d, dropped %d, offline %d", sent, delivered, dropped, offline.Load())
	if dropped != 0 || delivered != sent {
		t.Fatalf("sent %d, delivered %d, dropped %d: want every record delivered, none dropped", sent, delivered, dropped)
	}
	// One disconnect is the forced one.
	if n := offline.Load(); n > 1 {
		t.Fatalf("gateway disconnected %d times: the shared limit was exceeded", n)
	}
}

// TestConnectGatewayWithDeviceToken: a plain device's token used as a
// gateway gets no gatewayRateLimits in its session limits; ConnectGateway
// says so at once instead of waiting for PUBACKs that never come.
func TestConnectGatewayWithDeviceToken(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := tb.ConnectGateway(ctx, simConfig(s, "dev1-token"))
	if err == nil {
		g.Close(ctx)
		t.Fatal("ConnectGateway with a device token succeeded")
	}
	if !errors.Is(err, tb.ErrNotGateway) {
		t.Fatalf("ConnectGateway: %v, want ErrNotGateway", err)
	}
}

// TestGatewayQuotaRefusalKept: the gateway's limits tighten after it
// connected, so its pacing is briefly wrong and the server refuses a
// message with PUBACK 0x97 (MQTT 5) and closes the connection. The message
// is kept and sent again once the client has backed off and read the new
// limits: everything is delivered. (Under MQTT 3.1.1 the server's PUBACK
// carries no reason and the message would be lost: pacing is the only
// protection there.)
func TestGatewayQuotaRefusalKept(t *testing.T) {
	// MQTT 5 in both runs of the suite: 3.1.1 has no PUBACK reason codes.
	s := newSim(t, tbsim.Options{})
	if err := s.AddDevice(tbsim.Device{Name: "gw", Token: "gw-token", Gateway: true}); err != nil {
		t.Fatal(err)
	}
	cfg := simConfig(s, "gw-token")
	cfg.Protocol = tb.ProtocolMQTT5
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
	ctx := ctxT(t)
	g, err := tb.ConnectGateway(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	ackOK(t)(g.ConnectDevice(ctx, "Q", "meter"))
	s.SetGatewayRateLimits("gw", tbsim.RateLimits{TelemetryMessages: "3:1"})
	var acks []*tb.Ack
	for i := range 10 {
		a, err := g.PublishDeviceTelemetry(ctx, "Q", tb.Telemetry{Ts: time.UnixMilli(1700000000000 + int64(i)), Values: map[string]any{"i": i}})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	waitAcks(t, ctx, acks)
	if n := len(s.History("Q", "i")); n != 10 {
		t.Fatalf("server has %d of 10 values", n)
	}
	refused := 0
	for _, d := range s.Dropped("Q") {
		if d.PubAck == 0x97 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the server never refused a message: the test did not exercise the refusal")
	}
	t.Logf("%d refusals (PUBACK 0x97), all sent again", refused)
}
