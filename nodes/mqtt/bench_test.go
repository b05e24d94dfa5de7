package mqtt_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
)

// BenchmarkInFromMosquitto measures messages per second from Debian's
// mosquitto through mqtt-in (decoded, device picked from the topic, handed
// to the next node), beside the same-run baseline of a bare paho
// subscriber on the same broker, and reports the ratio.
func BenchmarkInFromMosquitto(b *testing.B) {
	const n = 5000
	m := peers.StartMosquitto(b, peers.MosquittoConfig{})
	publish := func(topic string) {
		opts := paho.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID(fmt.Sprintf("bench-pub-%d", time.Now().UnixNano()))
		c := paho.NewClient(opts)
		if t := c.Connect(); t.Wait() && t.Error() != nil {
			b.Fatal(t.Error())
		}
		defer c.Disconnect(50)
		var last paho.Token
		for i := range n {
			last = c.Publish(fmt.Sprintf("%s/dev-%d/data", topic, i%10), 1, false, fmt.Sprintf(`{"temperature":%d.5,"humidity":40}`, i))
		}
		last.Wait()
	}
	var tbflowRate, pahoRate float64
	for b.Loop() {
		// Baseline: a bare paho subscriber.
		var got atomic.Int64
		done := make(chan struct{})
		opts := paho.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("bench-sub")
		sub := paho.NewClient(opts)
		if t := sub.Connect(); t.Wait() && t.Error() != nil {
			b.Fatal(t.Error())
		}
		sub.Subscribe("base/+/data", 1, func(paho.Client, paho.Message) {
			if got.Add(1) == n {
				close(done)
			}
		}).Wait()
		start := time.Now()
		publish("base")
		<-done
		pahoRate = n / time.Since(start).Seconds()
		sub.Disconnect(50)

		h := enginetest.RunNode(b, enginetest.Options{}, "mqtt-in", map[string]any{
			"broker": "mb", "topic": "flow/+/data", "deviceSource": "topic", "deviceLevel": 2.0,
		}, broker(m.Port))
		deadline := time.Now().Add(10 * time.Second)
		for h.Engine.Statuses()["node"].Text != "connected" && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		start = time.Now()
		publish("flow")
		h.WaitOut(0, n)
		tbflowRate = n / time.Since(start).Seconds()
	}
	b.ReportMetric(tbflowRate, "msgs/s")
	b.ReportMetric(pahoRate, "paho-msgs/s")
	b.ReportMetric(tbflowRate/pahoRate, "x-paho-rate")
}
