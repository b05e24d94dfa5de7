package opcua

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
)

// toJSON turns a value read from the server into a JSON-friendly Go value:
// integers become int64 (a UInt64 above the int64 range becomes its decimal
// text), Float and Double float64 (NaN and ±Inf their names as text),
// DateTime RFC 3339 text in UTC, ByteString base64 text, Guid, NodeId and
// QualifiedName their text form, LocalizedText its text, StatusCode its
// number, arrays []any, and structures what they encode to as JSON.
func toJSON(v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case bool:
		return t
	case int8:
		return int64(t)
	case uint8:
		return int64(t)
	case int16:
		return int64(t)
	case uint16:
		return int64(t)
	case int32:
		return int64(t)
	case uint32:
		return int64(t)
	case int64:
		return t
	case uint64:
		if t > math.MaxInt64 {
			return strconv.FormatUint(t, 10)
		}
		return int64(t)
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(t), 'g', -1, 32), 64)
		return finite(f)
	case float64:
		return finite(t)
	case string:
		return t
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(t)
	case ua.XMLElement:
		return string(t)
	case *ua.GUID:
		return t.String()
	case *ua.NodeID:
		return t.String()
	case *ua.ExpandedNodeID:
		return t.String()
	case ua.StatusCode:
		return int64(t)
	case *ua.QualifiedName:
		return t.Name
	case *ua.LocalizedText:
		return t.Text
	case *ua.Variant:
		return toJSON(t.Value())
	case *ua.DataValue:
		if t.Value == nil {
			return nil
		}
		return toJSON(t.Value.Value())
	case *ua.ExtensionObject:
		return structJSON(t.Value)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toJSON(rv.Index(i).Interface())
		}
		return out
	}
	return structJSON(v)
}

func finite(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// structJSON returns what a structure encodes to as JSON, or its text
// when it does not encode.
func structJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return string(b)
	}
	return out
}

// fromJSON converts a value from a message to the built-in type typ, for
// a write. Arrays convert element by element.
func fromJSON(v any, typ ua.TypeID) (any, error) {
	if rv := reflect.ValueOf(v); v != nil && rv.Kind() == reflect.Slice {
		if _, isBytes := v.([]byte); !isBytes {
			return sliceFromJSON(rv, typ)
		}
	}
	switch typ {
	case ua.TypeIDBoolean:
		return toBool(v)
	case ua.TypeIDSByte:
		n, err := toInt(v, math.MinInt8, math.MaxInt8)
		return int8(n), err
	case ua.TypeIDByte:
		n, err := toInt(v, 0, math.MaxUint8)
		return uint8(n), err
	case ua.TypeIDInt16:
		n, err := toInt(v, math.MinInt16, math.MaxInt16)
		return int16(n), err
	case ua.TypeIDUint16:
		n, err := toInt(v, 0, math.MaxUint16)
		return uint16(n), err
	case ua.TypeIDInt32:
		n, err := toInt(v, math.MinInt32, math.MaxInt32)
		return int32(n), err
	case ua.TypeIDUint32:
		n, err := toInt(v, 0, math.MaxUint32)
		return uint32(n), err
	case ua.TypeIDInt64:
		return toInt(v, math.MinInt64, math.MaxInt64)
	case ua.TypeIDUint64:
		return toUint64(v)
	case ua.TypeIDFloat:
		f, err := toFloat(v)
		if err == nil && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("%v is out of range for Float", v)
		}
		return float32(f), err
	case ua.TypeIDDouble:
		return toFloat(v)
	case ua.TypeIDString:
		switch t := v.(type) {
		case string:
			return t, nil
		case nil:
			return nil, fmt.Errorf("null is not a String")
		}
		b, err := json.Marshal(v)
		return string(b), err
	case ua.TypeIDDateTime:
		switch t := v.(type) {
		case string:
			ts, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 time", t)
			}
			return ts, nil
		case float64, int64, int:
			ms, err := toInt(t, math.MinInt64, math.MaxInt64)
			return time.UnixMilli(ms).UTC(), err
		}
		return nil, fmt.Errorf("%v is not a time (RFC 3339 text or Unix milliseconds)", v)
	case ua.TypeIDByteString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not base64 text", v)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not base64 text", s)
		}
		return b, nil
	case ua.TypeIDGUID:
		s, ok := v.(string)
		if !ok || len(s) != 36 {
			return nil, fmt.Errorf("%v is not a GUID", v)
		}
		return ua.NewGUID(s), nil
	case ua.TypeIDLocalizedText:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not text", v)
		}
		return &ua.LocalizedText{Text: s, EncodingMask: ua.LocalizedTextText}, nil
	case ua.TypeIDNodeID:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not a node id", v)
		}
		return ua.ParseNodeID(s)
	}
	return nil, fmt.Errorf("writing %s values is not supported", typ)
}

