package faults

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
)

// stallFor is how long the link carries nothing.
const stallFor = 30 * time.Second

// TestFaultStalledLink stops all traffic between a device and tbsim for
// 30 s without closing the connection — a link that goes silent, as when a
// cellular modem or a NAT loses its state — while the device streams
// numbered telemetry. The device runs with a 5 s keep-alive: it must notice
// the silence (no PINGRESP within paho's 10 s ping timeout) and reconnect,
// and its attempts during the stall hang in the same black hole. When the
// link carries traffic again, whatever waited in the socket buffers arrives
// too (late publishes and CONNECTs of abandoned attempts). Nothing
// acknowledged may be lost.
func TestFaultStalledLink(t *testing.T) {
	s := newTBSim(t, "fault-device", "fault-token")
	proxy, wire := observedProxy(t, s.MQTTAddr())

	var mu sync.Mutex
	var stallStart, noticedAt time.Time
	host, port := hostPort(t, proxy.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	st, end := startDevice(t, ctx, tb.Config{
		Host: host, Port: port, AccessToken: "fault-token", KeepAlive: 5 * time.Second,
		Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
		// The first status other than connected after the stall began
		// is the moment the device noticed (the status coalesces a lost
		// connection followed at once by a new attempt into connecting).
		OnStatus: func(st tb.Status) {
			mu.Lock()
			defer mu.Unlock()
			if st.State != tb.StateConnected && !stallStart.IsZero() && noticedAt.IsZero() {
				noticedAt = time.Now()
			}
		},
	}, 10*time.Millisecond)
	defer end()
	eventually(t, 30*time.Second, "200 messages stored before the stall", func() bool { return len(tbsimCopies(s, "fault-device")) >= 200 })
	connsBefore := proxy.Connections()
	mu.Lock()
	stallStart = time.Now()
	mu.Unlock()
	_, atStall := st.counts()
	<-proxy.Stall(stallFor)
	stallEnd := time.Now()
	_, atEnd := st.counts()
	backlog := st.acceptedSoFar()
	recovery, ok, ackErrs := st.finish(t, ctx, backlog, stallEnd, "the stall")
	tl := account(st, tbsimCopies(s, "fault-device"), nil, wire)
	sent, _ := st.counts()
	mu.Lock()
	detect := int64(-1) // rode through without noticing
	if !noticedAt.IsZero() {
		detect = noticedAt.Sub(stallStart).Milliseconds()
	}
	mu.Unlock()
	record(t, Result{
		Fault: "link stalled 30 s", Sent: sent, Acknowledged: tl.acknowledged,
		Delivered: tl.delivered, Duplicated: tl.duplicated, Lost: tl.lost, Recovery: recovery,
		Extra: map[string]int64{
			"detect_ms": detect, "connections": int64(proxy.Connections() - connsBefore),
			"accepted_in_stall": int64(atEnd - atStall), "false_acks": int64(tl.falseAcks),
		},
	})
	tl.check(t)
	st.checkAcks(t, ok, ackErrs)
	if detect < 0 {
		t.Errorf("the device did not notice a %s silence with a 5 s keep-alive", stallFor)
	}
}
