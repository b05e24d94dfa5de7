package tb

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbflow/tbflow/tb/internal/outbox"
)

// client is the connection machinery shared by Device and Gateway: the
// connection loop, the outbox sender, request correlation and hand-off of
// downlinks away from paho's goroutines.
type client struct {
	cfg    Config
	log    *slog.Logger
	tlsCfg *tls.Config
	ob     *outbox.Outbox
	// restoredMax is the highest sequence found in the outbox at start:
	// entries up to it have no Ack waiting.
	restoredMax uint64

	ctx    context.Context // lifetime of the client; ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	started  bool
	closing  bool
	state    State
	lastErr  error
	lastDead error // the last *DeadLetterError
	conn     *conn
	upCh     chan struct{} // closed while a connection is up
	attemptN uint64        // connection attempts so far
	attempts chan struct{} // closed and replaced after each attempt
	acks     map[uint64]*Ack
	early    map[uint64]error // outcomes that arrived before their Ack was registered
	pending  map[string]*pendingReq
	subs     map[string]byte // filters subscribed after every CONNACK
	hooks    []func(*conn)   // run after every CONNACK, in a goroutine
	// before runs after every CONNACK and the subscriptions, before the
	// outbox is replayed (the session limits are fetched and a gateway
	// connects its sub-devices there). An error ends the connection as a
	// failed attempt.
	before     []func(*conn) error
	pauseUntil atomic.Int64 // unix nanos: the sender waits until then (server asked to back off)
	lim        *limits
	inflight   int
	// poisonSeq is the oldest message a connection was closed on right
	// after it was sent, poisonN times in a row (run loop only).
	poisonSeq uint64
	poisonN   int

	clk    clock   // stamps records without a timestamp
	routes []route // downlink routing by topic prefix
	reqSeq atomic.Int64
	epoch  atomic.Uint64

	statusMu sync.Mutex
	statusCh chan struct{}
}

// conn is one MQTT connection (one transport, never reused).
type conn struct {
	tr       transport
	epoch    uint64
	ctx      context.Context // ends when the connection is lost
	cancel   context.CancelFunc
	lost     chan struct{}
	lostOnce sync.Once
	err      error
	sender   chan struct{} // closed when the sender loop ended
	// published counts the messages sent on this connection, so that
	// limits learnt after the first messages account for them.
	published atomic.Int64
	// first is the first outbox entry sent on this connection and when:
	// a connection closed right after it, with no PUBACK, counts towards
	// dead-lettering it as poison.
	firstSeq atomic.Uint64
	firstAt  atomic.Int64
	lostAt   time.Time
}

// publish sends one PUBLISH on this connection.
func (cn *conn) publish(topic string, qos byte, payload []byte) pubToken {
	cn.published.Add(1)
	return cn.tr.publish(topic, qos, payload)
}

func (cn *conn) markLost(err error) {
	cn.lostOnce.Do(func() {
		cn.err = err
		cn.lostAt = time.Now()
		cn.cancel()
		close(cn.lost)
	})
}

// route hands the downlinks whose topic starts with prefix to fn. fn runs
// on paho's router goroutine and must not block.
type route struct {
	prefix string
	exact  bool
	fn     func(topic string, payload []byte)
}

type pendingReq struct {
	reqTopic string
	payload  []byte
	ch       chan []byte
	once     bool // never published again after a reconnect
}

