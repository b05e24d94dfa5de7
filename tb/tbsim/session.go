package tbsim

import (
	"context"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MQTT 5 reason codes ThingsBoard uses (§1.9).
const (
	codeSuccess              = 0x00
	codeUnspecified          = 0x80
	codeMalformedPacket      = 0x81
	codeImplementationError  = 0x83
	codeClientIDInvalid      = 0x85
	codeBadUserPassword      = 0x86
	codeNotAuthorized        = 0x87
	codeServerUnavailable    = 0x88
	codeServerShuttingDown   = 0x8B
	codeSessionTakenOver     = 0x8E
	codeTopicFilterInvalid   = 0x8F
	codeTopicNameInvalid     = 0x90
	codeMessageRateTooHigh   = 0x96
	codeQuotaExceeded        = 0x97
	codeAdministrativeAction = 0x98
	codePayloadFormatInvalid = 0x99
	// codeConnectionRateExceeded is CONNACK "connection rate exceeded".
	codeConnectionRateExceeded = 0x9F
)

// v3ConnackCode maps a CONNACK reason to MQTT 3.1.1 as ReturnCodeResolver.
func v3ConnackCode(code byte) byte {
	switch code {
	case codeSuccess:
		return 0
	case codeClientIDInvalid:
		return 2
	case codeServerUnavailable, 0x9F:
		return 3
	default:
		return 5
	}
}

// v3RefusalCode maps a CONNACK refusal that mochi decided before tbsim saw
// the connection to MQTT 3.1.1: protocol name and level problems are
// 1 (unacceptable protocol version), the rest as v3ConnackCode.
func v3RefusalCode(code byte, reason string) byte {
	if code == 0x84 || (code == 0x82 && strings.Contains(reason, "protocol")) {
		return 1
	}
	return v3ConnackCode(code)
}

// session is one MQTT connection. Fields are guarded by Server.mu.
type session struct {
	s        *Server
	cl       *mqtt.Client
	id       uint64
	version  byte
	clean    bool
	clientID string
	username string

	provision   bool
	gateway     bool             // the device is a gateway: v1/gateway/... is served
	dev         *device          // nil in a provisioning session
	gwDevices   map[string]*view // sub-devices connected through this gateway session
	self        *view
	connackCode byte // 0 = accepted (v5 reason otherwise)
	established bool
	ended       bool

	subs        []grant // accepted filters, in order
	attrTopic   string  // where shared-attribute updates go, "" = not subscribed
	rpcPrefix   string  // where server RPCs go, "" = not subscribed
	clientRPCRe string  // client-RPC response prefix of the last request family
	suback      []byte  // reason codes for the SUBACK being written
	afterSuback []func()
	rpcAwaiting map[uint16]*rpcCall
	chunkSizes  map[string]int
	otaPkgs     map[string]*otaAssignment // request id → package resolved for it

	nextPID atomic.Uint32
	ctx     context.Context // ends when the connection ends
	cancel  context.CancelFunc
}

type grant struct {
	filter string
	qos    byte
}

// view is one device as seen through one session. A direct device session
// has a single view of its own device; a gateway session owns one view per
// connected sub-device (gw set), which is always subscribed to attribute
// updates and RPC and wraps deliveries in {"device","data"}.
type view struct {
	sess  *session
	dev   *device
	gw    bool
	key   string // the name the gateway session knows the device by
	muted bool   // its session open was lost: no updates or RPCs
}

// attrSubscribers returns the views that receive shared-attribute updates.
// Server.mu must be held.
func attrSubscribers(d *device) []*view {
	var out []*view
	for _, v := range d.views {
		if (v.gw || v.sess.attrTopic != "") && !v.sess.ended && !v.muted {
			out = append(out, v)
		}
	}
	return out
}

// rpcSubscribers returns the views that receive server-side RPCs.
func rpcSubscribers(d *device) []*view {
	var out []*view
	for _, v := range d.views {
		if (v.gw || v.sess.rpcPrefix != "") && !v.sess.ended && !v.muted {
			out = append(out, v)
		}
	}
	return out
}

// connectedLocked reports whether the device has a live view (its own
// session or a gateway's). Server.mu must be held.
func connectedLocked(d *device) bool {
	for _, v := range d.views {
		if v.sess.established && !v.sess.ended {
			return true
		}
	}
	return false
}

// pushAll sends an attribute-update payload to views.
func pushAll(views []*view, payload []byte) {
	for _, v := range views {
		v.pushAttributes(payload)
	}
}

func (v *view) pushAttributes(payload []byte) {
	if v.gw {
		_, _ = v.sess.publish(topicGwAttributes, gatewayEnvelope(v.dev.info.Name, payload))
		return
	}
	v.sess.s.mu.Lock()
	topic := v.sess.attrTopic
	v.sess.s.mu.Unlock()
	if topic != "" {
		_, _ = v.sess.publish(topic, payload)
	}
}

// matchTopic is MQTT filter matching with + and #.
func matchTopic(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) {
			return false
		}
		if f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}

// qosFor is DeviceSessionCtx.getQoSForTopic: the granted QoS of the first
// matching subscription, else 1. Server.mu must be held.
func (ss *session) qosFor(topic string) byte {
	for _, g := range ss.subs {
		if matchTopic(g.filter, topic) {
			return g.qos
		}
	}
	return 1
}

// publish sends one downlink to this connection only; it returns the packet
// id used (0 for QoS 0).
func (ss *session) publish(topic string, payload []byte) (uint16, error) {
	s := ss.s
	s.mu.Lock()
	qos := ss.qosFor(topic)
	s.stats.Downlinks++
	s.stats.DownlinksByTopic[topic]++
	s.mu.Unlock()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = ss.packetID()
	}
	if err := ss.cl.WritePacket(pk); err != nil {
		s.log.Debug("writing downlink", "topic", topic, "error", err)
		return 0, err
	}
	return pk.PacketID, nil
}

// packetID returns the next packet id, wrapping within 1..65535.
func (ss *session) packetID() uint16 {
	for {
		n := ss.nextPID.Add(1)
		if id := uint16(n); id != 0 {
			return id
		}
	}
}

// puback acknowledges a QoS 1 publish; v5 carries code, v3 a plain PUBACK.
func (ss *session) puback(pk packets.Packet, code byte) {
	if pk.FixedHeader.Qos == 0 || pk.PacketID == 0 {
		return
	}
	s := ss.s
	if s.dropPubAcks.Load() {
		return
	}
	if d := s.pubAckDelay.Load(); d > 0 {
		select {
		case <-timerC(d):
		case <-ss.ctx.Done():
			return
		}
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if ss.version == 5 {
		ack.ReasonCode = code
	}
	// Counted before the write so that a client which has seen the PUBACK
	// also sees it in Stats.
	s.mu.Lock()
	s.stats.PubAcks++
	s.mu.Unlock()
	if err := ss.cl.WritePacket(ack); err != nil {
		s.mu.Lock()
		s.stats.PubAcks--
		s.mu.Unlock()
	}
}

// drop closes the connection without a DISCONNECT (Netty's ctx.close()).
func (ss *session) drop(why string) {
	ss.cl.Stop(packets.Code{Code: codeImplementationError, Reason: why})
}

// close ends the connection; MQTT 5 clients get DISCONNECT code first.
func (ss *session) close(code byte) {
	if ss.version == 5 {
		_ = ss.cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  code,
		})
	}
	ss.cl.Stop(packets.Code{Code: code, Reason: "closed by tbsim"})
}
