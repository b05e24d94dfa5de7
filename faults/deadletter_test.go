package faults

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

var protocols = []string{tb.ProtocolMQTT5, tb.ProtocolMQTT311}

// TestFaultGatewaySharedLimit: a gateway with 50 sub-devices streams
// numbered telemetry under a gatewayRateLimits bucket that ThingsBoard
// shares between all of them; half-way the server drops the connection.
// Over the bucket the server would answer PUBACK 0x97 (a plain PUBACK for
// a dropped message under MQTT 3.1.1) and close: tbflow paces every
// sub-device message, connect and re-connect through the one bucket, so
// nothing is dropped and the only disconnect is the forced one.
func TestFaultGatewaySharedLimit(t *testing.T) {
	for _, proto := range protocols {
		t.Run("MQTT"+proto, func(t *testing.T) {
			s, err := tbsim.New(tbsim.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.AddDevice(tbsim.Device{Name: "fault-gw", Token: "gw-token", Gateway: true}); err != nil {
				t.Fatal(err)
			}
			s.SetGatewayRateLimits("fault-gw", tbsim.RateLimits{Messages: "100:1,2000:60", TelemetryMessages: "50:1", TelemetryDataPoints: "100:1"})
			host, port := hostPort(t, s.MQTTAddr())
			var offline atomic.Int32
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			g, err := tb.ConnectGateway(ctx, tb.Config{Host: host, Port: port, AccessToken: "gw-token", Protocol: proto,
				Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second,
				OnStatus: func(st tb.Status) {
					if st.State == tb.StateOffline {
						offline.Add(1)
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close(context.Background())
			const devices, rounds = 50, 8
			var acks []*tb.Ack
			sent, accepted := 0, 0
			for r := range rounds {
				batch := map[string]any{}
				for i := range devices {
					batch[fmt.Sprintf("meter-%02d", i)] = map[string]any{"seq": r*devices + i}
				}
				sent += devices
				a, err := g.PublishTelemetryBatch(ctx, batch)
				if err != nil {
					t.Fatal(err)
				}
				accepted += devices
				acks = append(acks, a)
				if r == rounds/2 {
					s.Kick("fault-gw")
				}
			}
			for _, a := range acks {
				if err := a.Wait(ctx); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
			delivered, dropped, dup := 0, 0, 0
			for i := range devices {
				name := fmt.Sprintf("meter-%02d", i)
				n := len(s.History(name, "seq"))
				delivered += min(n, rounds)
				dup += max(0, n-rounds)
				dropped += len(s.Dropped(name))
			}
			dropped += len(s.Dropped("fault-gw"))
			record(t, Result{
				Fault: "gateway, 50 devices, shared limit (MQTT " + proto + ")", Sent: sent, Acknowledged: accepted,
				Delivered: delivered, Duplicated: dup, Lost: accepted - delivered,
				Extra: map[string]int64{"dropped_by_server": int64(dropped), "disconnects": int64(offline.Load())},
			})
			if delivered != accepted || dropped != 0 {
				t.Fatalf("sent %d, delivered %d, dropped by the server %d", sent, delivered, dropped)
			}
			if n := offline.Load(); n > 1 {
				t.Fatalf("%d disconnects: the shared limit was exceeded", n)
			}
		})
	}
}

// TestFaultPoisonHead: the oldest message in the outbox is one the server
// cannot parse (MQTT 5: PUBACK 0x99; MQTT 3.1.1: the connection closes
// with no PUBACK, every time it is sent). It is dead-lettered — its Ack
// fails with the reason, it stays in the outbox file's dead-letter store —
// and everything queued behind it is delivered.
func TestFaultPoisonHead(t *testing.T) {
	for _, proto := range protocols {
		t.Run("MQTT"+proto, func(t *testing.T) {
			s := newTBSim(t, "fault-device", "fault-token")
			host, port := hostPort(t, s.MQTTAddr())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d, err := tb.NewDevice(tb.Config{Host: host, Port: port, AccessToken: "fault-token", Protocol: proto,
				Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer closeDevice(d)
			// Queued while offline: the poison first (a number the
			// endpoint's parser refuses), then numbered telemetry.
			poison, err := d.PublishTelemetry(ctx, []byte(`{"seq":-1,"big":1e5000}`))
			if err != nil {
				t.Fatal(err)
			}
			const n = 200
			var acks []*tb.Ack
			for i := range n {
				a, err := d.PublishTelemetry(ctx, map[string]any{"seq": i})
				if err != nil {
					t.Fatal(err)
				}
				acks = append(acks, a)
			}
			start := time.Now()
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			for _, a := range acks {
				if err := a.Wait(ctx); err != nil {
					t.Fatalf("a message behind the poison: %v", err)
				}
			}
			recovery := time.Since(start)
			perr := poison.Wait(ctx)
			copies := tbsimCopies(s, "fault-device")
			delivered, dup := 0, 0
			for seq, c := range copies {
				if seq >= 0 && seq < n {
					delivered++
					dup += c - 1
				}
			}
			dead := len(d.DeadLetters())
			record(t, Result{
				Fault: "poisoned head message (MQTT " + proto + ")", Sent: n + 1, Acknowledged: n + 1,
				Delivered: delivered, Duplicated: dup, DeadLettered: dead, Lost: n + 1 - delivered - dead,
				Recovery: recovery,
			})
			if !errors.Is(perr, tb.ErrDeadLetter) || dead != 1 || delivered != n {
				t.Fatalf("poison ack %v, %d dead letters, %d of %d delivered", perr, dead, delivered, n)
			}
		})
	}
}
