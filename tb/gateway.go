package tb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Gateway API topics.
const (
	topicGatewayConnect      = "v1/gateway/connect"
	topicGatewayDisconnect   = "v1/gateway/disconnect"
	topicGatewayAttributes   = "v1/gateway/attributes"
	topicGatewayAttrRequest  = "v1/gateway/attributes/request"
	topicGatewayAttrResponse = "v1/gateway/attributes/response"
	topicGatewayRPC          = "v1/gateway/rpc"
	topicGatewayClaim        = "v1/gateway/claim"
)

// DisconnectReasonRateLimit is the reason ThingsBoard gives when it drops a
// sub-device for exceeding its rate limits (MQTT 5 gateway sessions).
const DisconnectReasonRateLimit = 150

// Gateway is a ThingsBoard gateway's MQTT session: it represents many
// sub-devices through one connection. A gateway is also a device: the
// embedded *Device sends the gateway's own telemetry, attributes and RPC.
//
// Everything a gateway sends for its sub-devices (connect, disconnect,
// telemetry, attributes) goes through the durable outbox, in order, so a
// sub-device is always connected (with its type) before its data arrives.
// After every reconnect the gateway connects again every sub-device it had
// connected, then requests the shared attributes that have subscribers and
// delivers what changed while it was offline; pending attribute requests
// are sent again.
type Gateway struct {
	*Device
	q *serialQueue

	mu       sync.Mutex
	devices  map[string]string // connected sub-devices → device type
	attrs    map[string]*attrTable
	handlers map[string]RPCHandler // by device; "" = any device
	anyAttrs map[int]func(AttributeUpdate)
	anySeq   int
	onDrop   func(device string, reason int)
	onRename map[int]func(oldName, newName string)
	onDelete map[int]func(name string)
	cbSeq    int
	renamed  map[string]string // old name → new name, followed by every call
	backoff  time.Duration
	lastDrop time.Time

	rpc *rpcState
}

// NewGateway validates cfg and opens the outbox; see NewDevice. Gateways
// always use QoS 1: ThingsBoard does not acknowledge QoS 0 gateway uplinks.
func NewGateway(cfg Config) (*Gateway, error) {
	if cfg.QoS0 {
		return nil, errors.New("tb: config: a gateway needs QoS 1 (ThingsBoard does not acknowledge QoS 0 gateway messages)")
	}
	d, err := NewDevice(cfg)
	if err != nil {
		return nil, err
	}
	d.gateway = true
	g := &Gateway{
		Device:   d,
		devices:  map[string]string{},
		attrs:    map[string]*attrTable{},
		handlers: map[string]RPCHandler{},
		anyAttrs: map[int]func(AttributeUpdate){},
		renamed:  map[string]string{},
		onRename: map[int]func(string, string){},
		onDelete: map[int]func(string){},
		rpc:      newRPCState(),
	}
	c := d.c
	d.service = g.onServiceRPC
	// The rename and delete notices arrive on the gateway's own RPC topic.
	c.subs[topicRPCRequestSub] = c.cfg.QoS
	g.q = newSerialQueue("gateway attribute", c.cfg.SlowHandler, c.reportError, c.ctx.Done())
	c.addRoute(topicGatewayAttrResponse, true, g.onAttrResponse)
	c.addRoute(topicGatewayAttributes, true, g.onAttributeUpdate)
	c.addRoute(topicGatewayRPC, true, g.onRPC)
	c.addRoute(topicGatewayDisconnect, true, g.onDisconnectNotice)
	for _, f := range []string{topicGatewayAttributes, topicGatewayRPC, topicGatewayAttrResponse} {
		c.subs[f] = c.cfg.QoS
	}
	c.before = append(c.before, g.reconnectDevices)
	c.onConnect(g.resyncAll)
	return g, nil
}

// ConnectGateway creates a Gateway and waits for its first connection.
func ConnectGateway(ctx context.Context, cfg Config) (*Gateway, error) {
	g, err := NewGateway(cfg)
	if err != nil {
		return nil, err
	}
	if err := g.Connect(ctx); err != nil {
		_ = g.Close(context.Background())
		return nil, err
	}
	return g, nil
}

func checkDeviceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty device name", ErrInvalidPayload)
	}
	return nil
}

// ConnectDevice tells the server that the sub-device is connected through
// this gateway, creating it with deviceType (its device profile; "" =
// "default") when the server does not know it yet. From then on the server
// delivers its shared-attribute updates and RPCs. The gateway remembers the
// device and connects it again after every reconnect. The returned Ack
// completes when the server acknowledged.
func (g *Gateway) ConnectDevice(ctx context.Context, name, deviceType string) (*Ack, error) {
	if err := checkDeviceName(name); err != nil {
		return nil, err
	}
	if deviceType == "" {
		deviceType = "default"
	}
	g.mu.Lock()
	name = g.resolveLocked(name)
	g.devices[name] = deviceType
	g.mu.Unlock()
	return g.c.publish(ctx, topicGatewayConnect, mustJSON(map[string]string{"device": name, "type": deviceType}))
}

// DisconnectDevice tells the server the sub-device is gone: no more updates
// or RPCs for it. Its subscriptions are kept for a later ConnectDevice.
func (g *Gateway) DisconnectDevice(ctx context.Context, name string) (*Ack, error) {
	if err := checkDeviceName(name); err != nil {
		return nil, err
	}
	g.mu.Lock()
	name = g.resolveLocked(name)
	delete(g.devices, name)
	g.mu.Unlock()
	return g.c.publish(ctx, topicGatewayDisconnect, mustJSON(map[string]string{"device": name}))
}

// ConnectedDevices lists the sub-devices the gateway has connected.
func (g *Gateway) ConnectedDevices() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.devices))
	for n := range g.devices {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// implicit records a device the server connects implicitly on its first
// uplink (with type "default" when it is new).
func (g *Gateway) implicit(names ...string) {
	g.mu.Lock()
	for _, n := range names {
		if _, ok := g.devices[n]; !ok {
			g.devices[n] = "default"
		}
	}
	g.mu.Unlock()
}

// PublishDeviceTelemetry accepts telemetry of one sub-device (any shape
// PublishTelemetry accepts) for sending; see PublishTelemetry.
func (g *Gateway) PublishDeviceTelemetry(ctx context.Context, device string, v any) (*Ack, error) {
	return g.PublishTelemetryBatch(ctx, map[string]any{device: v})
}

// SendDeviceTelemetry publishes telemetry of one sub-device and waits for
// the server's acknowledgement.
func (g *Gateway) SendDeviceTelemetry(ctx context.Context, device string, v any) error {
	a, err := g.PublishDeviceTelemetry(ctx, device, v)
	if err != nil {
		return err
	}
	return a.Wait(ctx)
}

// PublishTelemetryBatch accepts telemetry of many sub-devices at once
// (device name → telemetry) and packs it into as few messages as the
// server's payload limit allows. The Ack completes when every message was
// acknowledged.
func (g *Gateway) PublishTelemetryBatch(ctx context.Context, byDevice map[string]any) (*Ack, error) {
	byDevice = g.resolveAll(byDevice)
	parts := make(map[string]json.RawMessage, len(byDevice))
	for name, v := range byDevice {
		if err := checkDeviceName(name); err != nil {
			return nil, err
		}
		b, err := encodeTelemetry(v, g.c.stamper(name))
		if err == nil {
			err = checkStrings(b, g.c.cfg.MaxStringValueLength)
		}
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", name, err)
		}
		if firstByte(b) == '{' {
			b = append(append([]byte{'['}, b...), ']')
		}
		parts[name] = b
	}
	return g.publishBatch(ctx, topicGatewayTelemetry, parts)
}

// PublishDeviceAttributes accepts client attributes (a JSON object) of one
// sub-device for sending.
func (g *Gateway) PublishDeviceAttributes(ctx context.Context, device string, v any) (*Ack, error) {
	return g.PublishAttributesBatch(ctx, map[string]any{device: v})
}

// SendDeviceAttributes publishes client attributes of one sub-device and
// waits for the server's acknowledgement.
func (g *Gateway) SendDeviceAttributes(ctx context.Context, device string, v any) error {
	a, err := g.PublishDeviceAttributes(ctx, device, v)
	if err != nil {
		return err
	}
	return a.Wait(ctx)
}

