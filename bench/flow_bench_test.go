package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb"
)

// envInt reads a positive integer override of a benchmark parameter.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// flowRun is what one run of the workload measured.
type flowRun struct {
	rate      float64       // records per second, from "go" to the last record counted
	cpuPerRec time.Duration // CPU of the process over the same span, per record
	rssMB     float64       // peak RSS of the process
	lost      int           // records never counted
	dups      int           // records counted twice
	p50, p99  time.Duration // latency from the source to the subscriber (paced runs)
	startCPU  time.Duration // CPU from the process's start to the trigger
	runCPU    time.Duration // CPU from the trigger to the last record
	span      time.Duration // from the trigger to the last record
}

// tool starts one side's process, waits until it is connected and returns
// it with the trigger that starts its source.
type tool func(b *testing.B, br *broker, n, rate int) (p *proc, trigger func())

func tbflowTool(b *testing.B, br *broker, n, rate int) (*proc, func()) {
	answered := answerSessionLimits(b, br.Addr)
	p := startChild(b, br, n, rate, "flow")
	select {
	case <-answered:
	case <-time.After(30 * time.Second):
		b.Fatal("tbflow did not ask for its session limits")
	}
	return p, func() { fmt.Fprintln(p.stdin, "go") }
}

// pahoTool is the latency baseline: raw paho, one record per message.
func pahoTool(b *testing.B, br *broker, n, rate int) (*proc, func()) {
	p := startChild(b, br, n, rate, "paho")
	return p, func() { fmt.Fprintln(p.stdin, "go") }
}

func startChild(b *testing.B, br *broker, n, rate int, mode string) *proc {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFlowChild$")
	cmd.Env = append(os.Environ(), "TBFLOW_FLOW_ADDR="+br.Addr, "TBFLOW_FLOW_N="+strconv.Itoa(n),
		"TBFLOW_FLOW_RATE="+strconv.Itoa(rate), "TBFLOW_FLOW_MODE="+mode)
	p := startProc(b, cmd)
	p.waitLine(b, "ready", 30*time.Second)
	return p
}

// runFlow runs the workload once through one tool: n records (rate 0:
// as fast as it goes), counted at a subscriber. With freeze > 0 the broker
// is stopped (SIGSTOP) for that long from the trigger on.
func runFlow(b *testing.B, br *broker, start tool, n, rate int, freeze time.Duration) flowRun {
	sink := newRecordSink(b, br.Addr, n, nil)
	p, trigger := start(b, br, n, rate)
	defer p.stop()
	time.Sleep(300 * time.Millisecond) // let start-up work settle
	cpu0, t0 := p.cpu(), time.Now()
	if freeze > 0 {
		br.freeze(true)
	}
	trigger()
	if freeze > 0 {
		time.Sleep(freeze)
		br.freeze(false)
	}
	limit := 5*time.Minute + time.Duration(n)*time.Millisecond/10
	if rate > 0 {
		limit += time.Duration(n) * time.Second / time.Duration(rate)
	}
	sink.wait(limit)
	if rate > 0 {
		b.Logf("latency: p50 %v, p90 %v, p99 %v, p99.9 %v, max %v", sink.percentile(0.5), sink.percentile(0.9), sink.percentile(0.99), sink.percentile(0.999), sink.percentile(1))
	}
	got, dups, _, last := sink.counts()
	cpu1, rss := p.cpu(), p.peakRSS()
	r := flowRun{rssMB: rss, lost: n - got, dups: dups, p50: sink.percentile(0.50), p99: sink.percentile(0.99),
		startCPU: cpu0, runCPU: cpu1 - cpu0, span: last.Sub(t0)}
	if got > 0 {
		r.rate = float64(got) / last.Sub(t0).Seconds()
		r.cpuPerRec = (cpu1 - cpu0) / time.Duration(got)
	}
	return r
}

func load() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

