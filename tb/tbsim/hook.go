package tbsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook adapts mochi to ThingsBoard's transport: mochi parses and writes
// packets and runs one reader goroutine per connection; every decision
// (auth, CONNACK/SUBACK codes, publish handling, acknowledgements) is made
// here. Nothing is ever routed between clients: every publish is consumed,
// every downlink is written to one connection.
type hook struct {
	mqtt.HookBase
	s *Server
}

var provided = []byte{
	mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished,
	mqtt.OnDisconnect, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnUnsubscribe,
	mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPacketSent,
}

func (h *hook) ID() string { return "tbsim" }

func (h *hook) Provides(b byte) bool { return bytes.IndexByte(provided, b) >= 0 }

func timerC(d int64) <-chan time.Time { return time.After(time.Duration(d)) }

func (h *hook) session(cl *mqtt.Client) *session {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.sessions[cl]
}

// OnConnect creates the session. Client ids are replaced by a unique id so
// that mochi never takes over a session by client id (ThingsBoard does not
// track client ids); wills and persistence are dropped (ignored by TB).
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	s := h.s
	s.mu.Lock()
	if s.paused { // accepted just before Pause
		s.mu.Unlock()
		return errPaused
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.nextSess++
	ss := &session{
		s: s, cl: cl, id: s.nextSess, version: pk.ProtocolVersion, clean: pk.Connect.Clean,
		clientID: pk.Connect.ClientIdentifier, username: string(pk.Connect.Username),
		rpcAwaiting: map[uint16]*rpcCall{}, chunkSizes: map[string]int{},
		otaPkgs: map[string]*otaAssignment{}, ctx: ctx, cancel: cancel,
	}
	s.sessions[cl] = ss
	s.mu.Unlock()
	cl.ID = "tbsim-" + itoa(int64(ss.id))
	cl.Properties.Clean = true
	cl.Properties.Props.SessionExpiryInterval = 0
	cl.Properties.Props.SessionExpiryIntervalFlag = false
	cl.Properties.Will = mqtt.Will{}
	cl.State.Keepalive = inactivityKeepalive
	return nil
}

