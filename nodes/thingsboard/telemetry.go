package thingsboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

**Batching.** Messages that arrive within **linger** of each other (default 5 ms) are sent as one
MQTT message (an array of records; in gateway mode one message for every device), at most
**maxBatch** messages per batch; a batch larger than the server's payload limit is split. A batch of
several messages stamps each value object without a time with the time its message arrived, so that
ThingsBoard keeps every one (it would give them all the same server time and keep only the last).
A single message without a time is sent as it is and gets the server's time. **linger** ` + "`0`" + ` sends
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
			{Name: "linger", Kind: engine.KindDuration, Label: "Batch wait", Default: "5ms", Min: engine.Float(0), Max: engine.Float(60), Help: "How long to wait for more messages to send together; 0 sends each message at once."},
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
	WaitAck    bool            `json:"waitAck"`
}

// record is one telemetry record and when its message arrived.
type record struct {
	t       tb.Telemetry
	arrived time.Time
}

type telemetryOut struct {
	user
	conf *telemetryConfig

	kick    chan struct{}
	flushMu sync.Mutex // one flush at a time, in order
	mu      sync.Mutex
	pending map[string][]record // device ("" in device mode) → records
	count   int                 // messages pending
	first   *engine.Msg         // first pending message, for error reports
	life    context.Context
	cancel  context.CancelFunc
}

func newTelemetryOut(nc *engine.NodeContext, c *telemetryConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	return &telemetryOut{user: u, conf: c, kick: make(chan struct{}, 1), pending: map[string][]record{}}, nil
}

func (n *telemetryOut) Start(ctx context.Context) error {
	n.life, n.cancel = context.WithCancel(context.Background())
	n.user.start()
	return nil
}

// Stop sends what is still batched, then stops reporting.
func (n *telemetryOut) Stop(ctx context.Context) error {
	if n.cancel == nil {
		return nil
	}
	n.flush(ctx)
	n.cancel()
	n.user.stop()
	return nil
}

// parseTelemetry turns a payload into records; flat objects take msg.ts.
func parseTelemetry(p any, ts time.Time, now time.Time) ([]record, error) {
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
				return record{t: tb.Telemetry{Ts: t, Values: vals}, arrived: now}, nil
			}
		}
		if len(m) == 0 {
			return record{}, errors.New("telemetry has no values (empty object)")
		}
		return record{t: tb.Telemetry{Ts: ts, Values: m}, arrived: now}, nil
	}
	if arr, ok := p.([]any); ok {
		if len(arr) == 0 {
			return nil, errors.New("telemetry array is empty")
		}
		out := make([]record, 0, len(arr))
		for i, v := range arr {
			r, err := one(v)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	r, err := one(p)
	if err != nil {
		return nil, err
	}
	return []record{r}, nil
}

func (n *telemetryOut) Handle(ctx context.Context, msg *engine.Msg) error {
	now := time.Now()
	var ts time.Time
	if v, ok := msg.Get("ts"); ok {
		ts, _ = msTime(v)
	}
	recs, err := parseTelemetry(msg.Payload, ts, now)
	if err != nil {
		return err
	}
	device := ""
	if n.conn.gateway() {
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
		ack, err := n.publish(ctx, map[string][]record{device: recs})
		if err != nil {
			return publishErr("sending telemetry", err)
		}
		if n.conf.WaitAck {
			if err := ack.Wait(ctx); err != nil {
				return fmt.Errorf("telemetry not acknowledged: %w", err)
			}
			return nil
		}
		watchAck(n.lifeCtx(), n.nc, ack, "telemetry", msg)
		return nil
	}
	n.mu.Lock()
	wasEmpty := n.count == 0
	n.pending[device] = append(n.pending[device], recs...)
	n.count++
	if n.first == nil {
		n.first = msg
	}
	full := n.count >= n.conf.MaxBatch
	n.mu.Unlock()
	if full {
		n.flush(ctx)
		return nil
	}
	if wasEmpty {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (n *telemetryOut) lifeCtx() context.Context {
	if n.life == nil {
		return context.Background()
	}
	return n.life
}

// Run sends each batch once its first message has waited linger.
func (n *telemetryOut) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.kick:
		}
		t := time.NewTimer(n.conf.Linger.D())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		n.flush(ctx)
	}
}

// flush sends what is pending.
func (n *telemetryOut) flush(ctx context.Context) {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	n.mu.Lock()
	batch, count, first := n.pending, n.count, n.first
	n.pending, n.count, n.first = map[string][]record{}, 0, nil
	n.mu.Unlock()
	if count == 0 {
		return
	}
	ack, err := n.publish(ctx, batch)
	if err != nil {
		n.nc.Error(fmt.Errorf("sending telemetry of %d messages: %w", count, err), first)
		return
	}
	watchAck(n.lifeCtx(), n.nc, ack, "telemetry", first)
}

// publish sends records, stamping unstamped ones with their arrival time
// when several go together.
func (n *telemetryOut) publish(ctx context.Context, batch map[string][]record) (*multiAck, error) {
	total := 0
	for _, rs := range batch {
		total += len(rs)
	}
	toTelemetry := func(rs []record) []tb.Telemetry {
		out := make([]tb.Telemetry, len(rs))
		for i, r := range rs {
			out[i] = r.t
			if total > 1 && out[i].Ts.IsZero() {
				out[i].Ts = r.arrived
			}
		}
		return out
	}
	if n.conn.gateway() {
		gw, err := n.conn.Gateway()
		if err != nil {
			return nil, err
		}
		byDevice := make(map[string]any, len(batch))
		for d, rs := range batch {
			byDevice[d] = toTelemetry(rs)
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
	if err := send(toTelemetry(batch[""])); err != nil {
		if len(ma.acks) > 0 {
			watchAck(n.lifeCtx(), n.nc, ma, "telemetry", nil)
		}
		return nil, err
	}
	return ma, nil
}
