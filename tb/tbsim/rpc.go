package tbsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rpcCall is one server-side RPC, pending until answered (two-way), sent
// (one-way) or expired. Fields are guarded by Server.mu.
type rpcCall struct {
	id        int
	method    string
	params    json.RawMessage
	oneWay    bool
	sent      bool
	delivered bool
	reply     json.RawMessage
	sentCh    chan struct{} // closed on first send
	done      chan struct{} // closed when answered
}

// gatewayData is the "data" of a v1/gateway/rpc request:
// {"id","method","params"}.
func (c *rpcCall) gatewayData() []byte {
	return append(fmt.Appendf(nil, `{"id":%d,`, c.id), c.payload()[1:]...)
}

// payload is the device API request {"method","params"}.
func (c *rpcCall) payload() []byte {
	var b bytes.Buffer
	b.WriteString(`{"method":`)
	m, _ := json.Marshal(c.method)
	b.Write(m)
	b.WriteString(`,"params":`)
	b.Write(c.params)
	b.WriteByte('}')
	return b.Bytes()
}

// RPC sends a server-side RPC to the device (§2.6). The id is the device's
// next sequence number (from 0). The request is delivered to RPC-subscribed
// sessions, or queued until one subscribes, until ctx ends. One-way calls
// return once sent; two-way calls return the device's reply. When ctx ends
// first the error wraps ErrNoActiveConnection (never sent) or ErrRPCTimeout,
// and ctx.Err().
func (s *Server) RPC(ctx context.Context, name, method string, params any, oneWay bool) (json.RawMessage, error) {
	p, err := rpcParams(params)
	if err != nil {
		return nil, fmt.Errorf("rpc %q to %q: %w", method, name, err)
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("rpc %q to %q: %w", method, name, ErrUnknownDevice)
	}
	c, targets := s.queueRPCLocked(d, method, p, oneWay)
	s.mu.Unlock()
	for _, v := range targets {
		s.deliverRPC(v, c)
	}
	var wait <-chan struct{} = c.done
	if oneWay {
		wait = c.sentCh
	}
	select {
	case <-wait:
		s.mu.Lock()
		defer s.mu.Unlock()
		return c.reply, nil
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.mu.Lock()
	removePending(d, c)
	sent := c.sent
	s.mu.Unlock()
	cause := ctx.Err()
	if cause == nil {
		cause = ErrClosed
	}
	if !sent {
		return nil, fmt.Errorf("rpc %q (%d) to %q: %w: %w", method, c.id, name, ErrNoActiveConnection, cause)
	}
	return nil, fmt.Errorf("rpc %q (%d) to %q: %w: %w", method, c.id, name, ErrRPCTimeout, cause)
}

// queueRPCLocked adds a request with the device's next id to its pending
// list and returns it with the views to deliver it to now.
func (s *Server) queueRPCLocked(d *device, method string, params json.RawMessage, oneWay bool) (*rpcCall, []*view) {
	c := &rpcCall{id: d.rpcSeq, method: method, params: params, oneWay: oneWay,
		sentCh: make(chan struct{}), done: make(chan struct{})}
	d.rpcSeq++
	d.pending = append(d.pending, c)
	s.notifyLocked()
	return c, rpcSubscribers(d)
}

func rpcParams(params any) (json.RawMessage, error) {
	switch p := params.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		t, err := parseJSON(p)
		if err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
		var b bytes.Buffer
		_ = json.Compact(&b, t)
		return b.Bytes(), nil
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encoding params: %w", err)
		}
		return b, nil
	}
}

func removePending(d *device, c *rpcCall) {
	for i, p := range d.pending {
		if p == c {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			return
		}
	}
}

// deliverRPC publishes one request through a view. A one-way call is done
// (and no longer pending) once sent.
func (s *Server) deliverRPC(v *view, c *rpcCall) {
	var pid uint16
	var err error
	if v.gw {
		pid, err = v.sess.publish(topicGwRPC, gatewayEnvelope(v.dev.info.Name, c.gatewayData()))
	} else {
		s.mu.Lock()
		prefix := v.sess.rpcPrefix
		s.mu.Unlock()
		if prefix == "" {
			return
		}
		pid, err = v.sess.publish(prefix+strconv.Itoa(c.id), c.payload())
	}
	if err != nil {
		return
	}
	s.mu.Lock()
	if pid != 0 {
		v.sess.rpcAwaiting[pid] = c
	} else {
		c.delivered = true
	}
	if !c.sent {
		c.sent = true
		close(c.sentCh)
	}
	if c.oneWay {
		removePending(v.dev, c)
	}
	s.mu.Unlock()
}

// pendingRPCs returns the requests pending for v's device now.
func (s *Server) pendingRPCs(v *view) []*rpcCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.muted {
		return nil
	}
	return append([]*rpcCall(nil), v.dev.pending...)
}

// onPuback marks an RPC delivered when its QoS 1 request is acknowledged.
func (s *Server) onPuback(ss *session, pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.PubAcksReceived++
	if c := ss.rpcAwaiting[pid]; c != nil {
		c.delivered = true
		delete(ss.rpcAwaiting, pid)
	}
}

