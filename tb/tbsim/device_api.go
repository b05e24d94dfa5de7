package tbsim

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Topic names of the Device API (§2.1).
const (
	topicTelemetry      = "v1/devices/me/telemetry"
	topicAttributes     = "v1/devices/me/attributes"
	topicAttrRequest    = "v1/devices/me/attributes/request/"
	topicAttrResponse   = "v1/devices/me/attributes/response/"
	topicRPCRequest     = "v1/devices/me/rpc/request/"
	topicRPCResponse    = "v1/devices/me/rpc/response/"
	topicClaim          = "v1/devices/me/claim"
	topicProvisionReq   = "/provision/request"
	topicProvisionResp  = "/provision/response"
	topicGatewayPrefix  = "v1/gateway/"
	topicOTAError       = "v2/fw/error"
	methodSessionLimits = "getSessionLimits"
)

// Subscription filters ThingsBoard accepts (§1.5). Protobuf (…/p) variants
// are not emulated and are rejected like unknown filters.
var (
	attrFilters = map[string]string{ // filter → update topic
		"v1/devices/me/attributes": "v1/devices/me/attributes",
		"v2/a":                     "v2/a",
		"v2/a/j":                   "v2/a/j",
	}
	rpcFilters = map[string]string{ // filter → request topic prefix
		"v1/devices/me/rpc/request/+": topicRPCRequest,
		"v2/r/req/+":                  "v2/r/req/",
		"v2/r/req/j/+":                "v2/r/req/j/",
	}
	passiveFilters = map[string]bool{
		"v1/devices/me/rpc/response/+":        true,
		"v2/r/res/+":                          true,
		"v2/r/res/j/+":                        true,
		"v1/devices/me/attributes/response/+": true,
		"v2/a/res/+":                          true,
		"v2/a/res/j/+":                        true,
		"v1/gateway/attributes":               true,
		"v1/gateway/rpc":                      true,
		"v1/gateway/attributes/response":      true,
		"v2/fw/response/+/chunk/+":            true,
		"v2/fw/error":                         true,
		"v2/sw/response/+/chunk/+":            true,
		"v2/sw/error":                         true,
	}
	fwRequest = regexp.MustCompile(`v2/fw/request/(\d+)/chunk/(\d+)`)
	swRequest = regexp.MustCompile(`v2/sw/request/(\d+)/chunk/(\d+)`)
)

// OnSubscribe decides every filter's SUBACK code and registers attribute and
// RPC subscriptions before the SUBACK is written.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	s := h.s
	ss := h.session(cl)
	if ss == nil {
		return pk
	}
	reject := byte(codeUnspecified)
	if ss.version == 5 {
		reject = codeTopicFilterInvalid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Subscribes++
	codes := make([]byte, len(pk.Filters))
	rpcSubscribed := false
	for i, f := range pk.Filters {
		qos := min(f.Qos, 1)
		accepted := false
		switch {
		case ss.provision:
			accepted = f.Filter == topicProvisionResp
		case attrFilters[f.Filter] != "":
			accepted = true
			if s.subscribeAllowedLocked(ss, f.Filter) {
				ss.attrTopic = attrFilters[f.Filter]
			}
		case rpcFilters[f.Filter] != "":
			accepted = true
			if s.subscribeAllowedLocked(ss, f.Filter) {
				ss.rpcPrefix = rpcFilters[f.Filter]
				rpcSubscribed = true
			}
		case passiveFilters[f.Filter]:
			accepted = true
		}
		if !accepted {
			codes[i] = reject
			continue
		}
		codes[i] = qos
		pk.Filters[i].Qos = qos
		replaced := false
		for j := range ss.subs {
			if ss.subs[j].filter == f.Filter {
				ss.subs[j].qos, replaced = qos, true
			}
		}
		if !replaced {
			ss.subs = append(ss.subs, grant{filter: f.Filter, qos: qos})
		}
	}
	ss.suback = codes
	if rpcSubscribed && ss.self != nil {
		// What is pending now follows the SUBACK; a request made after
		// the subscription is delivered by RPC itself, once.
		v := ss.self
		pending := append([]*rpcCall(nil), v.dev.pending...)
		ss.afterSuback = append(ss.afterSuback, func() {
			for _, c := range pending {
				s.deliverRPC(v, c)
			}
		})
	}
	return pk
}

