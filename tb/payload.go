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
// is zero.
func (t Telemetry) MarshalJSON() ([]byte, error) {
	if t.Ts.IsZero() {
		return json.Marshal(t.Values)
	}
	return json.Marshal(struct {
		Ts     int64          `json:"ts"`
		Values map[string]any `json:"values"`
	}{t.Ts.UnixMilli(), t.Values})
}

// encodeTelemetry turns the accepted telemetry shapes into a payload
// ThingsBoard accepts: a flat object, a {ts, values} object, or a non-empty
// array of those. json.RawMessage and []byte are checked, not re-encoded.
func encodeTelemetry(v any) ([]byte, error) {
	b, err := encodeAny(v)
	if err != nil {
		return nil, err
	}
	if err := checkTelemetryShape(b); err != nil {
		return nil, err
	}
	return b, nil
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
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
		}
		return b, nil
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

func checkTelemetryShape(b []byte) error {
	switch firstByte(b) {
	case '{':
		return nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidPayload, err)
		}
		if len(elems) == 0 {
			// ThingsBoard parses [] but never acknowledges it.
			return fmt.Errorf("%w: empty telemetry array", ErrInvalidPayload)
		}
		for i, e := range elems {
			if firstByte(e) != '{' {
				return fmt.Errorf("%w: telemetry array element %d is not an object", ErrInvalidPayload, i)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: telemetry must be a JSON object or an array of objects", ErrInvalidPayload)
}
