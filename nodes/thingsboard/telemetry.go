package thingsboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

func init() {
	engine.Register(engine.Type{
		Name: "tb-telemetry-out", Category: category, Inputs: 1, Outputs: 0,
		Label: "tb-telemetry-out", Color: color, Icon: "thingsboard",
		Summary: "Sends msg.payload to ThingsBoard as telemetry, batching what arrives together.",
		Help: `Sends ` + "`msg.payload`" + ` as telemetry of the connection's device, or in gateway mode of the device named
by the node's **device** or ` + "`msg.device`" + ` (a ` + "`gw-device`" + ` node sets it).

The payload is

- an object of values, ` + "`{\"temperature\": 21.5, \"humidity\": 40}`" + `, stamped with ` + "`msg.ts`" + ` (Unix
  milliseconds) when the message has one;
- a record with its own time, ` + "`{\"ts\": 1700000000000, \"values\": {...}}`" + `;
- or an array of either.

**Batching.** Messages that arrive together are sent as one MQTT message (an array of records; in
gateway mode one message for every device), at most **maxBatch** messages per batch; a batch larger
than the server's payload limit is split. With **batching** ` + "`adaptive`" + ` (the default) a message goes at once
when none of the node's messages awaits the server's acknowledgement, so a quiet flow has no added
latency; while some do, the messages that arrive wait together until those are acknowledged, the
batch holds **maxBatch** messages, or its first message has waited **linger** (default 5 ms) — large
batches under load. With ` + "`linger`" + ` every batch waits **linger** (or **maxBatch**). A batch of
records without a time are stamped when the batch is stored, strictly increasing per device, so
that ThingsBoard keeps every one (it keeps one value per key and millisecond). **linger** ` + "`0`" + ` sends
every message on its own.

**Delivery.** With QoS 1 (the default) a message is accepted once it is in the connection's outbox:
the node goes on at once, the outbox sends in order and keeps everything while the server is
unreachable, and a message the server never took (dropped from a full outbox) is reported to
` + "`catch`" + `. When the outbox is full the node waits (the ` + "`block`" + ` policy), which holds up the flow instead of
losing data. Turn **waitAck** on to wait for the server's acknowledgement of every message before
taking the next (slower; no batching). With QoS 0 messages wait while the connection is down.

A payload that is not telemetry (a string, an empty object, …) is an error for ` + "`catch`" + `, with the message.`,
		Fields: []engine.Field{
			connField(),
			deviceField("Gateway mode: the device to send for; empty uses `msg.device`. Ignored in device mode."),
			{Name: "linger", Kind: engine.KindDuration, Label: "Batch wait", Default: "5ms", Min: engine.Float(0), Max: engine.Float(60), Help: "Longest wait for more messages to send together (adaptive batching waits only while earlier messages await their acknowledgement); 0 sends each message on its own."},
			{Name: "batching", Kind: engine.KindEnum, Label: "Batching", Default: batchAdaptive, Enum: []string{batchAdaptive, batchLinger}, Help: "`adaptive`: send at once when nothing awaits an acknowledgement, batch while something does (up to the batch wait). `linger`: always wait the batch wait.", Advanced: true},
			{Name: "maxBatch", Kind: engine.KindInt, Label: "Most messages per batch", Default: 100, Min: engine.Float(1), Max: engine.Float(10000), Help: "Most messages sent in one batch.", Advanced: true},
			{Name: "waitAck", Kind: engine.KindBool, Label: "Wait for acknowledgement", Default: false, Help: "Wait for the server to acknowledge each message before taking the next (backpressure from the server; no batching).", Advanced: true},
		},
		New: engine.Construct(newTelemetryOut),
	})
}

type telemetryConfig struct {
	Connection string          `json:"connection"`
	Device     string          `json:"device"`
	Linger     engine.Duration `json:"linger"`
	MaxBatch   int             `json:"maxBatch"`
	Batching   string          `json:"batching"`
	WaitAck    bool            `json:"waitAck"`
}

// maxPendingBytes bounds the memory the records waiting in the node hold
// (estimated by recordCost): a batch that reaches it is sent without
// waiting, and the node holds the flow up at twice it (a single message
// always gets in, whatever its size).
const maxPendingBytes = 4 << 20

// recordCost estimates what a pending record holds: the record and its
// map of values, each entry with its boxed value (strings and nested
// values are not walked: an estimate, not a measurement).
func recordCost(r record) int64 { return 48 + 64 + 48*int64(len(r.Values)) }

