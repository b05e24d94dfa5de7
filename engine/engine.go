package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DeployMode says what a deploy restarts.
type DeployMode string

// Deploy modes (the names Node-RED uses in its API).
const (
	// DeployModified restarts only nodes whose settings or wires changed,
	// nodes that use a changed config node, and nodes wired to a node that
	// was added, removed, enabled or disabled. Config nodes whose settings
	// did not change stay up, keeping their connections.
	DeployModified DeployMode = "nodes"
	// DeployFull stops every node, config nodes included, and starts the
	// whole flow again.
	DeployFull DeployMode = "full"
)

// Errors returned by the engine.
var (
	// ErrConflict is a deploy against a stale revision.
	ErrConflict = errors.New("flow was changed by someone else: reload it and deploy again")
	// ErrStopped is a call on an engine that was stopped.
	ErrStopped = errors.New("engine is stopped")
	// ErrUnknownNode is a node id that is not deployed.
	ErrUnknownNode = errors.New("no such node")
)

// Options configure an [Engine]. The zero value works: the default registry,
// slog.Default, no persistence.
type Options struct {
	// Registry resolves node types; nil means [DefaultRegistry].
	Registry *Registry
	// Logger receives engine and node logs; nodes get it scoped with
	// node_id and node_type. Nil means slog.Default().
	Logger *slog.Logger
	// Store persists deployed flows; nil keeps them in memory only.
	Store Store
	// LookupEnv resolves ${NAME} references; nil means os.LookupEnv.
	// Variables starting with ReservedEnvPrefix are never resolved.
	LookupEnv LookupEnv
	// DataDir is where files nodes write (Field.DataPath, an outbox) must
	// be: relative paths resolve in it and paths outside it are refused.
	// Empty leaves paths as written (only ".." is refused).
	DataDir string
	// InboxSize is each node's inbox capacity (default 64). Together with
	// the number of nodes it bounds the messages in flight.
	InboxSize int
	// StopTimeout bounds how long stopping nodes may take in a deploy or in
	// Stop when ctx has no earlier deadline (default 15s, as Node-RED).
	StopTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between Start
	// attempts and between retries of a message that met ErrNotConnected
	// (defaults 100ms and 30s).
	RetryMin, RetryMax time.Duration
}

// Engine runs a flow. Its methods are safe for concurrent use. The methods
// a user interface needs are Types, Flows, Validate, Deploy, Inject and
// Subscribe; the Engine is also a prometheus.Collector.
type Engine struct {
	reg     *Registry
	log     *slog.Logger
	store   Store
	lookup  LookupEnv
	dataDir string
	inbox   int
	stopTO  time.Duration
	rmin    time.Duration
	rmax    time.Duration

	mu      sync.Mutex // serialises Deploy and Stop
	flow    *Flow      // deployed flow, secrets included
	rev     string
	stopped bool

	graph atomic.Pointer[graph]
	// shown is what readers see of the deployed flow, replaced after each
	// deploy, so reading never waits for a deploy in progress.
	shown atomic.Pointer[shownFlow]

	slotsMu sync.Mutex
	slots   map[string]*slot

	bus bus
}

