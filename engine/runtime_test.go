package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSingleWirePassesMessageFanOutCopies(t *testing.T) {
	reg, te := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	deploy(t, e, `[
	 {"id":"a","type":"pass","wires":[["one"]]},
	 {"id":"b","type":"pass","wires":[["k1","k2","k3"]]},
	 {"id":"one","type":"sink"},{"id":"k1","type":"sink"},{"id":"k2","type":"sink"},{"id":"k3","type":"sink"}
	]`, DeployFull)
	m := NewMsg(map[string]any{"v": 1.0})
	if err := e.Deliver(context.Background(), "a", m); err != nil {
		t.Fatal(err)
	}
	f := NewMsg(map[string]any{"v": 2.0})
	if err := e.Deliver(context.Background(), "b", f); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, e)
	if got := te.sink("one").got(); len(got) != 1 || got[0] != m {
		t.Fatalf("single wire: got %v, want the same message object", got)
	}
	a, b, c := te.sink("k1").got()[0], te.sink("k2").got()[0], te.sink("k3").got()[0]
	if a == b || b == c || a == c {
		t.Fatal("fan-out receivers share a message object")
	}
	a.Payload.(map[string]any)["v"] = 99.0
	if b.Payload.(map[string]any)["v"] != 2.0 || c.Payload.(map[string]any)["v"] != 2.0 {
		t.Fatal("fan-out copies share a payload map")
	}
	if a.ID != f.ID || b.ID != f.ID {
		t.Fatal("copies lost the message id")
	}
}

func TestDisabledNodesDoNotRun(t *testing.T) {
	reg, te := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	deploy(t, e, `[
	 {"id":"a","type":"pass","wires":[["off","on"]]},
	 {"id":"off","type":"sink","d":true},{"id":"on","type":"sink"}
	]`, DeployFull)
	e.Deliver(context.Background(), "a", NewMsg(1.0))
	waitIdle(t, e)
	if te.sink("off") != nil {
		t.Fatal("a disabled node was constructed")
	}
	if len(te.sink("on").got()) != 1 {
		t.Fatal("message did not reach the enabled node")
	}
	if err := e.Deliver(context.Background(), "off", NewMsg(1.0)); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("delivering to a disabled node: %v", err)
	}
}

