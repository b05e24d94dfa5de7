package engine

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test node types, registered in a registry of their own.

type emptyConfig struct{}

type passNode struct{ nc *NodeContext }

func (n *passNode) Start(context.Context) error { return nil }
func (n *passNode) Stop(context.Context) error  { return nil }
func (n *passNode) Handle(ctx context.Context, m *Msg) error {
	return n.nc.Send(ctx, m)
}

type sinkNode struct {
	mu   sync.Mutex
	msgs []*Msg
	// each, when set, is called for every message (a slow sink sleeps).
	each func(*Msg)
}

func (n *sinkNode) Start(context.Context) error { return nil }
func (n *sinkNode) Stop(context.Context) error  { return nil }
func (n *sinkNode) Handle(_ context.Context, m *Msg) error {
	if n.each != nil {
		n.each(m)
		return nil
	}
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	n.mu.Unlock()
	return nil
}

func (n *sinkNode) got() []*Msg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Msg(nil), n.msgs...)
}

type connConfig struct {
	Host  string `json:"host"`
	Token string `json:"token"`
}

// connNode is a config node that counts its starts and stops.
type connNode struct {
	conf    *connConfig
	starts  *atomic.Int32
	stops   *atomic.Int32
	stopped bool
}

func (n *connNode) Start(context.Context) error { n.starts.Add(1); return nil }
func (n *connNode) Stop(context.Context) error {
	if !n.stopped {
		n.stopped = true
		n.stops.Add(1)
	}
	return nil
}

type userRow struct {
	Name string `json:"name"`
	Conn string `json:"conn"`
}

type userConfig struct {
	Connection string    `json:"connection"`
	Cond       string    `json:"cond"`
	Mode       string    `json:"mode"`
	N          int       `json:"n"`
	Rows       []userRow `json:"rows"`
	Every      Duration  `json:"every"`
	Scale      float64   `json:"scale"`
	Extra      any       `json:"extra"`
}

type userNode struct {
	passNode
	conn *connNode
}

// testEnv is what the test types record into.
type testEnv struct {
	mu     sync.Mutex
	sinks  map[string]*sinkNode
	starts map[string]*atomic.Int32
	stops  map[string]*atomic.Int32
	users  map[string]*userNode
	slow   func(*Msg)
}

func (te *testEnv) counter(m map[string]*atomic.Int32, id string) *atomic.Int32 {
	te.mu.Lock()
	defer te.mu.Unlock()
	if m[id] == nil {
		m[id] = &atomic.Int32{}
	}
	return m[id]
}

func (te *testEnv) sink(id string) *sinkNode {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.sinks[id]
}

func newTestRegistry(t testing.TB) (*Registry, *testEnv) {
	te := &testEnv{sinks: map[string]*sinkNode{}, starts: map[string]*atomic.Int32{}, stops: map[string]*atomic.Int32{}, users: map[string]*userNode{}}
	r := NewRegistry()
	r.Register(Type{Name: "src", Category: "test", Outputs: 1, Help: "A source.",
		New: Construct(func(nc *NodeContext, _ *emptyConfig) (Node, error) { return &passNode{nc}, nil })})
	r.Register(Type{Name: "pass", Category: "test", Inputs: 1, Outputs: 1, Help: "Passes messages on.",
		New: Construct(func(nc *NodeContext, _ *emptyConfig) (Node, error) { return &passNode{nc}, nil })})
	r.Register(Type{Name: "two", Category: "test", Inputs: 1, Outputs: 2, Help: "Two outputs.",
		New: Construct(func(nc *NodeContext, _ *emptyConfig) (Node, error) { return &passNode{nc}, nil })})
	r.Register(Type{Name: "sink", Category: "test", Inputs: 1, Help: "Collects messages.",
		New: Construct(func(nc *NodeContext, _ *emptyConfig) (Node, error) {
			s := &sinkNode{each: te.slow}
			te.mu.Lock()
			te.sinks[nc.ID()] = s
			te.mu.Unlock()
			return s, nil
		})})
	r.Register(Type{Name: "conn", ConfigNode: true, Help: "A shared connection.",
		Fields: []Field{
			{Name: "host", Kind: KindString, Required: true, Help: "Host."},
			{Name: "token", Kind: KindSecret, Help: "Access token."},
		},
		New: Construct(func(nc *NodeContext, c *connConfig) (Node, error) {
			return &connNode{conf: c, starts: te.counter(te.starts, nc.ID()), stops: te.counter(te.stops, nc.ID())}, nil
		})})
	r.Register(Type{Name: "user", Category: "test", Inputs: 1, Outputs: 1, Help: "Uses a connection.",
		Fields: []Field{
			{Name: "connection", Kind: KindConfigRef, Ref: "conn", Required: true, Help: "Connection."},
			{Name: "cond", Kind: KindExpr, Help: "A condition."},
			{Name: "mode", Kind: KindEnum, Enum: []string{"a", "b"}, Default: "a", Help: "Mode."},
			{Name: "n", Kind: KindInt, Min: Float(1), Max: Float(10), Default: 1, Help: "Count."},
			{Name: "rows", Kind: KindTable, Help: "Rows.", Fields: []Field{
				{Name: "name", Kind: KindString, Required: true, Help: "Name."},
				{Name: "conn", Kind: KindConfigRef, Ref: "conn", Help: "Another connection."},
			}},
			{Name: "every", Kind: KindDuration, Default: "1s", Help: "Interval."},
			{Name: "scale", Kind: KindNumber, Default: 1.0, Help: "Scale."},
			{Name: "extra", Kind: KindJSON, Help: "Anything."},
		},
		New: Construct(func(nc *NodeContext, c *userConfig) (Node, error) {
			conn, err := ConfigNodeAs[*connNode](nc, c.Connection)
			if err != nil {
				return nil, err
			}
			u := &userNode{passNode: passNode{nc}, conn: conn}
			te.mu.Lock()
			te.users[nc.ID()] = u
			te.mu.Unlock()
			return u, nil
		})})
	return r, te
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEngine(t testing.TB, reg *Registry, opts Options) *Engine {
	t.Helper()
	opts.Registry = reg
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Millisecond, 10*time.Millisecond
	}
	e := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stopping engine: %v", err)
		}
	})
	return e
}

func mustParse(t testing.TB, s string) *Flow {
	t.Helper()
	f, err := ParseFlow([]byte(s))
	if err != nil {
		t.Fatalf("parsing flow: %v", err)
	}
	return f
}

func deploy(t testing.TB, e *Engine, s string, mode DeployMode) *DeployData {
	t.Helper()
	sub := e.Subscribe(TopicDeploy, 4)
	defer sub.Close()
	if _, err := e.Deploy(context.Background(), mustParse(t, s), "", mode); err != nil {
		t.Fatalf("deploying: %v", err)
	}
	ev := <-sub.C
	return ev.Data.(*DeployData)
}

func waitIdle(t testing.TB, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}
