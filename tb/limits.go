package tb

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SessionLimits is the server's answer to the getSessionLimits RPC.
type SessionLimits struct {
	MaxPayloadSize      int        `json:"maxPayloadSize"`
	MaxInflightMessages int        `json:"maxInflightMessages"`
	RateLimits          RateLimits `json:"rateLimits"`
	// GatewayRateLimits apply to the devices behind a gateway.
	GatewayRateLimits *RateLimits `json:"gatewayRateLimits,omitempty"`
}

// RateLimits are ThingsBoard rate-limit strings such as "100:1,3000:60"
// (capacity:seconds, every window enforced at once); empty = no limit.
type RateLimits struct {
	Messages            string `json:"messages"`
	TelemetryMessages   string `json:"telemetryMessages"`
	TelemetryDataPoints string `json:"telemetryDataPoints"`
}

// UnmarshalJSON accepts null for each limit.
func (r *RateLimits) UnmarshalJSON(b []byte) error {
	var raw map[string]*string
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	get := func(k string) string {
		if v := raw[k]; v != nil {
			return *v
		}
		return ""
	}
	r.Messages, r.TelemetryMessages, r.TelemetryDataPoints = get("messages"), get("telemetryMessages"), get("telemetryDataPoints")
	return nil
}

// defaultMaxPayload is ThingsBoard's transport.mqtt.netty.max_payload_size.
const defaultMaxPayload = 65536

// pacing is the share of each server limit the client uses when the limit
// is what holds traffic back. The server measures on arrival, and network
// jitter can bring two messages paced exactly at the limit closer together;
// a message over the limit costs the whole connection (and, for a gateway
// on MQTT 3.1.1, arrives as a PUBACK that cannot be told from success).
const pacing = 0.98

// window is one capacity:seconds token bucket.
type window struct {
	capacity float64
	rate     float64 // tokens per second
	tokens   float64
	last     time.Time
}

// Limiter enforces a rate-limit string with one token bucket per window.
// Each bucket starts full and refills continuously, so traffic flows at the
// full limit: bursts up to each window's capacity, then its sustained rate.
// A nil *Limiter lets everything through.
type Limiter struct {
	mu      sync.Mutex
	windows []window
	now     func() time.Time
}

// ParseRateLimit parses "cap:seconds,cap:seconds". An empty string yields a
// nil Limiter (no limit).
func ParseRateLimit(s string) (*Limiter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	l := &Limiter{now: time.Now}
	for _, part := range strings.Split(s, ",") {
		c, sec, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("rate limit %q: want capacity:seconds", part)
		}
		capacity, err1 := strconv.ParseFloat(c, 64)
		seconds, err2 := strconv.ParseFloat(sec, 64)
		if err1 != nil || err2 != nil || capacity <= 0 || seconds <= 0 {
			return nil, fmt.Errorf("rate limit %q: capacity and seconds must be positive numbers", part)
		}
		l.windows = append(l.windows, window{capacity: capacity, rate: capacity / seconds, tokens: capacity})
	}
	return l, nil
}

// scale multiplies every window's refill rate by f (the capacity stays).
func (l *Limiter) scale(f float64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	for i := range l.windows {
		l.windows[i].rate *= f
	}
	l.mu.Unlock()
}

// consumed takes n tokens already spent before the limits were known.
func (l *Limiter) consumed(n int) {
	if l != nil && n > 0 {
		l.reserve(float64(n))
	}
}

// reserve takes n tokens from every window now and returns how long the
// caller must wait before using them.
func (l *Limiter) reserve(n float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for i := range l.windows {
		w := &l.windows[i]
		if !w.last.IsZero() {
			w.tokens += now.Sub(w.last).Seconds() * w.rate
			if w.tokens > w.capacity {
				w.tokens = w.capacity
			}
		}
		w.last = now
		w.tokens -= n
		if w.tokens < 0 {
			if d := time.Duration(-w.tokens / w.rate * float64(time.Second)); d > wait {
				wait = d
			}
		}
	}
	return wait
}

// delay is how long until n tokens are available in every window (a
// request larger than a window waits for it to be full).
func (l *Limiter) delay(n float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, w := range l.windows {
		tokens := w.tokens
		if !w.last.IsZero() {
			tokens = min(w.capacity, tokens+now.Sub(w.last).Seconds()*w.rate)
		}
		if need := min(n, w.capacity) - tokens; need > 0 {
			wait = max(wait, time.Duration(need/w.rate*float64(time.Second))+time.Millisecond)
		}
	}
	return wait
}

// Wait blocks until n tokens are available in every window or ctx ends.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	d := l.reserve(float64(n))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// buckets are the three limiters of one rate-limit set.
type buckets struct {
	spec       RateLimits
	messages   *Limiter
	telemetry  *Limiter
	dataPoints *Limiter
}