func newClient(cfg Config) (*client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &client{
		cfg:      cfg,
		log:      cfg.Logger,
		acks:     map[uint64]*Ack{},
		early:    map[uint64]error{},
		pending:  map[string]*pendingReq{},
		subs:     map[string]byte{},
		upCh:     make(chan struct{}),
		attempts: make(chan struct{}),
		inflight: cfg.MaxInflight,
		statusCh: make(chan struct{}, 1),
	}
	c.lim, _ = newLimits(nil, nil)
	c.lim.telemetryTopic, c.lim.attributesTopic = cfg.TelemetryTopic, cfg.AttributesTopic
	if cfg.TLS != nil {
		if c.tlsCfg, err = cfg.TLS.tlsConfig(cfg.Host); err != nil {
			return nil, err
		}
	}
	policy := outbox.Block
	switch cfg.Outbox.Full {
	case OutboxReject:
		policy = outbox.Reject
	case OutboxDropOldest:
		policy = outbox.DropOldest
	}
	c.ob, err = outbox.Open(outbox.Options{
		Path:     cfg.Outbox.Path,
		MaxBytes: cfg.Outbox.MaxBytes,
		// What the client holds per entry besides its bytes is charged
		// too (see outboxEntryOverhead).
		EntryOverhead: outboxEntryOverhead,
		Policy:        policy,
		NoSync:        cfg.Outbox.NoSync,
		OnDrop: func(seqs []uint64) {
			for _, s := range seqs {
				c.completeAck(s, ErrDropped)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tb: opening outbox: %w", err)
	}
	c.restoredMax = c.ob.Last()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// Passive filters: ThingsBoard sends responses without them, a plain
	// MQTT broker with a responder needs them.
	c.subs[topicAttrResponseSub] = c.cfg.QoS
	c.subs[topicRPCResponseSub] = c.cfg.QoS
	c.addRoute(topicAttrResponse, false, c.resolvePending)
	c.addRoute(topicRPCResponse, false, c.resolvePending)
	c.wg.Add(1)
	go c.statusLoop()
	return c, nil
}

// stamper returns the timestamp source of device's records, nil when the
// server stamps them (Config.ServerTimestamps).
func (c *client) stamper(device string) func() int64 {
	if c.cfg.ServerTimestamps {
		return nil
	}
	return func() int64 { return c.clk.stamp(device) }
}

func (c *client) addRoute(prefix string, exact bool, fn func(string, []byte)) {
	c.routes = append(c.routes, route{prefix: prefix, exact: exact, fn: fn})
}

// start launches the connection loop once.
func (c *client) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	if !c.started {
		c.started = true
		c.wg.Add(1)
		go c.run()
	}
	return nil
}

// connect starts the loop and waits for a CONNACK. A refusal the server
// will repeat (bad credentials) is returned at once.
func (c *client) connect(ctx context.Context) error {
	if err := c.start(); err != nil {
		return err
	}
	for {
		c.mu.Lock()
		up, attempts, lastErr, closing := c.upCh, c.attempts, c.lastErr, c.closing
		isUp := c.conn != nil
		c.mu.Unlock()
		if closing {
			return ErrClosed
		}
		if isUp {
			return nil
		}
		if permanentConnectError(lastErr) {
			return lastErr
		}
		select {
		case <-up:
		case <-attempts:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("tb: connecting: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return fmt.Errorf("tb: connecting: %w", ctx.Err())
		}
	}
}

// permanentConnectError reports errors that retrying with the same settings
// will not fix: refused credentials and TLS verification failures on either
// side. The connection loop still retries them (credentials can be fixed on
// the server), but Connect returns them at once.
func permanentConnectError(err error) bool {
	if err == nil {
		return false
	}
	var ce *ConnectError
	if errors.As(err, &ce) {
		return ce.Permanent()
	}
	if errors.Is(err, ErrNotGateway) {
		return true
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return true
	}
	return strings.Contains(err.Error(), "remote error: tls:")
}

// waitConnected blocks until a connection is up or ctx ends.
func (c *client) waitConnected(ctx context.Context) error {
	c.mu.Lock()
	up := c.upCh
	c.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *client) run() {
	defer c.wg.Done()
	failures, drops := 0, 0
	for c.ctx.Err() == nil {
		c.setState(StateConnecting, nil)
		cn, err := c.dial()
		c.mu.Lock()
		c.attemptN++
		close(c.attempts)
		c.attempts = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			failures++
			c.log.Warn("connection attempt failed", "broker", c.cfg.brokerURL(), "error", err)
			c.setState(StateOffline, err)
			if !c.sleep(c.backoff(failures)) {
				return
			}
			continue
		}
		upAt := time.Now()
		if err := c.online(cn); err != nil {
			failures++
			c.log.Warn("connection refused after connect", "broker", c.cfg.brokerURL(), "error", err)
			c.setState(StateOffline, err)
			if !c.sleep(c.backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		select {
		case <-cn.lost:
		case <-c.ctx.Done():
			cn.markLost(ErrClosed)
		}
		c.offline(cn)
		if c.ctx.Err() != nil {
			return
		}
		c.checkPoison(cn)
		if !c.sleep(c.dropDelay(cn.err, time.Since(upAt), &drops)) {
			return
		}
	}
}

func (c *client) backoff(failures int) time.Duration {
	d := c.cfg.ReconnectMin
	for i := 1; i < failures && d < c.cfg.ReconnectMax; i++ {
		d *= 2
	}
	if d > c.cfg.ReconnectMax {
		d = c.cfg.ReconnectMax
	}
	return jitter(d)
}

// jitter returns a wait in [d/2, d] so that many devices do not reconnect
// in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (c *client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// dial makes one connection attempt with a new transport.
func (c *client) dial() (*conn, error) {
	epoch := c.epoch.Add(1)
	cctx, cancel := context.WithCancel(c.ctx)
	cn := &conn{epoch: epoch, ctx: cctx, cancel: cancel, lost: make(chan struct{}), sender: make(chan struct{})}
	tr, err := c.dialTransport(c.ctx, transportHooks{
		onMessage: func(topic string, payload []byte) {
			if c.epoch.Load() != epoch {
				return
			}
			c.dispatch(topic, payload)
		},
		onLost: cn.markLost,
	})
	if err != nil {
		cancel()
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, err
	}
	cn.tr = tr
	return cn, nil
}

// online runs after a CONNACK: subscribe again, resend pending requests,
// start the outbox sender and the connect hooks. An error from a before
// hook ends the connection.
func (c *client) online(cn *conn) error {
	c.mu.Lock()
	filters := make(map[string]byte, len(c.subs))
	for f, q := range c.subs {
		filters[f] = q
	}
	c.mu.Unlock()
	if len(filters) > 0 {
		c.subscribe(cn, filters)
	}
	c.mu.Lock()
	before := append([]func(*conn) error{}, c.before...)
	c.mu.Unlock()
	for _, h := range before {
		if err := h(cn); err != nil {
			close(cn.sender)
			cn.markLost(err)
			cn.tr.close(0)
			return err
		}
	}
	c.mu.Lock()
	c.conn = cn
	close(c.upCh)
	// Filters added while the copied ones were being subscribed would be
	// missed: ensureSub saw no connection yet.
	missed := map[string]byte{}
	for f, q := range c.subs {
		if _, done := filters[f]; !done {
			missed[f] = q
		}
	}
	pend := make([]*pendingReq, 0, len(c.pending))
	for _, p := range c.pending {
		if !p.once {
			pend = append(pend, p)
		}
	}
	hooks := append([]func(*conn){}, c.hooks...)
	c.mu.Unlock()
	if len(missed) > 0 {
		c.subscribe(cn, missed)
	}
	c.setState(StateConnected, nil)
	c.log.Info("connected", "broker", c.cfg.brokerURL())
	for _, p := range pend {
		cn.publish(p.reqTopic, c.cfg.QoS, p.payload)
	}
	go func() {
		defer close(cn.sender)
		c.sendLoop(cn)
	}()
	for _, h := range hooks {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			h(cn)
		}()
	}
	return nil
}

func (c *client) offline(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		c.upCh = make(chan struct{})
	}
	lim := c.lim
	c.mu.Unlock()
	lim.closeSession()
	if c.ctx.Err() != nil {
		<-cn.sender
		cn.tr.close(250 * time.Millisecond)
		return
	}
	// The connection is already lost, but its library may take up to the
	// write timeout to notice (MQTT 3.1.1: a publish blocked behind a write
	// on a reset socket), holding up the sender. That must not hold up the
	// next connection: the old sender only ever publishes on its own dead
	// connection, and ends on its own.
	t := time.NewTimer(time.Second)
	select {
	case <-cn.sender:
	case <-t.C:
		c.log.Debug("sender of the lost connection still ending; connecting again meanwhile")
	}
	t.Stop()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-cn.sender
		cn.tr.close(0)
	}()
	c.log.Warn("disconnected", "error", cn.err)
	c.setState(StateOffline, cn.err)
}

// subscribe sends the filters and waits (bounded) for the SUBACK. Filters
// the server refuses are logged: ThingsBoard refuses some passive ones and
// still sends their downlinks.
func (c *client) subscribe(cn *conn, filters map[string]byte) {
	refused, err := cn.tr.subscribe(filters, c.cfg.RequestTimeout)
	if err != nil {
		c.log.Warn("subscribe failed", "filters", len(filters), "error", err)
		return
	}
	for f, code := range refused {
		c.log.Debug("subscription refused by server", "filter", f, "code", code)
	}
}

// ensureSub adds a filter to the set subscribed after every CONNACK and
// subscribes now when connected.
func (c *client) ensureSub(filter string) {
	c.mu.Lock()
	if _, ok := c.subs[filter]; ok {
		c.mu.Unlock()
		return
	}
	c.subs[filter] = c.cfg.QoS
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		c.subscribe(cn, map[string]byte{filter: c.cfg.QoS})
	}
}

