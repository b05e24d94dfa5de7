package tb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestProtobufProfileClearStatus: a device whose profile expects PROTOBUF
// refuses every JSON message (MQTT 5 PUBACK 0x99; MQTT 3.1.1 closes the
// connection). Within a minute the device's status names the problem and
// the outbox is not stalled behind the first message.
func TestProtobufProfileClearStatus(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	if err := s.AddDeviceProfile(tbsim.DeviceProfile{Name: "proto", PayloadType: "PROTOBUF"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(tbsim.Device{Name: "pb", Token: "pb-token", Profile: "proto"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan tb.Status, 64)
	d := connect(t, &simPeer{s: s}, func(c *tb.Config) {
		*c = simConfig(s, "pb-token")
		c.ReconnectMin, c.ReconnectMax = 50*time.Millisecond, 300*time.Millisecond
		c.OnStatus = func(st tb.Status) {
			select {
			case got <- st:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a1, err := d.PublishTelemetry(ctx, map[string]any{"t": 1})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := d.PublishTelemetry(ctx, map[string]any{"t": 2})
	if err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case st := <-got:
			if st.LastDeadLetter == nil {
				continue
			}
			msg := st.LastDeadLetter.Error()
			if !strings.Contains(msg, "PROTOBUF") && !strings.Contains(msg, "payload format invalid") {
				t.Fatalf("status %q does not say what is wrong", msg)
			}
			for _, a := range []*tb.Ack{a1, a2} {
				if err := a.Wait(ctx); !errors.Is(err, tb.ErrDeadLetter) {
					t.Fatalf("ack: %v, want a dead letter", err)
				}
			}
			if n := len(d.DeadLetters()); n != 2 {
				t.Fatalf("%d dead letters, want 2", n)
			}
			return
		case <-ctx.Done():
			t.Fatal("no status naming the refused payloads within a minute")
		}
	}
}

// TestCustomTopicProfile: a profile with custom topic filters makes the
// default topics unknown (their data silently dropped under MQTT 3.1.1);
// Config.TelemetryTopic and AttributesTopic deliver it.
func TestCustomTopicProfile(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	if err := s.AddDeviceProfile(tbsim.DeviceProfile{Name: "custom", TelemetryTopic: "sensors/+/telemetry", AttributesTopic: "sensors/+/attributes"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(tbsim.Device{Name: "c1", Token: "c1-token", Profile: "custom"}); err != nil {
		t.Fatal(err)
	}
	d := connect(t, &simPeer{s: s}, func(c *tb.Config) {
		*c = simConfig(s, "c1-token")
		c.TelemetryTopic = "sensors/c1/telemetry"
		c.AttributesTopic = "sensors/c1/attributes"
	})
	ctx := ctxT(t)
	if err := d.SendTelemetry(ctx, map[string]any{"temp": 21.5}); err != nil {
		t.Fatal(err)
	}
	if err := d.SendAttributes(ctx, map[string]any{"model": "x"}); err != nil {
		t.Fatal(err)
	}
	if h := s.History("c1", "temp"); len(h) != 1 {
		t.Fatalf("telemetry on the custom topic: server has %v", h)
	}
	if v, ok := s.ClientAttributes("c1")["model"]; !ok || v != "x" {
		t.Fatalf("attributes on the custom topic: server has %v", s.ClientAttributes("c1"))
	}
	if n := len(s.Dropped("c1")); n != 0 {
		t.Fatalf("%d messages dropped", n)
	}
}