// PublishAttributesBatch accepts client attributes of many sub-devices at
// once (device name → attributes object); see PublishTelemetryBatch.
func (g *Gateway) PublishAttributesBatch(ctx context.Context, byDevice map[string]any) (*Ack, error) {
	byDevice = g.resolveAll(byDevice)
	parts := make(map[string]json.RawMessage, len(byDevice))
	for name, v := range byDevice {
		if err := checkDeviceName(name); err != nil {
			return nil, err
		}
		b, err := encodeAttributes(v)
		if err == nil {
			err = checkStrings(b, g.c.cfg.MaxStringValueLength)
		}
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", name, err)
		}
		parts[name] = b
	}
	return g.publishBatch(ctx, topicGatewayAttributes, parts)
}

// resolveAll follows renames in a batch's device names.
func (g *Gateway) resolveAll(byDevice map[string]any) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.renamed) == 0 {
		return byDevice
	}
	out := make(map[string]any, len(byDevice))
	for n, v := range byDevice {
		out[g.resolveLocked(n)] = v
	}
	return out
}

// publishBatch packs {device: part} objects into messages within the
// payload limit, in a stable device order.
func (g *Gateway) publishBatch(ctx context.Context, topic string, parts map[string]json.RawMessage) (*Ack, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no devices", ErrInvalidPayload)
	}
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	g.implicit(names...)
	lim := g.c.limits()
	limit := lim.maxPayload - 4 - len(topic)
	// No message may charge more than the shared sub-device bucket holds.
	maxEntries, maxPoints := lim.gatewayBurst()
	var (
		msgs            [][]byte
		buf             bytes.Buffer
		entries, points int
	)
	flush := func() {
		if buf.Len() > 0 {
			buf.WriteByte('}')
			msgs = append(msgs, append([]byte(nil), buf.Bytes()...))
			buf.Reset()
		}
		entries, points = 0, 0
	}
	for _, n := range names {
		key, _ := json.Marshal(n)
		entry := len(key) + 1 + len(parts[n])
		if 2+entry > limit {
			return nil, fmt.Errorf("%w: data of device %q alone is %d bytes, the server accepts %d", ErrPayloadTooLarge, n, 2+entry, limit)
		}
		pts := 0
		if maxPoints > 0 {
			var doc any
			_ = json.Unmarshal(parts[n], &doc)
			if topic == topicGatewayTelemetry {
				pts = countIn(doc, 1)
			} else if m, ok := doc.(map[string]any); ok {
				pts = len(m)
			}
			if pts > maxPoints {
				return nil, fmt.Errorf("%w: data of device %q has %d data points, the gateway's rate limit allows %d at once", ErrInvalidPayload, n, pts, maxPoints)
			}
		}
		if buf.Len() > 0 && (buf.Len()+1+entry+1 > limit || (maxEntries > 0 && entries+1 > maxEntries) || (maxPoints > 0 && points+pts > maxPoints)) {
			flush()
		}
		if buf.Len() == 0 {
			buf.WriteByte('{')
		} else {
			buf.WriteByte(',')
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(parts[n])
		entries++
		points += pts
	}
	flush()
	if len(msgs) == 1 {
		return g.c.publish(ctx, topic, msgs[0])
	}
	acks := make([]*Ack, 0, len(msgs))
	for _, m := range msgs {
		a, err := g.c.publish(ctx, topic, m)
		if err != nil {
			return nil, fmt.Errorf("%d of %d messages of the batch accepted: %w", len(acks), len(msgs), err)
		}
		acks = append(acks, a)
	}
	return joinAcks(acks), nil
}

