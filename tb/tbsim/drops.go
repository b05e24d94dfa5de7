package tbsim

import (
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Reasons recorded with a Drop.
const (
	// DropUnknownTopic: a topic ThingsBoard does not serve (PUBACK, MQTT 5
	// 0x90), including v1/devices/me/telemetry and .../attributes when the
	// device profile sets custom topics.
	DropUnknownTopic = "unknown topic"
	// DropGatewayRateLimit: a sub-device message over the gateway's shared
	// sub-device bucket (PUBACK, MQTT 5 0x97, then the gateway connection
	// is closed).
	DropGatewayRateLimit = "gateway rate limit"
	// DropNotGateway: a v1/gateway/... message from a device that is not a
	// gateway (logged by ThingsBoard, never acknowledged).
	DropNotGateway = "gateway topic from a device that is not a gateway"
	// DropSubscriptionRateLimit: an attribute or RPC subscription (or a
	// sub-device's session open) over the rate limit; the SUBACK still
	// grants it, but no updates or RPCs follow.
	DropSubscriptionRateLimit = "subscription over the rate limit"
	// DropInvalidPayload: a payload that failed to parse and was still
	// acknowledged (MQTT 5 PUBACK 0x99, or an MQTT 3.1.1 PUBACK when the
	// device profile sets sendAckOnValidationException).
	DropInvalidPayload = "invalid payload"
)

// dropLimit bounds the drops kept per device; older ones are forgotten.
const dropLimit = 1000

// dropPayloadLimit bounds the payload text kept with a drop.
const dropPayloadLimit = 256

// Drop is a message ThingsBoard would have taken from the client and then
// discarded. PubAck is the PUBACK reason code the client got (0 for an
// MQTT 3.1.1 PUBACK, which carries none) or -1 when none was sent.
type Drop struct {
	At      time.Time `json:"at"`
	Topic   string    `json:"topic"`
	Reason  string    `json:"reason"`
	PubAck  int       `json:"puback"`
	QoS     byte      `json:"qos"`
	MQTT    byte      `json:"mqtt"`              // protocol level: 3, 4 (3.1.1) or 5
	Gateway string    `json:"gateway,omitempty"` // the gateway it came through
	Payload string    `json:"payload"`           // the first 256 bytes
}

// Dropped returns the device's recorded drops, newest first (at most 1000
// are kept); nil for an unknown device.
func (s *Server) Dropped(name string) []Drop {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return nil
	}
	out := make([]Drop, 0, len(d.drops))
	for i := len(d.drops) - 1; i >= 0; i-- {
		out = append(out, d.drops[i])
	}
	return out
}

// recordDropLocked stores a drop for d; Server.mu must be held.
func (s *Server) recordDropLocked(d *device, ss *session, pk packets.Packet, reason string, puback int) {
	if d == nil {
		return
	}
	p := pk.Payload
	if len(p) > dropPayloadLimit {
		p = p[:dropPayloadLimit]
	}
	dr := Drop{At: time.Now(), Topic: pk.TopicName, Reason: reason, PubAck: puback,
		QoS: pk.FixedHeader.Qos, MQTT: ss.version, Payload: strings.ToValidUTF8(string(p), "\uFFFD")}
	if ss.dev != nil && ss.dev != d {
		dr.Gateway = ss.dev.info.Name
	}
	d.drops = append(d.drops, dr)
	if len(d.drops) > dropLimit {
		d.drops = append(d.drops[:0:0], d.drops[len(d.drops)-dropLimit:]...)
	}
	s.notifyLocked()
}

// recordDrop is recordDropLocked taking the lock.
func (s *Server) recordDrop(d *device, ss *session, pk packets.Packet, reason string, puback int) {
	s.mu.Lock()
	s.recordDropLocked(d, ss, pk, reason, puback)
	s.mu.Unlock()
}

// pubackSeen is the PUBACK code a client gets for code: -1 without PUBACK
// (QoS 0), 0 under MQTT 3.1.1.
func (ss *session) pubackSeen(pk packets.Packet, code byte) int {
	if pk.FixedHeader.Qos == 0 || pk.PacketID == 0 {
		return -1
	}
	if ss.version < 5 {
		return 0
	}
	return int(code)
}

// unknownTopic acknowledges a publish to a topic ThingsBoard does not
// serve (MQTT 5 0x90) and records the drop.
func (s *Server) unknownTopic(ss *session, pk packets.Packet) {
	s.recordDrop(ss.dev, ss, pk, DropUnknownTopic, ss.pubackSeen(pk, codeTopicNameInvalid))
	ss.puback(pk, codeTopicNameInvalid)
}
