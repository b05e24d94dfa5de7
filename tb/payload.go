package tb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Device API topics (ThingsBoard's v1 family).
const (
	topicTelemetry        = "v1/devices/me/telemetry"
	topicAttributes       = "v1/devices/me/attributes"
	topicAttrRequest      = "v1/devices/me/attributes/request/"
	topicAttrResponse     = "v1/devices/me/attributes/response/"
	topicAttrResponseSub  = "v1/devices/me/attributes/response/+"
	topicRPCRequest       = "v1/devices/me/rpc/request/"
	topicRPCRequestSub    = "v1/devices/me/rpc/request/+"
	topicRPCResponse      = "v1/devices/me/rpc/response/"
	topicRPCResponseSub   = "v1/devices/me/rpc/response/+"
	topicClaim            = "v1/devices/me/claim"
	topicGatewayTelemetry = "v1/gateway/telemetry"
)

// Telemetry is one record with its own timestamp. A zero Ts lets the server
// stamp the record on arrival.
type Telemetry struct {
	Ts     time.Time
	Values map[string]any
}

// MarshalJSON writes {"ts": ms, "values": {...}}, or the flat values when Ts
// is zero. Integral floats keep a decimal point (21.0).
func (t Telemetry) MarshalJSON() ([]byte, error) { return t.appendJSON(nil, 0) }

// encodeTelemetry turns the accepted telemetry shapes into a payload
// ThingsBoard accepts: a flat object, a {ts, values} object, or a non-empty
// array of those, checked as ThingsBoard's JsonConverter would.
// json.RawMessage and []byte are checked, not re-encoded. With stamp set,
// records without a timestamp get one (see clock).
func encodeTelemetry(v any, stamp func() int64) ([]byte, error) {
	if b, ok, err := appendTelemetry(nil, v, stamp); ok {
		return b, err
	}
	b, err := encodeAny(v)
	if err != nil {
		return nil, err
	}
	return checkAndStamp(b, stamp)
}

// encodeAttributes accepts only a JSON object.
func encodeAttributes(v any) ([]byte, error) {
	b, err := encodeAny(v)
	if err != nil {
		return nil, err
	}
	if firstByte(b) != '{' {
		return nil, fmt.Errorf("%w: attributes must be a JSON object", ErrInvalidPayload)
	}
	return b, nil
}

// checkStrings refuses a payload holding a string value longer than max
// (ThingsBoard's transport.json.max_string_value_length, counted in UTF-16
// units as Java does); max <= 0 checks nothing.
func checkStrings(b []byte, max int) error {
	if max <= 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	return walkStrings(v, max, 0)
}

func walkStrings(v any, max, depth int) error {
	if depth > 64 {
		return nil // deeper values are stored as JSON text, not checked one by one
	}
	switch t := v.(type) {
	case string:
		if n := utf16Len(t); n > max {
			return fmt.Errorf("%w: a string value of %d characters, the server accepts %d", ErrInvalidPayload, n, max)
		}
	case map[string]any:
		for _, e := range t {
			if err := walkStrings(e, max, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range t {
			if err := walkStrings(e, max, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

func encodeAny(v any) ([]byte, error) {
	var b []byte
	switch t := v.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil value", ErrInvalidPayload)
	case json.RawMessage:
		b = t
	case []byte:
		b = t
	case string:
		b = []byte(t)
	default:
		return marshalJSON(v)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrInvalidPayload)
	}
	return b, nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// checkTelemetryShape checks a telemetry payload without stamping it.
func checkTelemetryShape(b []byte) error {
	_, err := checkAndStamp(b, nil)
	return err
}