// subscribeAllowedLocked charges an attribute or RPC subscription to the
// session's bucket (MqttTransportHandler sends each as a message without a
// callback): over the limit the SUBACK still grants it, but it never takes
// effect; the loss is recorded.
func (s *Server) subscribeAllowedLocked(ss *session, filter string) bool {
	if ss.dev == nil || ss.dev.limiter.allow(time.Now(), 0) {
		return true
	}
	s.log.Info("subscription over the rate limit", "device", ss.dev.info.Name, "filter", filter)
	s.recordDropLocked(ss.dev, ss, packets.Packet{TopicName: filter}, DropSubscriptionRateLimit, -1)
	return false
}

// OnUnsubscribe cancels attribute and RPC subscriptions.
func (h *hook) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	s := h.s
	ss := h.session(cl)
	if ss == nil {
		return pk
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range pk.Filters {
		if attrFilters[f.Filter] != "" || f.Filter == "v2/a/p" {
			ss.attrTopic = ""
		}
		if rpcFilters[f.Filter] != "" || f.Filter == "v2/r/req/p/+" {
			ss.rpcPrefix = ""
		}
		for j := range ss.subs {
			if ss.subs[j].filter == f.Filter {
				ss.subs = append(ss.subs[:j], ss.subs[j+1:]...)
				break
			}
		}
	}
	return pk
}

// OnPublish consumes every publish; handlers write their own PUBACK.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	ss := h.session(cl)
	if ss == nil {
		return pk, packets.ErrRejectPacket
	}
	s := h.s
	s.mu.Lock()
	s.stats.Publishes++
	s.stats.PublishesByTopic[pk.TopicName]++
	s.mu.Unlock()
	if ss.provision {
		s.handleProvision(ss, pk)
	} else {
		s.handleDevicePublish(ss, pk)
	}
	return pk, packets.ErrRejectPacket
}

// fail reacts to a bad publish as ThingsBoard does (§1.6).
// A payload that fails to parse is answered (sendResponseForAdaptorErrorOr
// CloseContext) with PUBACK 0x99 under MQTT 5, or under 3.1.1 with a plain
// PUBACK when the device profile sets sendAckOnValidationException; the
// message is then dropped and recorded. Otherwise the connection closes.
func (s *Server) fail(ss *session, pk packets.Packet, err error) {
	s.log.Info("bad publish", "topic", pk.TopicName, "error", err)
	if isRuntime(err) {
		ss.close(codeServerShuttingDown)
		return
	}
	if (ss.version == 5 || s.profileOf(ss.dev).SendAckOnValidationException) && pk.PacketID > 0 {
		s.recordDrop(ss.dev, ss, pk, DropInvalidPayload, ss.pubackSeen(pk, codePayloadFormatInvalid))
		ss.puback(pk, codePayloadFormatInvalid)
		return
	}
	ss.close(codePayloadFormatInvalid)
}

// limited applies the session's own rate limits (a gateway's own bucket for
// a gateway session) to a message with points data points; over the limit the session is
// closed without PUBACK (MQTT 5: DISCONNECT 0x83) and it returns true.
func (s *Server) limited(ss *session, points int) bool {
	s.mu.Lock()
	ok := ss.dev.limiter.allow(time.Now(), points)
	name := ss.dev.info.Name
	s.mu.Unlock()
	if ok {
		return false
	}
	s.log.Info("rate limit exceeded", "device", name)
	ss.close(codeImplementationError)
	return true
}