// record is one telemetry record. One without a time is stamped by the
// connection when the batch is stored: strictly increasing per device, so
// that ThingsBoard, which keeps one value per key and millisecond, keeps
// every one.
type record = tb.Telemetry

// telemetryOut batches on the node's goroutine (Handle only parses and
// appends) and encodes and stores batches on a sender goroutine of its own
// (Run), so a pipeline is two stages, not one. One more goroutine watches
// the acknowledgements of the batches sent, in order.
type telemetryOut struct {
	user
	conf *telemetryConfig

	mu      sync.Mutex
	pending map[string][]record // device ("" in device mode) → records
	spare   map[string][]record // the last batch's map, emptied, for reuse
	count   int                 // messages pending
	bytes   int64               // memory the pending records hold (recordCost)
	first   *engine.Msg         // first pending message, for error reports
	firstAt time.Time           // when it arrived
	kick    chan struct{}       // to the sender: records are pending, a batch is full, or the node went idle
	taken   chan struct{}       // to Handle: the sender took a batch (room again)

	sendMu sync.Mutex // one batch encoded and stored at a time, in order

	inflight atomic.Int64 // batches stored, their acknowledgement not yet seen
	acks     ackQueue

	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newTelemetryOut(nc *engine.NodeContext, c *telemetryConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	switch c.Batching {
	case "":
		c.Batching = batchAdaptive
	case batchAdaptive, batchLinger:
	default:
		return nil, fmt.Errorf("batching %q: want %s or %s", c.Batching, batchAdaptive, batchLinger)
	}
	return &telemetryOut{user: u, conf: c, kick: make(chan struct{}, 1), taken: make(chan struct{}, 1),
		pending: map[string][]record{}, acks: newAckQueue()}, nil
}

const (
	batchAdaptive = "adaptive"
	batchLinger   = "linger"
)

func (n *telemetryOut) Start(ctx context.Context) error {
	n.life, n.cancel = context.WithCancel(context.Background())
	n.user.start()
	n.wg.Go(func() { n.watchAcks(n.life) })
	return nil
}

// Stop sends what is still batched, then stops reporting.
func (n *telemetryOut) Stop(ctx context.Context) error {
	if n.cancel == nil {
		return nil
	}
	n.flush(ctx)
	n.cancel()
	n.wg.Wait()
	n.user.stop()
	return nil
}

// appendRecords appends the records of a payload to dst; flat objects
// take msg.ts. On an error dst is returned as it was.
func appendRecords(dst []record, p any, ts time.Time) ([]record, error) {
	one := func(v any) (record, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return record{}, fmt.Errorf("telemetry must be an object of values, {ts, values} or an array of them; got %s", kindOf(v))
		}
		if vals, ok := m["values"].(map[string]any); ok {
			if _, hasTs := m["ts"]; hasTs && len(m) == 2 {
				t, ok := msTime(m["ts"])
				if !ok {
					return record{}, fmt.Errorf("telemetry ts must be Unix milliseconds, got %s", kindOf(m["ts"]))
				}
				if len(vals) == 0 {
					return record{}, errors.New("telemetry record has no values")
				}
				return record{Ts: t, Values: vals}, nil
			}
		}
		if len(m) == 0 {
			return record{}, errors.New("telemetry has no values (empty object)")
		}
		return record{Ts: ts, Values: m}, nil
	}
	if arr, ok := p.([]any); ok {
		if len(arr) == 0 {
			return dst, errors.New("telemetry array is empty")
		}
		start := len(dst)
		for i, v := range arr {
			r, err := one(v)
			if err != nil {
				clear(dst[start:])
				return dst[:start], fmt.Errorf("element %d: %w", i, err)
			}
			dst = append(dst, r)
		}
		return dst, nil
	}
	r, err := one(p)
	if err != nil {
		return dst, err
	}
	return append(dst, r), nil
}