// The burst test: a source pushes 1,000,000 messages at a sink that is
// slower than it; memory must stay bounded because inboxes are bounded.
func TestBurstIntoSlowSinkKeepsMemoryBounded(t *testing.T) {
	const total = 1_000_000
	reg, te := newTestRegistry(t)
	var handled atomic.Int64
	var peak atomic.Uint64
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			p := peak.Load()
			if ms.HeapInuse <= p || peak.CompareAndSwap(p, ms.HeapInuse) {
				return
			}
		}
	}
	te.slow = func(*Msg) {
		n := handled.Add(1)
		if n%1000 == 0 {
			time.Sleep(time.Millisecond) // much slower than the source
		}
	}
	e := newTestEngine(t, reg, Options{InboxSize: 64})
	deploy(t, e, `[
	 {"id":"a","type":"pass","wires":[["b"]]},
	 {"id":"b","type":"pass","wires":[["k"]]},
	 {"id":"k","type":"sink"}
	]`, DeployFull)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	ctx := context.Background()
	for i := range total {
		// every message carries a 100-byte payload: unbounded queues would
		// hold ~150 MB at the peak of the burst
		if err := e.Deliver(ctx, "a", &Msg{ID: "m", Payload: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
		if i%100_000 == 0 {
			sample()
		}
	}
	waitIdle(t, e)
	sample()
	if handled.Load() != total {
		t.Fatalf("sink handled %d messages, want %d", handled.Load(), total)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use: base %d KiB, peak %d KiB", base.HeapInuse>>10, peak.Load()>>10)
	if growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB during the burst; backpressure is not bounding memory", growth>>20)
	}
	c, _ := e.Counters("k")
	if c.In != total || c.QueueCap != 64 {
		t.Fatalf("sink counters = %+v", c)
	}
}

func TestHotDeployKeepsUnchangedConfigNode(t *testing.T) {
	reg, te := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	const v1 = `[
	 {"id":"c1","type":"conn","host":"h1"},
	 {"id":"u1","type":"user","connection":"c1","wires":[["k"]]},
	 {"id":"u2","type":"user","connection":"c1","n":2,"wires":[["k"]]},
	 {"id":"k","type":"sink"}
	]`
	deploy(t, e, v1, DeployFull)
	connStarts := te.counter(te.starts, "c1")
	connStops := te.counter(te.stops, "c1")
	waitFor(t, func() bool { return connStarts.Load() >= 1 })
	if connStarts.Load() != 1 {
		t.Fatalf("config node started %d times, want 1", connStarts.Load())
	}
	u2before := te.users["u2"]

	// change one user node only
	data := deploy(t, e, strings.Replace(v1, `"n":2`, `"n":3`, 1), DeployModified)
	if connStarts.Load() != 1 || connStops.Load() != 0 {
		t.Fatalf("unchanged config node restarted: starts %d stops %d", connStarts.Load(), connStops.Load())
	}
	if strings.Join(data.Stopped, ",") != "u2" || strings.Join(data.Started, ",") != "u2" {
		t.Fatalf("deploy stopped %v and started %v, want only u2", data.Stopped, data.Started)
	}
	if te.users["u2"] == u2before || te.users["u2"].conn != u2before.conn {
		t.Fatal("the new u2 does not share the kept connection")
	}
	// the flow still works end to end
	e.Deliver(context.Background(), "u1", NewMsg(1.0))
	e.Deliver(context.Background(), "u2", NewMsg(2.0))
	waitIdle(t, e)
	if n := len(te.sink("k").got()); n != 2 {
		t.Fatalf("sink got %d messages, want 2", n)
	}

	// moving a node in the editor changes nothing
	data = deploy(t, e, strings.Replace(v1, `"n":2`, `"n":3,"x":500`, 1), DeployModified)
	if len(data.Stopped) != 0 || len(data.Started) != 0 {
		t.Fatalf("a position change restarted %v", data.Started)
	}

	// changing the config node restarts it and its users
	data = deploy(t, e, strings.Replace(v1, `"host":"h1"`, `"host":"h2"`, 1), DeployModified)
	waitFor(t, func() bool { return connStarts.Load() >= 2 })
	if connStarts.Load() != 2 || connStops.Load() != 1 {
		t.Fatalf("changed config node: starts %d stops %d, want 2 and 1", connStarts.Load(), connStops.Load())
	}
	if !contains(data.Stopped, "u1") || !contains(data.Stopped, "u2") || contains(data.Stopped, "k") {
		t.Fatalf("stopped %v, want the users of c1 and not the sink", data.Stopped)
	}

	// a full deploy restarts everything
	deploy(t, e, strings.Replace(v1, `"host":"h1"`, `"host":"h2"`, 1), DeployFull)
	waitFor(t, func() bool { return connStarts.Load() >= 3 })
	if connStarts.Load() != 3 {
		t.Fatalf("full deploy: config node started %d times, want 3", connStarts.Load())
	}

	// removing the last user stops the shared config node
	deploy(t, e, `[{"id":"c1","type":"conn","host":"h2"},{"id":"k","type":"sink"}]`, DeployModified)
	if connStops.Load() != 3 {
		t.Fatalf("config node without users: stops %d, want 3", connStops.Load())
	}
	// and using it again starts a fresh instance
	deploy(t, e, strings.Replace(v1, `"host":"h1"`, `"host":"h2"`, 1), DeployModified)
	waitFor(t, func() bool { return connStarts.Load() >= 4 })
	if connStarts.Load() != 4 {
		t.Fatalf("config node used again: starts %d, want 4", connStarts.Load())
	}
}

// waitFor polls cond; the limit only guards against hangs.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestHotDeployKeepsQueuedMessages(t *testing.T) {
	reg, te := newTestRegistry(t)
	gate := make(chan struct{})
	var handled atomic.Int32
	te.slow = func(*Msg) {
		<-gate
		handled.Add(1)
	}
	e := newTestEngine(t, reg, Options{InboxSize: 16})
	deploy(t, e, `[{"id":"a","type":"pass","wires":[["k"]]},{"id":"k","type":"sink","name":"v1"}]`, DeployFull)
	for range 10 {
		e.Deliver(context.Background(), "a", NewMsg(1.0))
	}
	old := e.graph.Load().runners["k"]
	waitFor(t, func() bool { return len(old.slot.inbox) == 9 }) // the sink holds the first
	// a deploy that replaces the sink must not lose what is queued for it
	done := make(chan struct{})
	go func() {
		defer close(done)
		deploy(t, e, `[{"id":"a","type":"pass","wires":[["k"]]},{"id":"k","type":"sink","name":"v2"}]`, DeployModified)
	}()
	waitFor(t, func() bool { return len(old.stop) == 1 })
	close(gate)
	<-done
	waitIdle(t, e)
	c, _ := e.Counters("k")
	if c.In != 10 || c.Dropped != 0 || handled.Load() != 10 {
		t.Fatalf("sink counters after the deploy = %+v, handled %d; want 10 in, 10 handled, none dropped", c, handled.Load())
	}
	if e.graph.Load().runners["k"] == old {
		t.Fatal("the sink was not replaced")
	}
}