// New returns an engine with nothing deployed.
func New(opts Options) *Engine {
	e := &Engine{
		reg: opts.Registry, log: opts.Logger, store: opts.Store, lookup: opts.LookupEnv, dataDir: opts.DataDir,
		inbox: opts.InboxSize, stopTO: opts.StopTimeout, rmin: opts.RetryMin, rmax: opts.RetryMax,
		flow: &Flow{}, slots: map[string]*slot{},
	}
	if e.reg == nil {
		e.reg = DefaultRegistry()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.lookup == nil {
		e.lookup = os.LookupEnv
	}
	if e.inbox <= 0 {
		e.inbox = 64
	}
	if e.stopTO <= 0 {
		e.stopTO = 15 * time.Second
	}
	if e.rmin <= 0 {
		e.rmin = 100 * time.Millisecond
	}
	if e.rmax < e.rmin {
		e.rmax = max(30*time.Second, e.rmin)
	}
	e.rev = e.flow.Revision()
	e.publishShown()
	e.graph.Store(&graph{runners: map[string]*runner{}})
	return e
}

// shownFlow is a deployed flow as readers get it.
type shownFlow struct {
	redacted *Flow
	rev      string
	secrets  Credentials
}

// publishShown records the deployed flow for readers; e.mu is held.
func (e *Engine) publishShown() {
	e.shown.Store(&shownFlow{redacted: Redact(e.flow, e.reg), rev: e.rev, secrets: secretsOf(e.flow, e.reg)})
}

// Registry returns the engine's registry.
func (e *Engine) Registry() *Registry { return e.reg }

// Types returns every node type the engine knows, for the palette.
func (e *Engine) Types() []*Type { return e.reg.Types() }

// Flows returns the deployed flow for the browser, secrets replaced by
// [SecretPlaceholder], and its revision.
func (e *Engine) Flows() (*Flow, string) {
	s := e.shown.Load()
	return s.redacted.Clone(), s.rev
}

// Rev returns the deployed revision.
func (e *Engine) Rev() string {
	return e.shown.Load().rev
}

// Validate checks f without deploying it. Secret placeholders are resolved
// against the deployed flow first, as Deploy does.
func (e *Engine) Validate(f *Flow) Problems {
	return e.ValidateContext(context.Background(), f)
}

// ValidateContext is Validate that stops once ctx ends (see
// [Registry.ValidateContext]).
func (e *Engine) ValidateContext(ctx context.Context, f *Flow) Problems {
	f = f.Clone()
	shown := e.shown.Load()
	ps := retargetProblems(e.reg, f, shown.redacted, shown.secrets)
	keepSecrets(f, shown.secrets)
	return append(ps, e.reg.validate(ctx, f, e.lookup, e.dataDir)...)
}

// Start deploys the flow held by the store, if there is one. An engine
// without a store starts with its first Deploy.
func (e *Engine) Start(ctx context.Context) error {
	if e.store == nil {
		return nil
	}
	f, err := e.store.Load()
	if err != nil {
		return fmt.Errorf("loading flow: %w", err)
	}
	_, err = e.Deploy(ctx, f, "", DeployFull)
	return err
}

// Deploy validates f and runs it, returning the new revision. rev is the
// revision the caller's copy is based on: a non-empty rev that is not the
// deployed revision fails with ErrConflict (reload and retry). Secret
// fields holding [SecretPlaceholder], or absent (an exported flow), keep
// their deployed values; "" clears them. An invalid
// flow fails with a *ValidationError listing every problem, and nothing
// changes. ctx bounds stopping the nodes the deploy replaces (at most
// Options.StopTimeout); when it expires their contexts are cancelled.
func (e *Engine) Deploy(ctx context.Context, f *Flow, rev string, mode DeployMode) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return "", ErrStopped
	}
	if rev != "" && rev != e.rev {
		return "", fmt.Errorf("deploying revision %q over %q: %w", rev, e.rev, ErrConflict)
	}
	switch mode {
	case DeployModified, DeployFull:
	case "":
		mode = DeployModified
	default:
		return "", fmt.Errorf("unknown deploy mode %q (want %q or %q)", mode, DeployModified, DeployFull)
	}
	f = f.Clone()
	stored := secretsOf(e.flow, e.reg)
	ps := retargetProblems(e.reg, f, e.flow, stored)
	keepSecrets(f, stored)
	if ps = append(ps, e.reg.validate(context.Background(), f, e.lookup, e.dataDir)...); ps.HasErrors() {
		return "", ps.Err()
	}
	p, err := e.build(f, mode)
	if err != nil {
		return "", err
	}
	if e.store != nil {
		if err := e.store.Save(f); err != nil {
			p.discard(ctx)
			return "", fmt.Errorf("saving flow: %w", err)
		}
	}
	data := e.apply(ctx, p)
	e.flow = f
	e.rev = f.Revision()
	e.publishShown()
	data.Rev, data.Mode = e.rev, mode
	e.log.Info("flow deployed", "rev", e.rev, "mode", string(mode),
		"started", len(data.Started), "stopped", len(data.Stopped), "kept", len(data.Kept))
	e.bus.publish(Event{Topic: TopicDeploy, Data: data})
	return e.rev, nil
}

// Stop stops every node gracefully: sources stop producing, then each node
// in wire order finishes the messages queued for it, then stops. When ctx
// (or Options.StopTimeout) expires, the nodes' contexts are cancelled and
// what is still queued is dropped. Stop is idempotent; a stopped engine
// refuses further deploys.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	g := e.graph.Load()
	ctx, cancel := context.WithTimeout(ctx, e.stopTO)
	defer cancel()
	regular := g.order
	var configs []*runner
	co := configOrder(g)
	for i := len(co) - 1; i >= 0; i-- {
		if co[i].started {
			configs = append(configs, co[i])
		}
	}
	all := func(*runner) bool { return true }
	errs := stopRunners(ctx, regular, all)
	errs = append(errs, stopRunners(ctx, configs, all)...)
	e.graph.Store(&graph{runners: map[string]*runner{}})
	e.slotsMu.Lock()
	for id, s := range e.slots {
		s.discard()
		delete(e.slots, id)
	}
	e.slotsMu.Unlock()
	e.log.Info("flow stopped")
	return errors.Join(errs...)
}

