package thingsboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

func init() {
	engine.Register(engine.Type{
		Name: "tb-attr-out", Category: category, Inputs: 1, Outputs: 0,
		Label: "tb-attr-out", Color: color, Icon: "thingsboard",
		Summary: "Sends msg.payload to ThingsBoard as client attributes.",
		Help: `Sends ` + "`msg.payload`" + ` (an object, ` + "`{\"serial\": \"A-1\", \"firmware\": \"2.3\"}`" + `) as client-side attributes of the
connection's device, or in gateway mode of the device named by **device** or ` + "`msg.device`" + `.

Like ` + "`tb-telemetry-out`" + `, a QoS 1 message is accepted into the connection's outbox and sent in order, also
after an outage; a message the server never took is reported to ` + "`catch`" + `. **waitAck** waits for the
server's acknowledgement instead. A payload that is not an object is an error for ` + "`catch`" + `.`,
		Fields: []engine.Field{
			connField(),
			deviceField("Gateway mode: the device to send for; empty uses `msg.device`. Ignored in device mode."),
			{Name: "waitAck", Kind: engine.KindBool, Label: "Wait for acknowledgement", Default: false, Help: "Wait for the server to acknowledge each message before taking the next.", Advanced: true},
		},
		New: engine.Construct(newAttrOut),
	})
	engine.Register(engine.Type{
		Name: "tb-attr-in", Category: category, Inputs: 1, Outputs: 2,
		Label: "tb-attr-in", OutputLabels: []string{"shared-attribute updates", "request answers"}, Color: color, Icon: "thingsboard",
		Summary: "Emits shared-attribute updates from ThingsBoard, and answers attribute requests.",
		Help: `**Output 1: shared-attribute updates.** Every change of the shared attributes named in **keys**
(all of them when empty) of the connection's device — in gateway mode of **device** — comes out as
a message:

- ` + "`msg.payload`" + `: the new values, ` + "`{\"interval\": 10}`" + `;
- ` + "`msg.deleted`" + `: the keys deleted on the server, when there are any (the payload is then possibly ` + "`{}`" + `);
- ` + "`msg.resync`" + `: ` + "`true`" + ` for values read from the server at start or after a reconnect, rather than pushed;
- ` + "`msg.device`" + `: in gateway mode, the device.

With **initial** on (the default) the node also emits the current values when it starts, and after every
reconnect what changed while the connection was down (ThingsBoard does not replay missed updates;
the connection reads them again). A value that did not change is not emitted twice.

**Output 2: attribute requests.** A message on the input asks the server for attributes and comes out
with ` + "`msg.payload = {\"client\": {...}, \"shared\": {...}}`" + ` — the same message, so its ` + "`_msgid`" + `, ` + "`topic`" + ` and
other fields tell which request it answers. The keys asked for are ` + "`msg.payload.client`" + ` /
` + "`msg.payload.shared`" + ` (arrays of key names) when the payload has them, else the node's **clientKeys** and
**keys**; with both empty, device mode asks for every attribute. A request that gets no answer in the
connection's **requestTimeout** is an error for ` + "`catch`" + `.`,
		Fields: []engine.Field{
			connField(),
			{Name: "keys", Kind: engine.KindString, Label: "Shared attribute keys", Default: "", Help: "Shared attributes to watch and request, comma-separated; empty means all.", Example: "interval,mode"},
			{Name: "clientKeys", Kind: engine.KindString, Label: "Client attribute keys", Default: "", Help: "Client attributes an input message requests, comma-separated.", Example: "serial"},
			{Name: "initial", Kind: engine.KindBool, Label: "Emit current values", Default: true, Help: "Emit the current values at start and what changed while offline after every reconnect."},
			deviceField("Gateway mode: the device whose attributes to watch (required for requests and `initial`); empty watches every device's pushed updates."),
		},
		New: engine.Construct(newAttrIn),
	})
}

// --- tb-attr-out ---------------------------------------------------------------------

type attrOutConfig struct {
	Connection string `json:"connection"`
	Device     string `json:"device"`
	WaitAck    bool   `json:"waitAck"`
}

type attrOut struct {
	user
	conf   *attrOutConfig
	life   context.Context
	cancel context.CancelFunc
}