func TestDeployRevisionConflict(t *testing.T) {
	reg, _ := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	_, rev0 := e.Flows()
	rev1, err := e.Deploy(context.Background(), mustParse(t, `[{"id":"k","type":"sink"}]`), rev0, DeployModified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Deploy(context.Background(), mustParse(t, `[]`), rev0, DeployModified); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale deploy: %v, want ErrConflict", err)
	}
	if _, got := e.Flows(); got != rev1 {
		t.Fatalf("rev = %q, want %q", got, rev1)
	}
	_, err = e.Deploy(context.Background(), mustParse(t, `[{"id":"k","type":"nope"}]`), rev1, DeployModified)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Fatalf("invalid deploy: %v", err)
	}
	if _, got := e.Flows(); got != rev1 {
		t.Fatal("an invalid deploy changed the revision")
	}
}

// flakyNode fails Start and Handle a few times.
type flakyNode struct {
	nc          *NodeContext
	startFails  atomic.Int32
	handleFails atomic.Int32
	stops       atomic.Int32
}

func (n *flakyNode) Start(context.Context) error {
	if n.startFails.Add(-1) >= 0 {
		return errors.New("broker unreachable")
	}
	return nil
}
func (n *flakyNode) Stop(context.Context) error { n.stops.Add(1); return nil }
func (n *flakyNode) Handle(ctx context.Context, m *Msg) error {
	if n.handleFails.Add(-1) >= 0 {
		return fmt.Errorf("publishing: %w", ErrNotConnected)
	}
	return n.nc.Send(ctx, m)
}

func TestEngineRetriesStartAndNotConnected(t *testing.T) {
	reg, te := newTestRegistry(t)
	var flaky *flakyNode
	reg.Register(Type{Name: "flaky", Category: "test", Inputs: 1, Outputs: 1, Help: "Fails at first.",
		New: Construct(func(nc *NodeContext, _ *emptyConfig) (Node, error) {
			flaky = &flakyNode{nc: nc}
			flaky.startFails.Store(2)
			flaky.handleFails.Store(3)
			return flaky, nil
		})})
	e := newTestEngine(t, reg, Options{})
	status := e.Subscribe("status/f", 100)
	errs := e.Subscribe(TopicError, 100)
	deploy(t, e, `[{"id":"f","type":"flaky","wires":[["k"]]},{"id":"k","type":"sink"}]`, DeployFull)
	e.Deliver(context.Background(), "f", NewMsg("x"))
	waitIdle(t, e)
	if got := te.sink("k").got(); len(got) != 1 || got[0].Payload != "x" {
		t.Fatalf("sink got %v, want the one message after the retries", got)
	}
	if n := len(errs.C); n != 2 {
		t.Fatalf("%d error events, want 2 (the failed starts)", n)
	}
	ev := <-status.C
	if s := ev.Data.(Status); s.Fill != "red" || !strings.Contains(s.Text, "broker unreachable") {
		t.Fatalf("first status = %+v", s)
	}
}

