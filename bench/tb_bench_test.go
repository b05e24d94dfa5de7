package bench

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb"
)

// payload is a 64-byte-class telemetry record with 4 data points.
var payload = json.RawMessage(`{"temperature":21.5,"humidity":48,"pressure":1013.2,"ok":true}`)

const dataPointsPerMsg = 4

// pahoRate publishes n messages with a raw paho client (async tokens, waited
// at the end) and returns messages per second.
func pahoRate(b *testing.B, addr string, qos byte, n int) float64 {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("paho-baseline").
		SetCleanSession(true).SetAutoReconnect(false).SetKeepAlive(30 * time.Second).SetWriteTimeout(10 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("paho connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	toks := make([]mqtt.Token, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		toks = append(toks, c.Publish("v1/devices/me/telemetry", qos, false, []byte(payload)))
	}
	for _, t := range toks {
		t.Wait()
		if err := t.Error(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// pahoV5Rate publishes n messages with a raw paho.golang MQTT 5 client
// (QoS 1 publishes block until their PUBACK, so up to 100 run at once, as
// tb's in-flight window) and returns messages per second.
func pahoV5Rate(b *testing.B, addr string, qos byte, n int) float64 {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(nc), ClientID: "paho-v5-baseline"})
	ctx := context.Background()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "paho-v5-baseline", CleanStart: true, KeepAlive: 30}); err != nil {
		b.Fatalf("paho.golang connect: %v", err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	sem := make(chan struct{}, 100)
	errs := make(chan error, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := c.Publish(ctx, &paho.Publish{Topic: "v1/devices/me/telemetry", QoS: qos, Payload: payload})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// tbRate publishes n messages through tb.Device and waits for every Ack.
// It returns messages per second and heap allocations per publish.
func tbRate(b *testing.B, addr string, cfg tb.Config, n, publishers int) (rate, allocs float64) {
	host, port, _ := strings.Cut(addr, ":")
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	cfg.AccessToken = "bench"
	cfg.SkipSessionLimits = true
	cfg.MaxInflight = 1000
	ctx := context.Background()
	d, err := tb.Connect(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close(ctx)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	errs := make(chan error, publishers)
	per := n / publishers
	for p := 0; p < publishers; p++ {
		go func() {
			acks := make([]*tb.Ack, 0, per)
			for i := 0; i < per; i++ {
				a, err := d.PublishTelemetry(ctx, payload)
				if err != nil {
					errs <- err
					return
				}
				acks = append(acks, a)
			}
			for _, a := range acks {
				if err := a.Wait(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for p := 0; p < publishers; p++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&ms1)
	total := per * publishers
	return float64(total) / el.Seconds(), float64(ms1.Mallocs-ms0.Mallocs) / float64(total)
}

// BenchmarkTelemetry publishes telemetry through tb.Device to Debian's
// mosquitto on loopback and through a raw paho publisher to the same broker
// in the same run, and reports both rates and their ratio.
func BenchmarkTelemetry(b *testing.B) {
	m := peers.StartMosquitto(b, peers.MosquittoConfig{})
	cases := []struct {
		name       string
		qos        byte
		publishers int
		protocol   string
		outbox     func(b *testing.B) tb.OutboxConfig
	}{
		{"qos0", 0, 1, tb.ProtocolMQTT5, nil},
		{"qos1-memory-outbox-mqtt5", 1, 1, tb.ProtocolMQTT5, func(*testing.B) tb.OutboxConfig { return tb.OutboxConfig{} }},
		{"qos1-memory-outbox-mqtt311", 1, 1, tb.ProtocolMQTT311, func(*testing.B) tb.OutboxConfig { return tb.OutboxConfig{} }},
		{"qos1-disk-nosync-mqtt5", 1, 1, tb.ProtocolMQTT5, func(b *testing.B) tb.OutboxConfig {
			return tb.OutboxConfig{Path: filepath.Join(b.TempDir(), "o.db"), NoSync: true}
		}},
		{"qos1-disk-nosync-mqtt311", 1, 1, tb.ProtocolMQTT311, func(b *testing.B) tb.OutboxConfig {
			return tb.OutboxConfig{Path: filepath.Join(b.TempDir(), "o.db"), NoSync: true}
		}},
		{"qos1-disk-fsync-1-publisher", 1, 1, tb.ProtocolMQTT5, func(b *testing.B) tb.OutboxConfig {
			return tb.OutboxConfig{Path: filepath.Join(b.TempDir(), "o.db")}
		}},
		{"qos1-disk-fsync-16-publishers", 1, 16, tb.ProtocolMQTT5, func(b *testing.B) tb.OutboxConfig {
			return tb.OutboxConfig{Path: filepath.Join(b.TempDir(), "o.db")}
		}},
	}
	// The baseline is the raw Paho client of the same MQTT version:
	// paho.golang for MQTT 5, paho.mqtt.golang for 3.1.1.
	baseline := func(b *testing.B, protocol string, qos byte, n int) float64 {
		if protocol == tb.ProtocolMQTT311 {
			return pahoRate(b, m.Addr, qos, n)
		}
		return pahoV5Rate(b, m.Addr, qos, n)
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			n := max(b.N, 2000)
			n -= n % tc.publishers
			cfg := tb.Config{QoS0: tc.qos == 0, Protocol: tc.protocol}
			if tc.outbox != nil {
				cfg.Outbox = tc.outbox(b)
			}
			// Alternate baseline and tb rounds and keep the medians, so that
			// a noisy neighbour on the machine hits both alike.
			var bases, rates, allocss []float64
			for round := 0; round < 3; round++ {
				// Let the broker finish the previous burst (QoS 0 tokens
				// complete on the write, before the broker has read it).
				time.Sleep(300 * time.Millisecond)
				bases = append(bases, baseline(b, tc.protocol, tc.qos, n))
				time.Sleep(300 * time.Millisecond)
				if tc.outbox != nil {
					cfg.Outbox = tc.outbox(b)
				}
				r, a := tbRate(b, m.Addr, cfg, n, tc.publishers)
				rates, allocss = append(rates, r), append(allocss, a)
			}
			base, rate, allocs := median(bases), median(rates), median(allocss)
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(rate*dataPointsPerMsg, "datapoints/s")
			b.ReportMetric(base, "paho-msgs/s")
			b.ReportMetric(rate/base, "x-paho-rate")
			b.ReportMetric(allocs, "allocs/publish")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