func sliceFromJSON(rv reflect.Value, typ ua.TypeID) (any, error) {
	elem, ok := elemTypes[typ]
	if !ok {
		return nil, fmt.Errorf("writing %s arrays is not supported", typ)
	}
	out := reflect.MakeSlice(reflect.SliceOf(elem), rv.Len(), rv.Len())
	for i := range rv.Len() {
		v, err := fromJSON(rv.Index(i).Interface(), typ)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out.Index(i).Set(reflect.ValueOf(v))
	}
	return out.Interface(), nil
}

var elemTypes = map[ua.TypeID]reflect.Type{
	ua.TypeIDBoolean: reflect.TypeFor[bool](), ua.TypeIDSByte: reflect.TypeFor[int8](), ua.TypeIDByte: reflect.TypeFor[uint8](),
	ua.TypeIDInt16: reflect.TypeFor[int16](), ua.TypeIDUint16: reflect.TypeFor[uint16](), ua.TypeIDInt32: reflect.TypeFor[int32](),
	ua.TypeIDUint32: reflect.TypeFor[uint32](), ua.TypeIDInt64: reflect.TypeFor[int64](), ua.TypeIDUint64: reflect.TypeFor[uint64](),
	ua.TypeIDFloat: reflect.TypeFor[float32](), ua.TypeIDDouble: reflect.TypeFor[float64](), ua.TypeIDString: reflect.TypeFor[string](),
	ua.TypeIDDateTime: reflect.TypeFor[time.Time](), ua.TypeIDByteString: reflect.TypeFor[[]byte](),
	ua.TypeIDGUID: reflect.TypeFor[*ua.GUID](), ua.TypeIDLocalizedText: reflect.TypeFor[*ua.LocalizedText](),
}

func toBool(v any) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case float64:
		if t == 0 || t == 1 {
			return t == 1, nil
		}
	case int64:
		if t == 0 || t == 1 {
			return t == 1, nil
		}
	case int:
		if t == 0 || t == 1 {
			return t == 1, nil
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true", "on", "1":
			return true, nil
		case "false", "off", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("%v is not a Boolean (true/false, on/off, 1/0)", v)
}

func toFloat(v any) (float64, error) {
	switch t := v.(type) {
	case float64:
		return t, nil
	case int64:
		return float64(t), nil
	case int:
		return float64(t), nil
	case bool:
		if t {
			return 1, nil
		}
		return 0, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", t)
		}
		return f, nil
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

func toInt(v any, lo, hi int64) (int64, error) {
	var n int64
	switch t := v.(type) {
	case int64:
		n = t
	case int:
		n = int64(t)
	case bool:
		if t {
			n = 1
		}
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
		if err != nil {
			f, ferr := toFloat(t)
			if ferr != nil {
				return 0, ferr
			}
			return toInt(f, lo, hi)
		}
		n = i
	case float64:
		if t != math.Trunc(t) || math.IsNaN(t) {
			return 0, fmt.Errorf("%v is not a whole number", t)
		}
		if t < float64(lo) || t >= float64(hi)+1 {
			return 0, fmt.Errorf("%v is out of range [%d, %d]", t, lo, hi)
		}
		n = int64(t)
	default:
		return 0, fmt.Errorf("%v is not a number", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func toUint64(v any) (uint64, error) {
	if s, ok := v.(string); ok {
		u, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an unsigned whole number", s)
		}
		return u, nil
	}
	if f, ok := v.(float64); ok && f >= 1<<63 {
		if f != math.Trunc(f) || f >= 1<<64 {
			return 0, fmt.Errorf("%v is out of range for UInt64", f)
		}
		return uint64(f), nil
	}
	n, err := toInt(v, 0, math.MaxInt64)
	return uint64(n), err
}