// onRPCResponse completes a pending two-way RPC; replies to unknown ids are
// acknowledged and dropped.
func (s *Server) onRPCResponse(ss *session, pk packets.Packet, prefix string) {
	id, ok := javaParseInt(strings.TrimPrefix(pk.TopicName, prefix))
	if !ok {
		s.fail(ss, pk, malformed("request id in %q is not an integer", pk.TopicName))
		return
	}
	if s.limited(ss, 0) {
		return
	}
	reply := json.RawMessage(append([]byte(nil), pk.Payload...))
	s.mu.Lock()
	completeRPCLocked(ss.dev, id, reply)
	s.mu.Unlock()
	ss.puback(pk, codeSuccess)
}

// completeRPCLocked answers the pending two-way RPC id of d, if any.
func completeRPCLocked(d *device, id int, reply json.RawMessage) {
	for _, c := range d.pending {
		if c.id == id && !c.oneWay {
			c.reply = reply
			removePending(d, c)
			close(c.done)
			return
		}
	}
}

// sessionLimits is the getSessionLimits reply (§2.7).
type sessionLimits struct {
	MaxPayloadSize      int           `json:"maxPayloadSize"`
	MaxInflightMessages int           `json:"maxInflightMessages"`
	RateLimits          limitStrings  `json:"rateLimits"`
	GatewayRateLimits   *limitStrings `json:"gatewayRateLimits,omitempty"`
}

type limitStrings struct {
	Messages            *string `json:"messages"`
	TelemetryMessages   *string `json:"telemetryMessages"`
	TelemetryDataPoints *string `json:"telemetryDataPoints"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) onClientRPC(ss *session, pk packets.Packet, reqPrefix, respPrefix string) {
	id, ok := javaParseInt(strings.TrimPrefix(pk.TopicName, reqPrefix))
	if !ok {
		s.fail(ss, pk, runtimeFailure("request id in %q is not an integer", pk.TopicName))
		return
	}
	raw, err := parseJSON(pk.Payload)
	if err == nil && kind(raw) != '{' {
		err = malformed("rpc request is not a json object")
	}
	var ms []member
	if err == nil {
		ms, err = objectMembers(raw)
	}
	var method string
	params := json.RawMessage("null")
	if err == nil {
		m, ok := findMember(ms, "method")
		switch {
		case !ok || kind(m) == 'n' || kind(m) == '{':
			err = runtimeFailure("rpc request without method")
		default:
			if method, ok = gsonString(m); !ok {
				err = malformed("rpc method is not a string")
			}
		}
	}
	if err == nil {
		if p, ok := findMember(ms, "params"); ok {
			var b bytes.Buffer
			_ = json.Compact(&b, p)
			params = b.Bytes()
		}
	}
	if err != nil {
		s.fail(ss, pk, err)
		return
	}
	s.mu.Lock()
	ss.clientRPCRe = respPrefix
	d := ss.dev
	s.mu.Unlock()
	if method == methodSessionLimits && reqPrefix == topicRPCRequest {
		s.mu.Lock()
		l := sessionLimits{
			MaxPayloadSize:      s.opts.MaxPayloadSize,
			MaxInflightMessages: maxInflightMessages,
			RateLimits: limitStrings{strOrNil(d.limits.Messages), strOrNil(d.limits.TelemetryMessages),
				strOrNil(d.limits.TelemetryDataPoints)},
		}
		if d.info.Gateway {
			l.GatewayRateLimits = &limitStrings{strOrNil(d.gwLimits.Messages), strOrNil(d.gwLimits.TelemetryMessages),
				strOrNil(d.gwLimits.TelemetryDataPoints)}
		}
		s.mu.Unlock()
		ss.puback(pk, codeSuccess)
		b, _ := json.Marshal(l)
		s.sendClientRPCResponse(ss, id, b)
		return
	}
	if s.limited(ss, 0) {
		return
	}
	ss.puback(pk, codeSuccess)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(ss.ctx, s.opts.ClientRPCTimeout)
		defer cancel()
		var reply json.RawMessage
		var err error
		if s.opts.ClientRPC != nil {
			reply, err = s.opts.ClientRPC(ctx, d.info.Name, method, params)
		} else {
			<-ctx.Done()
			err = ctx.Err()
		}
		if ss.ctx.Err() != nil {
			return // the connection is gone
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reply = json.RawMessage(`{"error":"timeout"}`)
		case err != nil:
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			reply = b
		case len(reply) == 0:
			reply = json.RawMessage("null")
		}
		s.sendClientRPCResponse(ss, id, reply)
	}()
}

// sendClientRPCResponse answers on the family of the last client RPC of the
// connection, as ThingsBoard does.
func (s *Server) sendClientRPCResponse(ss *session, id int, payload []byte) {
	s.mu.Lock()
	prefix := ss.clientRPCRe
	s.mu.Unlock()
	_, _ = ss.publish(prefix+strconv.Itoa(id), payload)
}
