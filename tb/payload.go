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