// Inject presses the inject button of node id: the node sends its message
// now. The node must implement [Injector].
func (e *Engine) Inject(ctx context.Context, id string) error {
	r := e.graph.Load().runners[id]
	if r == nil {
		return fmt.Errorf("injecting %q: %w", id, ErrUnknownNode)
	}
	inj, ok := r.node.(Injector)
	if !ok {
		return fmt.Errorf("injecting %q: node type %s has no inject button", id, r.typ.Name)
	}
	return inj.Inject(ctx)
}

// Deliver puts msg on node id's input, waiting while its inbox is full or
// until ctx is done. Tests and tools use it to feed a flow.
func (e *Engine) Deliver(ctx context.Context, id string, msg *Msg) error {
	r := e.graph.Load().runners[id]
	if r == nil || r.handler == nil {
		return fmt.Errorf("delivering to %q: %w", id, ErrUnknownNode)
	}
	if msg.ID == "" {
		msg.ID = NewMsgID()
	}
	return r.slot.put(ctx, msg)
}

// Subscribe returns a subscription to events whose topic matches pattern
// (MQTT-style: "status/#", "status/+", "debug", "error", "deploy", "#").
// buffer is the channel capacity (default 256); events that do not fit are
// dropped. Close the subscription to unsubscribe.
func (e *Engine) Subscribe(pattern string, buffer int) *Subscription {
	return e.bus.subscribe(pattern, buffer)
}

// SubscribeFunc calls fn, on a goroutine of its own, for every event
// matching pattern, until the returned cancel function is called.
func (e *Engine) SubscribeFunc(pattern string, fn func(Event)) (cancel func()) {
	s := e.Subscribe(pattern, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range s.C {
			fn(ev)
		}
	}()
	return func() {
		s.Close()
		<-done
	}
}

// Statuses returns the last status of every node that reported one.
func (e *Engine) Statuses() map[string]Status {
	out := map[string]Status{}
	e.slotsMu.Lock()
	defer e.slotsMu.Unlock()
	for id, s := range e.slots {
		if st := s.status.Load(); st != nil && *st != (Status{}) {
			out[id] = *st
		}
	}
	return out
}

// WaitIdle waits until no message is queued or being handled anywhere in
// the flow, or until ctx is done. Timers and sources may produce more
// messages afterwards.
func (e *Engine) WaitIdle(ctx context.Context) error {
	prev := e.collectCounts()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		cur := e.collectCounts()
		if cur.idle() && cur.equal(prev) {
			return nil
		}
		prev = cur
	}
}

type countSnap map[*slot][2]int64

func (e *Engine) collectCounts() countSnap {
	e.slotsMu.Lock()
	defer e.slotsMu.Unlock()
	snap := make(countSnap, len(e.slots))
	for _, s := range e.slots {
		snap[s] = [2]int64{s.enq.Load(), s.done.Load()}
	}
	return snap
}

func (c countSnap) idle() bool {
	for _, v := range c {
		if v[0] != v[1] {
			return false
		}
	}
	return true
}

func (c countSnap) equal(o countSnap) bool {
	if len(c) != len(o) {
		return false
	}
	for k, v := range c {
		if o[k] != v {
			return false
		}
	}
	return true
}

// NodeCounters are a node's message counters.
type NodeCounters struct {
	In, Out, Errors, Dropped int64
	QueueDepth, QueueCap     int
}

// Counters returns the counters of node id.
func (e *Engine) Counters(id string) (NodeCounters, bool) {
	e.slotsMu.Lock()
	defer e.slotsMu.Unlock()
	s := e.slots[id]
	if s == nil {
		return NodeCounters{}, false
	}
	return s.counters(), true
}

func (e *Engine) backoff(attempt int) time.Duration {
	d := e.rmin
	for i := 0; i < attempt && d < e.rmax; i++ {
		d *= 2
	}
	return min(d, e.rmax)
}

// Construct builds every node of f as a deploy would, without starting,
// wiring in or stopping anything, and returns the instances by id. The
// conformance suite and tools use it; the caller owns the instances and
// must Stop them.
func (e *Engine) Construct(f *Flow) (map[string]Node, error) {
	if ps := e.reg.validate(context.Background(), f, e.lookup, e.dataDir); ps.HasErrors() {
		return nil, ps.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := e.build(f.Clone(), DeployFull)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Node, len(p.g.runners))
	for id, r := range p.g.runners {
		out[id] = r.node
	}
	return out, nil
}