// OnConnectAuthenticate runs ThingsBoard's CONNECT checks (§1.2).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	s := h.s
	ss := h.session(cl)
	if ss == nil {
		return false
	}
	username, password, clientID := string(pk.Connect.Username), string(pk.Connect.Password), pk.Connect.ClientIdentifier
	if username == "provision" || clientID == "provision" {
		s.mu.Lock()
		ss.provision = true
		s.stats.Connects++
		s.mu.Unlock()
		return true
	}
	var certs []string
	if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		now := time.Now()
		for i, c := range st.PeerCertificates {
			if i == 0 && (now.Before(c.NotBefore) || now.After(c.NotAfter)) {
				return h.reject(ss, codeNotAuthorized, "client certificate expired or not yet valid")
			}
			certs = append(certs, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	s.mu.Lock()
	var devName string
	var code byte
	if len(certs) > 0 {
		code = codeNotAuthorized
		if c := s.creds[sha3Hex(certs[0])]; c != nil && c.kind == credX509 {
			devName, code = c.device, codeSuccess
		}
	} else {
		devName = s.authBasicLocked(clientID, username, password)
		switch {
		case devName != "":
			code = codeSuccess
		case username != "" || password != "":
			code = codeBadUserPassword
		case clientID != "":
			code = codeClientIDInvalid
		default:
			code = codeNotAuthorized
		}
	}
	d := s.devices[devName]
	if code != codeSuccess || d == nil {
		s.mu.Unlock()
		if code == codeSuccess {
			code = codeNotAuthorized
		}
		return h.reject(ss, code, "bad credentials")
	}
	// The session open event is one message of the device's own bucket
	// (a gateway's own bucket for a gateway); over it ThingsBoard refuses
	// the connection (CONNACK 0x9F, 3.1.1: 3; MQTT 5 DISCONNECT 0x96) and
	// the older session stays.
	if !d.limiter.allow(time.Now(), 0) {
		s.mu.Unlock()
		return h.reject(ss, codeConnectionRateExceeded, "session open over the rate limit")
	}
	old := s.evictLocked(d)
	ss.dev = d
	if d.info.Gateway {
		ss.gateway = true
		ss.gwDevices = map[string]*view{}
	}
	ss.self = &view{sess: ss, dev: d}
	d.direct = ss
	d.views = append(d.views, ss.self)
	s.stats.Connects++
	s.mu.Unlock()
	if old != nil {
		s.log.Info("session taken over", "device", d.info.Name)
		old.close(codeSessionTakenOver)
	}
	s.log.Info("device connected", "device", d.info.Name, "mqtt", ss.version)
	return true
}

func (h *hook) reject(ss *session, code byte, why string) bool {
	s := h.s
	s.mu.Lock()
	ss.connackCode = code
	s.stats.ConnectFailures++
	s.mu.Unlock()
	s.log.Info("connect rejected", "reason", why, "code", code, "client_id", ss.clientID, "username", ss.username)
	return false
}

// authBasicLocked is DefaultTransportApiService.validateCredentials for
// username/password/client id; it returns the device name or "".
func (s *Server) authBasicLocked(clientID, username, password string) string {
	const (
		valid = iota
		hashMismatch
		passwordMismatch
	)
	check := func(c *credential) int {
		if c.clientID != "" && c.clientID != clientID {
			return hashMismatch
		}
		if c.username != "" && c.username != username {
			return hashMismatch
		}
		if c.password != "" && c.password != password {
			return passwordMismatch
		}
		return valid
	}
	byUsername := func() string {
		c := s.creds[username]
		switch {
		case c == nil:
			return ""
		case c.kind == credAccessToken:
			return c.device
		case c.kind == credMQTTBasic && check(c) == valid:
			return c.device
		}
		return ""
	}
	if username == "" {
		if c := s.creds[sha3Hex(clientID)]; c != nil && c.kind == credMQTTBasic && check(c) == valid {
			return c.device
		}
		return ""
	}
	if c := s.creds[sha3Hex(joinNonEmpty("|", clientID, username))]; c != nil && c.kind == credMQTTBasic {
		switch check(c) {
		case valid:
			return c.device
		case passwordMismatch:
			return ""
		}
	}
	return byUsername()
}

// detachLocked removes a session from its device.
func (s *Server) detachLocked(ss *session) {
	if ss.ended {
		return
	}
	ss.ended = true
	ss.established = false
	for _, v := range ss.gwDevices {
		s.removeViewLocked(v)
	}
	if d := ss.dev; d != nil {
		if d.direct == ss {
			d.direct = nil
		}
		for i, v := range d.views {
			if v.sess == ss {
				d.views = append(d.views[:i], d.views[i+1:]...)
				break
			}
		}
	}
	s.notifyLocked()
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s := h.s
	s.mu.Lock()
	ss := s.sessions[cl]
	paused, b := s.paused, s.broker
	if ss != nil && !ss.ended && !paused {
		ss.established = true
		s.notifyLocked()
	}
	s.mu.Unlock()
	if paused && b != nil { // connected while Pause dropped the others
		_ = b.DisconnectClient(cl, packets.ErrServerShuttingDown)
	}
}

// errPaused refuses a connection accepted just before Pause.
var errPaused = errors.New("tbsim: paused")

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	s := h.s
	s.mu.Lock()
	ss := s.sessions[cl]
	delete(s.sessions, cl)
	if ss != nil {
		if ss.connackCode == codeSuccess && (ss.dev != nil || ss.provision) {
			s.stats.Disconnects++
		}
		if ss.connackCode == codeSuccess && ss.dev != nil && !ss.ended {
			// Session close events are messages too: the device's own
			// one, and one per sub-device in the gateway's shared bucket.
			now := time.Now()
			ss.dev.limiter.allow(now, 0)
			for range ss.gwDevices {
				ss.dev.gwLimiter.allow(now, 0)
			}
		}
		s.detachLocked(ss)
	}
	s.mu.Unlock()
	if ss != nil {
		ss.cancel()
		if ss.dev != nil {
			s.log.Info("device disconnected", "device", ss.dev.info.Name, "error", err)
		}
	}
}