func (n *telemetryOut) Handle(ctx context.Context, msg *engine.Msg) error {
	var ts time.Time
	if v, ok := msg.Get("ts"); ok {
		ts, _ = msTime(v)
	}
	device := ""
	if n.conn.gateway() {
		var err error
		if device, err = deviceOf(n.conf.Device, msg); err != nil {
			return err
		}
	}
	if _, err := n.conn.Device(); err != nil {
		return err
	}
	if n.conn.QoS0() && !n.conn.Connected() {
		return fmt.Errorf("telemetry with QoS 0: %w", engine.ErrNotConnected)
	}
	if n.conf.WaitAck || n.conf.Linger <= 0 || n.life == nil {
		recs, err := appendRecords(nil, msg.Payload, ts)
		if err != nil {
			return err
		}
		n.sendMu.Lock()
		ack, err := n.publish(ctx, map[string][]record{device: recs})
		n.sendMu.Unlock()
		if err != nil {
			return publishErr("sending telemetry", err)
		}
		if n.conf.WaitAck {
			if err := ack.Wait(ctx); err != nil {
				return fmt.Errorf("telemetry not acknowledged: %w", err)
			}
			return nil
		}
		n.watch(ack, msg)
		return nil
	}
	n.mu.Lock()
	// At most two batches wait here: beyond, the node waits for the
	// sender (which waits for the outbox), so memory stays bounded and a
	// full outbox holds the flow up.
	for n.count >= 2*n.conf.MaxBatch || (n.count > 0 && n.bytes >= 2*maxPendingBytes) {
		n.mu.Unlock()
		select {
		case <-n.taken:
		case <-ctx.Done():
			return ctx.Err()
		}
		n.mu.Lock()
	}
	before := len(n.pending[device])
	recs, err := appendRecords(n.pending[device], msg.Payload, ts)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.pending[device] = recs
	wasFull := n.bytes >= maxPendingBytes
	for _, r := range recs[before:] {
		n.bytes += recordCost(r)
	}
	if n.count == 0 {
		n.first, n.firstAt = msg, time.Now()
	}
	n.count++
	first := n.count == 1
	full := n.count == n.conf.MaxBatch || (!wasFull && n.bytes >= maxPendingBytes)
	n.mu.Unlock()
	switch {
	case first && n.conf.Batching == batchAdaptive && n.inflight.Load() == 0 && n.sendMu.TryLock():
		// Quiet: nothing awaits an acknowledgement and the sender is
		// idle, so this message goes at once from here, one hand-off
		// fewer on its way.
		n.flushLocked(ctx)
		n.sendMu.Unlock()
	case first || full:
		n.wake()
	}
	return nil
}

func (n *telemetryOut) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Run is the sender. Adaptive batching sends a batch at once when none of
// the node's batches awaits its acknowledgement; while some do, it lets
// the batch grow until they are acknowledged, it holds maxBatch messages,
// or its first message has waited linger. Linger batching always waits
// linger (or maxBatch).
func (n *telemetryOut) Run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.kick:
		}
		for {
			n.mu.Lock()
			count, firstAt, bytes := n.count, n.firstAt, n.bytes
			n.mu.Unlock()
			if count == 0 {
				break
			}
			if count < n.conf.MaxBatch && bytes < maxPendingBytes && (n.conf.Batching == batchLinger || n.inflight.Load() > 0) {
				if wait := time.Until(firstAt.Add(n.conf.Linger.D())); wait > 0 {
					t.Reset(wait)
					select {
					case <-ctx.Done():
						return nil
					case <-n.kick:
						t.Stop()
						continue
					case <-t.C:
					}
				}
			}
			n.flush(ctx)
		}
	}
}

// flush encodes and stores what is pending. A batch the context stopped
// (the node is stopping while the outbox is full) goes back to the front
// of the queue for Stop's flush.
func (n *telemetryOut) flush(ctx context.Context) {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.flushLocked(ctx)
}

// flushLocked is flush with sendMu held.
func (n *telemetryOut) flushLocked(ctx context.Context) {
	n.mu.Lock()
	batch, count, first, bytes := n.pending, n.count, n.first, n.bytes
	if count == 0 {
		n.mu.Unlock()
		return
	}
	if n.spare != nil {
		n.pending, n.spare = n.spare, nil
	} else {
		n.pending = make(map[string][]record, len(batch))
	}
	n.count, n.first, n.bytes = 0, nil, 0
	n.mu.Unlock()
	select {
	case n.taken <- struct{}{}:
	default:
	}
	ack, err := n.publish(ctx, batch)
	if err != nil && ack == nil && ctx.Err() != nil {
		n.requeue(batch, count, first, bytes)
		return
	}
	if err != nil {
		n.nc.Error(fmt.Errorf("sending telemetry of %d messages: %w", count, err), first)
	}
	n.watch(ack, first)
	n.recycle(batch)
}

