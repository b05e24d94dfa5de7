package engine

import (
	"bytes"
	"encoding/json"
	"maps"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// Msg is a message travelling along a wire. It is shaped like a Node-RED
// message: "_msgid", "topic" and "payload" plus any fields nodes add, such as
// "device" (gateway routing), "rpc" (the request id to reply to) or "ts"
// (timestamp in Unix milliseconds).
//
// A node owns the message it receives in Handle: it may change it and send it
// on. When a node sends one message to several wires, every receiver except
// the first gets its own deep copy ([Msg.Clone]), so receivers never share
// mutable state. A node must not touch a message after sending it.
type Msg struct {
	// ID is the message id ("_msgid"). The engine sets it when a node sends a
	// message without one.
	ID string
	// Topic is the message topic ("topic").
	Topic string
	// Payload is the message payload ("payload"): JSON-like values
	// (nil, bool, float64, int, int64, string, []any, map[string]any) or any
	// value a node puts there.
	Payload any
	// Fields holds every other top-level field ("device", "rpc", "ts",
	// "error", "status", ...). It is nil when there are none.
	Fields map[string]any
}

// Reserved top-level message keys held in dedicated struct fields.
const (
	KeyID      = "_msgid"
	KeyTopic   = "topic"
	KeyPayload = "payload"
)

var msgSeq atomic.Uint64

func init() {
	msgSeq.Store(uint64(time.Now().UnixNano()))
}

// NewMsgID returns a fresh message id, unique within the process.
func NewMsgID() string {
	return strconv.FormatUint(msgSeq.Add(1), 36)
}

// NewMsg returns a message with a fresh id and the given payload.
func NewMsg(payload any) *Msg {
	return &Msg{ID: NewMsgID(), Payload: payload}
}

// Get returns the top-level field key, including "payload", "topic" and
// "_msgid".
func (m *Msg) Get(key string) (any, bool) {
	switch key {
	case KeyPayload:
		return m.Payload, true
	case KeyTopic:
		return m.Topic, m.Topic != ""
	case KeyID:
		return m.ID, m.ID != ""
	}
	v, ok := m.Fields[key]
	return v, ok
}

// Set sets the top-level field key. Setting "topic" or "_msgid" to a
// non-string value stores its JSON text.
func (m *Msg) Set(key string, v any) {
	switch key {
	case KeyPayload:
		m.Payload = v
	case KeyTopic:
		m.Topic = asString(v)
	case KeyID:
		m.ID = asString(v)
	default:
		if m.Fields == nil {
			m.Fields = make(map[string]any, 4)
		}
		m.Fields[key] = v
	}
}

// Delete removes the top-level field key.
func (m *Msg) Delete(key string) {
	switch key {
	case KeyPayload:
		m.Payload = nil
	case KeyTopic:
		m.Topic = ""
	case KeyID:
		m.ID = ""
	default:
		delete(m.Fields, key)
	}
}

func asString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// Map returns the message as one map, the shape expressions and Node-RED
// users see. The map shares payload and field values with the message.
func (m *Msg) Map() map[string]any {
	out := make(map[string]any, len(m.Fields)+3)
	maps.Copy(out, m.Fields)
	out[KeyID] = m.ID
	out[KeyTopic] = m.Topic
	out[KeyPayload] = m.Payload
	return out
}

// MsgFromMap builds a message from a map in the shape [Msg.Map] returns.
// The message takes ownership of the map's values.
func MsgFromMap(in map[string]any) *Msg {
	m := &Msg{}
	for k, v := range in {
		m.Set(k, v)
	}
	return m
}

// Clone returns a deep copy of the message: maps and slices of the payload
// and fields are copied, other values are shared (they are treated as
// immutable).
func (m *Msg) Clone() *Msg {
	c := &Msg{ID: m.ID, Topic: m.Topic, Payload: CloneValue(m.Payload)}
	if m.Fields != nil {
		c.Fields = make(map[string]any, len(m.Fields))
		for k, v := range m.Fields {
			c.Fields[k] = CloneValue(v)
		}
	}
	return c
}

// CloneValue deep-copies JSON-like values (maps, slices, byte slices).
// Other values are returned as they are.
func CloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, x := range t {
			c[k] = CloneValue(x)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, x := range t {
			c[i] = CloneValue(x)
		}
		return c
	case []byte:
		return bytes.Clone(t)
	case []string:
		return append([]string(nil), t...)
	case []float64:
		return append([]float64(nil), t...)
	case json.RawMessage:
		return bytes.Clone(t)
	}
	return v
}

// MarshalJSON writes the message as one flat JSON object with sorted keys.
func (m *Msg) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(`{"_msgid":`)
	writeJSON(&b, m.ID)
	if m.Topic != "" {
		b.WriteString(`,"topic":`)
		writeJSON(&b, m.Topic)
	}
	b.WriteString(`,"payload":`)
	if err := writeJSON(&b, m.Payload); err != nil {
		return nil, err
	}
	for _, k := range keys {
		b.WriteByte(',')
		writeJSON(&b, k)
		b.WriteByte(':')
		if err := writeJSON(&b, m.Fields[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

// UnmarshalJSON reads a flat JSON object. Numbers become float64.
func (m *Msg) UnmarshalJSON(data []byte) error {
	var in map[string]any
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*m = Msg{}
	for k, v := range in {
		m.Set(k, v)
	}
	return nil
}
