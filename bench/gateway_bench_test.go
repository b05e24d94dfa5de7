package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb"
)

// The load of BenchmarkGatewayLoad: devices × one record per second for a
// duration. TBFLOW_BENCH_DEVICES / TBFLOW_BENCH_SEPARATE /
// TBFLOW_BENCH_DURATION override the defaults (10,000 sub-devices, 10,000
// separate connections, 60 s).
func loadParams() (devices, separate int, duration time.Duration) {
	devices, separate, duration = 10_000, 10_000, time.Minute
	if v, err := strconv.Atoi(os.Getenv("TBFLOW_BENCH_DEVICES")); err == nil && v > 0 {
		devices = v
	}
	if v, err := strconv.Atoi(os.Getenv("TBFLOW_BENCH_SEPARATE")); err == nil && v > 0 {
		separate = v
	}
	if v, err := time.ParseDuration(os.Getenv("TBFLOW_BENCH_DURATION")); err == nil && v > 0 {
		duration = v
	}
	return
}

// TestHelperLoadChild is the process whose CPU time and peak RSS
// BenchmarkGatewayLoad measures: one gateway carrying N sub-devices, or N
// separate tb.Device connections, each device sending one record per
// second.
func TestHelperLoadChild(t *testing.T) {
	mode := os.Getenv("TBFLOW_LOAD_MODE")
	if mode == "" {
		t.Skip("helper process for BenchmarkGatewayLoad")
	}
	addr := os.Getenv("TBFLOW_LOAD_ADDR")
	n, _ := strconv.Atoi(os.Getenv("TBFLOW_LOAD_N"))
	dur, _ := time.ParseDuration(os.Getenv("TBFLOW_LOAD_DURATION"))
	host, port, _ := strings.Cut(addr, ":")
	p, _ := strconv.Atoi(port)
	cfg := tb.Config{Host: host, Port: p, AccessToken: "load", SkipSessionLimits: true, MaxInflight: 1000}
	ctx := context.Background()
	var planned, sent, failed, acked atomic.Int64
	var wg sync.WaitGroup
	name := func(i int) string { return fmt.Sprintf("device-%05d", i) }
	switch mode {
	case "gateway":
		g, err := tb.ConnectGateway(ctx, cfg)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		var acks []*tb.Ack
		for i := 0; i < n; i++ {
			a, err := g.ConnectDevice(ctx, name(i), "load")
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			acks = append(acks, a)
		}
		for _, a := range acks {
			_ = a.Wait(ctx)
		}
		fmt.Println("ready")
		planned.Add(int64(n) * ticksIn(dur))
		tick := time.NewTicker(time.Second)
		for k := int64(0); k < ticksIn(dur); k++ {
			if k > 0 {
				<-tick.C
			}
			now := time.Now()
			batch := make(map[string]any, n)
			for i := 0; i < n; i++ {
				batch[name(i)] = tb.Telemetry{Ts: now, Values: map[string]any{"temperature": 20 + i%10, "humidity": 40}}
			}
			a, err := g.PublishTelemetryBatch(ctx, batch)
			if err != nil {
				fmt.Println("error", err)
				failed.Add(int64(n))
				continue
			}
			sent.Add(int64(n))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a.Wait(ctx) == nil {
					acked.Add(int64(n))
				}
			}()
		}
		tick.Stop()
		wg.Wait()
		_ = g.Close(ctx)
	case "devices":
		devs := make([]*tb.Device, n)
		sem := make(chan struct{}, 64)
		for i := 0; i < n; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c := cfg
				c.ClientID = name(i)
				d, err := tb.Connect(ctx, c)
				if err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
				devs[i] = d
			}()
		}
		wg.Wait()
		fmt.Println("ready")
		planned.Add(int64(n) * ticksIn(dur))
		for i, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * time.Second / time.Duration(n)) // spread over the second
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				// Acknowledgements are collected as they complete, never
				// waited for between ticks (as the gateway's are), so a slow
				// acknowledgement does not skip a record.
				var pending []*tb.Ack
				settle := func(wait bool) {
					for len(pending) > 0 {
						a := pending[0]
						if !wait {
							select {
							case <-a.Done():
							default:
								return
							}
						}
						if a.Wait(ctx) == nil {
							acked.Add(1)
						}
						pending = pending[1:]
					}
				}
				for k := int64(0); k < ticksIn(dur); k++ {
					now := time.Now()
					a, err := d.PublishTelemetry(ctx, tb.Telemetry{Ts: now, Values: map[string]any{"temperature": 20 + i%10, "humidity": 40}})
					if err != nil {
						failed.Add(1)
					} else {
						sent.Add(1)
						pending = append(pending, a)
					}
					settle(false)
					if k+1 < ticksIn(dur) {
						<-tick.C
					}
				}
				settle(true)
			}()
		}
		wg.Wait()
		for _, d := range devs {
			_ = d.Close(ctx)
		}
	}
	fmt.Printf("done planned=%d sent=%d failed=%d acked=%d\n", planned.Load(), sent.Load(), failed.Load(), acked.Load())
	os.Exit(0)
}