// stubbornNode ignores Stop's deadline until its ctx is cancelled.
type stubbornNode struct{ stopped chan struct{} }

func (n *stubbornNode) Start(context.Context) error { return nil }
func (n *stubbornNode) Stop(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}
func (n *stubbornNode) Handle(ctx context.Context, _ *Msg) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestStopDeadline(t *testing.T) {
	reg, _ := newTestRegistry(t)
	reg.Register(Type{Name: "stubborn", Category: "test", Inputs: 1, Help: "Takes its time.",
		New: Construct(func(*NodeContext, *emptyConfig) (Node, error) { return &stubbornNode{}, nil })})
	e := New(Options{Registry: reg, Logger: quietLogger(), StopTimeout: 20 * time.Millisecond})
	deploy(t, e, `[{"id":"s","type":"stubborn"}]`, DeployFull)
	e.Deliver(context.Background(), "s", NewMsg(1.0))
	e.Deliver(context.Background(), "s", NewMsg(2.0))
	err := e.Stop(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want the deadline error of the stubborn node", err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	if _, err := e.Deploy(context.Background(), &Flow{}, "", DeployFull); !errors.Is(err, ErrStopped) {
		t.Fatalf("deploy after stop: %v", err)
	}
}

func TestGracefulStopDrainsQueues(t *testing.T) {
	reg, te := newTestRegistry(t)
	te.slow = func(*Msg) { time.Sleep(10 * time.Microsecond) }
	e := New(Options{Registry: reg, Logger: quietLogger(), InboxSize: 100})
	deploy(t, e, `[{"id":"a","type":"pass","wires":[["b"]]},{"id":"b","type":"pass","wires":[["k"]]},{"id":"k","type":"sink"}]`, DeployFull)
	for range 250 {
		e.Deliver(context.Background(), "a", NewMsg(1.0))
	}
	k := e.graph.Load().runners["k"].slot
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.done.Load() != 250 || k.dropped.Load() != 0 {
		t.Fatalf("sink finished %d and dropped %d of 250 messages", k.done.Load(), k.dropped.Load())
	}
}

func TestEventsAndSubscriptions(t *testing.T) {
	reg, _ := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	all := e.Subscribe("#", 100)
	st := e.Subscribe("status/+", 100)
	one := e.Subscribe("status/a", 100)
	var got []string
	cancel := e.SubscribeFunc("deploy", func(ev Event) { got = append(got, ev.Data.(*DeployData).Rev) })
	rev := deploy(t, e, `[{"id":"a","type":"pass"},{"id":"b","type":"pass"}]`, DeployFull).Rev
	g := e.graph.Load()
	g.runners["a"].nc.Status(StatusConnected)
	g.runners["b"].nc.Status(StatusConnecting)
	g.runners["b"].nc.Debug("payload", 1)
	cancel()
	if len(got) != 1 || got[0] != rev {
		t.Fatalf("deploy callback got %v", got)
	}
	if len(st.C) != 2 || len(one.C) != 1 || len(all.C) != 4 {
		t.Fatalf("events: status/+ %d, status/a %d, # %d; want 2, 1, 4", len(st.C), len(one.C), len(all.C))
	}
	if ev := <-one.C; ev.Node.ID != "a" || ev.Data.(Status) != StatusConnected {
		t.Fatalf("status/a event = %+v", ev)
	}
	if s := e.Statuses(); s["b"] != StatusConnecting {
		t.Fatalf("statuses = %v", s)
	}
	one.Close()
	one.Close()
	if _, open := <-one.C; open {
		t.Fatal("closed subscription channel is still open")
	}
	small := e.Subscribe("debug", 1)
	g.runners["b"].nc.Debug("payload", 1)
	g.runners["b"].nc.Debug("payload", 2)
	if small.Dropped() != 1 {
		t.Fatalf("a full subscription dropped %d events, want 1", small.Dropped())
	}
}

