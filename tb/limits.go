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

// limits is the set of limiters in force for one session.
type limits struct {
	maxPayload int
	// telemetryTopic is the device's telemetry topic (custom or default).
	telemetryTopic string
	messages       *Limiter
	telemetry      *Limiter
	dataPoints     *Limiter

	// gateway holds the limits for each device behind a gateway; devs their
	// limiters, made on first use.
	gateway *RateLimits
	devMu   sync.Mutex
	devs    map[string]*limits
}

func newLimits(sl *SessionLimits) (*limits, error) {
	l := &limits{maxPayload: defaultMaxPayload, telemetryTopic: topicTelemetry}
	if sl == nil {
		return l, nil
	}
	if sl.MaxPayloadSize > 0 {
		l.maxPayload = sl.MaxPayloadSize
	}
	var err error
	if l.messages, err = ParseRateLimit(sl.RateLimits.Messages); err != nil {
		return nil, err
	}
	if l.telemetry, err = ParseRateLimit(sl.RateLimits.TelemetryMessages); err != nil {
		return nil, err
	}
	if l.dataPoints, err = ParseRateLimit(sl.RateLimits.TelemetryDataPoints); err != nil {
		return nil, err
	}
	for _, lim := range []*Limiter{l.messages, l.telemetry, l.dataPoints} {
		lim.scale(pacing)
	}
	if g := sl.GatewayRateLimits; g != nil && (g.Messages != "" || g.TelemetryMessages != "" || g.TelemetryDataPoints != "") {
		if _, err := newLimits(&SessionLimits{RateLimits: *g}); err != nil {
			return nil, fmt.Errorf("gateway limits: %w", err)
		}
		l.gateway = g
		l.devs = map[string]*limits{}
	}
	return l, nil
}

// device returns the limiters of one device behind the gateway.
func (l *limits) device(name string) *limits {
	l.devMu.Lock()
	defer l.devMu.Unlock()
	d := l.devs[name]
	if d == nil {
		d, _ = newLimits(&SessionLimits{RateLimits: *l.gateway})
		l.devs[name] = d
	}
	return d
}

// waitGateway applies the per-device limits to a gateway publish (doc is
// its decoded payload): each device named in it counts one message (and
// its records' data points).
func (l *limits) waitGateway(ctx context.Context, topic string, doc any) error {
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	devices := obj // device → its records
	switch topic {
	case topicGatewayTelemetry, topicGatewayAttributes, topicGatewayClaim:
	default:
		name, _ := obj["device"].(string)
		if name == "" {
			return nil
		}
		devices = map[string]any{name: nil}
	}
	for name, records := range devices {
		d := l.device(name)
		if err := d.messages.Wait(ctx, 1); err != nil {
			return err
		}
		if topic != topicGatewayTelemetry {
			continue
		}
		if err := d.telemetry.Wait(ctx, 1); err != nil {
			return err
		}
		if d.dataPoints != nil {
			if err := d.dataPoints.Wait(ctx, countIn(records, 1)); err != nil {
				return err
			}
		}
	}
	return nil
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

// wait applies the limits to one publish on topic. The payload is decoded
// once, and only when a limit looks inside it.
func (l *limits) wait(ctx context.Context, topic string, payload []byte) error {
	if err := l.messages.Wait(ctx, 1); err != nil {
		return err
	}
	telemetry := topic == topicGatewayTelemetry || topic == l.telemetryTopic
	perDevice := l.gateway != nil && strings.HasPrefix(topic, "v1/gateway/")
	var doc any // stays nil when the payload is not JSON
	if perDevice || (telemetry && l.dataPoints != nil) {
		_ = json.Unmarshal(payload, &doc)
	}
	if perDevice {
		if err := l.waitGateway(ctx, topic, doc); err != nil {
			return err
		}
	}
	if !telemetry {
		return nil
	}
	if err := l.telemetry.Wait(ctx, 1); err != nil {
		return err
	}
	if l.dataPoints != nil {
		return l.dataPoints.Wait(ctx, countDataPoints(doc))
	}
	return nil
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