func newAttrOut(nc *engine.NodeContext, c *attrOutConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	return &attrOut{user: u, conf: c}, nil
}

func (n *attrOut) Start(context.Context) error {
	if n.cancel == nil {
		n.life, n.cancel = context.WithCancel(context.Background())
		n.user.start()
	}
	return nil
}

func (n *attrOut) Stop(context.Context) error {
	if n.cancel != nil {
		n.cancel()
		n.cancel = nil
		n.user.stop()
	}
	return nil
}

func (n *attrOut) Handle(ctx context.Context, msg *engine.Msg) error {
	obj, ok := msg.Payload.(map[string]any)
	if !ok {
		return fmt.Errorf("attributes must be an object, got %s", kindOf(msg.Payload))
	}
	if len(obj) == 0 {
		return errors.New("attributes: empty object")
	}
	dev, err := n.conn.Device()
	if err != nil {
		return err
	}
	if n.conn.QoS0() && !n.conn.Connected() {
		return fmt.Errorf("attributes with QoS 0: %w", engine.ErrNotConnected)
	}
	var ack *tb.Ack
	if n.conn.gateway() {
		device, err := deviceOf(n.conf.Device, msg)
		if err != nil {
			return err
		}
		gw, err := n.conn.Gateway()
		if err != nil {
			return err
		}
		ack, err = gw.PublishDeviceAttributes(ctx, device, obj)
		if err != nil {
			return publishErr("sending attributes of "+device, err)
		}
	} else {
		ack, err = dev.PublishAttributes(ctx, obj)
		if err != nil {
			return publishErr("sending attributes", err)
		}
	}
	if n.conf.WaitAck {
		if err := ack.Wait(ctx); err != nil {
			return fmt.Errorf("attributes not acknowledged: %w", err)
		}
		return nil
	}
	life := n.life
	if life == nil {
		life = context.Background()
	}
	watchAck(life, n.nc, ack, "attributes", msg)
	return nil
}

// --- shared-attribute watching (tb-attr-in, gw-device) ----------------------------

// attrWatch turns a connection's attribute updates into messages. It keeps
// the values it emitted, so that the node's own request of the current
// values at start and the connection's resync after a connect never emit a
// value twice.
type attrWatch struct {
	device  string // gateway mode
	initial bool
	emit    func(values map[string]any, deleted []string, resync bool)

	mu     sync.Mutex
	known  map[string]any
	read   map[string]bool // known value came from a read, not a push
	gen    uint64
	keyGen map[string]uint64
}

func newAttrWatch(device string, initial bool, emit func(map[string]any, []string, bool)) *attrWatch {
	return &attrWatch{device: device, initial: initial, emit: emit, known: map[string]any{}, read: map[string]bool{}, keyGen: map[string]uint64{}}
}

// update handles one update from the connection.
func (w *attrWatch) update(u tb.AttributeUpdate) {
	if u.Resync {
		w.snapshot(u.Values, u.Deleted, 0, false)
		return
	}
	w.mu.Lock()
	w.gen++
	values := map[string]any{}
	for k, v := range u.Values {
		// A push of the value a read just delivered (the read and the
		// push crossed) is not news; a repeated push is.
		if old, ok := w.known[k]; ok && w.read[k] && sameJSON(old, v) {
			delete(w.read, k)
			continue
		}
		values[k] = v
	}
	maps.Copy(w.known, u.Values)
	for k := range u.Values {
		w.keyGen[k] = w.gen
		delete(w.read, k)
	}
	for _, k := range u.Deleted {
		delete(w.known, k)
		delete(w.read, k)
		w.keyGen[k] = w.gen
	}
	w.mu.Unlock()
	if len(values) == 0 && len(u.Deleted) == 0 {
		return
	}
	w.emit(values, u.Deleted, false)
}

// snapshot emits what differs from the values emitted so far. With check,
// keys pushed since startGen are skipped (the push is newer).
func (w *attrWatch) snapshot(values map[string]any, deleted []string, startGen uint64, check bool) {
	w.mu.Lock()
	out := map[string]any{}
	for k, v := range values {
		if check && w.keyGen[k] > startGen {
			continue
		}
		if old, ok := w.known[k]; !ok || !sameJSON(old, v) {
			out[k] = v
			w.known[k] = v
			w.read[k] = true
		}
	}
	var del []string
	for _, k := range deleted {
		if _, ok := w.known[k]; ok {
			del = append(del, k)
			delete(w.known, k)
			delete(w.read, k)
		}
	}
	w.mu.Unlock()
	if !w.initial || (len(out) == 0 && len(del) == 0) {
		return
	}
	w.emit(out, del, true)
}

