package tb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Device is one ThingsBoard device's MQTT session. It is safe for
// concurrent use.
type Device struct {
	c      *client
	attrQ  *serialQueue
	limits sessionLimitsBox

	attrs    *attrTable
	resyncMu sync.Mutex // one resync at a time

	rpcMu       sync.Mutex
	rpcHandlers map[string]RPCHandler
	rpc         *rpcState

	otaMu sync.Mutex
	ota   map[string]*otaDownload // by response topic prefix

	gateway bool // set by NewGateway
	// service, when set, takes the server's service RPCs (the gateway's
	// rename and delete notices) before the handlers; true = handled.
	service func(method string, params json.RawMessage) bool
}

type sessionLimitsBox struct {
	mu sync.Mutex
	v  *SessionLimits
}

// NewDevice validates cfg and opens the outbox. It does no network I/O:
// call Connect (or Start) next.
func NewDevice(cfg Config) (*Device, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	d := &Device{
		c:           c,
		attrs:       newAttrTable(""),
		rpcHandlers: map[string]RPCHandler{},
		rpc:         newRPCState(),
		ota:         map[string]*otaDownload{},
	}
	d.attrQ = newSerialQueue("attribute", c.cfg.SlowHandler, c.reportError, c.ctx.Done())
	c.addRoute(topicAttributes, true, d.onAttributeUpdate)
	c.addRoute(topicRPCRequest, false, d.onRPCRequest)
	c.addRoute("v2/fw/", false, d.onOTADownlink)
	c.addRoute("v2/sw/", false, d.onOTADownlink)
	if !c.cfg.SkipSessionLimits {
		c.before = append(c.before, d.fetchSessionLimits)
	}
	c.onConnect(d.resyncAttributes)
	return d, nil
}

// Connect creates a Device and waits for its first connection.
func Connect(ctx context.Context, cfg Config) (*Device, error) {
	d, err := NewDevice(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.Connect(ctx); err != nil {
		_ = d.Close(context.Background())
		return nil, err
	}
	return d, nil
}

// Start launches the connection loop in the background and returns at once.
func (d *Device) Start() error { return d.c.start() }

// Connect starts the connection loop and waits for the first CONNACK or
// until ctx ends. A refusal that retrying cannot fix (bad credentials) is
// returned as a *ConnectError at once. The loop keeps reconnecting in the
// background either way, until Close.
func (d *Device) Connect(ctx context.Context) error { return d.c.connect(ctx) }

// WaitConnected blocks until the device is connected or ctx ends.
func (d *Device) WaitConnected(ctx context.Context) error { return d.c.waitConnected(ctx) }

// Status returns the connection state and the number of messages waiting
// in the outbox.
func (d *Device) Status() Status { return d.c.status() }

// Close sends what the outbox holds while ctx allows and the connection
// lasts, then disconnects. What is still unacknowledged stays in an outbox
// file for the next start.
func (d *Device) Close(ctx context.Context) error { return d.c.close(ctx) }

// SessionLimits returns the limits the server reported, or nil before the
// answer (or when the server does not implement getSessionLimits).
func (d *Device) SessionLimits() *SessionLimits {
	d.limits.mu.Lock()
	defer d.limits.mu.Unlock()
	return d.limits.v
}

// PublishTelemetry accepts telemetry for sending and returns once it is
// stored in the outbox (QoS 1) or written (QoS 0). v may be a flat
// map[string]any, a Telemetry, a []Telemetry, a slice of maps, any value
// that marshals to such JSON, or raw JSON (json.RawMessage, []byte).
// Wait on the Ack for the server's acknowledgement.
func (d *Device) PublishTelemetry(ctx context.Context, v any) (*Ack, error) {
	b, bp, err := encodeTelemetryInto(v, d.c.stamper(""))
	if err != nil {
		return nil, err
	}
	if err := checkStrings(b, d.c.cfg.MaxStringValueLength); err != nil {
		putPayloadBuf(bp, b)
		return nil, err
	}
	parts, err := splitForBurst(b, d.c.limits())
	if err != nil {
		putPayloadBuf(bp, b)
		return nil, err
	}
	if d.c.cfg.QoS != 0 {
		// QoS 1: the outbox holds its own copy of what it stores. QoS 0
		// hands the bytes to the connection, which may still be writing
		// them.
		defer putPayloadBuf(bp, b)
	}
	if len(parts) == 1 {
		return d.c.publish(ctx, d.c.cfg.TelemetryTopic, b)
	}
	acks := make([]*Ack, 0, len(parts))
	for _, p := range parts {
		a, err := d.c.publish(ctx, d.c.cfg.TelemetryTopic, p)
		if err != nil {
			return nil, fmt.Errorf("%d of %d messages of the records accepted: %w", len(acks), len(parts), err)
		}
		acks = append(acks, a)
	}
	return joinAcks(acks), nil
}

// splitForBurst splits a telemetry array whose data points exceed what the
// device's data-point limit holds at once (a message over it could never
// be sent: the server closes the connection on it) into arrays that fit.
func splitForBurst(b []byte, lim *limits) ([][]byte, error) {
	if lim == nil || lim.own == nil {
		return [][]byte{b}, nil
	}
	_, maxPoints := lim.own.burst()
	if maxPoints <= 0 || firstByte(b) != '[' {
		return [][]byte{b}, nil
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil || countDataPoints(doc) <= maxPoints {
		return [][]byte{b}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		return [][]byte{b}, nil
	}
	var out [][]byte
	var cur []json.RawMessage
	points := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, mustJSON(cur))
			cur, points = nil, 0
		}
	}
	for _, e := range elems {
		var rec any
		_ = json.Unmarshal(e, &rec)
		n := countDataPoints(rec)
		if n > maxPoints {
			return nil, fmt.Errorf("%w: a record of %d data points, the server's limit allows %d at once", ErrInvalidPayload, n, maxPoints)
		}
		if points+n > maxPoints {
			flush()
		}
		cur = append(cur, e)
		points += n
	}
	flush()
	return out, nil
}

