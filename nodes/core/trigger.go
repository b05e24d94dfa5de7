package core

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// maxTriggerTopics bounds how many topics a trigger tracks at once.
const maxTriggerTopics = 10_000

var triggerTypes = []string{"str", "num", "bool", "json", "date", "env", "flow", "global", "pay", "payl", "nul"}

func init() {
	engine.Register(engine.Type{
		Name: "trigger", Category: engine.CategoryFunction, Inputs: 1, OutputsField: "outputs",
		Label: "trigger", Color: "#e6e0f8", Icon: "trigger",
		Summary:      "Sends a message, then a second one after a delay unless reset (Node-RED's trigger node).",
		OutputLabels: []string{"trigger output", "second message"},
		Help: `When a message arrives and the node is idle, it sends **op1** at once, waits **duration**, then sends
**op2**. Messages arriving while it waits are ignored, or restart the wait with **extend**. A message
with ` + "`msg.reset`" + `, or whose payload equals **reset**, stops the wait without sending op2.

Value types: ` + "`str`" + `, ` + "`num`" + `, ` + "`bool`" + `, ` + "`json`" + `, ` + "`date`" + `, ` + "`env`" + `, ` + "`flow`" + `, ` + "`global`" + `; ` + "`pay`" + ` sends the
triggering message's payload, ` + "`payl`" + ` (op2 only) the latest message's, ` + "`nul`" + ` sends nothing.
**duration** 0 waits for a reset and never sends op2; a negative duration re-sends op1 every
|duration| until reset. **bytopic** ` + "`topic`" + ` keeps one wait per topic. With two **outputs** op2 leaves on
the second output.`,
		Fields: []engine.Field{
			{Name: "op1", Kind: engine.KindString, Label: "Send", Default: "1", Help: "The first message's payload."},
			{Name: "op1type", Kind: engine.KindEnum, Label: "Send type", Enum: triggerTypes, Default: "str", Help: "How op1 is read."},
			{Name: "op2", Kind: engine.KindString, Label: "Then send", Default: "0", Help: "The second message's payload."},
			{Name: "op2type", Kind: engine.KindEnum, Label: "Then send type", Enum: triggerTypes, Default: "str", Help: "How op2 is read."},
			{Name: "duration", Kind: engine.KindNumber, Label: "Wait", Default: 250.0, Help: "How long to wait, in units; 0 waits for a reset, negative repeats op1."},
			{Name: "units", Kind: engine.KindEnum, Label: "Units", Enum: []string{"ms", "s", "min", "hr"}, Default: "ms", Help: "Unit of duration."},
			{Name: "extend", Kind: engine.KindBool, Label: "Extend", Default: false, Help: "A message arriving while waiting restarts the wait."},
			{Name: "reset", Kind: engine.KindString, Label: "Reset payload", Default: "", Help: "A payload equal to this resets the node (besides `msg.reset`)."},
			{Name: "bytopic", Kind: engine.KindEnum, Label: "Handle", Enum: []string{"all", "topic"}, Default: "all", Help: "`all`: one wait for all messages; `topic`: one per topic."},
			{Name: "topic", Kind: engine.KindString, Label: "Topic property", Default: "topic", Help: "The message property naming the topic (bytopic `topic`)."},
			{Name: "outputs", Kind: engine.KindInt, Label: "Outputs", Default: 1, Min: engine.Float(1), Max: engine.Float(2), Help: "1, or 2 to send op2 on a second output."},
		},
		New: engine.Construct(newTrigger),
	})
}

type triggerConfig struct {
	Op1      string  `json:"op1"`
	Op1type  string  `json:"op1type"`
	Op2      string  `json:"op2"`
	Op2type  string  `json:"op2type"`
	Duration float64 `json:"duration"`
	Units    string  `json:"units"`
	Extend   bool    `json:"extend"`
	Reset    string  `json:"reset"`
	Bytopic  string  `json:"bytopic"`
	Topic    string  `json:"topic"`
	Outputs  int     `json:"outputs"`
}

func triggerValue(typ, raw string) (*typedValue, error) {
	switch typ {
	case "pay", "payl", "nul":
		return &typedValue{typ: typ}, nil
	}
	return newTypedValue(typ, raw)
}

func (c *triggerConfig) Validate() error {
	if _, err := triggerValue(c.Op1type, c.Op1); err != nil {
		return &engine.FieldError{Field: "op1", Message: err.Error()}
	}
	if c.Op1type == "payl" {
		return &engine.FieldError{Field: "op1type", Message: "payl (latest payload) applies to op2 only"}
	}
	if _, err := triggerValue(c.Op2type, c.Op2); err != nil {
		return &engine.FieldError{Field: "op2", Message: err.Error()}
	}
	return nil
}