// startGen returns the generation before a request of current values.
func (w *attrWatch) startGen() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

func sameJSON(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}

// watchShared subscribes w to the shared attributes keys (nil = all) and,
// with w.initial, reads the current values once in the background (the
// connection may have known them before this node started, so its own
// resync would not deliver them). It returns the function that undoes it.
func watchShared(life context.Context, conn *Connection, w *attrWatch, keys []string) (func(), error) {
	var unsub func()
	if conn.gateway() {
		gw, err := conn.Gateway()
		if err != nil {
			return nil, err
		}
		if w.device == "" {
			unsub = gw.SubscribeAllDeviceAttributes(w.update)
		} else if unsub, err = gw.SubscribeDeviceAttributes(w.device, keys, w.update); err != nil {
			return nil, err
		}
	} else {
		dev, err := conn.Device()
		if err != nil {
			return nil, err
		}
		unsub = dev.SubscribeAttributes(keys, w.update)
	}
	if w.initial && (!conn.gateway() || (w.device != "" && len(keys) > 0)) {
		go func() {
			gen := w.startGen()
			shared, err := requestShared(life, conn, w.device, keys)
			if err != nil {
				if life.Err() == nil {
					conn.nc.Logger().Debug("reading current shared attributes", "device", w.device, "err", err)
				}
				return
			}
			w.snapshot(shared, nil, gen, true)
		}()
	}
	return unsub, nil
}

// requestShared asks for shared attributes (every one when keys is empty).
func requestShared(ctx context.Context, conn *Connection, device string, keys []string) (map[string]any, error) {
	if conn.gateway() {
		gw, err := conn.Gateway()
		if err != nil {
			return nil, err
		}
		return gw.RequestDeviceAttributes(ctx, device, false, keys...)
	}
	dev, err := conn.Device()
	if err != nil {
		return nil, err
	}
	a, err := dev.RequestAttributes(ctx, nil, keys)
	if err != nil {
		return nil, err
	}
	return a.Shared, nil
}

// attrMsg is the message an attribute update becomes.
func attrMsg(device string, values map[string]any, deleted []string, resync bool) *engine.Msg {
	if values == nil {
		values = map[string]any{}
	}
	m := engine.NewMsg(engine.CloneValue(values))
	if len(deleted) > 0 {
		del := make([]any, len(deleted))
		for i, k := range slices.Sorted(slices.Values(deleted)) {
			del[i] = k
		}
		m.Set("deleted", del)
	}
	if resync {
		m.Set("resync", true)
	}
	if device != "" {
		m.Set("device", device)
	}
	return m
}

// ensureConnected connects a gateway's device unless it is already.
func ensureConnected(ctx context.Context, conn *Connection, device, deviceType string) error {
	gw, err := conn.Gateway()
	if err != nil {
		return err
	}
	if slices.Contains(gw.ConnectedDevices(), device) {
		return nil
	}
	if _, err := gw.ConnectDevice(ctx, device, deviceType); err != nil {
		return publishErr("connecting device "+device, err)
	}
	return nil
}

// --- tb-attr-in ---------------------------------------------------------------------

type attrInConfig struct {
	Connection string `json:"connection"`
	Keys       string `json:"keys"`
	ClientKeys string `json:"clientKeys"`
	Initial    bool   `json:"initial"`
	Device     string `json:"device"`
}

type attrIn struct {
	user
	conf       *attrInConfig
	keys       []string // shared keys
	clientKeys []string
	unsub      func()
	life       context.Context
	cancel     context.CancelFunc
}

func newAttrIn(nc *engine.NodeContext, c *attrInConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if c.Device != "" && !u.conn.gateway() {
		return nil, &engine.FieldError{Field: "device", Message: "only for a gateway connection"}
	}
	return &attrIn{user: u, conf: c, keys: splitKeys(c.Keys), clientKeys: splitKeys(c.ClientKeys)}, nil
}