// RequestDeviceAttributes asks for attributes of one sub-device: client
// scope when client is true, shared scope otherwise (ThingsBoard answers
// one scope per request). Keys the server does not have are absent from
// the result. The request is sent again after a reconnect; without a
// deadline on ctx, Config.RequestTimeout applies.
func (g *Gateway) RequestDeviceAttributes(ctx context.Context, device string, client bool, keys ...string) (map[string]any, error) {
	if err := checkDeviceName(device); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: a gateway attribute request needs at least one key", ErrInvalidPayload)
	}
	device = g.Resolve(device)
	id := g.c.nextRequestID()
	req := map[string]any{"id": id, "device": device, "client": client}
	if len(keys) == 1 {
		req["key"] = keys[0]
	} else {
		req["keys"] = keys
	}
	g.implicit(device)
	b, err := g.c.request(ctx, topicGatewayAttrRequest, gatewayResponseKey(id), mustJSON(req))
	if err != nil {
		return nil, fmt.Errorf("tb: attributes of %q: %w", device, err)
	}
	resp, err := decodeObject(b)
	if err != nil {
		return nil, fmt.Errorf("tb: malformed gateway attribute response %q: %w", truncate(b), err)
	}
	out := map[string]any{}
	if vals, ok := resp["values"].(map[string]any); ok {
		out = vals
	} else if v, ok := resp["value"]; ok && len(keys) == 1 {
		out[keys[0]] = v
	}
	return out, nil
}

func gatewayResponseKey(id int64) string {
	return topicGatewayAttrResponse + "#" + strconv.FormatInt(id, 10)
}

func (g *Gateway) onAttrResponse(_ string, payload []byte) {
	var r struct {
		ID *int64 `json:"id"`
	}
	if err := json.Unmarshal(payload, &r); err != nil || r.ID == nil {
		g.c.reportError(fmt.Errorf("tb: malformed gateway attribute response %q", truncate(payload)))
		return
	}
	g.c.resolvePending(gatewayResponseKey(*r.ID), payload)
}

// SubscribeDeviceAttributes calls fn with every change of the given shared
// attribute keys of a sub-device (every key when keys is empty): pushes
// from the server and, after each (re)connect, the difference between the
// server's current values and the last known ones. A gateway cannot ask
// the server for every key of a device, so with no keys the resync covers
// only the keys seen so far: a key first created while the gateway was
// offline arrives with its next change. Several subscriptions to the same
// keys all receive the updates. fn runs on the gateway's
// attribute goroutine, in order. The sub-device must be connected
// (ConnectDevice, or any uplink for it) for the server to push updates.
func (g *Gateway) SubscribeDeviceAttributes(device string, keys []string, fn func(AttributeUpdate)) (unsubscribe func(), err error) {
	if err := checkDeviceName(device); err != nil {
		return nil, err
	}
	g.mu.Lock()
	device = g.resolveLocked(device)
	t := g.attrs[device]
	if t == nil {
		t = newAttrTable(device)
		g.attrs[device] = t
	}
	g.mu.Unlock()
	id := t.add(keys, fn)
	if cn := g.c.current(); cn != nil && len(keys) > 0 {
		go g.resyncDevice(cn, t)
	}
	return func() { t.remove(id) }, nil
}

func (g *Gateway) onAttributeUpdate(_ string, payload []byte) {
	var m struct {
		Device string
		Data   map[string]any
	}
	doc, err := decodeObject(payload)
	if err == nil {
		m.Device, _ = doc["device"].(string)
		m.Data, _ = doc["data"].(map[string]any)
	}
	if err != nil || m.Device == "" || m.Data == nil {
		g.c.reportError(fmt.Errorf("tb: malformed gateway attribute update %q", truncate(payload)))
		return
	}
	g.mu.Lock()
	t := g.attrs[m.Device]
	anyFns := make([]func(AttributeUpdate), 0, len(g.anyAttrs))
	for _, fn := range g.anyAttrs {
		anyFns = append(anyFns, fn)
	}
	g.mu.Unlock()
	up := parseUpdate(m.Data)
	g.q.push(func() {
		if t != nil {
			t.applyPush(up, g.c.cfg.SlowHandler, g.c.reportError)
		}
		up.Device = m.Device
		for _, fn := range anyFns {
			runGuarded("attribute", g.c.cfg.SlowHandler, g.c.reportError, func() { fn(up) })
		}
	})
}