// joinAcks completes when every ack did, with the first failure.
func joinAcks(acks []*Ack) *Ack {
	all := newAck()
	all.seq = acks[len(acks)-1].seq
	go func() {
		for _, a := range acks {
			<-a.Done()
			if err := a.result(); err != nil {
				all.complete(err)
				return
			}
		}
		all.complete(nil)
	}()
	return all
}

// SendTelemetry publishes telemetry and waits for the server's
// acknowledgement.
func (d *Device) SendTelemetry(ctx context.Context, v any) error {
	a, err := d.PublishTelemetry(ctx, v)
	if err != nil {
		return err
	}
	return a.Wait(ctx)
}

// PublishAttributes accepts client-side attributes (a JSON object) for
// sending; see PublishTelemetry.
func (d *Device) PublishAttributes(ctx context.Context, v any) (*Ack, error) {
	b, err := encodeAttributes(v)
	if err != nil {
		return nil, err
	}
	if err := checkStrings(b, d.c.cfg.MaxStringValueLength); err != nil {
		return nil, err
	}
	return d.c.publish(ctx, d.c.cfg.AttributesTopic, b)
}

// SendAttributes publishes client attributes and waits for the server's
// acknowledgement.
func (d *Device) SendAttributes(ctx context.Context, v any) error {
	a, err := d.PublishAttributes(ctx, v)
	if err != nil {
		return err
	}
	return a.Wait(ctx)
}

// --- attribute requests -----------------------------------------------------

// Attributes is the answer to an attribute request. Keys the server does
// not have are absent.
type Attributes struct {
	Client map[string]any `json:"client"`
	Shared map[string]any `json:"shared"`
}

// RequestAttributes asks for client and shared attributes by key. With both
// lists empty the server returns every client and shared attribute; with
// one list empty only the other scope is asked for. The request is sent
// again after a reconnect; it fails when ctx ends (or after
// Config.RequestTimeout when ctx has no deadline).
func (d *Device) RequestAttributes(ctx context.Context, clientKeys, sharedKeys []string) (*Attributes, error) {
	req := map[string]string{}
	for scope, keys := range map[string][]string{"clientKeys": clientKeys, "sharedKeys": sharedKeys} {
		if len(keys) == 0 {
			continue
		}
		for _, k := range keys {
			if k == "" || strings.Contains(k, ",") {
				return nil, fmt.Errorf("%w: attribute key %q (keys are sent comma-separated)", ErrInvalidPayload, k)
			}
		}
		req[scope] = strings.Join(keys, ",")
	}
	payload, _ := json.Marshal(req)
	id := strconv.FormatInt(d.c.nextRequestID(), 10)
	b, err := d.c.request(ctx, topicAttrRequest+id, topicAttrResponse+id, payload)
	if err != nil {
		return nil, err
	}
	return decodeAttributes(b)
}

