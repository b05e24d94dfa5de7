package tb

import (
	"fmt"
	"math"
	"strconv"
	"sync"
)

// The common Go shapes of telemetry (a map of values, Telemetry, slices of
// them) are encoded in one pass straight into the bytes that are sent:
// their shape is checked on the values as they are accepted, records
// without a timestamp are stamped as they are written, and nothing is
// decoded again. Other values (raw JSON, structs) are encoded and then
// checked as ThingsBoard's JsonConverter would (checkAndStamp).

// appendTelemetry appends v as a telemetry payload. ok is false when v is
// not one of the shapes encoded directly; b is then returned unchanged.
func appendTelemetry(b []byte, v any, stamp func() int64) (out []byte, ok bool, err error) {
	start := len(b)
	switch t := v.(type) {
	case map[string]any:
		return appendRecordMap(b, t, stamp)
	case Telemetry:
		return appendRecord(b, t, stamp)
	case []Telemetry:
		if len(t) == 0 {
			return b, true, fmt.Errorf("%w: empty telemetry array", ErrInvalidPayload)
		}
		b = append(b, '[')
		for i, r := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok, err = appendRecord(b, r, stamp); !ok || err != nil {
				return elemResult(b[:start], ok, err, i)
			}
		}
		return append(b, ']'), true, nil
	case []map[string]any:
		if len(t) == 0 {
			return b, true, fmt.Errorf("%w: empty telemetry array", ErrInvalidPayload)
		}
		b = append(b, '[')
		for i, r := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok, err = appendRecordMap(b, r, stamp); !ok || err != nil {
				return elemResult(b[:start], ok, err, i)
			}
		}
		return append(b, ']'), true, nil
	case []any:
		if len(t) == 0 {
			return b, true, fmt.Errorf("%w: empty telemetry array", ErrInvalidPayload)
		}
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			switch r := e.(type) {
			case map[string]any:
				b, ok, err = appendRecordMap(b, r, stamp)
			case Telemetry:
				b, ok, err = appendRecord(b, r, stamp)
			default:
				ok = false
			}
			if !ok || err != nil {
				return elemResult(b[:start], ok, err, i)
			}
		}
		return append(b, ']'), true, nil
	}
	return b, false, nil
}

func elemResult(b []byte, ok bool, err error, i int) ([]byte, bool, error) {
	if err != nil {
		return b, true, fmt.Errorf("telemetry array element %d: %w", i, err)
	}
	return b, ok, nil
}

// appendRecord writes one Telemetry: {"ts", "values"}, or its values as a
// flat record when Ts is zero.
func appendRecord(b []byte, t Telemetry, stamp func() int64) ([]byte, bool, error) {
	if t.Ts.IsZero() {
		return appendRecordMap(b, t.Values, stamp)
	}
	start := len(b)
	out, err := t.appendJSON(b, 1)
	if err != nil {
		return b[:start], true, err
	}
	return out, true, nil
}

// appendRecordMap writes one record given as a map: a {ts, values} record
// as it is (ts checked), a flat object of values stamped when stamp is set.
func appendRecordMap(b []byte, m map[string]any, stamp func() int64) ([]byte, bool, error) {
	start := len(b)
	ts, hasTs := m["ts"]
	vals, hasVals := m["values"]
	if hasTs && hasVals {
		if _, isMap := vals.(map[string]any); !isMap {
			return b, false, nil
		}
		if known, good := tsValid(ts); !known {
			return b, false, nil
		} else if !good {
			return b, true, fmt.Errorf("%w: \"ts\" must be an integer number of milliseconds", ErrInvalidPayload)
		}
		out, err := appendJSON(b, m, 1)
		if err != nil {
			return b[:start], true, err
		}
		return out, true, nil
	}
	if stamp == nil {
		if m == nil {
			return append(b, "{}"...), true, nil
		}
		out, err := appendJSON(b, m, 1)
		if err != nil {
			return b[:start], true, err
		}
		return out, true, nil
	}
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, stamp(), 10)
	b = append(b, `,"values":`...)
	if m == nil {
		return append(b, "{}}"...), true, nil
	}
	out, err := appendJSON(b, m, 2)
	if err != nil {
		return b[:start], true, err
	}
	return append(out, '}'), true, nil
}

// tsValid says whether a record's ts, as written by appendJSON, is an
// integer number of milliseconds (or a decimal string) the way
// checkAndStamp judges the encoded form; known is false for types it does
// not judge here.
func tsValid(ts any) (known, good bool) {
	switch t := ts.(type) {
	case int, int64, int32, int16, int8, uint32, uint16, uint8:
		return true, true
	case uint:
		return true, uint64(t) <= math.MaxInt64
	case uint64:
		return true, t <= math.MaxInt64
	case float64, float32:
		return true, false // written with a decimal point (21.0): not an integer
	case string:
		return true, isDecimal(t)
	}
	return false, false
}

// Payload buffers are reused once the outbox has copied them.
var payloadBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf bounds the buffers kept for reuse.
const maxPooledBuf = 1 << 20

// encodeTelemetryInto encodes v as encodeTelemetry does, into a buffer
// from the pool when it can; pooled says the result is that buffer (give
// it back with putPayloadBuf once nothing refers to it).
func encodeTelemetryInto(v any, stamp func() int64) (b []byte, bp *[]byte, err error) {
	bp = payloadBufs.Get().(*[]byte)
	out, ok, err := appendTelemetry((*bp)[:0], v, stamp)
	if ok {
		if err != nil {
			putPayloadBuf(bp, out)
			return nil, nil, err
		}
		return out, bp, nil
	}
	payloadBufs.Put(bp)
	b, err = encodeTelemetry(v, stamp)
	return b, nil, err
}

func putPayloadBuf(bp *[]byte, b []byte) {
	if bp == nil || cap(b) > maxPooledBuf {
		return
	}
	*bp = b[:0]
	payloadBufs.Put(bp)
}