// onConnect registers a hook run (in its own goroutine) after every CONNACK.
func (c *client) onConnect(h func(*conn)) {
	c.mu.Lock()
	c.hooks = append(c.hooks, h)
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			h(cn)
		}()
	}
}

func (c *client) current() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// dispatch routes one downlink. It runs on paho's router goroutine and never
// blocks: handlers are handed to other goroutines by the route functions.
func (c *client) dispatch(topic string, payload []byte) {
	// paho decodes every packet into a payload of its own: no copy needed.
	for _, r := range c.routes {
		if (r.exact && topic == r.prefix) || (!r.exact && strings.HasPrefix(topic, r.prefix)) {
			r.fn(topic, payload)
			return
		}
	}
	c.log.Debug("downlink on unexpected topic dropped", "topic", topic)
}

func (c *client) reportError(err error) {
	c.log.Error("recovered", "error", err)
	if c.cfg.OnError != nil {
		c.cfg.OnError(err)
	}
}

// --- publishing -----------------------------------------------------------

// snapshot returns, under one lock, what a publish needs: the current
// connection (nil when offline), the limits in force and whether the
// client is closing.
func (c *client) snapshot() (cn *conn, lim *limits, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn, c.lim, c.closing
}

// publish sends one message with the configured QoS: QoS 1 through the
// outbox (durable, acknowledged), QoS 0 straight to the connection.
func (c *client) publish(ctx context.Context, topic string, payload []byte) (*Ack, error) {
	cn, lim, closing := c.snapshot()
	if err := lim.checkSize(topic, payload); err != nil {
		return nil, err
	}
	if closing {
		return nil, ErrClosed
	}
	if c.cfg.QoS == 0 {
		// QoS 0 is never queued: offline, it fails.
		if cn == nil {
			return nil, ErrNotConnected
		}
		if err := lim.wait(ctx, topic, payload); err != nil {
			return nil, err
		}
		return &Ack{tok: cn.publish(topic, 0, payload)}, nil
	}
	seqs, err := c.ob.Append(ctx, outbox.Record{Topic: topic, Payload: payload})
	if err != nil {
		switch {
		case errors.Is(err, outbox.ErrFull):
			return nil, fmt.Errorf("%w: %w", ErrOutboxFull, err)
		case errors.Is(err, outbox.ErrClosed):
			return nil, ErrClosed
		case errors.Is(err, outbox.ErrTooLarge):
			return nil, fmt.Errorf("%w: larger than the whole outbox: %w", ErrPayloadTooLarge, err)
		}
		return nil, fmt.Errorf("tb: storing message in outbox: %w", err)
	}
	a := newAck()
	a.seq = seqs[0]
	c.mu.Lock()
	if err, ok := c.early[a.seq]; ok {
		delete(c.early, a.seq)
		c.mu.Unlock()
		a.complete(err)
		return a, nil
	}
	c.acks[a.seq] = a
	c.mu.Unlock()
	return a, nil
}