func decodeAttributes(b []byte) (*Attributes, error) {
	var a Attributes
	m, err := decodeObject(b)
	if err != nil {
		return nil, fmt.Errorf("tb: malformed attribute response %q: %w", truncate(b), err)
	}
	for scope, dst := range map[string]*map[string]any{"client": &a.Client, "shared": &a.Shared} {
		switch v := m[scope].(type) {
		case map[string]any:
			*dst = v
		case nil:
		default:
			return nil, fmt.Errorf("tb: malformed attribute response %q: %q is not an object", truncate(b), scope)
		}
	}
	if a.Client == nil {
		a.Client = map[string]any{}
	}
	if a.Shared == nil {
		a.Shared = map[string]any{}
	}
	return &a, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// --- shared attribute updates -------------------------------------------------

// SubscribeAttributes calls fn with every change of the given shared
// attribute keys (every key when keys is empty): pushes from the server and,
// after each (re)connect, the difference between the server's current
// values and the last known ones. fn runs on the device's attribute
// goroutine, one update at a time, in order. The returned function
// unsubscribes.
func (d *Device) SubscribeAttributes(keys []string, fn func(AttributeUpdate)) (unsubscribe func()) {
	id := d.attrs.add(keys, fn)
	d.c.ensureSub(topicAttributes)
	if cn := d.c.current(); cn != nil {
		go d.resyncAttributes(cn)
	}
	return func() { d.attrs.remove(id) }
}

func (d *Device) onAttributeUpdate(_ string, payload []byte) {
	m, err := decodeObject(payload)
	if err != nil {
		d.c.reportError(fmt.Errorf("tb: malformed attribute update %q: %w", truncate(payload), err))
		return
	}
	up := parseUpdate(m)
	d.attrQ.push(func() { d.attrs.applyPush(up, d.c.cfg.SlowHandler, d.c.reportError) })
}

// resyncAttributes requests the watched shared attributes after a connect
// and delivers what differs from the last known values. ThingsBoard never
// replays updates made while a device was offline.
func (d *Device) resyncAttributes(cn *conn) {
	d.resyncMu.Lock()
	defer d.resyncMu.Unlock()
	if d.attrs.empty() {
		return
	}
	d.c.resync(cn, d.attrQ, d.attrs, func(bool, []string) bool { return false },
		func(ctx context.Context, all bool, keys []string) (map[string]any, error) {
			if all {
				keys = nil // neither list: the server answers every key
			}
			a, err := d.RequestAttributes(ctx, nil, keys)
			if err != nil {
				return nil, err
			}
			return a.Shared, nil
		})
}

// --- server-side RPC ------------------------------------------------------------

// RPCRequest is a server-side RPC call to the device.
type RPCRequest struct {
	// Device is the sub-device the call is for (gateway handlers only;
	// empty for a device's own RPC).
	Device string
	ID     int             // the server's request id (per device, from 0)
	Method string          // method name
	Params json.RawMessage // params as sent (JSON null when absent)
}

// RPCHandler answers a server-side RPC. Its result is marshalled to JSON as
// the reply (nil is sent as {}); an error is sent as {"error": "..."}. ctx
// ends after Config.RPCHandlerTimeout or when the device closes.
type RPCHandler func(ctx context.Context, req RPCRequest) (any, error)

// HandleRPC registers the handler for method; "" registers the handler for
// every method without its own. Calls run concurrently, each on its own
// goroutine; a handler that panics is recovered and the caller gets an
// error reply. A request the server delivers again (ThingsBoard re-sends
// pending RPCs after a reconnect) is not run twice: while the first call
// runs the duplicate is ignored, and once it has finished its reply is sent
// again.
func (d *Device) HandleRPC(method string, fn RPCHandler) {
	d.rpcMu.Lock()
	if fn == nil {
		delete(d.rpcHandlers, method)
	} else {
		d.rpcHandlers[method] = fn
	}
	d.rpcMu.Unlock()
	if fn != nil {
		d.c.ensureSub(topicRPCRequestSub)
	}
}

func (d *Device) onRPCRequest(topic string, payload []byte) {
	id := strings.TrimPrefix(topic, topicRPCRequest)
	n, err := strconv.Atoi(id)
	if err != nil {
		d.c.reportError(fmt.Errorf("tb: rpc request on %q: id is not a number", topic))
		return
	}
	// A broker that echoes publishes back returns our own client-side RPC.
	d.c.mu.Lock()
	_, own := d.c.pending[topicRPCResponse+id]
	d.c.mu.Unlock()
	if own {
		return
	}
	var body struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(payload, &body); err != nil || body.Method == "" {
		d.c.reportError(fmt.Errorf("tb: malformed rpc request %q on %q", truncate(payload), topic))
		go d.sendRPCReply(id, mustJSON(map[string]string{"error": "malformed rpc request"})) // never block the router
		return
	}
	if len(body.Params) == 0 {
		body.Params = json.RawMessage("null")
	}
	if d.service != nil && d.service(body.Method, body.Params) {
		return // a one-way service call the client handled itself
	}
	key := id + "\x00" + string(payload)
	run, resend := d.rpc.start(key)
	if resend != nil {
		go d.sendRPCReplyKeyed(key, id, resend)
	}
	if !run {
		return
	}
	d.rpcMu.Lock()
	fn := d.rpcHandlers[body.Method]
	if fn == nil {
		fn = d.rpcHandlers[""]
	}
	d.rpcMu.Unlock()
	req := RPCRequest{ID: n, Method: body.Method, Params: body.Params}
	go d.runRPC(key, id, req, fn)
}

func (d *Device) runRPC(key, id string, req RPCRequest, fn RPCHandler) {
	d.rpc.serve(d.c, key, req, fn, fmt.Sprintf("no handler for method %q", req.Method),
		func(reply []byte) { d.finishRPC(key, id, reply) })
}

func (d *Device) finishRPC(key, id string, reply []byte) {
	d.rpc.finished(key, reply)
	d.sendRPCReplyKeyed(key, id, reply)
}

// ReplyRPC answers a request whose handler returned ReplyLater: res is the
// result (an error is sent as {"error": "..."}). It returns
// ErrUnknownRequest for a request that is unknown, answered or expired.
func (d *Device) ReplyRPC(req RPCRequest, res any) error {
	return d.rpc.reply(rpcRef("", req.ID), res)
}

func rpcReply(res any, err error) []byte {
	if err != nil {
		return mustJSON(map[string]string{"error": err.Error()})
	}
	if res == nil {
		return []byte("{}")
	}
	switch v := res.(type) {
	case json.RawMessage:
		if json.Valid(v) {
			return v
		}
	case []byte:
		if json.Valid(v) {
			return v
		}
	}
	b, merr := marshalJSON(res)
	if merr != nil {
		return mustJSON(map[string]string{"error": "reply is not JSON: " + merr.Error()})
	}
	return b
}

// sendRPCReplyKeyed sends a reply and forgets it once acknowledged; a reply
// that could not be sent waits for the server to deliver the request again.
func (d *Device) sendRPCReplyKeyed(key, id string, reply []byte) {
	if err := d.sendRPCReply(id, reply); err != nil {
		d.c.log.Warn("rpc reply not sent; it is sent when the server repeats the request", "id", id, "error", err)
		return
	}
	d.rpc.sent(key)
}

func (d *Device) sendRPCReply(id string, reply []byte) error {
	ctx, cancel := context.WithTimeout(d.c.ctx, d.c.cfg.RequestTimeout)
	defer cancel()
	return d.c.sendReliable(ctx, topicRPCResponse+id, reply)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// --- client-side RPC --------------------------------------------------------------

// Call makes a client-side RPC: it publishes {"method", "params"} and waits
// for the server's reply. An {"error": "..."} reply (ThingsBoard sends
// {"error":"timeout"} when no rule chain answers) is returned as *RPCError;
// a reply that is not JSON comes back as a JSON string holding its text, so
// the result is always valid JSON.
// The call is sent at most once: ThingsBoard's rule chain runs every copy
// it receives, so a call whose connection is lost after it was sent fails
// with ErrOutcomeUnknown (the caller decides whether to call again); a
// call made while offline waits for the connection. Without a deadline on
// ctx, Config.CallTimeout (60 s, the server's own timeout) applies.
func (d *Device) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	if method == "" {
		return nil, fmt.Errorf("%w: rpc method is empty", ErrInvalidPayload)
	}
	var p json.RawMessage
	switch v := params.(type) {
	case nil:
		p = json.RawMessage("{}")
	case json.RawMessage:
		p = v
	default:
		b, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("%w: rpc params: %v", ErrInvalidPayload, err)
		}
		p = b
	}
	payload, err := json.Marshal(struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}{method, p})
	if err != nil {
		return nil, fmt.Errorf("%w: rpc params: %v", ErrInvalidPayload, err)
	}
	id := strconv.FormatInt(d.c.nextRequestID(), 10)
	b, err := d.c.callOnce(ctx, topicRPCRequest+id, topicRPCResponse+id, payload)
	if err != nil {
		return nil, fmt.Errorf("tb: rpc %q: %w", method, err)
	}
	// An object whose only member is a string "error" is an error reply.
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) == nil && len(m) == 1 {
		var msg string
		if raw, ok := m["error"]; ok && string(raw) != "null" && json.Unmarshal(raw, &msg) == nil {
			return nil, &RPCError{Method: method, Message: msg}
		}
	}
	if !json.Valid(b) {
		return json.RawMessage(mustJSON(string(b))), nil
	}
	return json.RawMessage(b), nil
}

