package modbus

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Encode turns a value into the registers to write for r (holding
// registers). Numbers (any Go number type, json.Number or numeric text)
// are unscaled ((v - offset) / scale) and rounded for integer types; a
// label name stands for its value; bools are 1 and 0. A value out of the
// type's range is an error, never silently wrapped. Bit types need the
// register's current value: use EncodeBit.
func Encode(r *Register, v any) ([]uint16, error) {
	if r.Function.IsBit() || r.Type == Bit {
		return nil, fmt.Errorf("encoding %q: a %s %s is written with EncodeBit", r.Key, r.Function, r.Type)
	}
	var u uint64
	switch r.Type {
	case Bits:
		list, ok := v.([]any)
		if !ok || len(list) > r.Length {
			return nil, fmt.Errorf("encoding %q: want a list of at most %d bools", r.Key, r.Length)
		}
		w := make([]uint16, r.Count())
		for i, x := range list {
			b, err := r.toBool(x)
			if err != nil {
				return nil, err
			}
			switch {
			case !b:
			case r.Compat == TBGateway:
				// The inverse of the Gateway's reading: only the first
				// register's 16 bits, in its order.
				if i < 16 {
					w[0] |= 1 << uint(gatewayBitIndex(r.Length, i))
				}
			default:
				w[i/16] |= 1 << uint(i%16)
			}
		}
		if r.Compat == TBGateway {
			return w, nil
		}
		return reorder(w, r.Order, r.Type), nil
	case Bytes:
		s, _ := v.(string)
		b, err := hex.DecodeString(s)
		if err != nil || len(b) > 2*r.Length {
			return nil, fmt.Errorf("encoding %q: want hex text of at most %d bytes", r.Key, 2*r.Length)
		}
		w := make([]uint16, r.Length)
		for i := range b {
			if i%2 == 0 {
				w[i/2] |= uint16(b[i]) << 8
			} else {
				w[i/2] |= uint16(b[i])
			}
		}
		if r.Compat == TBGateway {
			return w, nil
		}
		return reorder(w, r.Order, r.Type), nil
	case String:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("encoding %q: want a string, got %T", r.Key, v)
		}
		if len(s) > 2*r.Length {
			return nil, fmt.Errorf("encoding %q: %d bytes do not fit in %d registers", r.Key, len(s), r.Length)
		}
		b := make([]byte, 2*r.Length)
		copy(b, s)
		w := make([]uint16, r.Length)
		for i := range w {
			w[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		if r.Compat == TBGateway {
			return w, nil // strings ignore the byte order there
		}
		return reorder(w, r.Order, r.Type), nil
	case Bool:
		b, err := r.toBool(v)
		if err != nil {
			return nil, err
		}
		if b {
			u = 1
		}
	default:
		if x, ok := r.exactInt(v); ok {
			// 64-bit integers do not survive a trip through float64.
			u = x
			break
		}
		f, err := r.toNumber(v)
		if err != nil {
			return nil, err
		}
		if r.scaled() {
			f = r.unapply(f)
		}
		switch r.Type {
		case Float16:
			h, ok := float32ToHalf(float32(f))
			if !ok {
				return nil, fmt.Errorf("encoding %q: %v is out of range for float16", r.Key, f)
			}
			u = uint64(h)
		case Float32:
			if math.IsInf(float64(float32(f)), 0) {
				return nil, fmt.Errorf("encoding %q: %v is out of range for float32", r.Key, f)
			}
			u = uint64(math.Float32bits(float32(f)))
		case Float64:
			u = math.Float64bits(f)
		default:
			f = math.Round(f)
			lo, hi := intRange(r.Type)
			if f < lo || f > hi {
				return nil, fmt.Errorf("encoding %q: %v is out of range for %s", r.Key, f, r.Type)
			}
			if r.Type == Uint64 {
				u = uint64(f)
			} else {
				u = uint64(int64(f))
			}
		}
	}
	switch {
	case (r.Type == Int8 || r.Type == Uint8) && r.Compat == TBGateway:
		return []uint16{uint16(u&0xff) << 8}, nil
	case r.Type == Int8 || r.Type == Uint8:
		u &= 0xff
	}
	n := r.Count()
	w := make([]uint16, n)
	for i := n - 1; i >= 0; i-- {
		w[i] = uint16(u)
		u >>= 16
	}
	return reorder(w, r.Order, r.Type), nil
}

// EncodeBit returns the new register value with r's bit set from v, given
// the register's current value (a read-modify-write).
func EncodeBit(r *Register, current uint16, v any) (uint16, error) {
	if r.Type != Bit {
		return 0, fmt.Errorf("encoding %q: not a bit type", r.Key)
	}
	b, err := r.toBool(v)
	if err != nil {
		return 0, err
	}
	cur := reorder([]uint16{current}, r.Order, r.Type)[0]
	if b {
		cur |= 1 << uint(r.Bit)
	} else {
		cur &^= 1 << uint(r.Bit)
	}
	return reorder([]uint16{cur}, r.Order, r.Type)[0], nil
}

// EncodeBool converts a value for a coil.
func EncodeBool(r *Register, v any) (bool, error) { return r.toBool(v) }

// exactInt converts integer values for unscaled integer types without
// going through float64; ok is false when v is not such a value (or is out
// of range: the float path reports that).
func (r *Register) exactInt(v any) (u uint64, ok bool) {
	if r.scaled() {
		return 0, false
	}
	var i int64
	var pos uint64
	signed := true
	switch x := v.(type) {
	case int:
		i = int64(x)
	case int64:
		i = x
	case int32:
		i = int64(x)
	case uint64:
		pos, signed = x, false
	case uint:
		pos, signed = uint64(x), false
	case uint32:
		pos, signed = uint64(x), false
	case json.Number:
		return r.exactInt(string(x))
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			i = n
		} else if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			pos, signed = n, false
		} else {
			return 0, false
		}
	default:
		return 0, false
	}
	if signed && i >= 0 {
		pos, signed = uint64(i), false
	}
	switch r.Type {
	case Int8:
		return uint64(i), signed && i >= math.MinInt8 || !signed && pos <= math.MaxInt8
	case Uint8:
		return pos, !signed && pos <= math.MaxUint8
	case Int16:
		return uint64(i), signed && i >= math.MinInt16 || !signed && pos <= math.MaxInt16
	case Uint16:
		return pos, !signed && pos <= math.MaxUint16
	case Int32:
		return uint64(i), signed && i >= math.MinInt32 || !signed && pos <= math.MaxInt32
	case Uint32:
		return pos, !signed && pos <= math.MaxUint32
	case Int64:
		if signed {
			return uint64(i), true
		}
		return pos, pos <= math.MaxInt64
	case Uint64:
		return pos, !signed
	}
	return 0, false
}

