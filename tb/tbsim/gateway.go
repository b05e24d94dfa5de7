package tbsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Gateway API topics (§3).
const (
	topicGwConnect    = "v1/gateway/connect"
	topicGwDisconnect = "v1/gateway/disconnect"
	topicGwTelemetry  = "v1/gateway/telemetry"
	topicGwAttributes = "v1/gateway/attributes"
	topicGwAttrReq    = "v1/gateway/attributes/request"
	topicGwAttrResp   = "v1/gateway/attributes/response"
	topicGwRPC        = "v1/gateway/rpc"
	topicGwClaim      = "v1/gateway/claim"
	defaultDeviceType = "default"
)

// errConnectLimited is a sub-device connect over the gateway's bucket.
var errConnectLimited = errors.New("gateway rate limit exceeded")

// Reasons of the MQTT 5 downlink {"device","reason"} on v1/gateway/disconnect.
const (
	GatewayDisconnectRateLimit       = 150 // 0x96 message rate too high
	GatewayDisconnectProcessingError = 128 // 0x80 unspecified error
)

// gatewayEnvelope is {"device": name, "data": data}.
func gatewayEnvelope(name string, data []byte) []byte {
	var b bytes.Buffer
	n, _ := json.Marshal(name)
	b.WriteString(`{"device":`)
	b.Write(n)
	b.WriteString(`,"data":`)
	b.Write(data)
	b.WriteByte('}')
	return b.Bytes()
}

// SubDevices lists the sub-devices connected now through the gateway's
// session, sorted (nil when the gateway is not connected).
func (s *Server) SubDevices(gateway string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[gateway]
	if d == nil || d.direct == nil || d.direct.ended {
		return nil
	}
	out := sortedKeys(d.direct.gwDevices)
	if len(out) == 0 {
		return nil
	}
	return out
}

// SetGatewayRateLimits sets the limits for the devices behind the gateway
// (ThingsBoard's tenant-profile "transportGateway…" limits, reported as
// gatewayRateLimits by getSessionLimits). They are one bucket keyed by the
// gateway and shared by all its sub-devices' traffic together, including
// every sub-device connect. A sub-device message over it gets PUBACK
// (MQTT 5 0x97, MQTT 3.1.1 an ordinary PUBACK for a message that is
// dropped) and the gateway connection is closed. The gateway's own
// device-API traffic is limited by SetRateLimits. Malformed windows are
// logged and ignored.
func (s *Server) SetGatewayRateLimits(gateway string, l RateLimits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[gateway]
	if d == nil {
		s.log.Warn("gateway rate limits for unknown device", "gateway", gateway)
		return
	}
	d.gwLimits = l
	d.gwLimiter = newLimiterSet(l)
	for _, e := range d.gwLimiter.errs {
		s.log.Warn("ignoring gateway rate limit", "gateway", gateway, "error", e)
	}
}

// DropSubDevice removes the sub-device from the gateway's session (no more
// updates or RPCs for it until the gateway connects it again) and, for an
// MQTT 5 gateway, publishes {"device","reason"} on v1/gateway/disconnect
// (GatewayDisconnectRateLimit, GatewayDisconnectProcessingError, …).
func (s *Server) DropSubDevice(gateway, device string, reason int) error {
	s.mu.Lock()
	gw := s.devices[gateway]
	if gw == nil {
		s.mu.Unlock()
		return fmt.Errorf("dropping %q from gateway %q: %w", device, gateway, ErrUnknownDevice)
	}
	ss := gw.direct
	if ss == nil || ss.ended || !ss.established || !ss.gateway {
		s.mu.Unlock()
		return fmt.Errorf("dropping %q from gateway %q: %w", device, gateway, ErrNoActiveConnection)
	}
	v := ss.gwDevices[device]
	if v == nil {
		s.mu.Unlock()
		return fmt.Errorf("dropping %q from gateway %q: not connected through it: %w", device, gateway, ErrNoActiveConnection)
	}
	s.removeViewLocked(v)
	s.mu.Unlock()
	s.log.Info("sub-device dropped", "gateway", gateway, "device", device, "reason", reason)
	if ss.version == 5 {
		s.sendDisconnectNotice(ss, device, reason)
	}
	return nil
}