func (n *attrIn) Start(ctx context.Context) error {
	if n.unsub != nil {
		return nil
	}
	if n.conn.gateway() && n.conf.Device != "" {
		if err := ensureConnected(ctx, n.conn, n.conf.Device, ""); err != nil {
			return err
		}
	}
	life, cancel := context.WithCancel(context.Background())
	var unsub func()
	var err error
	if n.conn.gateway() && n.conf.Device == "" {
		unsub, err = n.subscribeAll(life) // every device's pushes
	} else {
		w := newAttrWatch(n.conf.Device, n.conf.Initial, func(values map[string]any, deleted []string, resync bool) {
			n.nc.Send(life, attrMsg(n.conf.Device, values, deleted, resync))
		})
		unsub, err = watchShared(life, n.conn, w, n.keys)
	}
	if err != nil {
		cancel()
		return err
	}
	n.unsub = unsub
	n.life, n.cancel = life, cancel
	n.user.start()
	return nil
}

// subscribeAll passes on the pushed updates of every sub-device.
func (n *attrIn) subscribeAll(life context.Context) (func(), error) {
	gw, err := n.conn.Gateway()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, k := range n.keys {
		want[k] = true
	}
	return gw.SubscribeAllDeviceAttributes(func(u tb.AttributeUpdate) {
		values, deleted := u.Values, u.Deleted
		if len(want) > 0 {
			values = map[string]any{}
			for k, v := range u.Values {
				if want[k] {
					values[k] = v
				}
			}
			deleted = nil
			for _, k := range u.Deleted {
				if want[k] {
					deleted = append(deleted, k)
				}
			}
		}
		if len(values) == 0 && len(deleted) == 0 {
			return
		}
		n.nc.Send(life, attrMsg(u.Device, values, deleted, u.Resync))
	}), nil
}

func (n *attrIn) Stop(context.Context) error {
	if n.unsub != nil {
		n.unsub()
		n.unsub = nil
		n.cancel()
		n.user.stop()
	}
	return nil
}

// keyList reads msg.payload.client / .shared: an array of names or a
// comma-separated string.
func keyList(v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return splitKeys(t), nil
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("attribute keys must be strings, got %s", kindOf(x))
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return t, nil
	}
	return nil, fmt.Errorf("attribute keys must be an array of names, got %s", kindOf(v))
}

// Handle requests attributes and sends the answer on output 2.
func (n *attrIn) Handle(ctx context.Context, msg *engine.Msg) error {
	client, shared := n.clientKeys, n.keys
	if p, ok := msg.Payload.(map[string]any); ok {
		var err error
		if v, ok := p["client"]; ok {
			if client, err = keyList(v); err != nil {
				return err
			}
		}
		if v, ok := p["shared"]; ok {
			if shared, err = keyList(v); err != nil {
				return err
			}
		}
	}
	out := map[string]any{"client": map[string]any{}, "shared": map[string]any{}}
	if n.conn.gateway() {
		device, err := deviceOf(n.conf.Device, msg)
		if err != nil {
			return err
		}
		gw, err := n.conn.Gateway()
		if err != nil {
			return err
		}
		if len(client) > 0 {
			vals, err := gw.RequestDeviceAttributes(ctx, device, true, client...)
			if err != nil {
				return fmt.Errorf("requesting client attributes of %s: %w", device, err)
			}
			out["client"] = vals
		}
		if len(shared) > 0 || len(client) == 0 {
			vals, err := gw.RequestDeviceAttributes(ctx, device, false, shared...)
			if err != nil {
				return fmt.Errorf("requesting shared attributes of %s: %w", device, err)
			}
			out["shared"] = vals
		}
		msg.Set("device", device)
	} else {
		dev, err := n.conn.Device()
		if err != nil {
			return err
		}
		a, err := dev.RequestAttributes(ctx, client, shared)
		if err != nil {
			return fmt.Errorf("requesting attributes: %w", err)
		}
		if a.Client != nil {
			out["client"] = a.Client
		}
		if a.Shared != nil {
			out["shared"] = a.Shared
		}
	}
	msg.Payload = out
	return n.nc.SendTo(ctx, 1, msg)
}
