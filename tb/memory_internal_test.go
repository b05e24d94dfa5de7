package tb

import (
	"context"
	"runtime"
	"testing"
)

// The outbox's byte bound counts the memory an entry really holds: for
// small messages the per-entry costs (index slot, the Ack and its map
// entry, allocation rounding) dominate the payload, and they are charged.
func TestOutboxChargesWhatEntriesHold(t *testing.T) {
	for _, n := range []int{20000} {
		d, err := NewDevice(Config{Host: "127.0.0.1", Port: 1, AccessToken: "x", Outbox: OutboxConfig{MaxBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		acks := make([]*Ack, 0, n) // what a caller holding its Acks keeps, as the flow nodes do
		for i := range n {
			a, err := d.PublishTelemetry(ctx, map[string]any{"temperature": 21.5, "seq": i})
			if err != nil {
				t.Fatal(err)
			}
			acks = append(acks, a)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		real := float64(after.HeapAlloc-before.HeapAlloc-uint64(cap(acks))*8) / float64(n)
		charged := float64(d.c.ob.Bytes()) / float64(n)
		payload := float64(len(`{"ts":1700000000000,"values":{"seq":12345,"temperature":21.5}}`) + len(topicTelemetry))
		t.Logf("per entry: heap %.0f B, charged %.0f B, topic+payload %.0f B", real, charged, payload)
		if charged < 0.9*real {
			t.Errorf("an entry holds %.0f bytes but is charged %.0f", real, charged)
		}
		runtime.KeepAlive(acks)
		_ = d.Close(ctx)
	}
}