func TestMatchTopic(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"#", "status/a", true}, {"status/#", "status/a", true}, {"status/+", "status/a", true},
		{"status/+", "status/a/b", false}, {"status/a", "status/b", false}, {"debug", "debug", true},
		{"debug", "debug/x", false}, {"+", "debug", true}, {"status/n1", "status/n1", true},
		{"debug", "error", false}, {"status/#", "debug", false}, {"status", "status/n1", false},
	}
	for _, c := range cases {
		if got := MatchTopic(strings.Split(c.pattern, "/"), strings.Split(c.topic, "/")); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pattern, c.topic, got)
		}
	}
}

func TestPrometheusMetrics(t *testing.T) {
	reg, _ := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{InboxSize: 8})
	deploy(t, e, `[{"id":"a","type":"pass","wires":[["k","k2"]]},{"id":"k","type":"sink"},{"id":"k2","type":"sink"}]`, DeployFull)
	for range 5 {
		e.Deliver(context.Background(), "a", NewMsg(1.0))
	}
	waitIdle(t, e)
	pr := prometheus.NewPedanticRegistry()
	if err := pr.Register(e); err != nil {
		t.Fatal(err)
	}
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "node_id" {
					key += "{" + l.GetValue() + "}"
				}
			}
			if c := m.GetCounter(); c != nil {
				vals[key] = c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				vals[key] = g.GetValue()
			}
		}
	}
	want := map[string]float64{
		"tbflow_node_messages_in_total{a}":  5,
		"tbflow_node_messages_out_total{a}": 10,
		"tbflow_node_messages_in_total{k2}": 5,
		"tbflow_node_queue_depth{k}":        0,
		"tbflow_node_queue_capacity{k}":     8,
		"tbflow_node_errors_total{a}":       0,
	}
	for k, v := range want {
		if got, ok := vals[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

func TestConstructFailureLeavesFlowRunning(t *testing.T) {
	reg, te := newTestRegistry(t)
	reg.Register(Type{Name: "broken", Category: "test", Inputs: 1, Help: "Cannot be built.",
		New: Construct(func(*NodeContext, *emptyConfig) (Node, error) { return nil, errors.New("no such serial port") })})
	e := newTestEngine(t, reg, Options{})
	deploy(t, e, `[{"id":"a","type":"pass","wires":[["k"]]},{"id":"k","type":"sink"}]`, DeployFull)
	_, err := e.Deploy(context.Background(), mustParse(t, `[{"id":"a","type":"pass","wires":[["b"]]},{"id":"b","type":"broken"}]`), "", DeployModified)
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Problems[0].String(), `node "b" (broken): no such serial port`) {
		t.Fatalf("deploy error = %v", err)
	}
	e.Deliver(context.Background(), "a", NewMsg(1.0))
	waitIdle(t, e)
	if len(te.sink("k").got()) != 1 {
		t.Fatal("the old flow stopped running after a failed deploy")
	}
}

// ShowStatus sends a status event only when the text shown changes.
func TestShowStatusSkipsTheShownText(t *testing.T) {
	reg, _ := newTestRegistry(t)
	e := newTestEngine(t, reg, Options{})
	st := e.Subscribe("status/a", 100)
	deploy(t, e, `[{"id":"a","type":"pass"}]`, DeployFull)
	nc := e.graph.Load().runners["a"].nc
	nc.ShowStatus(StatusConnected)
	nc.ShowStatus(StatusConnected)
	nc.ShowStatus(StatusError(errors.New("gone")))
	nc.ShowStatus(StatusError(errors.New("gone")))
	nc.ShowStatus(StatusConnected)
	var texts []string
	for len(st.C) > 0 {
		texts = append(texts, (<-st.C).Data.(Status).Text)
	}
	if want := []string{StatusConnected.Text, "error: gone", StatusConnected.Text}; !slices.Equal(texts, want) {
		t.Fatalf("status events %q, want %q", texts, want)
	}
}