// recordCounter subscribes to the telemetry topics and counts records.
func recordCounter(b *testing.B, addr string) (*atomic.Int64, func()) {
	var n atomic.Int64
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("record-counter").SetCleanSession(true).SetOrderMatters(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	tok := c.SubscribeMultiple(map[string]byte{"v1/gateway/telemetry": 1, "v1/devices/me/telemetry": 1}, func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() == "v1/devices/me/telemetry" {
			n.Add(1)
			return
		}
		var byDev map[string][]json.RawMessage
		if json.Unmarshal(m.Payload(), &byDev) == nil {
			for _, recs := range byDev {
				n.Add(int64(len(recs)))
			}
		}
	})
	tok.Wait()
	return &n, func() { c.Disconnect(100) }
}

// ticksIn is the number of one-second ticks, hence records per device, in
// a load of duration d.
func ticksIn(d time.Duration) int64 { return max(int64((d+time.Second-1)/time.Second), 1) }

// loadResult accounts for every planned record: planned = sent + failed
// (Publish refused it); sent = acked + unacked; delivered counts the
// records the subscriber saw, lost = sent - delivered.
type loadResult struct {
	cpu                          time.Duration
	rssMB                        float64
	planned, sent, failed, acked int64
	delivered                    int64
}

func (r loadResult) lost() int64 { return max(r.sent-r.delivered, 0) }

func runLoad(b *testing.B, addr, mode string, n int, dur time.Duration) loadResult {
	counter, stop := recordCounter(b, addr)
	defer stop()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLoadChild$")
	cmd.Env = append(os.Environ(), "TBFLOW_LOAD_MODE="+mode, "TBFLOW_LOAD_ADDR="+addr,
		"TBFLOW_LOAD_N="+strconv.Itoa(n), "TBFLOW_LOAD_DURATION="+dur.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var res loadResult
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "done ") {
			fmt.Sscanf(line, "done planned=%d sent=%d failed=%d acked=%d", &res.planned, &res.sent, &res.failed, &res.acked)
		} else if strings.HasPrefix(line, "error") {
			b.Logf("%s child: %s", mode, line)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s child: %v", mode, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res.rssMB = float64(ru.Maxrss) / 1024
	deadline := time.Now().Add(30 * time.Second)
	for counter.Load() < res.sent && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	res.delivered = counter.Load()
	return res
}

// BenchmarkGatewayLoad measures one gateway carrying many sub-devices, each
// sending one record per second, against Debian's mosquitto, beside the
// same per-device load sent by separate tb.Device connections. It reports
// CPU seconds and peak RSS of the sending process and the records lost.
func BenchmarkGatewayLoad(b *testing.B) {
	devices, separate, dur := loadParams()
	m := peers.StartMosquitto(b, peers.MosquittoConfig{})
	for i := 0; i < b.N; i++ {
		gw := runLoad(b, m.Addr, "gateway", devices, dur)
		sep := runLoad(b, m.Addr, "devices", separate, dur)
		b.ReportMetric(float64(devices), "gw-devices")
		b.ReportMetric(gw.cpu.Seconds(), "gw-cpu-s")
		b.ReportMetric(gw.cpu.Seconds()/dur.Seconds(), "gw-cores")
		b.ReportMetric(gw.rssMB, "gw-peak-rss-MB")
		reportAccounting(b, "gw-", gw)
		b.ReportMetric(float64(separate), "baseline-devices")
		b.ReportMetric(sep.cpu.Seconds(), "baseline-cpu-s")
		b.ReportMetric(sep.rssMB, "baseline-peak-rss-MB")
		reportAccounting(b, "baseline-", sep)
		b.Logf("gateway: planned %d = sent %d + failed %d; sent = acked %d + unacked %d; delivered %d, lost %d",
			gw.planned, gw.sent, gw.failed, gw.acked, gw.sent-gw.acked, gw.delivered, gw.lost())
		b.Logf("separate connections: planned %d = sent %d + failed %d; sent = acked %d + unacked %d; delivered %d, lost %d",
			sep.planned, sep.sent, sep.failed, sep.acked, sep.sent-sep.acked, sep.delivered, sep.lost())
		// CPU per record, separate connections over the gateway.
		perGw := gw.cpu.Seconds() / float64(max(gw.delivered, 1))
		perSep := sep.cpu.Seconds() / float64(max(sep.delivered, 1))
		b.ReportMetric(perSep/perGw, "x-less-cpu")
		b.ReportMetric(0, "ns/op")
	}
}

// reportAccounting reports where every planned record went.
func reportAccounting(b *testing.B, prefix string, r loadResult) {
	b.ReportMetric(float64(r.planned), prefix+"planned")
	b.ReportMetric(float64(r.sent), prefix+"sent")
	b.ReportMetric(float64(r.failed), prefix+"failed")
	b.ReportMetric(float64(r.acked), prefix+"acked")
	b.ReportMetric(float64(r.delivered), prefix+"records")
	b.ReportMetric(float64(r.lost()), prefix+"lost")
}