// OnACLCheck lets mochi index exactly the filters tbsim accepted; publishes
// are all handled in OnPublish.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return true
	}
	ss := h.session(cl)
	if ss == nil {
		return false
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for _, g := range ss.subs {
		if g.filter == topic {
			return true
		}
	}
	return false
}

// OnPacketRead rejects packets larger than MaxPayloadSize (§1.6).
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	ss := h.session(cl)
	if pk.FixedHeader.Remaining > h.s.opts.MaxPayloadSize {
		if ss != nil && ss.version == 5 {
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: codeMalformedPacket})
		}
		h.s.log.Info("packet too large", "size", pk.FixedHeader.Remaining)
		return pk, packets.ErrRejectPacket
	}
	if ss != nil && pk.FixedHeader.Type == packets.Puback {
		h.s.onPuback(ss, pk.PacketID)
	}
	if pk.FixedHeader.Type == packets.Publish && !mqtt.IsValidFilter(pk.TopicName, true) {
		// mochi drops these silently ($SYS/..., wildcards) without ever
		// calling OnPublish.
		if strings.ContainsAny(pk.TopicName, "+#") {
			// Netty's decoder refuses a topic name with wildcards.
			if ss != nil && ss.version == 5 {
				_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: codeMalformedPacket})
			}
			return pk, packets.ErrRejectPacket
		}
		// Any other topic ($SYS/x, ...) is an ordinary unknown topic.
		_, _ = h.OnPublish(cl, pk)
	}
	return pk, nil
}

// OnPacketEncode makes CONNACK, SUBACK, UNSUBACK, PUBACK and DISCONNECT look
// like ThingsBoard's: no properties, TB's codes, sessionPresent = !clean.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		ss := h.session(cl)
		reason := pk.Properties.ReasonString
		pk.Properties = packets.Properties{}
		if ss == nil {
			// Refused by mochi before OnConnect (bad protocol name or
			// level, ...): a client that is not MQTT 5 gets an MQTT 3.1.1
			// return code, never an MQTT 5 reason code.
			if cl.Properties.ProtocolVersion != 5 && pk.ReasonCode >= codeUnspecified {
				pk.ReasonCode = v3RefusalCode(pk.ReasonCode, reason)
			}
			return pk
		}
		h.s.mu.Lock()
		code := ss.connackCode
		h.s.mu.Unlock()
		if code == codeSuccess {
			pk.ReasonCode = 0
			pk.SessionPresent = !ss.clean
		} else {
			pk.SessionPresent = false
			pk.ReasonCode = code
			if ss.version < 5 {
				pk.ReasonCode = v3ConnackCode(code)
			}
		}
	case packets.Suback:
		pk.Properties = packets.Properties{}
		if ss := h.session(cl); ss != nil {
			h.s.mu.Lock()
			if len(ss.suback) == len(pk.ReasonCodes) {
				pk.ReasonCodes = ss.suback
			}
			h.s.mu.Unlock()
		}
	case packets.Unsuback, packets.Puback, packets.Disconnect:
		pk.Properties = packets.Properties{}
	}
	return pk
}

// OnPacketSent runs what must follow a packet: the DISCONNECT after a failed
// MQTT 5 CONNACK, and RPC re-delivery after a SUBACK.
func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	ss := h.session(cl)
	if ss == nil {
		return
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if pk.ReasonCode != 0 && ss.version == 5 {
			code := pk.ReasonCode
			if code == codeConnectionRateExceeded {
				code = codeMessageRateTooHigh
			}
			_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code})
		}
	case packets.Suback:
		h.s.mu.Lock()
		after := ss.afterSuback
		ss.afterSuback, ss.suback = nil, nil
		h.s.mu.Unlock()
		for _, f := range after {
			f()
		}
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
