package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// slot is a node id's inbox and counters. It outlives the runners of that
// id, so a node restarted by a hot deploy finds the messages queued for its
// predecessor, and counters stay monotonic.
type slot struct {
	inbox chan *Msg
	typ   atomic.Pointer[string]

	enq     atomic.Int64 // messages put (or being put) into the inbox
	done    atomic.Int64 // messages taken out and finished (or discarded)
	out     atomic.Int64
	errs    atomic.Int64
	dropped atomic.Int64
	status  atomic.Pointer[Status]
}

func newSlot(size int, typ string) *slot {
	s := &slot{inbox: make(chan *Msg, size)}
	s.typ.Store(&typ)
	return s
}

// put enqueues m, blocking while the inbox is full (backpressure).
func (s *slot) put(ctx context.Context, m *Msg) error {
	s.enq.Add(1)
	select {
	case s.inbox <- m:
		return nil
	default:
	}
	select {
	case s.inbox <- m:
		return nil
	case <-ctx.Done():
		s.enq.Add(-1)
		return ctx.Err()
	}
}

// tryPut enqueues m unless the inbox is full.
func (s *slot) tryPut(m *Msg) bool {
	s.enq.Add(1)
	select {
	case s.inbox <- m:
		return true
	default:
		s.enq.Add(-1)
		return false
	}
}

// discard drops whatever is queued.
func (s *slot) discard() {
	for {
		select {
		case <-s.inbox:
			s.dropped.Add(1)
			s.done.Add(1)
		default:
			return
		}
	}
}

func (s *slot) counters() NodeCounters {
	return NodeCounters{
		In: s.enq.Load(), Out: s.out.Load(), Errors: s.errs.Load(), Dropped: s.dropped.Load(),
		QueueDepth: len(s.inbox), QueueCap: cap(s.inbox),
	}
}

type stopRequest struct {
	ctx   context.Context
	drain bool
	errc  chan error
}

// runner runs one node (or config node) instance on its own goroutine.
type runner struct {
	e       *Engine
	def     *NodeDef
	typ     *Type
	ref     NodeRef
	node    Node
	handler Handler
	nc      *NodeContext
	slot    *slot     // inbox and counters; config nodes have an empty inbox
	outs    [][]*slot // per output port; immutable
	uses    []string  // config node ids this node references

	started  bool          // the goroutine was launched
	firstTry chan struct{} // closed after the first Start attempt
	kill     context.CancelFunc
	softStop context.CancelFunc
	stop     chan stopRequest
	done     chan struct{}
	// users counts running nodes referencing this config node.
	users int
	// spent marks a stopped config node instance; it is never restarted.
	spent bool
}

// graph is the set of runners of a deployment.
type graph struct {
	runners  map[string]*runner // enabled nodes and config nodes by id
	order    []*runner          // regular nodes, sources first
	catchers map[string][]*runner
	watchers map[string][]*runner
}

// launch starts the runner's goroutine.
func (r *runner) launch(deps []*runner) {
	life, kill := context.WithCancel(context.Background())
	soft, softStop := context.WithCancel(life)
	r.kill, r.softStop = kill, softStop
	r.stop = make(chan stopRequest, 1)
	r.done = make(chan struct{})
	r.firstTry = make(chan struct{})
	r.started = true
	go r.run(life, soft, deps)
}

func (r *runner) run(life, soft context.Context, deps []*runner) {
	defer close(r.done)
	// Config nodes this node uses make their first Start attempt first.
	for _, d := range deps {
		select {
		case <-d.firstTry:
		case <-soft.Done():
		}
	}
	ok := r.startWithRetry(soft)
	var wg sync.WaitGroup
	if ok {
		if rn, isRunner := r.node.(Runner); isRunner {
			wg.Go(func() { r.runLoop(soft, rn) })
		}
	}
	var req stopRequest
	if ok && r.handler != nil {
	loop:
		for {
			// A pending stop request wins over queued messages: a node
			// being replaced leaves its queue to its successor.
			select {
			case req = <-r.stop:
				break loop
			default:
			}
			select {
			case m := <-r.slot.inbox:
				r.handle(life, soft, m)
			case req = <-r.stop:
				break loop
			}
		}
		if req.drain {
		drain:
			for life.Err() == nil {
				select {
				case m := <-r.slot.inbox:
					r.handle(life, soft, m)
				default:
					break drain
				}
			}
		}
	} else {
		req = <-r.stop
	}
	wg.Wait()
	err := r.node.Stop(req.ctx)
	if err != nil {
		r.nc.log.Warn("stopping node", "err", err)
		err = fmt.Errorf("stopping node %q (%s): %w", r.def.ID, r.typ.Name, err)
	}
	req.errc <- err
}