func newBuckets(r RateLimits) (*buckets, error) {
	b := &buckets{spec: r}
	var err error
	if b.messages, err = ParseRateLimit(r.Messages); err != nil {
		return nil, err
	}
	if b.telemetry, err = ParseRateLimit(r.TelemetryMessages); err != nil {
		return nil, err
	}
	if b.dataPoints, err = ParseRateLimit(r.TelemetryDataPoints); err != nil {
		return nil, err
	}
	for _, lim := range []*Limiter{b.messages, b.telemetry, b.dataPoints} {
		lim.scale(pacing)
	}
	return b, nil
}

// charge waits until msgs messages, tel telemetry messages and points
// data points fit in every window, then takes them all at that instant:
// the server takes them when the message arrives, and a bucket charged
// before the wait for another one would let the server's copy fill to
// capacity (and waste refill) in between. Every message is charged to the
// message limit too, which is stricter than the server for telemetry: the
// client may pace slower than allowed, never faster.
func (b *buckets) charge(ctx context.Context, msgs, tel, points int) error {
	if b == nil {
		return nil
	}
	need := []struct {
		l *Limiter
		n int
	}{{b.messages, msgs}, {b.telemetry, tel}, {b.dataPoints, points}}
	for {
		var wait time.Duration
		for _, c := range need {
			if c.l != nil && c.n > 0 {
				wait = max(wait, c.l.delay(float64(c.n)))
			}
		}
		if wait <= 0 {
			for _, c := range need {
				if c.l != nil && c.n > 0 {
					c.l.reserve(float64(c.n))
				}
			}
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// burst is the most messages and data points one publish may charge at
// once: the smallest capacity of the windows (0 = unlimited).
func (b *buckets) burst() (msgs, points int) {
	if b == nil {
		return 0, 0
	}
	return min0(b.messages.minCapacity(), b.telemetry.minCapacity()), b.dataPoints.minCapacity()
}

func min0(a, b int) int {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// minCapacity is the smallest window capacity, 0 without a limit.
func (l *Limiter) minCapacity() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.windows {
		if c := int(w.capacity); n == 0 || c < n {
			n = c
		}
	}
	return n
}

// limits is the set of limiters in force for one session.
type limits struct {
	maxPayload int
	// telemetryTopic and attributesTopic are the device's own topics
	// (custom or default).
	telemetryTopic  string
	attributesTopic string
	// own paces the device's (or the gateway's own) device-API messages.
	own *buckets
	// gw, in a gateway session, is the one bucket ThingsBoard keeps for
	// all the gateway's sub-devices together (gatewayRateLimits): every
	// sub-device message, connect (and the session it opens) and session
	// close counts against it.
	gw *buckets
	// gateway reports that the answer carried gatewayRateLimits (a
	// gateway session, even with every limit unset).
	gateway bool

	devMu    sync.Mutex
	sessDevs map[string]bool // sub-devices connected in this session
}

// newLimits builds the limits of a getSessionLimits answer. Buckets whose
// limits did not change since prev carry on (the server keeps its buckets
// across connections).
func newLimits(sl *SessionLimits, prev *limits) (*limits, error) {
	l := &limits{maxPayload: defaultMaxPayload, telemetryTopic: topicTelemetry, attributesTopic: topicAttributes, sessDevs: map[string]bool{}}
	if sl == nil {
		return l, nil
	}
	if sl.MaxPayloadSize > 0 {
		l.maxPayload = sl.MaxPayloadSize
	}
	var err error
	if prev != nil && prev.own != nil && prev.own.spec == sl.RateLimits {
		l.own = prev.own
	} else if l.own, err = newBuckets(sl.RateLimits); err != nil {
		return nil, err
	}
	if g := sl.GatewayRateLimits; g != nil {
		l.gateway = true
		if prev != nil && prev.gw != nil && prev.gw.spec == *g {
			l.gw = prev.gw
		} else if l.gw, err = newBuckets(*g); err != nil {
			return nil, fmt.Errorf("gateway limits: %w", err)
		}
	}
	return l, nil
}

// gatewayBurst bounds one gateway publish: the most device entries and
// data points it may carry (0 = unlimited), so that no message charges
// more than a window of the shared bucket holds.
func (l *limits) gatewayBurst() (entries, points int) {
	if l == nil || l.gw == nil {
		return 0, 0
	}
	m, p := l.gw.burst()
	// An entry for a device not yet connected also charges its implicit
	// connect and session open.
	if m > 0 {
		m = max(1, m/3)
	}
	return m, p
}

// closeSession charges the session close of every sub-device connected in
// the session that ended (the server counts each against the shared
// bucket) and forgets them.
func (l *limits) closeSession() {
	if l == nil {
		return
	}
	l.devMu.Lock()
	n := len(l.sessDevs)
	clear(l.sessDevs)
	l.devMu.Unlock()
	if l.gw != nil && n > 0 {
		l.gw.messages.consumed(n)
	}
}

// connectCharge is what naming device costs beyond its own message: its
// connect and session open, the first time in this session. A disconnect
// forgets it.
func (l *limits) connectCharge(device, topic string) int {
	l.devMu.Lock()
	defer l.devMu.Unlock()
	if topic == topicGatewayDisconnect {
		delete(l.sessDevs, device)
		return 0
	}
	if l.sessDevs[device] {
		return 0
	}
	l.sessDevs[device] = true
	if topic == topicGatewayConnect {
		return 1 // the connect is the message itself; plus the session open
	}
	return 2
}

// waitGateway charges a gateway publish (doc is its decoded payload) to
// the shared sub-device bucket, all at once: one message per device named
// (plus its connect and session open the first time in the session), and
// for data one telemetry message and its data points per device.
func (l *limits) waitGateway(ctx context.Context, topic string, doc any) error {
	obj, ok := doc.(map[string]any)
	if !ok {
		return l.gw.charge(ctx, 1, 0, 0)
	}
	devices := obj // device → its records
	switch topic {
	case topicGatewayTelemetry, topicGatewayAttributes, topicGatewayClaim:
	default:
		name, _ := obj["device"].(string)
		if name == "" {
			return l.gw.charge(ctx, 1, 0, 0)
		}
		devices = map[string]any{name: nil}
	}
	msgs, tel, points := 0, 0, 0
	for name, records := range devices {
		p := 0
		switch topic {
		case topicGatewayTelemetry:
			p = countIn(records, 1)
		case topicGatewayAttributes:
			if m, ok := records.(map[string]any); ok {
				p = len(m)
			}
		}
		msgs += 1 + l.connectCharge(name, topic)
		if p > 0 {
			tel++
			points += p
		}
	}
	return l.gw.charge(ctx, msgs, tel, points)
}

// checkSize rejects payloads over the server's maximum packet size.
func (l *limits) checkSize(topic string, payload []byte) error {
	// MQTT remaining length of a QoS 1 PUBLISH: topic length prefix, topic,
	// packet id, payload.
	if n := 2 + len(topic) + 2 + len(payload); n > l.maxPayload {
		return fmt.Errorf("%w: %d bytes, the server accepts %d", ErrPayloadTooLarge, n, l.maxPayload)
	}
	return nil
}

// wait applies the limits to one publish on topic: gateway topics to the
// shared sub-device bucket, everything else to the session's own limits.
// The payload is decoded once, and only when a limit looks inside it.
func (l *limits) wait(ctx context.Context, topic string, payload []byte) error {
	if strings.HasPrefix(topic, "v1/gateway/") {
		if l.gw == nil {
			return nil
		}
		var doc any
		_ = json.Unmarshal(payload, &doc)
		return l.waitGateway(ctx, topic, doc)
	}
	if l.own == nil {
		return nil
	}
	points := 0
	switch topic {
	case l.telemetryTopic:
		if l.own.dataPoints != nil || l.own.telemetry != nil {
			var doc any
			_ = json.Unmarshal(payload, &doc)
			points = max(1, countDataPoints(doc))
		}
	case l.attributesTopic:
		if l.own.dataPoints != nil || l.own.telemetry != nil {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(payload, &m)
			points = max(1, len(m))
		}
	}
	tel := 0
	if points > 0 {
		tel = 1
	}
	return l.own.charge(ctx, 1, tel, points)
}

// countDataPoints counts the key/value pairs of a decoded telemetry payload
// the way ThingsBoard does for its data-point limit (nil, a payload that is
// not JSON, counts one).
func countDataPoints(doc any) int { return countIn(doc, 0) }

func countIn(v any, depth int) int {
	switch t := v.(type) {
	case []any:
		n := 0
		for _, e := range t {
			n += countIn(e, depth)
		}
		return n
	case map[string]any:
		if vals, ok := t["values"].(map[string]any); ok {
			if _, hasTs := t["ts"]; hasTs {
				return len(vals)
			}
		}
		if depth == 0 && isGatewayShape(t) {
			n := 0
			for _, e := range t {
				n += countIn(e, 1)
			}
			return n
		}
		return len(t)
	}
	return 1
}

// isGatewayShape: every value of the object is an array (device → records).
func isGatewayShape(m map[string]any) bool {
	if len(m) == 0 {
		return false
	}
	for _, v := range m {
		if _, ok := v.([]any); !ok {
			return false
		}
	}
	return true
}