// publishNow sends a message that is not kept in the outbox (requests,
// replies, claims) and waits for its PUBACK (QoS 1) or write (QoS 0).
func (c *client) publishNow(ctx context.Context, topic string, payload []byte) error {
	cn, lim, _ := c.snapshot()
	if err := lim.checkSize(topic, payload); err != nil {
		return err
	}
	if cn == nil {
		return ErrNotConnected
	}
	if err := lim.wait(ctx, topic, payload); err != nil {
		return err
	}
	tok := cn.publish(topic, c.cfg.QoS, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("tb: publishing to %q: %w", topic, err)
		}
		return nil
	case <-cn.lost:
		return fmt.Errorf("tb: publishing to %q: %w", topic, ErrNotConnected)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *client) limits() *limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lim
}

func (c *client) completeAck(seq uint64, err error) {
	c.mu.Lock()
	a, ok := c.acks[seq]
	if ok {
		delete(c.acks, seq)
	} else if seq > c.restoredMax {
		c.early[seq] = err
	}
	c.mu.Unlock()
	if ok {
		a.complete(err)
	}
}

// backOff makes the sender pause for d (the server asked for it).
func (c *client) backOff(d time.Duration) {
	c.pauseUntil.Store(time.Now().Add(d).UnixNano())
}