// BenchmarkFlowTelemetryVsNodeRED runs the same flow workload (N records
// {temperature, humidity, seq} through a transform to
// v1/devices/me/telemetry at QoS 1 on a private mosquitto, counted by
// distinct seq at a subscriber) through tbflow (source → transform →
// tb-telemetry-out, defaults) and through Node-RED 4 (inject → function →
// function → mqtt out), one after the other in each round, and reports
// both and the ratios. TBFLOW_BENCH_FLOW_N (default 200,000) and
// TBFLOW_BENCH_ROUNDS (default 1) override the size.
func BenchmarkFlowTelemetryVsNodeRED(b *testing.B) {
	n := envInt("TBFLOW_BENCH_FLOW_N", 200_000)
	rounds := envInt("TBFLOW_BENCH_ROUNDS", 1)
	nr := nodeRED(b)
	br := startBroker(b)
	b.Logf("load before: %s", load())
	sdk, withSDK := pythonSDK(b)
	var tbs, nrs, sdks []flowRun
	for range b.N {
		for range rounds {
			tbs = append(tbs, runFlow(b, br, tbflowTool, n, 0, 0))
			nrs = append(nrs, runFlow(b, br, nr.tool, n, 0, 0))
			if withSDK {
				sdks = append(sdks, runFlow(b, br, sdk.tool, n, 0, 0))
			}
		}
	}
	b.Logf("load after: %s", load())
	if withSDK {
		s := medianRun(sdks)
		b.ReportMetric(s.rate, "sdk-records/s")
		b.ReportMetric(float64(s.cpuPerRec.Nanoseconds())/1000, "sdk-cpu-µs/record")
		b.ReportMetric(s.rssMB, "sdk-peak-rss-MB")
		b.ReportMetric(float64(sumLost(sdks)), "sdk-lost")
		b.ReportMetric(medianRun(tbs).rate/s.rate, "x-sdk-rate")
	}
	t, o := medianRun(tbs), medianRun(nrs)
	b.ReportMetric(t.rate, "records/s")
	b.ReportMetric(float64(t.cpuPerRec.Nanoseconds())/1000, "cpu-µs/record")
	b.ReportMetric(t.rssMB, "peak-rss-MB")
	b.ReportMetric(float64(sumLost(tbs)), "lost")
	b.ReportMetric(o.rate, "nodered-records/s")
	b.ReportMetric(float64(o.cpuPerRec.Nanoseconds())/1000, "nodered-cpu-µs/record")
	b.ReportMetric(o.rssMB, "nodered-peak-rss-MB")
	b.ReportMetric(float64(sumLost(nrs)), "nodered-lost")
	b.ReportMetric(t.rate/o.rate, "x-nodered-rate")
	b.ReportMetric(float64(o.cpuPerRec)/float64(max(t.cpuPerRec, 1)), "x-less-cpu-than-nodered")
	b.ReportMetric(o.rssMB/max(t.rssMB, 1), "x-less-peak-rss-than-nodered")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFlowLatency sends 1,000 records per second for 3 s (override:
// TBFLOW_BENCH_LATENCY_N records; TBFLOW_BENCH_ROUNDS rounds) through
// both flows and through a raw paho publisher (the floor the broker, the
// subscriber and the machine's scheduling set), and reports the latency
// from the source to the subscriber.
func BenchmarkFlowLatency(b *testing.B) {
	n := envInt("TBFLOW_BENCH_LATENCY_N", 3000)
	rounds := envInt("TBFLOW_BENCH_ROUNDS", 1)
	nr := nodeRED(b)
	br := startBroker(b)
	b.Logf("load before: %s", load())
	var tbs, nrs, ps []flowRun
	for range b.N {
		for range rounds {
			ps = append(ps, runFlow(b, br, pahoTool, n, 1000, 0))
			tbs = append(tbs, runFlow(b, br, tbflowTool, n, 1000, 0))
			nrs = append(nrs, runFlow(b, br, nr.tool, n, 1000, 0))
		}
	}
	b.Logf("load after: %s", load())
	t, o, p := medianRun(tbs), medianRun(nrs), medianRun(ps)
	b.ReportMetric(ms(t.p50), "p50-ms")
	b.ReportMetric(ms(t.p99), "p99-ms")
	b.ReportMetric(float64(sumLost(tbs)), "lost")
	b.ReportMetric(ms(o.p50), "nodered-p50-ms")
	b.ReportMetric(ms(o.p99), "nodered-p99-ms")
	b.ReportMetric(ms(p.p50), "paho-p50-ms")
	b.ReportMetric(ms(p.p99), "paho-p99-ms")
	b.ReportMetric(float64(o.p99)/float64(max(t.p99, 1)), "x-lower-p99-than-nodered")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFlowBurstFrozenBroker sends 1,000,000 records (override:
// TBFLOW_BENCH_BURST_N) through tbflow's flow while the broker is frozen
// (SIGSTOP) for 10 s, with the default outbox bound and with 64 MiB, and
// reports the process's peak RSS beside the bound, how far it is above
// 1.5× the bound, and the records lost once the broker runs again.
func BenchmarkFlowBurstFrozenBroker(b *testing.B) {
	n := envInt("TBFLOW_BENCH_BURST_N", 1_000_000)
	br := startBroker(b)
	for _, bound := range []int64{tb.DefaultOutboxMaxBytes, 64 << 20} {
		b.Run(fmt.Sprintf("outbox=%dMiB", bound>>20), func(b *testing.B) {
			b.Setenv("TBFLOW_FLOW_OUTBOX_BYTES", strconv.FormatInt(bound, 10))
			var runs []flowRun
			for range b.N {
				runs = append(runs, runFlow(b, br, tbflowTool, n, 0, 10*time.Second))
			}
			r := medianRun(runs)
			mib := float64(bound) / (1 << 20)
			b.ReportMetric(r.rssMB, "peak-rss-MB")
			b.ReportMetric(mib, "outbox-bound-MiB")
			b.ReportMetric(r.rssMB-1.5*float64(bound)/1e6, "MB-above-1.5x-bound")
			b.ReportMetric(float64(sumLost(runs)), "lost")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkFlowIdle runs both flows at one record per second for 60 s
// (override: TBFLOW_BENCH_IDLE_N records) and reports the CPU each process
// used to start (up to the trigger) and, as a share of one core, while
// sending, and its peak RSS.
func BenchmarkFlowIdle(b *testing.B) {
	n := envInt("TBFLOW_BENCH_IDLE_N", 60)
	nr := nodeRED(b)
	br := startBroker(b)
	var tbs, nrs []flowRun
	for range b.N {
		tbs = append(tbs, runFlow(b, br, tbflowTool, n, 1, 0))
		nrs = append(nrs, runFlow(b, br, nr.tool, n, 1, 0))
	}
	t, o := medianRun(tbs), medianRun(nrs)
	core := func(r flowRun) float64 { return 100 * r.runCPU.Seconds() / max(r.span.Seconds(), 1e-9) }
	b.ReportMetric(t.startCPU.Seconds(), "start-cpu-s")
	b.ReportMetric(core(t), "idle-cpu-%")
	b.ReportMetric(t.rssMB, "peak-rss-MB")
	b.ReportMetric(o.startCPU.Seconds(), "nodered-start-cpu-s")
	b.ReportMetric(core(o), "nodered-idle-cpu-%")
	b.ReportMetric(o.rssMB, "nodered-peak-rss-MB")
	b.ReportMetric(core(o)/max(core(t), 1e-3), "x-less-idle-cpu-than-nodered")
	b.ReportMetric(o.rssMB/max(t.rssMB, 1), "x-less-peak-rss-than-nodered")
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sumLost(rs []flowRun) int {
	n := 0
	for _, r := range rs {
		n += r.lost
	}
	return n
}

// medianRun takes each figure's median over the runs.
func medianRun(rs []flowRun) flowRun {
	pick := func(f func(flowRun) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	return flowRun{
		rate:      pick(func(r flowRun) float64 { return r.rate }),
		cpuPerRec: time.Duration(pick(func(r flowRun) float64 { return float64(r.cpuPerRec) })),
		rssMB:     pick(func(r flowRun) float64 { return r.rssMB }),
		p50:       time.Duration(pick(func(r flowRun) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r flowRun) float64 { return float64(r.p99) })),
		startCPU:  time.Duration(pick(func(r flowRun) float64 { return float64(r.startCPU) })),
		runCPU:    time.Duration(pick(func(r flowRun) float64 { return float64(r.runCPU) })),
		span:      time.Duration(pick(func(r flowRun) float64 { return float64(r.span) })),
	}
}

// nodeREDDirs are where scripts/peers.sh installs Node-RED, relative to
// this package.
var nodeREDDirs = []string{"../peers/nodered"}

type nodeREDPeer struct{ redJS string }

// nodeRED finds Node-RED's red.js and Node.js, or fails or skips as
// internal/peers does for a missing peer.
func nodeRED(b *testing.B) nodeREDPeer {
	b.Helper()
	peers.Find(b, "node", "nodejs")
	for _, d := range nodeREDDirs {
		p, _ := filepath.Abs(filepath.Join(d, "node_modules", "node-red", "red.js"))
		if _, err := os.Stat(p); err == nil {
			return nodeREDPeer{redJS: p}
		}
	}
	msg := "peer Node-RED not found: run scripts/peers.sh (npm ci in peers/nodered)"
	if peers.Required() {
		b.Fatal(msg)
	}
	b.Skip(msg)
	return nodeREDPeer{}
}

// pythonSDK is ThingsBoard's Python SDK (tb-mqtt-client) publishing the
// workload pipelined (sdk/publish.py). It is installed from PyPI, which
// scripts/peers.sh cannot reach, so it runs only when
// TBFLOW_BENCH_SDK_PATH is a PYTHONPATH where tb_device_mqtt imports.
type pythonSDKPeer struct{ path string }

func pythonSDK(b *testing.B) (pythonSDKPeer, bool) {
	path := os.Getenv("TBFLOW_BENCH_SDK_PATH")
	if path == "" {
		b.Log("Python SDK row skipped: set TBFLOW_BENCH_SDK_PATH to a PYTHONPATH with tb_device_mqtt")
		return pythonSDKPeer{}, false
	}
	cmd := exec.Command("python3", "-c", "import tb_device_mqtt")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("TBFLOW_BENCH_SDK_PATH is set but tb_device_mqtt does not import: %v\n%s", err, out)
	}
	return pythonSDKPeer{path: path}, true
}

func (s pythonSDKPeer) tool(b *testing.B, br *broker, n, rate int) (*proc, func()) {
	script, _ := filepath.Abs(filepath.Join("sdk", "publish.py"))
	cmd := exec.Command("python3", script, "127.0.0.1", strconv.Itoa(br.Port), strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+s.path)
	p := startProc(b, cmd)
	p.waitLine(b, "ready", 60*time.Second)
	return p, func() { fmt.Fprintln(p.stdin, "go") }
}