func (s *Server) sendDisconnectNotice(ss *session, device string, reason int) {
	n, _ := json.Marshal(device)
	_, _ = ss.publish(topicGwDisconnect, fmt.Appendf(nil, `{"device":%s,"reason":%d}`, n, reason))
}

// evictLocked enforces one session per device before a new one attaches:
// a gateway view is removed from its gateway session, a direct session is
// detached and returned (the caller closes it with 0x8E).
func (s *Server) evictLocked(d *device) *session {
	for _, v := range append([]*view(nil), d.views...) {
		if v.gw {
			s.removeViewLocked(v)
			s.log.Info("sub-device taken over", "device", d.info.Name, "gateway", v.sess.dev.info.Name)
		}
	}
	old := d.direct
	if old != nil {
		s.detachLocked(old)
		s.stats.Evictions++
	}
	return old
}

// removeViewLocked disconnects a sub-device view from its gateway session.
func (s *Server) removeViewLocked(v *view) {
	if cur := v.sess.gwDevices[v.key]; cur == v {
		delete(v.sess.gwDevices, v.key)
	}
	for i, x := range v.dev.views {
		if x == v {
			v.dev.views = append(v.dev.views[:i], v.dev.views[i+1:]...)
			break
		}
	}
	s.notifyLocked()
}

// gwConnectLocked is get-or-create plus registration of a sub-device in the
// gateway session (§3.1): it returns the sub-device's view and whether it
// was connected just now, and a direct session of that device to close.
func (s *Server) gwConnectLocked(ss *session, name, typ string) (*view, bool, *session, error) {
	if v := ss.gwDevices[name]; v != nil {
		return v, false, nil, nil
	}
	if ss.ended {
		return nil, false, nil, fmt.Errorf("connecting %q: gateway session ended", name)
	}
	d := s.devices[name]
	if d == ss.dev {
		return nil, false, nil, fmt.Errorf("gateway %q can't connect itself as a sub-device", name)
	}
	// GetOrCreateDeviceFromGatewayRequestMsg is one message of the shared
	// bucket, checked before the device is looked up or created.
	now := time.Now()
	if !ss.dev.gwLimiter.allow(now, 0) {
		return nil, false, nil, fmt.Errorf("connecting %q: %w", name, errConnectLimited)
	}
	if d == nil {
		if typ == "" {
			typ = defaultDeviceType
		}
		var err error
		if d, err = s.addDeviceLocked(Device{Name: name, Type: typ}); err != nil {
			return nil, false, nil, err
		}
		s.log.Info("sub-device created", "device", name, "type", typ, "gateway", ss.dev.info.Name)
	}
	old := s.evictLocked(d)
	v := &view{sess: ss, dev: d, gw: true, key: name}
	// The sub-device's session open (with its attribute and RPC
	// subscriptions) is one more message; over the limit ThingsBoard drops
	// it without telling anyone, and the device gets no updates or RPCs.
	if !ss.dev.gwLimiter.allow(now, 0) {
		v.muted = true
		s.recordDropLocked(d, ss, packets.Packet{TopicName: "(session open)"}, DropSubscriptionRateLimit, -1)
	}
	ss.gwDevices[name] = v
	d.views = append(d.views, v)
	d.info.LastGateway = ss.dev.info.Name
	s.notifyLocked()
	return v, true, old, nil
}

// gwConnect runs gwConnectLocked and closes an evicted direct session.
func (s *Server) gwConnect(ss *session, name, typ string) (*view, bool, error) {
	s.mu.Lock()
	v, isNew, old, err := s.gwConnectLocked(ss, name, typ)
	s.mu.Unlock()
	if old != nil {
		s.log.Info("session taken over by gateway", "device", name, "gateway", ss.dev.info.Name)
		old.close(codeSessionTakenOver)
	}
	if isNew {
		s.log.Debug("sub-device connected", "device", name, "gateway", ss.dev.info.Name)
	}
	return v, isNew, err
}