func (r *runner) startWithRetry(soft context.Context) bool {
	if soft.Err() != nil {
		close(r.firstTry)
		return false
	}
	first := true
	for attempt := 0; ; attempt++ {
		err := r.node.Start(soft)
		if first {
			close(r.firstTry)
			first = false
		}
		if err == nil {
			if attempt > 0 {
				r.nc.Status(Status{})
			}
			return true
		}
		if soft.Err() != nil {
			return false
		}
		d := r.e.backoff(attempt)
		r.nc.log.Warn("starting node", "err", err, "retry_in", d)
		r.nc.Status(StatusError(err))
		r.nc.reportError(fmt.Errorf("starting: %w", err), nil)
		select {
		case <-soft.Done():
			return false
		case <-time.After(d):
		}
	}
}

func (r *runner) runLoop(soft context.Context, rn Runner) {
	for attempt := 0; ; attempt++ {
		err := rn.Run(soft)
		if soft.Err() != nil {
			return
		}
		if err == nil {
			attempt = -1
		} else {
			r.nc.reportError(err, nil)
		}
		select {
		case <-soft.Done():
			return
		case <-time.After(r.e.backoff(max(attempt, 0))):
		}
	}
}

func (r *runner) handle(life, soft context.Context, m *Msg) {
	defer r.slot.done.Add(1)
	for attempt := 0; ; attempt++ {
		err := r.handler.Handle(life, m)
		if err == nil {
			if attempt > 0 {
				r.nc.Status(Status{}) // clear the engine's "not connected"
			}
			return
		}
		if errors.Is(err, ErrNotConnected) && soft.Err() == nil {
			d := r.e.backoff(attempt)
			if attempt == 0 {
				r.nc.Status(StatusError(err))
			}
			select {
			case <-soft.Done():
			case <-time.After(d):
				continue
			}
		}
		r.nc.reportError(err, m)
		return
	}
}

