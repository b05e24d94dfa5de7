package tb

import (
	"encoding/json"
	"time"
)

// Stats are a client's counters for health reports.
type Stats struct {
	State       State
	Queued      int           // records in the outbox not yet acknowledged
	QueuedBytes int64         // their topic and payload bytes
	OldestAge   time.Duration // age of the oldest queued record by its timestamp; 0 when none or unknown
	DeadLetters int           // records the server will never take
	Sent        uint64        // records the server acknowledged since the client was created
	Dials       uint64        // connection attempts since the client was created
}

// Stats returns the client's counters.
func (d *Device) Stats() Stats {
	c := d.c
	st := Stats{
		State: c.status().State, Queued: c.ob.Len(), QueuedBytes: c.ob.Bytes(),
		DeadLetters: c.ob.DeadCount(), Sent: c.ob.Stats().Removed, Dials: c.epoch.Load(),
	}
	if head := c.ob.Next(0, 1); len(head) == 1 {
		if ts := recordTs(head[0].Payload); ts > 0 {
			st.OldestAge = max(time.Since(time.UnixMilli(ts)), 0)
		}
	}
	return st
}

// recordTs returns the earliest "ts" of a telemetry payload: {"ts":…},
// [{"ts":…},…] or a gateway's {"device":[{"ts":…}]}; 0 when it has none.
func recordTs(p []byte) int64 {
	type tsv struct {
		Ts int64 `json:"ts"`
	}
	var one tsv
	if json.Unmarshal(p, &one) == nil && one.Ts > 0 {
		return one.Ts
	}
	earliest := func(vs []tsv) int64 {
		var m int64
		for _, v := range vs {
			if v.Ts > 0 && (m == 0 || v.Ts < m) {
				m = v.Ts
			}
		}
		return m
	}
	var arr []tsv
	if json.Unmarshal(p, &arr) == nil {
		return earliest(arr)
	}
	var gw map[string][]tsv
	if json.Unmarshal(p, &gw) == nil {
		var m int64
		for _, vs := range gw {
			if t := earliest(vs); t > 0 && (m == 0 || t < m) {
				m = t
			}
		}
		return m
	}
	return 0
}