// requeue puts a batch that was not stored back before what came since.
func (n *telemetryOut) requeue(batch map[string][]record, count int, first *engine.Msg, bytes int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for d, rs := range n.pending {
		batch[d] = append(batch[d], rs...)
	}
	n.pending = batch
	n.count += count
	n.bytes += bytes
	if first != nil {
		n.first = first
	}
}

// recycle keeps a sent batch's map and slices for the next one, emptied so
// that they hold no payloads.
func (n *telemetryOut) recycle(batch map[string][]record) {
	if len(batch) > 64 {
		return // gateway mode with many devices: let it go
	}
	for d, rs := range batch {
		clear(rs)
		if cap(rs) > 4*n.conf.MaxBatch {
			delete(batch, d)
			continue
		}
		batch[d] = rs[:0]
	}
	n.mu.Lock()
	if n.spare == nil {
		n.spare = batch
	}
	n.mu.Unlock()
}

// watch queues a stored batch's acknowledgement for the ack watcher.
func (n *telemetryOut) watch(a *multiAck, msg *engine.Msg) {
	if a == nil || len(a.acks) == 0 {
		return
	}
	n.inflight.Add(1)
	n.acks.push(pendingAck{a: a, msg: msg})
}

// watchAcks waits for the acknowledgements in the order the batches were
// stored, reports the ones the server did not take, and wakes the sender
// when the node has nothing in flight any more.
func (n *telemetryOut) watchAcks(ctx context.Context) {
	for {
		p, ok := n.acks.pop(ctx)
		if !ok {
			return
		}
		err := p.a.Wait(ctx)
		if ctx.Err() != nil {
			return
		}
		if n.inflight.Add(-1) == 0 {
			n.wake()
		}
		if err != nil && !errors.Is(err, tb.ErrClosed) {
			n.nc.Error(fmt.Errorf("telemetry not delivered: %w", err), p.msg)
		}
	}
}

// publish encodes and stores a batch. The caller holds sendMu.
func (n *telemetryOut) publish(ctx context.Context, batch map[string][]record) (*multiAck, error) {
	if n.conn.gateway() {
		gw, err := n.conn.Gateway()
		if err != nil {
			return nil, err
		}
		byDevice := make(map[string]any, len(batch))
		for d, rs := range batch {
			if len(rs) > 0 { // a recycled map keeps devices of earlier batches
				byDevice[d] = rs
			}
		}
		ack, err := gw.PublishTelemetryBatch(ctx, byDevice)
		if err != nil {
			return nil, err
		}
		return &multiAck{acks: []*tb.Ack{ack}}, nil
	}
	dev, err := n.conn.Device()
	if err != nil {
		return nil, err
	}
	ma := &multiAck{}
	var send func(ts []tb.Telemetry) error
	send = func(ts []tb.Telemetry) error {
		var v any = ts
		if len(ts) == 1 {
			v = ts[0]
		}
		ack, err := dev.PublishTelemetry(ctx, v)
		if errors.Is(err, tb.ErrPayloadTooLarge) && len(ts) > 1 {
			if err := send(ts[:len(ts)/2]); err != nil {
				return err
			}
			return send(ts[len(ts)/2:])
		}
		if err != nil {
			return err
		}
		ma.acks = append(ma.acks, ack)
		return nil
	}
	if err := send(batch[""]); err != nil {
		if len(ma.acks) > 0 {
			return ma, err // part of the batch was stored: watch it, report the rest
		}
		return nil, err
	}
	return ma, nil
}

// pendingAck is a stored batch awaiting its acknowledgement.
type pendingAck struct {
	a   *multiAck
	msg *engine.Msg
}

// ackQueue is an unbounded FIFO of pending acknowledgements (bounded in
// practice by the outbox, which holds every batch not yet acknowledged).
type ackQueue struct {
	mu    sync.Mutex
	q     []pendingAck
	head  int
	ready chan struct{}
}

func newAckQueue() ackQueue { return ackQueue{ready: make(chan struct{}, 1)} }

func (q *ackQueue) push(p pendingAck) {
	q.mu.Lock()
	q.q = append(q.q, p)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *ackQueue) pop(ctx context.Context) (pendingAck, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.q) {
			p := q.q[q.head]
			q.q[q.head] = pendingAck{}
			q.head++
			if q.head == len(q.q) {
				q.q, q.head = q.q[:0], 0
			}
			q.mu.Unlock()
			return p, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return pendingAck{}, false
		}
	}
}
