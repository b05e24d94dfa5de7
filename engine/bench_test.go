package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/core" // inject, transform, debug
)

// The benchmarks measure the cost of one message through a chain of nodes
// and, in the same run, through a plain Go channel pipeline of the same
// shape (a goroutine per stage, buffered channels of the same capacity).
// Reported metrics: ns/op and allocs/op per message, ns/hop, msgs/s, the
// channel pipeline's ns/hop and the ratio engine/channels.

const benchInbox = 64

type nothing struct{}

type benchPass struct{ nc *engine.NodeContext }

func (n *benchPass) Start(context.Context) error { return nil }
func (n *benchPass) Stop(context.Context) error  { return nil }
func (n *benchPass) Handle(ctx context.Context, m *engine.Msg) error {
	return n.nc.Send(ctx, m)
}

// benchSink hands every message back to the producer, so the benchmark
// allocates no messages and allocs/op is the engine's own.
type benchSink struct{ free chan *engine.Msg }

func (n *benchSink) Start(context.Context) error { return nil }
func (n *benchSink) Stop(context.Context) error  { return nil }
func (n *benchSink) Handle(_ context.Context, m *engine.Msg) error {
	n.free <- m
	return nil
}

func benchRegistry(free chan *engine.Msg) *engine.Registry {
	reg := engine.DefaultRegistry().Clone()
	reg.Register(engine.Type{Name: "bench-pass", Category: "bench", Inputs: 1, Outputs: 1, Help: "Passes messages on.",
		New: engine.Construct(func(nc *engine.NodeContext, _ *nothing) (engine.Node, error) { return &benchPass{nc}, nil })})
	reg.Register(engine.Type{Name: "bench-sink", Category: "bench", Inputs: 1, Help: "Recycles messages.",
		New: engine.Construct(func(*engine.NodeContext, *nothing) (engine.Node, error) { return &benchSink{free}, nil })})
	return reg
}

func chainFlow(n int) *engine.Flow {
	f := &engine.Flow{}
	for i := range n {
		next := fmt.Sprintf("p%d", i+1)
		if i == n-1 {
			next = "sink"
		}
		f.Nodes = append(f.Nodes, &engine.NodeDef{ID: fmt.Sprintf("p%d", i), Type: "bench-pass", Wires: [][]string{{next}}})
	}
	f.Nodes = append(f.Nodes, &engine.NodeDef{ID: "sink", Type: "bench-sink"})
	return f
}

func startEngine(b *testing.B, reg *engine.Registry, f *engine.Flow) *engine.Engine {
	b.Helper()
	e := engine.New(engine.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InboxSize: benchInbox})
	if _, err := e.Deploy(context.Background(), f, "", engine.DeployFull); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

// channelPipeline moves n messages through stages goroutines connected by
// buffered channels, recycling them like the engine benchmark, and returns
// the elapsed time.
func channelPipeline(stages, n int, work func(*engine.Msg)) time.Duration {
	free := make(chan *engine.Msg, 2*benchInbox)
	for range cap(free) {
		free <- engine.NewMsg(1.0)
	}
	chans := make([]chan *engine.Msg, stages+1)
	for i := range chans {
		chans[i] = make(chan *engine.Msg, benchInbox)
	}
	for i := range stages {
		go func(in, out chan *engine.Msg) {
			for m := range in {
				if work != nil {
					work(m)
				}
				out <- m
			}
			close(out)
		}(chans[i], chans[i+1])
	}
	done := make(chan struct{})
	go func() {
		for m := range chans[stages] {
			free <- m
		}
		close(done)
	}()
	start := time.Now()
	for range n {
		chans[0] <- <-free
	}
	close(chans[0])
	<-done
	return time.Since(start)
}

func report(b *testing.B, hops int, baseline time.Duration) {
	perMsg := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	chanPerMsg := float64(baseline.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perMsg/float64(hops), "ns/hop")
	b.ReportMetric(1e9/perMsg, "msgs/s")
	b.ReportMetric(chanPerMsg/float64(hops), "chan-ns/hop")
	b.ReportMetric(perMsg/chanPerMsg, "x-chan-time")
}

// BenchmarkChain sends messages through 1, 4 and 16 pass-through nodes
// into a sink. A hop is one inbox crossed: n nodes plus the sink.
func BenchmarkChain(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			hops := n + 1
			free := make(chan *engine.Msg, 2*benchInbox)
			for range cap(free) {
				free <- engine.NewMsg(1.0)
			}
			e := startEngine(b, benchRegistry(free), chainFlow(n))
			ctx := context.Background()
			baseline := channelPipeline(n, b.N, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := e.Deliver(ctx, "p0", <-free); err != nil {
					b.Fatal(err)
				}
			}
			if err := e.WaitIdle(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			report(b, hops, baseline)
		})
	}
}

// BenchmarkInjectTransformDebug presses an inject button (a fresh
// timestamp message each time), scales the payload with an expression and
// hands it to a debug node. The channel baseline allocates a message and
// multiplies in Go.
func BenchmarkInjectTransformDebug(b *testing.B) {
	f, err := engine.ParseFlow([]byte(`[
	 {"id":"in","type":"inject","wires":[["tr"]]},
	 {"id":"tr","type":"transform","expression":"payload * 2","wires":[["dbg"]]},
	 {"id":"dbg","type":"debug","wires":[]}
	]`))
	if err != nil {
		b.Fatal(err)
	}
	e := startEngine(b, engine.DefaultRegistry(), f)
	ctx := context.Background()
	baseline := channelPipeline(2, b.N, func(m *engine.Msg) {
		if v, ok := m.Payload.(float64); ok {
			m.Payload = v * 2
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := e.Inject(ctx, "in"); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.WaitIdle(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, 2, baseline)
}