func (c *client) waitPause(cn *conn) bool {
	until := c.pauseUntil.Load()
	if until == 0 {
		return true
	}
	d := time.Until(time.Unix(0, until))
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cn.lost:
		return false
	}
}

// --- status and shutdown ---------------------------------------------------

func (c *client) setState(s State, err error) {
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		return
	}
	c.state = s
	if err != nil || s == StateConnected {
		c.lastErr = err
	}
	c.mu.Unlock()
	select {
	case c.statusCh <- struct{}{}:
	default:
	}
}

func (c *client) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{State: c.state, Queued: c.ob.Len(), DeadLetters: c.ob.DeadCount(), LastDeadLetter: c.lastDead, Err: c.lastErr}
}

// statusLoop delivers status changes to Config.OnStatus one at a time,
// coalescing bursts to the latest state.
func (c *client) statusLoop() {
	defer c.wg.Done()
	var last *Status
	for {
		select {
		case <-c.statusCh:
		case <-c.ctx.Done():
			if c.cfg.OnStatus != nil {
				c.cfg.OnStatus(Status{State: StateClosed, Queued: c.ob.Len()})
			}
			return
		}
		st := c.status()
		if last != nil && last.State == st.State && errors.Is(last.Err, st.Err) && last.LastDeadLetter == st.LastDeadLetter {
			continue
		}
		last = &st
		if c.cfg.OnStatus != nil {
			func() {
				defer func() {
					if r := recover(); r != nil {
						c.reportError(&HandlerPanicError{Handler: "status", Value: r})
					}
				}()
				c.cfg.OnStatus(st)
			}()
		}
	}
}

// close flushes the outbox while ctx allows, then disconnects and closes the
// outbox. Messages not yet acknowledged stay in the outbox file.
func (c *client) close(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	connected := c.conn != nil
	c.mu.Unlock()
	if connected {
		// Flush while connected and ctx allows; a lost connection ends the
		// wait (what is left stays in the outbox).
		t := time.NewTicker(10 * time.Millisecond)
	flush:
		for c.ob.Len() > 0 && c.current() != nil {
			select {
			case <-t.C:
			case <-ctx.Done():
				break flush
			}
		}
		t.Stop()
	}
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	acks := c.acks
	c.acks = map[uint64]*Ack{}
	c.state = StateClosed
	c.mu.Unlock()
	for _, a := range acks {
		a.complete(ErrClosed)
	}
	if err := c.ob.Close(); err != nil {
		return fmt.Errorf("tb: closing outbox: %w", err)
	}
	return nil
}
