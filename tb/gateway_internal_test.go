package tb

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb/tbsim"
)

func gatewayOnSim(t *testing.T) (*tbsim.Server, *Gateway) {
	t.Helper()
	s, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDevice(tbsim.Device{Name: "gw", Token: "gw", Gateway: true}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := ConnectGateway(ctx, Config{Host: host, Port: p, Protocol: os.Getenv("TBFLOW_TEST_MQTT"), AccessToken: "gw", SkipSessionLimits: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	return s, g
}

// A batch larger than the server's payload limit is split into several
// messages, each within the limit, and the Ack covers them all.
func TestGatewayBatchSplitting(t *testing.T) {
	s, g := gatewayOnSim(t)
	g.c.mu.Lock()
	g.c.lim = &limits{maxPayload: 400}
	g.c.mu.Unlock()
	batch := map[string]any{}
	for i := 0; i < 30; i++ {
		batch[fmt.Sprintf("dev-%02d", i)] = map[string]any{"value": i, "label": "some text"}
	}
	before := s.Stats().Publishes
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := g.PublishTelemetryBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// About 45 bytes a device: 30 devices need at least 4 messages.
	if n := s.Stats().Publishes - before; n < 4 {
		t.Fatalf("batch sent in %d messages; a 400-byte limit needs at least 4", n)
	}
	for i := 0; i < 30; i++ {
		if v := s.Latest(fmt.Sprintf("dev-%02d", i))["value"].Value; v != int64(i) {
			t.Fatalf("dev-%02d value %v", i, v)
		}
	}
	huge := map[string]any{"big": map[string]any{"x": string(make([]byte, 500))}}
	if _, err := g.PublishTelemetryBatch(ctx, huge); err == nil {
		t.Fatal("a single device larger than the limit was accepted")
	}
}

// The server's MQTT 5 notice that it dropped a sub-device for its rate
// limit makes the gateway back off and connect the device again.
func TestGatewayDisconnectNotice(t *testing.T) {
	s, g := gatewayOnSim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := g.ConnectDevice(ctx, "A", "meter")
	if err != nil || a.Wait(ctx) != nil {
		t.Fatalf("connect: %v", err)
	}
	got := make(chan string, 4)
	g.OnDeviceDisconnected(func(device string, reason int) { got <- fmt.Sprintf("%s %d", device, reason) })
	if err := s.DropSubDevice("gw", "A", DisconnectReasonRateLimit); err != nil {
		t.Fatal(err)
	}
	// The server sends the notice to MQTT 5 gateways only: under MQTT
	// 3.1.1, deliver it as the server would.
	if g.c.cfg.Protocol == ProtocolMQTT311 {
		g.c.dispatch(topicGatewayDisconnect, []byte(`{"device":"A","reason":150}`))
	}
	select {
	case s := <-got:
		if s != "A 150" {
			t.Fatalf("notice %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnDeviceDisconnected not called")
	}
	if until := g.c.pauseUntil.Load(); until <= time.Now().UnixNano() {
		t.Fatal("no back-off after reason 150")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(s.SubDevices("gw"), "A") {
		if time.Now().After(deadline) {
			t.Fatal("device not connected again after the back-off")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Our own {"device"} uplink echoed by a plain broker is not a notice.
	g.c.dispatch(topicGatewayDisconnect, []byte(`{"device":"A"}`))
	select {
	case s := <-got:
		t.Fatalf("echo taken for a notice: %q", s)
	case <-time.After(100 * time.Millisecond):
	}
}
