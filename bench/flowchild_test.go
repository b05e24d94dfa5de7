package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type, as tbflow run has them
)

// The flow workload: a source sends N records {t, h, seq} (with rate > 0
// at that many per second, stamped with their send time in µs as "sent"),
// a transform turns each into {temperature, humidity, seq[, sent]}, and the
// sink publishes it to v1/devices/me/telemetry at QoS 1. tbflow runs it as
// source → transform → tb-telemetry-out (defaults), Node-RED as inject →
// function → function → mqtt out.

const (
	transformExpr        = `{"temperature": payload.t / 10, "humidity": payload.h, "seq": payload.seq}`
	transformExprLatency = `{"temperature": payload.t / 10, "humidity": payload.h, "seq": payload.seq, "sent": payload.sent}`
)

type sourceConf struct{}

// benchSource sends the workload's records when "go" arrives on stdin.
type benchSource struct {
	nc   *engine.NodeContext
	n    int
	rate int
	goCh <-chan struct{}
}

func (s *benchSource) Start(context.Context) error { return nil }
func (s *benchSource) Stop(context.Context) error  { return nil }

func (s *benchSource) Run(ctx context.Context) error {
	select {
	case <-s.goCh:
	case <-ctx.Done():
		return nil
	}
	var tick *time.Ticker
	if s.rate > 0 {
		tick = time.NewTicker(time.Second / time.Duration(s.rate))
		defer tick.Stop()
	}
	for i := 0; i < s.n; i++ {
		p := map[string]any{"t": 215.0, "h": 40, "seq": i}
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil
			}
			p["sent"] = time.Now().UnixMicro()
		}
		if err := s.nc.Send(ctx, engine.NewMsg(p)); err != nil {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// TestHelperFlowChild is the tbflow process of the flow benchmarks: the
// engine with every node type, running the workload against the broker
// at TBFLOW_FLOW_ADDR once the parent writes "go" on stdin.
func TestHelperFlowChild(t *testing.T) {
	addr := os.Getenv("TBFLOW_FLOW_ADDR")
	if addr == "" {
		t.Skip("helper process for the flow benchmarks")
	}
	n, _ := strconv.Atoi(os.Getenv("TBFLOW_FLOW_N"))
	rate, _ := strconv.Atoi(os.Getenv("TBFLOW_FLOW_RATE"))
	host, port, _ := strings.Cut(addr, ":")
	goCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "go" {
				close(goCh)
				break
			}
		}
		_, _ = io.Copy(io.Discard, os.Stdin)
	}()
	if os.Getenv("TBFLOW_FLOW_MODE") == "paho" {
		pahoChild(addr, n, rate, goCh)
		return
	}
	reg := engine.DefaultRegistry().Clone()
	reg.Register(engine.Type{Name: "bench-source", Category: "bench", Outputs: 1, Help: "Sends the benchmark's records.",
		New: engine.Construct(func(nc *engine.NodeContext, _ *sourceConf) (engine.Node, error) {
			return &benchSource{nc: nc, n: n, rate: rate, goCh: goCh}, nil
		})})
	outbox, batching := "", ""
	if v := os.Getenv("TBFLOW_FLOW_OUTBOX_BYTES"); v != "" {
		outbox = `,"outboxMaxBytes":` + v
	}
	if v := os.Getenv("TBFLOW_FLOW_BATCHING"); v != "" {
		batching = fmt.Sprintf(`,"batching":%q`, v) // adaptive (default) or linger
	}
	expr := transformExpr
	if rate > 0 {
		expr = transformExprLatency
	}
	f, err := engine.ParseFlow(fmt.Appendf(nil, `[
	 {"id":"conn","type":"tb-connection","host":%q,"port":%s,"mode":"device","accessToken":"bench"%s},
	 {"id":"src","type":"bench-source","wires":[["tr"]]},
	 {"id":"tr","type":"transform","expression":%q,"wires":[["out"]]},
	 {"id":"out","type":"tb-telemetry-out","connection":"conn"%s}
	]`, host, port, outbox, expr, batching))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	e := engine.New(engine.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if _, err := e.Deploy(context.Background(), f, "", engine.DeployFull); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if path := os.Getenv("TBFLOW_FLOW_CPUPROFILE"); path != "" {
		// A CPU profile of the run, from "go" until the parent ends it.
		<-goCh
		if pf, err := os.Create(path); err == nil && pprof.StartCPUProfile(pf) == nil {
			<-term
			pprof.StopCPUProfile()
			pf.Close()
			os.Exit(0)
		}
	}
	<-term // the parent ends the process once it has counted the records
	os.Exit(0)
}

// pahoChild is the latency baseline: a raw paho client publishing the
// transform's output records, one per QoS 1 message, at the same pace,
// without a flow, an outbox or batching.
func pahoChild(addr string, n, rate int, goCh <-chan struct{}) {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("paho-%d", time.Now().UnixNano())).SetCleanSession(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		fmt.Println("error", tok.Error())
		os.Exit(1)
	}
	fmt.Println("ready")
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-goCh
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	for i := 0; i < n; i++ {
		if rate > 0 {
			<-tick.C
		}
		p := fmt.Appendf(nil, `{"humidity":40,"sent":%d,"seq":%d,"temperature":21.5}`, time.Now().UnixMicro(), i)
		c.Publish("v1/devices/me/telemetry", 1, false, p)
	}
	<-term
	os.Exit(0)
}