// gwResult collects the outcome of one gateway publish: sub-devices newly
// connected (their pending RPCs follow the PUBACK) and the first failure,
// which decides the reaction.
type gwResult struct {
	connected   []*view
	err         error     // first failure
	quota       string    // device whose rate limit failed first ("" = not a quota failure)
	dropped     []*device // devices whose part was dropped over the rate limit
	procErr     bool      // first failure is a processing error (PUBACK 0x80)
	connLimited bool      // a sub-device connect was over the rate limit
}

func (r *gwResult) failed(err error) {
	if r.err == nil {
		r.err = err
	}
}

// gwImplicit connects name implicitly (type "default") unless it is
// connected in this session already; nil means it failed (recorded in r).
func (s *Server) gwImplicit(ss *session, r *gwResult, name string) *view {
	return s.gwJoin(ss, r, name, defaultDeviceType)
}

// gwJoin connects name with type typ (when created) unless it is connected
// in this session already, recording a new connection or a failure in r;
// nil means it failed.
func (s *Server) gwJoin(ss *session, r *gwResult, name, typ string) *view {
	v, isNew, err := s.gwConnect(ss, name, typ)
	if errors.Is(err, errConnectLimited) {
		r.err, r.connLimited = err, true
		return nil
	}
	if err != nil {
		if r.err == nil {
			r.err, r.procErr = err, true
		}
		return nil
	}
	if isNew {
		r.connected = append(r.connected, v)
	}
	return v
}

// gwAllow applies the gateway's shared sub-device bucket to one sub-device
// message with points data points (DefaultTransportRateLimitService
// checkLimits with a gateway id: the sub-device's own limits do not apply).
func (s *Server) gwAllow(ss *session, r *gwResult, v *view, points int) bool {
	s.mu.Lock()
	ok := ss.dev.gwLimiter.allow(time.Now(), points)
	s.mu.Unlock()
	if !ok {
		if r.err == nil {
			r.err = fmt.Errorf("gateway rate limit exceeded by sub-device %q", v.dev.info.Name)
			r.quota = v.dev.info.Name
		}
		r.dropped = append(r.dropped, v.dev)
	}
	return ok
}

// gwFinish acknowledges (and reacts to failures) once all devices of a
// gateway publish were processed.
func (s *Server) gwFinish(ss *session, pk packets.Packet, r *gwResult) {
	switch {
	case r.connLimited:
		// ThingsBoard's get-or-create fails at once, the exception escapes
		// the handler and Netty closes the channel (exceptionCaught): no
		// PUBACK, MQTT 5 DISCONNECT 0x8B.
		s.log.Info("gateway rate limit exceeded on sub-device connect", "gateway", ss.dev.info.Name, "error", r.err)
		ss.close(codeServerShuttingDown)
	case r.quota != "":
		// getAggregatePubAckCallback.onError: PUBACK 0x97 (plain under
		// 3.1.1), close; the v1/gateway/disconnect notice it attempts
		// afterwards goes to a closed channel and is never delivered.
		s.log.Info("gateway rate limit exceeded", "gateway", ss.dev.info.Name, "device", r.quota)
		seen := ss.pubackSeen(pk, codeQuotaExceeded)
		s.mu.Lock()
		for _, d := range r.dropped {
			s.recordDropLocked(d, ss, pk, DropGatewayRateLimit, seen)
		}
		s.mu.Unlock()
		ss.puback(pk, codeQuotaExceeded)
		ss.drop("gateway rate limit exceeded")
	case r.procErr:
		s.log.Info("gateway publish failed", "gateway", ss.dev.info.Name, "topic", pk.TopicName, "error", r.err)
		ss.puback(pk, codeUnspecified)
		ss.drop("gateway processing error")
	case r.err != nil:
		// A per-device conversion error: AdaptorException handling.
		s.fail(ss, pk, malformed("%v", r.err))
	default:
		// What was pending when the devices connected follows the PUBACK;
		// a request made after that is delivered by RPC itself, once.
		pending := make([][]*rpcCall, len(r.connected))
		for i, v := range r.connected {
			pending[i] = s.pendingRPCs(v)
		}
		ss.puback(pk, codeSuccess)
		for i, v := range r.connected {
			for _, c := range pending[i] {
				s.deliverRPC(v, c)
			}
		}
	}
}

