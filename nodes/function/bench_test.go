package function

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

type nothing struct{}

// benchSink hands every message back to the producer.
type benchSink struct{ free chan *engine.Msg }

func (n *benchSink) Start(context.Context) error { return nil }
func (n *benchSink) Stop(context.Context) error  { return nil }
func (n *benchSink) Handle(_ context.Context, m *engine.Msg) error {
	n.free <- m
	return nil
}

// throughput sends n messages through node typ (with settings) into a
// sink and returns the time per message.
func throughput(b *testing.B, typ string, settings map[string]any, n int) time.Duration {
	free := make(chan *engine.Msg, 128)
	reg := engine.DefaultRegistry().Clone()
	reg.Register(engine.Type{Name: "bench-sink", Category: "bench", Inputs: 1, Help: "Recycles messages.",
		New: engine.Construct(func(*engine.NodeContext, *nothing) (engine.Node, error) { return &benchSink{free}, nil })})
	f := &engine.Flow{Nodes: []*engine.NodeDef{
		{ID: "t", Type: "tab"},
		{ID: "p", Type: typ, Z: "t", Fields: settings, Wires: [][]string{{"sink"}}},
		{ID: "sink", Type: "bench-sink", Z: "t"},
	}}
	e := engine.New(engine.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InboxSize: 64})
	ctx := context.Background()
	if _, err := e.Deploy(ctx, f, "", engine.DeployFull); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(ctx)
	for range 64 {
		free <- engine.NewMsg(1.0)
	}
	start := time.Now()
	for range n {
		m := <-free
		m.Payload = 1.0
		if err := e.Deliver(ctx, "p", m); err != nil {
			b.Fatal(err)
		}
	}
	for range 64 {
		<-free
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkTrivialFunction measures `msg.payload = msg.payload * 2;
// return msg;` per message and, in the same run, transform's
// `payload * 2` as the baseline; it reports both and their ratio.
func BenchmarkTrivialFunction(b *testing.B) {
	b.ReportAllocs()
	n := max(b.N, 1)
	base := throughput(b, "transform", map[string]any{"expression": "payload * 2"}, n)
	b.ResetTimer()
	fn := throughput(b, "function", map[string]any{"func": "msg.payload = msg.payload * 2;\nreturn msg;"}, n)
	b.StopTimer()
	b.ReportMetric(float64(fn.Nanoseconds()), "ns/msg")
	b.ReportMetric(float64(base.Nanoseconds()), "baseline-transform-ns/msg")
	b.ReportMetric(float64(fn)/float64(base), "x-transform-time")
}
