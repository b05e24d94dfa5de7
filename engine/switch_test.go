package engine

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

type flipConfig struct {
	Active bool `json:"active"`
}

// flipNode is a switchable test node.
type flipNode struct {
	on  atomic.Bool
	set atomic.Int32
}

func (n *flipNode) Start(context.Context) error { return nil }
func (n *flipNode) Stop(context.Context) error  { return nil }
func (n *flipNode) Handle(context.Context, *Msg) error {
	return nil
}
func (n *flipNode) SetActive(on bool) { n.on.Store(on); n.set.Add(1) }

// failStore saves until fail is set.
type failStore struct {
	saved *Flow
	fail  bool
}

func (s *failStore) Load() (*Flow, error) { return &Flow{}, nil }
func (s *failStore) Save(f *Flow) error {
	if s.fail {
		return errors.New("disk full")
	}
	s.saved = f.Clone()
	return nil
}

func switchRegistry(t *testing.T) (*Registry, map[string]*flipNode) {
	reg, _ := newTestRegistry(t)
	nodes := map[string]*flipNode{}
	reg.Register(Type{Name: "flip", Category: "test", Inputs: 1, Help: "Switchable.",
		Fields: []Field{{Name: "active", Kind: KindBool, Default: true, Help: "On."}},
		New: Construct(func(nc *NodeContext, c *flipConfig) (Node, error) {
			n := &flipNode{}
			n.on.Store(c.Active)
			nodes[nc.ID()] = n
			return n, nil
		})})
	return reg, nodes
}

func TestSetActive(t *testing.T) {
	reg, nodes := switchRegistry(t)
	store := &failStore{}
	e := newTestEngine(t, reg, Options{Store: store})
	flow := `[{"id":"f","type":"flip","wires":[]},{"id":"off","type":"flip","d":true},{"id":"k","type":"sink"}]`
	deploy(t, e, flow, DeployFull)
	_, rev0 := e.Flows()
	sub := e.Subscribe("#", 16)
	defer sub.Close()

	for _, tc := range []struct {
		id   string
		want error
	}{{"nope", ErrUnknownNode}, {"off", ErrUnknownNode}, {"k", ErrNotSwitchable}} {
		if _, err := e.SetActive(tc.id, false); !errors.Is(err, tc.want) {
			t.Errorf("SetActive(%q): %v, want %v", tc.id, err, tc.want)
		}
	}

	// The field is absent: its default (on) is the state, so on changes nothing.
	d, err := e.SetActive("f", true)
	if err != nil || d.Rev != rev0 || d.Prev != rev0 || nodes["f"].set.Load() != 0 {
		t.Fatalf("switching on a node that is on: %+v %v", d, err)
	}

	store.fail = true
	if _, err := e.SetActive("f", false); err == nil {
		t.Fatal("a failed save did not fail the switch")
	}
	if f, rev := e.Flows(); !nodes["f"].on.Load() || rev != rev0 || f.Node("f").Fields["active"] != nil {
		t.Fatal("a failed save switched the node")
	}
	store.fail = false

	d, err = e.SetActive("f", false)
	if err != nil {
		t.Fatal(err)
	}
	f, rev := e.Flows()
	if nodes["f"].on.Load() || d.Active || d.Prev != rev0 || d.Rev != rev || rev != f.Revision() || rev == rev0 {
		t.Fatalf("after switching off: node on %v, %+v, deployed rev %s", nodes["f"].on.Load(), d, rev)
	}
	if f.Node("f").Fields["active"] != false || store.saved.Node("f").Fields["active"] != false || e.Rev() != rev {
		t.Fatal("the deployed or saved flow did not follow the switch")
	}
	ev := <-sub.C
	if ev.Topic != "switch/f" || ev.Node == nil || ev.Node.ID != "f" || *ev.Data.(*SwitchData) != d {
		t.Fatalf("event %+v", ev)
	}
	if len(sub.C) != 0 {
		t.Fatalf("more events: %+v", <-sub.C)
	}

	// Deploying the flow as read back restarts nothing; switching on again.
	data := deployFlow(t, e, f, rev)
	if !slices.Contains(data.Kept, "f") || len(data.Started) != 0 {
		t.Fatalf("redeploy: %+v", data)
	}
	if _, err := e.SetActive("f", true); err != nil || !nodes["f"].on.Load() {
		t.Fatalf("switching on: %v", err)
	}
	ctx := context.Background()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SetActive("f", false); !errors.Is(err, ErrStopped) {
		t.Fatalf("on a stopped engine: %v", err)
	}
}

func deployFlow(t *testing.T, e *Engine, f *Flow, rev string) *DeployData {
	t.Helper()
	sub := e.Subscribe(TopicDeploy, 4)
	defer sub.Close()
	if _, err := e.Deploy(context.Background(), f, rev, DeployModified); err != nil {
		t.Fatalf("deploying: %v", err)
	}
	return (<-sub.C).Data.(*DeployData)
}