// SubscribeAllDeviceAttributes calls fn with every shared-attribute update
// the server pushes for any sub-device (AttributeUpdate.Device names it).
// Unlike SubscribeDeviceAttributes it does not resync after a reconnect:
// the gateway cannot ask the server for "every key of every device".
func (g *Gateway) SubscribeAllDeviceAttributes(fn func(AttributeUpdate)) (unsubscribe func()) {
	g.mu.Lock()
	g.anySeq++
	id := g.anySeq
	g.anyAttrs[id] = fn
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.anyAttrs, id)
		g.mu.Unlock()
	}
}

// resyncAll requests, after a (re)connect, the shared attributes of every
// sub-device that has subscribers, a few devices at a time.
func (g *Gateway) resyncAll(cn *conn) {
	g.mu.Lock()
	tables := make([]*attrTable, 0, len(g.attrs))
	for _, t := range g.attrs {
		tables = append(tables, t)
	}
	g.mu.Unlock()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, t := range tables {
		if t.empty() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-cn.ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.resyncDevice(cn, t)
		}()
	}
	wg.Wait()
}

func (g *Gateway) resyncDevice(cn *conn, t *attrTable) {
	// A gateway cannot ask for "every key": with none known yet there is
	// nothing to ask for.
	g.c.resync(cn, g.q, t, func(_ bool, keys []string) bool { return len(keys) == 0 },
		func(ctx context.Context, _ bool, keys []string) (map[string]any, error) {
			return g.RequestDeviceAttributes(ctx, t.name(), false, keys...)
		})
}

// reconnectDevices runs after every CONNACK, before the outbox is replayed:
// it connects every known sub-device again (the server forgets them when
// the gateway's connection closes), pipelining the messages.
func (g *Gateway) reconnectDevices(cn *conn) error {
	g.mu.Lock()
	types := maps.Clone(g.devices)
	g.mu.Unlock()
	names := slices.Sorted(maps.Keys(types))
	if len(names) == 0 {
		return nil
	}
	lim := g.c.limits()
	window := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, n := range names {
		select {
		case window <- struct{}{}:
		case <-cn.lost:
			return nil
		}
		// The connects count against the shared sub-device bucket too.
		payload := mustJSON(map[string]string{"device": n, "type": types[n]})
		if err := lim.wait(cn.ctx, topicGatewayConnect, payload); err != nil {
			<-window
			break
		}
		tok := cn.publish(topicGatewayConnect, 1, payload)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-window }()
			select {
			case <-tok.Done():
			case <-cn.lost:
			case <-time.After(g.c.cfg.RequestTimeout):
			}
		}()
	}
	wg.Wait()
	g.c.log.Info("sub-devices connected again", "count", len(names))
	return nil
}

// HandleDeviceRPC registers the server-side RPC handler of a sub-device;
// device "" registers the handler for every sub-device without its own.
// req.Device names the sub-device. The handler's result is sent as the
// {device, id, data} reply; an error as {"error": "..."}; see HandleRPC for
// concurrency, panics and re-delivery.
func (g *Gateway) HandleDeviceRPC(device string, fn RPCHandler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if device != "" {
		device = g.resolveLocked(device)
	}
	if fn == nil {
		delete(g.handlers, device)
		return
	}
	g.handlers[device] = fn
}