// fetchSessionLimits asks the server for its limits after each connect,
// before anything else is sent, and applies them. A server that does not
// answer leaves the defaults. A gateway whose answer has no
// gatewayRateLimits is refused with ErrNotGateway.
func (d *Device) fetchSessionLimits(cn *conn) error {
	// getSessionLimits is answered by the transport itself (no rule chain
	// runs it), so asking again is harmless: an answer lost while the
	// server tears down the previous session costs 3 s, not 10.
	payload := mustJSON(map[string]any{"method": "getSessionLimits", "params": map[string]int{"timeout": 5000}})
	var b []byte
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(cn.ctx, 3*time.Second+time.Duration(attempt)*time.Second)
		id := strconv.FormatInt(d.c.nextRequestID(), 10)
		b, err = d.c.requestOn(ctx, cn, topicRPCRequest+id, topicRPCResponse+id, payload)
		cancel()
		if err == nil || !errors.Is(err, ErrTimeout) {
			break
		}
	}
	if err != nil {
		if cn.ctx.Err() == nil {
			d.c.log.Info("server gave no session limits; using defaults", "error", err)
		}
		return nil
	}
	var sl SessionLimits
	if err := json.Unmarshal(b, &sl); err != nil {
		d.c.reportError(fmt.Errorf("tb: malformed session limits %q: %w", truncate(b), err))
		return nil
	}
	if sl.MaxPayloadSize == 0 && sl.MaxInflightMessages == 0 {
		// {"error": ...} from a server that does not implement it.
		d.c.log.Info("server gave no session limits; using defaults", "answer", truncate(b))
		return nil
	}
	if d.gateway && sl.GatewayRateLimits == nil {
		return ErrNotGateway
	}
	prev := d.c.limits()
	lim, err := newLimits(&sl, prev)
	if err != nil {
		d.c.reportError(fmt.Errorf("tb: session limits: %w", err))
		return nil
	}
	lim.telemetryTopic, lim.attributesTopic = d.c.cfg.TelemetryTopic, d.c.cfg.AttributesTopic
	// The server counted what this connection sent before the answer.
	if lim.own != prev.own {
		lim.own.messages.consumed(int(cn.published.Load()))
	}
	d.limits.mu.Lock()
	d.limits.v = &sl
	d.limits.mu.Unlock()
	d.c.mu.Lock()
	d.c.lim = lim
	if sl.MaxInflightMessages > 0 && sl.MaxInflightMessages < d.c.cfg.MaxInflight {
		d.c.inflight = sl.MaxInflightMessages
	} else {
		d.c.inflight = d.c.cfg.MaxInflight
	}
	d.c.mu.Unlock()
	d.c.log.Debug("session limits applied", "maxPayloadSize", lim.maxPayload, "rateLimits", sl.RateLimits)
	return nil
}

// --- claiming --------------------------------------------------------------------

// Claim allows a user to claim the device with secretKey for duration (0 =
// the server's default, one day). It waits for the server's
// acknowledgement; ThingsBoard reports no claiming errors to the device.
func (d *Device) Claim(ctx context.Context, secretKey string, duration time.Duration) error {
	body := map[string]any{"secretKey": secretKey}
	if duration > 0 {
		body["durationMs"] = duration.Milliseconds()
	}
	return d.c.sendReliable(ctx, topicClaim, mustJSON(body))
}

// Protocol is the MQTT version the device speaks: ProtocolMQTT5 or
// ProtocolMQTT311.
func (d *Device) Protocol() string { return d.c.cfg.Protocol }