// gwShapeFail is the reaction to valid JSON of the wrong shape: a runtime
// error in ThingsBoard's gateway handler → PUBACK (MQTT 5: 0x83), then the
// gateway connection is closed.
func (s *Server) gwShapeFail(ss *session, pk packets.Packet, err error) {
	s.log.Info("bad gateway publish", "gateway", ss.dev.info.Name, "topic", pk.TopicName, "error", err)
	ss.puback(pk, codeImplementationError)
	ss.drop("gateway payload of the wrong shape")
}

// gwFail sends parse errors of a whole gateway payload to the right
// reaction: invalid JSON as §1.6, anything else as wrong shape.
func (s *Server) gwFail(ss *session, pk packets.Packet, err error) {
	if isRuntime(err) {
		s.gwShapeFail(ss, pk, err)
		return
	}
	s.fail(ss, pk, err)
}

func (s *Server) handleGatewayPublish(ss *session, pk packets.Packet) {
	switch pk.TopicName {
	case topicGwConnect:
		s.onGwConnect(ss, pk)
	case topicGwDisconnect:
		s.onGwDisconnect(ss, pk)
	case topicGwTelemetry:
		s.onGwTelemetry(ss, pk)
	case topicGwAttributes:
		s.onGwAttributes(ss, pk)
	case topicGwAttrReq:
		s.onGwAttrRequest(ss, pk)
	case topicGwRPC:
		s.onGwRPCReply(ss, pk)
	case topicGwClaim:
		s.onGwClaim(ss, pk)
	default:
		s.unknownTopic(ss, pk)
	}
}

func (s *Server) onGwConnect(ss *session, pk packets.Packet) {
	name, typ, err := parseGatewayConnect(pk.Payload)
	if err != nil {
		s.gwFail(ss, pk, err)
		return
	}
	r := &gwResult{}
	s.gwJoin(ss, r, name, typ)
	s.gwFinish(ss, pk, r)
}

func (s *Server) onGwDisconnect(ss *session, pk packets.Packet) {
	name, err := parseGatewayDisconnect(pk.Payload)
	if err != nil {
		s.gwFail(ss, pk, err)
		return
	}
	s.mu.Lock()
	if v := ss.gwDevices[name]; v != nil {
		s.removeViewLocked(v)
		ss.dev.gwLimiter.allow(time.Now(), 0) // the session close message
	}
	s.mu.Unlock()
	ss.puback(pk, codeSuccess)
}

// gwEach runs fn for every device entry of a multi-device gateway uplink
// (telemetry, attributes, claims) after the implicit connect, and sends
// the one PUBACK the message gets.
func (s *Server) gwEach(ss *session, pk packets.Packet, want byte, fn func(r *gwResult, v *view, e gwEntry)) {
	entries, err := parseGatewayEntries(pk.Payload, want)
	if err != nil {
		s.gwFail(ss, pk, err)
		return
	}
	r := &gwResult{}
	for _, e := range entries {
		if v := s.gwImplicit(ss, r, e.device); v != nil {
			fn(r, v, e)
		}
		if r.connLimited {
			break // the exception ends the handler
		}
	}
	s.gwFinish(ss, pk, r)
}

func (s *Server) onGwTelemetry(ss *session, pk packets.Packet) {
	s.gwEach(ss, pk, '[', func(r *gwResult, v *view, e gwEntry) {
		recs, err := parseGatewayTelemetryDevice(e.raw)
		if err != nil {
			r.failed(fmt.Errorf("telemetry of %q: %w", e.device, err))
			return
		}
		if !s.gwAllow(ss, r, v, dataPoints(recs)) {
			return
		}
		s.mu.Lock()
		s.storeTelemetryLocked(v.dev, recs)
		s.mu.Unlock()
	})
}

