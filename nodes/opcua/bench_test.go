package opcua_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/nodes/opcua/opcuatest"
)

// BenchmarkSubscriptionUpdates subscribes to 50 Doubles of the node-opcua
// server that change every 10 ms (5,000 changes/s offered) for a while
// (TBFLOW_BENCH_OPCUA_DURATION, default 3s), once with a plain gopcua
// client loop counting notifications (the baseline) and once through an
// opcua-in node in an engine, counting the values of the messages it
// sends, in the same run, after a second of warm-up. It reports both
// rates and their ratio.
func BenchmarkSubscriptionUpdates(b *testing.B) {
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("TBFLOW_BENCH_OPCUA_DURATION")); err == nil && v > 0 {
		dur = v
	}
	const items = 50
	srv := opcuatest.Start(b, opcuatest.Options{Fast: items, FastTick: 10 * time.Millisecond})
	rows := make([]any, items)
	for i := range rows {
		rows[i] = map[string]any{"key": fmt.Sprintf("f%d", i), "nodeId": fmt.Sprintf("ns=2;s=Fast%d", i)}
	}
	// A first subscription warms the server up; it is not counted.
	baselineRate(b, srv.Endpoint, items, time.Second)
	for range b.N {
		base := baselineRate(b, srv.Endpoint, items, dur)

		h := enginetest.RunNode(b, enginetest.Options{}, "opcua-in", map[string]any{
			"connection": "conn", "items": rows, "interval": "10ms", "samplingInterval": "0s",
		}, connection(srv.Endpoint, nil))
		h.WaitOut(0, 1)
		count := func() (n int) {
			for _, m := range h.Out(0) {
				n += len(m.Payload.(map[string]any))
			}
			return n
		}
		n0, t0 := count(), time.Now()
		time.Sleep(dur)
		rate := float64(count()-n0) / time.Since(t0).Seconds()
		b.ReportMetric(rate, "updates/s")
		b.ReportMetric(base, "baseline-updates/s")
		b.ReportMetric(rate/base, "x-baseline-rate")
		b.ReportMetric(0, "ns/op")
	}
}

// baselineRate counts data changes a plain gopcua subscription receives
// per second.
func baselineRate(b *testing.B, endpoint string, items int, dur time.Duration) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli, err := opcua.NewClient(endpoint)
	if err != nil {
		b.Fatal(err)
	}
	if err := cli.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer cli.Close(context.Background())
	notifs := make(chan *opcua.PublishNotificationData, 256)
	sub, err := cli.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 10 * time.Millisecond}, notifs)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Cancel(context.Background())
	reqs := make([]*ua.MonitoredItemCreateRequest, items)
	for i := range reqs {
		reqs[i] = opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewStringNodeID(2, fmt.Sprintf("Fast%d", i)), ua.AttributeIDValue, uint32(i))
		reqs[i].RequestedParameters.QueueSize = 1
	}
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...); err != nil {
		b.Fatal(err)
	}
	<-notifs // the initial values
	n, deadline, t0 := 0, time.After(dur), time.Now()
	for {
		select {
		case pn := <-notifs:
			if dc, ok := pn.Value.(*ua.DataChangeNotification); ok {
				n += len(dc.MonitoredItems)
			}
		case <-deadline:
			return float64(n) / time.Since(t0).Seconds()
		}
	}
}