func (s *Server) handleDevicePublish(ss *session, pk packets.Packet) {
	t := pk.TopicName
	prof := s.profileOf(ss.dev)
	// Topics whose payload the profile's adaptor parses: under PROTOBUF a
	// JSON payload fails there.
	if s.profileAdaptorTopic(prof, t) && s.protoRefused(ss, pk, prof) {
		return
	}
	switch {
	case strings.HasPrefix(t, topicGatewayPrefix):
		if ss.gateway {
			if s.protoRefused(ss, pk, prof) {
				return
			}
			s.handleGatewayPublish(ss, pk)
			return
		}
		// ThingsBoard sends nothing for a non-gateway device publishing here.
		s.log.Warn("gateway topic from a device that is not a gateway", "device", ss.dev.info.Name, "topic", t)
		s.recordDrop(ss.dev, ss, pk, DropNotGateway, -1)
	case matchProfileTopic(prof.AttributesTopic, t), t == "v2/a", t == "v2/a/j":
		s.onAttributes(ss, pk)
	case matchProfileTopic(prof.TelemetryTopic, t), t == "v2/t", t == "v2/t/j":
		s.onTelemetry(ss, pk)
	case strings.HasPrefix(t, topicAttrRequest):
		s.onAttrRequest(ss, pk, topicAttrRequest, topicAttrResponse)
	case strings.HasPrefix(t, topicRPCResponse):
		s.onRPCResponse(ss, pk, topicRPCResponse)
	case strings.HasPrefix(t, topicRPCRequest):
		s.onClientRPC(ss, pk, topicRPCRequest, topicRPCResponse)
	case t == topicClaim:
		s.onClaim(ss, pk)
	case fwRequest.MatchString(t):
		s.onOTARequest(ss, pk, "fw", fwRequest.FindStringSubmatch(t))
	case swRequest.MatchString(t):
		s.onOTARequest(ss, pk, "sw", swRequest.FindStringSubmatch(t))
	case strings.HasPrefix(t, "v2/r/res/j/"):
		s.onRPCResponse(ss, pk, "v2/r/res/j/")
	case strings.HasPrefix(t, "v2/r/res/p/"):
		s.unknownTopic(ss, pk)
	case strings.HasPrefix(t, "v2/r/res/"):
		s.onRPCResponse(ss, pk, "v2/r/res/")
	case strings.HasPrefix(t, "v2/r/req/j/"):
		s.onClientRPC(ss, pk, "v2/r/req/j/", "v2/r/res/j/")
	case strings.HasPrefix(t, "v2/r/req/p/"):
		s.unknownTopic(ss, pk)
	case strings.HasPrefix(t, "v2/r/req/"):
		s.onClientRPC(ss, pk, "v2/r/req/", "v2/r/res/")
	case strings.HasPrefix(t, "v2/a/req/j/"):
		s.onAttrRequest(ss, pk, "v2/a/req/j/", "v2/a/res/j/")
	case strings.HasPrefix(t, "v2/a/req/p/"):
		s.unknownTopic(ss, pk)
	case strings.HasPrefix(t, "v2/a/req/"):
		s.onAttrRequest(ss, pk, "v2/a/req/", "v2/a/res/")
	default:
		s.unknownTopic(ss, pk)
	}
}

// profileAdaptorTopic reports whether MqttTransportHandler parses t's
// payload with the profile's adaptor (not a forced …/j or …/p one).
func (s *Server) profileAdaptorTopic(p *DeviceProfile, t string) bool {
	switch {
	case strings.HasPrefix(t, topicGatewayPrefix), strings.HasSuffix(t, "/j"), strings.Contains(t, "/j/"),
		strings.HasPrefix(t, "v2/fw/"), strings.HasPrefix(t, "v2/sw/"):
		return false
	case matchProfileTopic(p.AttributesTopic, t), matchProfileTopic(p.TelemetryTopic, t),
		t == "v2/a", t == "v2/t", t == topicClaim:
		return true
	}
	for _, prefix := range []string{topicAttrRequest, topicRPCResponse, topicRPCRequest, "v2/r/res/", "v2/r/req/", "v2/a/req/"} {
		if strings.HasPrefix(t, prefix) && !strings.HasPrefix(t, prefix+"p/") {
			return true
		}
	}
	return false
}

func (s *Server) onTelemetry(ss *session, pk packets.Packet) {
	recs, err := parseTelemetry(pk.Payload)
	if err != nil {
		s.fail(ss, pk, err)
		return
	}
	if len(recs) == 0 {
		// "[]": parsed, but ThingsBoard never acknowledges it.
		return
	}
	if s.limited(ss, dataPoints(recs)) {
		return
	}
	s.mu.Lock()
	s.storeTelemetryLocked(ss.dev, recs)
	s.mu.Unlock()
	ss.puback(pk, codeSuccess)
}

func (s *Server) onAttributes(ss *session, pk packets.Packet) {
	kvs, err := parseAttributes(pk.Payload)
	if err != nil {
		s.fail(ss, pk, err)
		return
	}
	if s.limited(ss, len(kvs)) {
		return
	}
	s.storeClientAttributes(ss.dev, kvs)
	ss.puback(pk, codeSuccess)
}

// dataPoints counts the key/value pairs of telemetry records, what the
// data-point rate limit counts.
func dataPoints(recs []tsRecord) int {
	n := 0
	for _, r := range recs {
		n += len(r.KV)
	}
	return n
}