var unitDur = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "hr": time.Hour}

type triggerState struct {
	timer  *time.Timer
	first  *engine.Msg // the triggering message
	latest *engine.Msg
}

type triggerNode struct {
	nc       *engine.NodeContext
	c        *triggerConfig
	op1, op2 *typedValue
	wait     time.Duration
	topic    []any

	mu      sync.Mutex
	states  map[string]*triggerState
	life    context.Context
	cancel  context.CancelFunc
	stopped bool
}

func newTrigger(nc *engine.NodeContext, c *triggerConfig) (engine.Node, error) {
	n := &triggerNode{nc: nc, c: c, states: map[string]*triggerState{}}
	var err error
	if n.op1, err = triggerValue(c.Op1type, c.Op1); err != nil {
		return nil, err
	}
	if n.op2, err = triggerValue(c.Op2type, c.Op2); err != nil {
		return nil, err
	}
	u := unitDur[c.Units]
	if u == 0 {
		u = time.Millisecond
	}
	n.wait = time.Duration(c.Duration * float64(u))
	if c.Topic == "" {
		c.Topic = "topic"
	}
	if n.topic, err = parsePath(c.Topic); err != nil {
		return nil, err
	}
	n.life, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

func (n *triggerNode) Start(context.Context) error { return nil }

func (n *triggerNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stopped = true
	for k, s := range n.states {
		if s.timer != nil {
			s.timer.Stop()
		}
		delete(n.states, k)
	}
	n.cancel()
	return nil
}

// value builds the message for op with payload from v, based on base.
func (n *triggerNode) value(op *typedValue, base, latest *engine.Msg) (*engine.Msg, bool, error) {
	switch op.typ {
	case "nul":
		return nil, false, nil
	case "pay":
		return base.Clone(), true, nil
	case "payl":
		return latest.Clone(), true, nil
	}
	v, err := op.eval(n.nc, base)
	if err != nil {
		return nil, false, err
	}
	m := base.Clone()
	m.Payload = v
	return m, true, nil
}

func (n *triggerNode) Handle(ctx context.Context, m *engine.Msg) error {
	key := "_none"
	if n.c.Bytopic == "topic" {
		if v, ok := msgGet(m, n.topic); ok {
			key = toString(v)
		}
	}
	n.mu.Lock()
	_, reset := m.Get("reset")
	if reset || (n.c.Reset != "" && toString(m.Payload) == n.c.Reset) {
		// A reset ends the wait of its topic (per-topic mode) or all of them.
		for k, s := range n.states {
			if n.c.Bytopic == "topic" && key != "_none" && k != key {
				continue
			}
			if s.timer != nil {
				s.timer.Stop()
			}
			delete(n.states, k)
		}
		n.mu.Unlock()
		return nil
	}
	if s := n.states[key]; s != nil {
		s.latest = m.Clone()
		if n.c.Extend && s.timer != nil && n.wait > 0 {
			s.timer.Reset(n.wait)
		}
		n.mu.Unlock()
		return nil
	}
	if len(n.states) >= maxTriggerTopics {
		n.mu.Unlock()
		return fmt.Errorf("trigger: more than %d topics waiting", maxTriggerTopics)
	}
	s := &triggerState{first: m.Clone(), latest: m.Clone()}
	n.states[key] = s
	switch {
	case n.wait > 0:
		s.timer = time.AfterFunc(n.wait, func() { n.fire(key, s) })
	case n.wait < 0:
		every := -n.wait
		var tick func()
		tick = func() {
			n.mu.Lock()
			if n.stopped || n.states[key] != s {
				n.mu.Unlock()
				return
			}
			s.timer = time.AfterFunc(every, tick)
			n.mu.Unlock()
			if out, ok, err := n.value(n.op1, s.first, s.first); err != nil {
				n.nc.Error(err, nil)
			} else if ok {
				_ = n.nc.Send(n.life, out)
			}
		}
		s.timer = time.AfterFunc(every, tick)
	}
	n.mu.Unlock()
	out, ok, err := n.value(n.op1, m, m)
	if err != nil || !ok {
		return err
	}
	return n.nc.Send(ctx, out)
}

// fire sends op2 when the wait of state s ends.
func (n *triggerNode) fire(key string, s *triggerState) {
	n.mu.Lock()
	if n.stopped || n.states[key] != s {
		n.mu.Unlock()
		return
	}
	delete(n.states, key)
	first, latest := s.first, s.latest
	n.mu.Unlock()
	out, ok, err := n.value(n.op2, first, latest)
	if err != nil {
		n.nc.Error(err, first)
		return
	}
	if !ok {
		return
	}
	port := 0
	if n.c.Outputs == 2 {
		port = 1
	}
	_ = n.nc.SendTo(n.life, port, out)
}
