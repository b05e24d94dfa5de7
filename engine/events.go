package engine

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event topics. Status topics are "status/<node id>"; subscribe to
// "status/#" (or "status/+") for all of them.
const (
	TopicDebug  = "debug"
	TopicError  = "error"
	TopicDeploy = "deploy"
	// TopicStatusPrefix prefixes status topics.
	TopicStatusPrefix = "status/"
)

// Event is something the engine reports to subscribers: a status change, a
// debug message, an error or a deploy.
type Event struct {
	Topic string    `json:"topic"`
	Time  time.Time `json:"time"`
	// Node is the node the event is about; nil for deploy events.
	Node *NodeRef `json:"node,omitempty"`
	// Data is a Status ("status/<id>"), *DebugData ("debug"), *ErrorData
	// ("error") or *DeployData ("deploy").
	Data any `json:"data,omitempty"`
}

// DebugData is the body of a "debug" event.
type DebugData struct {
	// Property is the message property shown ("payload", or "msg" for the
	// whole message).
	Property string `json:"property"`
	// Value is a deep copy of the property's value (a *Msg for "msg").
	Value any `json:"value"`
}

// ErrorData is the body of an "error" event.
type ErrorData struct {
	Message string `json:"message"`
	// Msg is a copy of the message being handled, if any.
	Msg *Msg `json:"msg,omitempty"`
	// Caught tells whether a catch node received the error.
	Caught bool `json:"caught"`
}

// DeployData is the body of a "deploy" event.
type DeployData struct {
	Rev  string     `json:"rev"`
	Mode DeployMode `json:"mode"`
	// Started, Stopped and Kept list node ids (config nodes included).
	Started []string `json:"started"`
	Stopped []string `json:"stopped"`
	Kept    []string `json:"kept"`
}

// Subscription delivers events matching a topic pattern. Events are
// buffered; when the buffer is full further events are dropped (and
// counted) rather than slowing the flow down.
type Subscription struct {
	// C receives the events. It is closed by Close.
	C       <-chan Event
	c       chan Event
	pattern []string
	bus     *bus
	dropped atomic.Uint64
	closed  bool
}

// Dropped returns how many events were dropped because C was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C. It is idempotent.
func (s *Subscription) Close() {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	subs := make([]*Subscription, 0, len(b.subs))
	for _, x := range b.subs {
		if x != s {
			subs = append(subs, x)
		}
	}
	b.subs = subs
	b.any.Store(int32(len(subs)))
	close(s.c)
}

type bus struct {
	mu      sync.RWMutex
	subs    []*Subscription
	any     atomic.Int32
	dropped atomic.Uint64
}

func (b *bus) subscribe(pattern string, buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 256
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, pattern: strings.Split(pattern, "/"), bus: b}
	b.mu.Lock()
	b.subs = append(b.subs, s)
	b.any.Store(int32(len(b.subs)))
	b.mu.Unlock()
	return s
}

// wants reports whether any subscriber matches topic.
func (b *bus) wants(topic string) bool {
	if b.any.Load() == 0 {
		return false
	}
	levels := strings.Split(topic, "/")
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if MatchTopic(s.pattern, levels) {
			return true
		}
	}
	return false
}

func (b *bus) publish(ev Event) {
	if b.any.Load() == 0 {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	levels := strings.Split(ev.Topic, "/")
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs {
		if !MatchTopic(s.pattern, levels) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
}

// MatchTopic reports whether an MQTT-style pattern matches a topic, both
// split into their "/" levels: "+" matches one level, a final "#" matches
// the rest. Subscribe's patterns match event topics this way.
func MatchTopic(pattern, levels []string) bool {
	for i, p := range pattern {
		if p == "#" {
			return true
		}
		if i >= len(levels) || (p != "+" && p != levels[i]) {
			return false
		}
	}
	return len(levels) == len(pattern)
}