// storeClientAttributes stores client-scope attributes of d.
func (s *Server) storeClientAttributes(d *device, kvs []kv) {
	s.mu.Lock()
	for _, e := range kvs {
		d.client[e.Key] = e.Value
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// storeClaim records a claiming request of d.
func (s *Server) storeClaim(d *device, c Claim) {
	s.mu.Lock()
	d.claims = append(d.claims, c)
	s.notifyLocked()
	s.mu.Unlock()
}

// javaParseInt is Integer.parseInt.
func javaParseInt(s string) (int, bool) {
	if s == "" || s == "+" || s == "-" {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(v), true
}

// gsonString is JsonElement.getAsString for request fields.
func gsonString(raw json.RawMessage) (string, bool) {
	switch kind(raw) {
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return s, true
	case 't', 'f', '0':
		return string(raw), true
	case '[':
		elems, err := arrayElements(raw)
		if err != nil || len(elems) != 1 {
			return "", false
		}
		return gsonString(elems[0])
	default:
		return "", false
	}
}

// javaSplitComma is String.split(","): trailing empty strings are removed,
// and an input without a comma is returned whole.
func javaSplitComma(s string) []string {
	parts := strings.Split(s, ",")
	if len(parts) == 1 {
		return parts
	}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

func (s *Server) onAttrRequest(ss *session, pk packets.Packet, reqPrefix, respPrefix string) {
	id, ok := javaParseInt(strings.TrimPrefix(pk.TopicName, reqPrefix))
	if !ok {
		s.fail(ss, pk, malformed("request id in %q is not an integer", pk.TopicName))
		return
	}
	raw, err := parseJSON(pk.Payload)
	if err == nil && kind(raw) != '{' {
		err = malformed("attribute request is not a json object")
	}
	var ms []member
	if err == nil {
		ms, err = objectMembers(raw)
	}
	var keys [2][]string // client, shared
	for i, name := range []string{"clientKeys", "sharedKeys"} {
		if err != nil {
			break
		}
		if r, ok := findMember(ms, name); ok {
			str, ok := gsonString(r)
			if !ok {
				err = malformed("%s is not a string", name)
				break
			}
			keys[i] = javaSplitComma(str)
		}
	}
	if err != nil {
		s.fail(ss, pk, err)
		return
	}
	if s.limited(ss, 0) {
		return
	}
	s.mu.Lock()
	d := ss.dev
	var client, shared map[string]any
	pick := func(m map[string]any, ks []string) map[string]any {
		out := map[string]any{}
		for _, k := range ks {
			if v, ok := m[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	switch {
	case len(keys[0]) == 0 && len(keys[1]) == 0:
		client, shared = copyMap(d.client), copyMap(d.shared)
	case len(keys[1]) == 0:
		client = pick(d.client, keys[0])
	case len(keys[0]) == 0:
		shared = pick(d.shared, keys[1])
	default:
		client, shared = pick(d.client, keys[0]), pick(d.shared, keys[1])
	}
	s.mu.Unlock()
	if id >= 0 {
		var b bytes.Buffer
		b.WriteByte('{')
		if len(client) > 0 {
			b.WriteString(`"client":`)
			b.Write(jsonObject(client))
		}
		if len(shared) > 0 {
			if len(client) > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"shared":`)
			b.Write(jsonObject(shared))
		}
		b.WriteByte('}')
		_, _ = ss.publish(respPrefix+strconv.Itoa(id), b.Bytes())
	}
	ss.puback(pk, codeSuccess)
}

// parseClaimMembers reads secretKey and durationMs (both optional) and
// applies the default duration.
func parseClaimMembers(ms []member) (Claim, error) {
	c := Claim{At: time.Now()}
	if r, ok := findMember(ms, "secretKey"); ok {
		str, ok := gsonString(r)
		if !ok {
			return c, runtimeFailure("secretKey is not a string")
		}
		c.SecretKey = str
	}
	if r, ok := findMember(ms, "durationMs"); ok {
		var err error
		if c.DurationMs, err = gsonLong(r); err != nil {
			return c, err
		}
	}
	if c.DurationMs <= 0 {
		c.DurationMs = defaultClaimDurationMs
	}
	return c, nil
}

func (s *Server) onClaim(ss *session, pk packets.Packet) {
	var ms []member
	if len(pk.Payload) > 0 {
		raw, err := parseJSON(pk.Payload)
		if err == nil && kind(raw) != '{' {
			err = malformed("claim is not a json object")
		}
		if err == nil {
			ms, err = objectMembers(raw)
		}
		if err != nil {
			s.fail(ss, pk, err)
			return
		}
	}
	c, err := parseClaimMembers(ms)
	if err != nil {
		s.fail(ss, pk, err)
		return
	}
	if s.limited(ss, 0) {
		return
	}
	s.storeClaim(ss.dev, c)
	ss.puback(pk, codeSuccess)
}

// sortedKeys returns m's keys sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