func intRange(t Type) (lo, hi float64) {
	switch t {
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Uint8:
		return 0, math.MaxUint8
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint16:
		return 0, math.MaxUint16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Uint32:
		return 0, math.MaxUint32
	case Int64:
		// float64 cannot hold MaxInt64 exactly; 2^63 itself is out of range.
		return math.MinInt64, math.Nextafter(math.MaxInt64, 0)
	case Uint64:
		return 0, math.Nextafter(math.MaxUint64, 0)
	}
	return 0, 0
}

func (r *Register) label(s string) (int64, bool) {
	for k, v := range r.Labels {
		if v == s {
			return k, true
		}
	}
	return 0, false
}

func (r *Register) toNumber(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("encoding %q: %v is not a finite number", r.Key, x)
		}
		return x, nil
	case float32:
		return r.toNumber(float64(x))
	case int:
		return float64(x), nil
	case int8:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case json.Number:
		return r.toNumber(string(x))
	case string:
		if n, ok := r.label(x); ok {
			return float64(n), nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("encoding %q: %q is neither a number nor a label", r.Key, x)
		}
		return r.toNumber(f)
	}
	return 0, fmt.Errorf("encoding %q: want a number, got %T", r.Key, v)
}

func (r *Register) toBool(v any) (bool, error) {
	if s, ok := v.(string); ok {
		if n, ok := r.label(s); ok {
			return n != 0, nil
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "on", "1":
			return true, nil
		case "false", "off", "0":
			return false, nil
		}
		return false, fmt.Errorf("encoding %q: %q is not true/false, on/off or 1/0", r.Key, s)
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	f, err := r.toNumber(v)
	if err != nil {
		return false, fmt.Errorf("encoding %q: want a bool, got %T", r.Key, v)
	}
	return f != 0, nil
}