func (s *Server) onGwAttributes(ss *session, pk packets.Packet) {
	s.gwEach(ss, pk, '{', func(r *gwResult, v *view, e gwEntry) {
		ms, err := objectMembers(e.raw)
		var kvs []kv
		if err == nil {
			kvs, err = typeMembers(ms)
		}
		if err != nil {
			r.failed(fmt.Errorf("attributes of %q: %w", e.device, err))
			return
		}
		if !s.gwAllow(ss, r, v, len(kvs)) {
			return
		}
		s.storeClientAttributes(v.dev, kvs)
	})
}

func (s *Server) onGwClaim(ss *session, pk packets.Packet) {
	s.gwEach(ss, pk, '{', func(r *gwResult, v *view, e gwEntry) {
		ms, err := objectMembers(e.raw)
		var c Claim
		if err == nil {
			c, err = parseClaimMembers(ms)
		}
		if err != nil {
			r.failed(fmt.Errorf("claim of %q: %w", e.device, err))
			return
		}
		if !s.gwAllow(ss, r, v, 0) {
			return
		}
		s.storeClaim(v.dev, c)
	})
}

func (s *Server) onGwAttrRequest(ss *session, pk packets.Packet) {
	req, err := parseGatewayAttrRequest(pk.Payload)
	if err != nil {
		s.gwFail(ss, pk, err)
		return
	}
	r := &gwResult{}
	v := s.gwImplicit(ss, r, req.device)
	if v == nil || !s.gwAllow(ss, r, v, 0) {
		s.gwFinish(ss, pk, r)
		return
	}
	s.mu.Lock()
	var client, shared map[string]any
	switch {
	case len(req.keys) == 0:
		// No names at all: ThingsBoard's device actor returns every client
		// and shared attribute.
		client, shared = copyMap(v.dev.client), copyMap(v.dev.shared)
	case req.client:
		client = pickKeys(v.dev.client, req.keys)
	default:
		shared = pickKeys(v.dev.shared, req.keys)
	}
	s.mu.Unlock()
	_, _ = ss.publish(topicGwAttrResp, gwAttrResponse(req, client, shared))
	s.gwFinish(ss, pk, r)
}

func pickKeys(m map[string]any, keys []string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

// gwAttrResponse is JsonConverter.getJsonObjectForGateway: {"id","device"}
// plus, per scope with results, "value" when that scope found exactly one
// and at most one key was requested, else the found pairs merged into
// "values". So one key found → value, several keys → values, nothing →
// neither.
func gwAttrResponse(req gwAttrRequest, client, shared map[string]any) []byte {
	multiple := len(req.keys) > 1
	var value []byte
	values := map[string]any{}
	for _, scope := range []map[string]any{client, shared} {
		switch {
		case len(scope) == 0:
		case len(scope) == 1 && !multiple:
			for _, v := range scope {
				value = jsonValue(v)
			}
		default:
			for k, v := range scope {
				values[k] = v
			}
		}
	}
	var b bytes.Buffer
	n, _ := json.Marshal(req.device)
	b.WriteString(`{"id":`)
	b.WriteString(strconv.Itoa(req.id))
	b.WriteString(`,"device":`)
	b.Write(n)
	if value != nil {
		b.WriteString(`,"value":`)
		b.Write(value)
	}
	if len(values) > 0 {
		b.WriteString(`,"values":`)
		b.Write(jsonObject(values))
	}
	b.WriteByte('}')
	return b.Bytes()
}

func (s *Server) onGwRPCReply(ss *session, pk packets.Packet) {
	name, id, data, err := parseGatewayRPCReply(pk.Payload)
	if err != nil {
		s.gwFail(ss, pk, err)
		return
	}
	r := &gwResult{}
	v := s.gwImplicit(ss, r, name)
	if v != nil && s.gwAllow(ss, r, v, 0) {
		s.mu.Lock()
		completeRPCLocked(v.dev, id, data)
		s.mu.Unlock()
	}
	s.gwFinish(ss, pk, r)
}
