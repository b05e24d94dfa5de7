package modbus

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The tb-gateway convention reads values as the ThingsBoard IoT Gateway
// does with pymodbus's BinaryPayloadDecoder:
//
//   - strings and bytes take each register's bytes high byte first, and
//     ignore the byte and word order (pymodbus's decode_string does);
//   - int8/uint8 are the high byte of the register, whatever the order;
//   - register bits are listed from the high byte's least significant bit
//     to its most significant, then the low byte's: list index i is
//     register bit i+8 for i < 8 and bit i−8 after; a bits entry of n < 16
//     bits keeps the last n of those 16; bit n of a register is that list's
//     index n (0 or 1, an integer);
//   - coils and discrete inputs are listed byte by byte, each byte's eight
//     coils from the highest address to the lowest (at most the first two
//     bytes), the last n kept;
//   - floats are rounded to 6 decimals (or Round) from their exact binary
//     value, half to even, and an integral float stays a float in JSON
//     (0.0, not 0);
//   - the byte order LITTLE swaps the bytes of each register and the word
//     order LITTLE reverses the registers: GatewayOrder maps them.

// GatewayOrder maps the IoT Gateway's byteOrder and wordOrder ("BIG" or
// "LITTLE", any case; its default is LITTLE for both) to an Order.
func GatewayOrder(byteOrder, wordOrder string) Order {
	little := func(s string) bool { return s == "" || strings.EqualFold(s, "LITTLE") }
	switch b, w := little(byteOrder), little(wordOrder); {
	case b && w:
		return DCBA
	case b:
		return BADC
	case w:
		return CDAB
	}
	return ABCD
}

// decodeGateway decodes the types whose convention differs; ok is false for
// the others, which decode as usual.
func decodeGateway(r *Register, words []uint16) (v any, ok bool, err error) {
	switch r.Type {
	case String, Bytes:
		b := make([]byte, 0, 2*len(words))
		for _, x := range words {
			b = append(b, byte(x>>8), byte(x))
		}
		if r.Type == Bytes {
			return hex.EncodeToString(b), true, nil
		}
		b = []byte(strings.TrimRight(string(b), "\x00"))
		if !utf8.Valid(b) {
			return hex.EncodeToString(b), true, nil
		}
		return string(b), true, nil
	case Int8, Uint8:
		hi := uint8(words[0] >> 8)
		if r.Type == Int8 {
			return r.integer(int64(int8(hi)), uint64(hi), false), true, nil
		}
		return r.integer(int64(hi), uint64(hi), false), true, nil
	case Bits, Bit:
		d := make([]bool, 0, 16)
		for _, by := range []uint8{uint8(words[0] >> 8), uint8(words[0])} {
			for k := range 8 {
				d = append(d, by&(1<<k) != 0)
			}
		}
		return gatewayBitsResult(r, d), true, nil
	case Float16, Float32, Float64:
		w := reorder(words, r.Order, r.Type)
		var f float64
		switch r.Type {
		case Float16:
			f = float64(halfToFloat32(w[0]))
		case Float32:
			f = float64(math.Float32frombits(uint32(w[0])<<16 | uint32(w[1])))
		default:
			f = math.Float64frombits(uint64(w[0])<<48 | uint64(w[1])<<32 | uint64(w[2])<<16 | uint64(w[3]))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, true, &decodeErr{r.Key, f}
		}
		n := 6
		if r.Round != nil {
			n = *r.Round
		}
		x := roundRat(new(big.Rat).SetFloat64(f), n, true)
		g := *r
		g.Round = nil
		res := g.applyRat(x)
		return gatewayFloat(res), true, nil
	}
	return nil, false, nil
}

type decodeErr struct {
	key string
	f   float64
}

func (e *decodeErr) Error() string {
	return "decoding " + strconv.Quote(e.key) + ": " + strconv.FormatFloat(e.f, 'g', -1, 64) + " has no JSON form"
}

// gatewayFloat keeps an integral float a float in JSON (0.0, 12.0), as the
// Gateway's Python floats are.
func gatewayFloat(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return json.Number(strconv.FormatFloat(f, 'f', 1, 64))
	}
	return f
}

// gatewayScaled types a scaled integer as the Gateway's Python does: a
// divider (or a fractional multiplier) makes a float, an integral
// multiplier keeps an integer. The value itself is exact decimal
// arithmetic, where the Gateway's float arithmetic may send
// 230.10000000000002.
func gatewayScaled(r *Register, f float64) any {
	if r.Divider == 0 && r.Offset == 0 && r.Round == nil && r.scale() == math.Trunc(r.scale()) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return gatewayFloat(f)
}

// gatewayCoils decodes coils or discrete inputs the Gateway's way; bits
// holds r.Count() of them.
func gatewayCoils(r *Register, bits []bool) any {
	if r.Type == Bool {
		// One coil reads as itself: the last of its byte's reversed list.
		if len(bits) == 0 {
			return false
		}
		return DecodeBit(r, bits[0])
	}
	padded := make([]bool, (len(bits)+7)/8*8)
	copy(padded, bits)
	d := make([]bool, 0, 16)
	for j := 0; j < len(padded)/8 && j < 2; j++ {
		for k := 7; k >= 0; k-- {
			d = append(d, padded[8*j+k])
		}
	}
	return gatewayBitsResult(r, d)
}

// gatewayBitsResult keeps the last n of the Gateway's bit list and returns
// a bool (n = 1), a list of bools, or with a bit number that bit as 0/1.
func gatewayBitsResult(r *Register, d []bool) any {
	n := r.Length
	if n < 1 {
		n = 1
	}
	if n < len(d) {
		d = d[len(d)-n:]
	}
	if r.Type == Bit {
		i := r.Bit
		if i >= len(d) {
			i = len(d) - 1
		}
		if d[i] {
			return int64(1)
		}
		return int64(0)
	}
	if n == 1 {
		return d[len(d)-1]
	}
	out := make([]any, len(d))
	for i, b := range d {
		out[i] = b
	}
	return out
}

// gatewayBitIndex returns, for entry j of a Gateway bit list of n bits
// read from a register, the register bit it reads.
func gatewayBitIndex(n, j int) int {
	m := min(n, 16)
	i := 16 - m + j
	if i < 8 {
		return i + 8
	}
	return i - 8
}

// gatewayCoilOffsets returns, for each entry of a Gateway bit list of n
// coils, the offset of the coil it reads (or -1 for padding).
func gatewayCoilOffsets(n int) []int {
	padded := (n + 7) / 8 * 8
	d := min(padded, 16)
	out := make([]int, min(n, d))
	for j := range out {
		i := d - len(out) + j
		off := 8*(i/8) + 7 - i%8
		if off >= n {
			off = -1
		}
		out[j] = off
	}
	return out
}