// stopRunners stops rs one after the other, in order, under ctx. When ctx
// expires every runner still going is killed (its contexts cancelled).
func stopRunners(ctx context.Context, rs []*runner, drain func(*runner) bool) []error {
	var errs []error
	stopKill := context.AfterFunc(ctx, func() {
		for _, r := range rs {
			if r.started {
				r.kill()
			}
		}
	})
	defer stopKill()
	for _, r := range rs {
		if !r.started {
			if err := r.node.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		errc := make(chan error, 1)
		r.softStop()
		r.stop <- stopRequest{ctx: ctx, drain: drain(r), errc: errc}
		<-r.done
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
		r.kill()
	}
	return errs
}

// NodeContext is a node's handle on the engine: its identity, its scoped
// logger, its output wires, status and error reporting, and the config
// nodes it references. The engine creates one per node instance and passes
// it to the constructor; it is safe for concurrent use.
type NodeContext struct {
	e       *Engine
	r       *runner
	ref     NodeRef
	log     *slog.Logger
	configs map[string]*runner
}

// Ref returns the node's id, type, name and tab.
func (nc *NodeContext) Ref() NodeRef { return nc.ref }

// ID returns the node's id.
func (nc *NodeContext) ID() string { return nc.ref.ID }

// Logger returns a logger scoped with node_id and node_type.
func (nc *NodeContext) Logger() *slog.Logger { return nc.log }

// Outputs returns the number of output ports.
func (nc *NodeContext) Outputs() int { return len(nc.r.outs) }

// Send sends msg on output port 0; see [NodeContext.SendTo].
func (nc *NodeContext) Send(ctx context.Context, msg *Msg) error {
	return nc.SendTo(ctx, 0, msg)
}

// SendTo sends msg on output port. With one wire the receiver gets msg
// itself; with several, each receiver but the last gets a deep copy. Send
// blocks while a receiver's inbox is full (backpressure) and returns ctx's
// error if ctx ends first. A port without wires (or out of range) drops
// the message. The caller must not use msg afterwards.
func (nc *NodeContext) SendTo(ctx context.Context, port int, msg *Msg) error {
	r := nc.r
	if port < 0 || port >= len(r.outs) {
		return nil
	}
	targets := r.outs[port]
	if len(targets) == 0 {
		return nil
	}
	if msg.ID == "" {
		msg.ID = NewMsgID()
	}
	last := len(targets) - 1
	for i, t := range targets {
		m := msg
		if i < last {
			m = msg.Clone()
		}
		if err := t.put(ctx, m); err != nil {
			r.slot.dropped.Add(int64(last - i + 1))
			return err
		}
		r.slot.out.Add(1)
	}
	return nil
}

// Status sets the node's status: an event on "status/<id>", and a message
// to status nodes on the tab.
func (nc *NodeContext) Status(s Status) {
	nc.r.slot.status.Store(&s)
	ref := nc.ref
	nc.e.bus.publish(Event{Topic: TopicStatusPrefix + ref.ID, Node: &ref, Data: s})
	g := nc.e.graph.Load()
	for _, w := range g.watchers[ref.Tab] {
		if w.def.ID == ref.ID || !w.node.(StatusWatcher).WatchesStatus(ref) {
			continue
		}
		m := &Msg{ID: NewMsgID(), Fields: map[string]any{"status": map[string]any{
			"fill": s.Fill, "shape": s.Shape, "text": s.Text,
			"source": map[string]any{"id": ref.ID, "type": ref.Type, "name": ref.Name},
		}}}
		if !w.slot.tryPut(m) {
			w.slot.dropped.Add(1)
		}
	}
}

// ShowStatus sets the node's status like [NodeContext.Status], unless the
// status shown has the same text already: a node can call it after every
// poll or request without sending an event each time.
func (nc *NodeContext) ShowStatus(s Status) {
	if cur := nc.r.slot.status.Load(); cur != nil && cur.Text == s.Text {
		return
	}
	nc.Status(s)
}

// maxCatchDepth stops a catch node that fails on its own error messages
// from looping.
const maxCatchDepth = 10

// Error reports an error that happened outside Handle (a subscription
// callback, a timer); msg may be nil. It goes to catch nodes on the tab and
// to the "error" event stream.
func (nc *NodeContext) Error(err error, msg *Msg) {
	nc.reportError(err, msg)
}

func (nc *NodeContext) reportError(err error, msg *Msg) {
	nc.r.slot.errs.Add(1)
	ref := nc.ref
	depth := 0
	if msg != nil {
		if em, ok := msg.Fields["error"].(map[string]any); ok {
			if d, ok := em["depth"].(int); ok {
				depth = d
			}
		}
	}
	caught := false
	g := nc.e.graph.Load()
	if depth < maxCatchDepth {
		for _, c := range g.catchers[ref.Tab] {
			if c.def.ID == ref.ID || !c.node.(ErrorCatcher).Catches(ref) {
				continue
			}
			var m *Msg
			if msg != nil {
				m = msg.Clone()
			} else {
				m = NewMsg(nil)
			}
			m.Set("error", map[string]any{
				"message": err.Error(),
				"source":  map[string]any{"id": ref.ID, "type": ref.Type, "name": ref.Name},
				"depth":   depth + 1,
			})
			if c.slot.tryPut(m) {
				caught = true
			} else {
				c.slot.dropped.Add(1)
			}
		}
	}
	if !caught {
		nc.log.Error("node error", "err", err)
	}
	if nc.e.bus.wants(TopicError) {
		data := &ErrorData{Message: err.Error(), Caught: caught}
		if msg != nil {
			data.Msg = msg.Clone()
		}
		nc.e.bus.publish(Event{Topic: TopicError, Node: &ref, Data: data})
	}
}

// DebugWanted reports whether anyone listens to debug events, so a debug
// node can skip copying messages nobody will see.
func (nc *NodeContext) DebugWanted() bool { return nc.e.bus.wants(TopicDebug) }

// Debug publishes a "debug" event. value should be a copy the node will not
// change afterwards.
func (nc *NodeContext) Debug(property string, value any) {
	ref := nc.ref
	nc.e.bus.publish(Event{Topic: TopicDebug, Node: &ref, Data: &DebugData{Property: property, Value: value}})
}

// ConfigNode returns the instance of config node id, which this node's
// config references. The engine has counted the reference: the config node
// is started before this node's first Start attempt and stays up while any
// running node uses it. The instance may still be connecting; its methods
// should return errors wrapping [ErrNotConnected] until it is ready.
func (nc *NodeContext) ConfigNode(id string) (Node, error) {
	r := nc.configs[id]
	if r == nil {
		return nil, fmt.Errorf("config node %q: %w", id, ErrUnknownNode)
	}
	return r.node, nil
}

// ConfigNodeAs returns config node id as T, the config node type's
// implementation (usually a pointer type the config node package exports,
// or an interface it satisfies).
func ConfigNodeAs[T any](nc *NodeContext, id string) (T, error) {
	var zero T
	n, err := nc.ConfigNode(id)
	if err != nil {
		return zero, err
	}
	t, ok := n.(T)
	if !ok {
		return zero, fmt.Errorf("config node %q is %T, not %T", id, n, zero)
	}
	return t, nil
}