func (g *Gateway) onRPC(_ string, payload []byte) {
	var m struct {
		Device string `json:"device"`
		Data   struct {
			ID     *int            `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"data"`
	}
	if err := json.Unmarshal(payload, &m); err != nil || m.Device == "" || m.Data.ID == nil || m.Data.Method == "" {
		g.c.reportError(fmt.Errorf("tb: malformed gateway rpc %q", truncate(payload)))
		return
	}
	if len(m.Data.Params) == 0 {
		m.Data.Params = json.RawMessage("null")
	}
	key := m.Device + "\x00" + strconv.Itoa(*m.Data.ID) + "\x00" + string(payload)
	run, resend := g.rpc.start(key)
	if resend != nil {
		go g.sendRPCReply(key, resend)
	}
	if !run {
		return
	}
	g.mu.Lock()
	fn := g.handlers[m.Device]
	if fn == nil {
		fn = g.handlers[""]
	}
	g.mu.Unlock()
	req := RPCRequest{Device: m.Device, ID: *m.Data.ID, Method: m.Data.Method, Params: m.Data.Params}
	finish := func(data []byte) {
		reply := mustJSON(struct {
			Device string          `json:"device"`
			ID     int             `json:"id"`
			Data   json.RawMessage `json:"data"`
		}{req.Device, req.ID, data})
		g.rpc.finished(key, reply)
		g.sendRPCReply(key, reply)
	}
	go g.rpc.serve(g.c, key, req, fn, fmt.Sprintf("no handler for device %q", req.Device), finish)
}

// ReplyDeviceRPC answers a sub-device request whose handler returned
// ReplyLater; see Device.ReplyRPC.
func (g *Gateway) ReplyDeviceRPC(req RPCRequest, res any) error {
	return g.rpc.reply(rpcRef(req.Device, req.ID), res)
}

func (g *Gateway) sendRPCReply(key string, reply []byte) {
	ctx, cancel := context.WithTimeout(g.c.ctx, g.c.cfg.RequestTimeout)
	defer cancel()
	if err := g.c.sendReliable(ctx, topicGatewayRPC, reply); err != nil {
		g.c.log.Warn("gateway rpc reply not sent; it is sent when the server repeats the request", "error", err)
		return
	}
	g.rpc.sent(key)
}

// ClaimDevice allows a user to claim the sub-device with secretKey for
// duration (0 = the server's default); see Device.Claim.
func (g *Gateway) ClaimDevice(ctx context.Context, device, secretKey string, duration time.Duration) error {
	if err := checkDeviceName(device); err != nil {
		return err
	}
	body := map[string]any{"secretKey": secretKey}
	if duration > 0 {
		body["durationMs"] = duration.Milliseconds()
	}
	device = g.Resolve(device)
	g.implicit(device)
	return g.c.sendReliable(ctx, topicGatewayClaim, mustJSON(map[string]any{device: body}))
}

// OnDeviceDisconnected registers fn for the server's notice (MQTT 5
// gateway sessions) that it dropped a sub-device, with the reason code:
// DisconnectReasonRateLimit (150), 128 processing error, 129 invalid packet
// id. On 150 the gateway backs off (it pauses sending, from 1 s doubling to
// 1 min) before connecting the device again; on other reasons it connects
// it again at once. fn runs on its own goroutine.
func (g *Gateway) OnDeviceDisconnected(fn func(device string, reason int)) {
	g.mu.Lock()
	g.onDrop = fn
	g.mu.Unlock()
}

func (g *Gateway) onDisconnectNotice(_ string, payload []byte) {
	var m struct {
		Device string `json:"device"`
		Reason int    `json:"reason"`
	}
	if err := json.Unmarshal(payload, &m); err != nil || m.Device == "" {
		// Brokers that echo publishes return our own {"device"} uplinks.
		if err != nil {
			g.c.reportError(fmt.Errorf("tb: malformed gateway disconnect notice %q", truncate(payload)))
		}
		return
	}
	if m.Reason == 0 {
		return // our own disconnect echoed by a plain broker
	}
	g.mu.Lock()
	typ, known := g.devices[m.Device]
	fn := g.onDrop
	var wait time.Duration
	if m.Reason == DisconnectReasonRateLimit {
		if time.Since(g.lastDrop) > time.Minute {
			g.backoff = 0
		}
		g.backoff = min(max(2*g.backoff, time.Second), time.Minute)
		g.lastDrop = time.Now()
		wait = g.backoff
	}
	g.mu.Unlock()
	g.c.log.Warn("server dropped sub-device", "device", m.Device, "reason", m.Reason, "backoff", wait)
	if wait > 0 {
		g.c.backOff(wait)
	}
	if fn != nil {
		go runGuarded("device disconnected", g.c.cfg.SlowHandler, g.c.reportError, func() { fn(m.Device, m.Reason) })
	}
	if known {
		// Connect it again through the outbox, behind the pause.
		if _, err := g.c.publish(g.c.ctx, topicGatewayConnect, mustJSON(map[string]string{"device": m.Device, "type": typ})); err != nil {
			g.c.log.Warn("connecting dropped sub-device again", "device", m.Device, "error", err)
		}
	}
}
