package modbus

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// Function is the Modbus table a register lives in.
type Function string

// The four Modbus tables.
const (
	Coil     Function = "coil"     // read/write bits (FC 1, 5, 15)
	Discrete Function = "discrete" // read-only bits (FC 2)
	Holding  Function = "holding"  // read/write registers (FC 3, 6, 16)
	Input    Function = "input"    // read-only registers (FC 4)
)

// Functions lists the functions in a stable order.
var Functions = []Function{Coil, Discrete, Holding, Input}

// IsBit reports whether f addresses single bits (coils, discrete inputs).
func (f Function) IsBit() bool { return f == Coil || f == Discrete }

// Writable reports whether f can be written.
func (f Function) Writable() bool { return f == Coil || f == Holding }

// Type is the data type a register (or group of registers) holds.
type Type string

// Data types.
const (
	Bool    Type = "bool"    // a coil or discrete input, or a register that is non-zero
	Int16   Type = "int16"   // 1 register
	Uint16  Type = "uint16"  // 1 register
	Int32   Type = "int32"   // 2 registers
	Uint32  Type = "uint32"  // 2 registers
	Int64   Type = "int64"   // 4 registers
	Uint64  Type = "uint64"  // 4 registers
	Float32 Type = "float32" // 2 registers, IEEE 754
	Float64 Type = "float64" // 4 registers, IEEE 754
	String  Type = "string"  // Length registers, two ASCII bytes each
	Bit     Type = "bit"     // one bit (Register.Bit, 0 = least significant) of a register
	Int8    Type = "int8"    // the low byte of 1 register (after the byte order), signed
	Uint8   Type = "uint8"   // the low byte of 1 register (after the byte order)
	Float16 Type = "float16" // 1 register, IEEE 754 half precision
	Bytes   Type = "bytes"   // Length registers as lowercase hex text
	Bits    Type = "bits"    // Length bits as a list of bools: coils from Address, or register bits from bit 0 up
)

// Types lists the data types in a stable order.
var Types = []Type{Bool, Int8, Uint8, Int16, Uint16, Int32, Uint32, Int64, Uint64, Float16, Float32, Float64, String, Bytes, Bit, Bits}

// Convention is how strings, bits and floats are read: "" is tbflow's own
// (byte order applies to strings, bit n counts from the least
// significant bit); TBGateway reads them as the ThingsBoard IoT Gateway and
// pymodbus do (see compat.go).
type Convention string

// Conventions.
const (
	Native    Convention = ""
	TBGateway Convention = "tb-gateway"
)

// Order is the byte and word order of a multi-byte value, named after
// where the bytes A (most significant) to D of a 32-bit value arrive:
// ABCD is big-endian with the high word first (the Modbus default), CDAB
// swaps the words, BADC swaps the bytes within each word, DCBA does both
// (little-endian). 16-bit values use only the byte swap; 64-bit values
// reverse all four words for CDAB/DCBA.
type Order string

// Byte/word orders.
const (
	ABCD Order = "ABCD"
	CDAB Order = "CDAB"
	BADC Order = "BADC"
	DCBA Order = "DCBA"
)

// Orders lists the byte/word orders.
var Orders = []Order{ABCD, CDAB, BADC, DCBA}

func (o Order) wordSwap() bool { return o == CDAB || o == DCBA }
func (o Order) byteSwap() bool { return o == BADC || o == DCBA }

// Register maps one named value onto a unit's coils or registers.
type Register struct {
	// Key names the value in poll results and writes.
	Key string `json:"key"`
	// Function is the table: coil, discrete, holding or input.
	Function Function `json:"function"`
	// Address is the 0-based protocol address of the first coil or
	// register.
	Address uint16 `json:"address"`
	// Type is the data type; the default is bool for coils and discrete
	// inputs and uint16 for registers.
	Type Type `json:"type,omitempty"`
	// Order is the byte/word order; the default is ABCD.
	Order Order `json:"order,omitempty"`
	// Length is the number of registers of a string.
	Length int `json:"length,omitempty"`
	// Bit is the bit number (0–15, 0 least significant) of a bit type.
	Bit int `json:"bit,omitempty"`
	// Scale multiplies the raw number (0 means 1), Divider divides it (0
	// means 1), Offset is added after. The arithmetic is exact decimal
	// arithmetic: raw 2301 with scale 0.1 is 230.1.
	Scale   float64 `json:"scale,omitempty"`
	Divider float64 `json:"divider,omitempty"`
	Offset  float64 `json:"offset,omitempty"`
	// Round, when set, rounds the result to that many decimals (half away
	// from zero).
	Round *int `json:"round,omitempty"`
	// Compat selects the convention for strings, bits and floats.
	Compat Convention `json:"compat,omitempty"`
	// Labels turn raw integer values into names (and names back into
	// values for writes); a raw value without a label stays a number.
	Labels map[int64]string `json:"labels,omitempty"`
}

// Check validates r and fills in its defaults.
func (r *Register) Check() error {
	if r.Key == "" {
		return errors.New("register without a key")
	}
	switch r.Function {
	case Coil, Discrete, Holding, Input:
	case "":
		return fmt.Errorf("register %q: no function", r.Key)
	default:
		return fmt.Errorf("register %q: unknown function %q (want coil, discrete, holding or input)", r.Key, r.Function)
	}
	if r.Type == "" {
		if r.Function.IsBit() {
			r.Type = Bool
		} else {
			r.Type = Uint16
		}
	}
	if r.Order == "" {
		r.Order = ABCD
	}
	switch r.Order {
	case ABCD, CDAB, BADC, DCBA:
	default:
		return fmt.Errorf("register %q: unknown order %q (want ABCD, CDAB, BADC or DCBA)", r.Key, r.Order)
	}
	if r.Function.IsBit() && r.Type != Bool && r.Type != Bits && r.Type != Bit {
		return fmt.Errorf("register %q: a %s holds a bool (or bits), not %s", r.Key, r.Function, r.Type)
	}
	switch r.Compat {
	case Native, TBGateway:
	default:
		return fmt.Errorf("register %q: unknown convention %q (want tb-gateway or none)", r.Key, r.Compat)
	}
	switch r.Type {
	case Bool, Int8, Uint8, Int16, Uint16, Int32, Uint32, Int64, Uint64, Float16, Float32, Float64:
	case String, Bytes:
		if r.Length < 1 || r.Length > 123 {
			return fmt.Errorf("register %q: a %s needs a length of 1 to 123 registers", r.Key, r.Type)
		}
	case Bits:
		if r.Length < 1 || (!r.Function.IsBit() && r.Length > 16*123) || r.Length > MaxBits {
			return fmt.Errorf("register %q: bits needs a length (the number of bits) of 1 to %d", r.Key, MaxBits)
		}
	case Bit:
		if r.Bit < 0 || r.Bit > 15 {
			return fmt.Errorf("register %q: bit %d is not 0–15", r.Key, r.Bit)
		}
	default:
		return fmt.Errorf("register %q: unknown type %q", r.Key, r.Type)
	}
	for _, x := range []float64{r.Scale, r.Offset, r.Divider} {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("register %q: scale, divider and offset must be finite", r.Key)
		}
	}
	if r.Round != nil && (*r.Round < 0 || *r.Round > 15) {
		return fmt.Errorf("register %q: round must be 0–15 decimals", r.Key)
	}
	if end := int(r.Address) + r.Count(); end > 0x10000 {
		return fmt.Errorf("register %q: address %d + %d runs past 65535", r.Key, r.Address, r.Count())
	}
	return nil
}

// Count is the number of coils or registers the value occupies.
func (r *Register) Count() int {
	switch r.Type {
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	case String, Bytes:
		return r.Length
	case Bits:
		if r.Function.IsBit() {
			return r.Length
		}
		return (r.Length + 15) / 16
	case Bit:
		if r.Function.IsBit() {
			return max(r.Length, 1)
		}
	}
	return 1
}

func (r *Register) scale() float64 {
	if r.Scale == 0 {
		return 1
	}
	return r.Scale
}

func (r *Register) divider() float64 {
	if r.Divider == 0 {
		return 1
	}
	return r.Divider
}

func (r *Register) scaled() bool {
	return r.scale() != 1 || r.divider() != 1 || r.Offset != 0 || r.Round != nil
}

// CheckMap validates every register of a map (filling defaults) and
// rejects duplicate keys.
func CheckMap(regs []Register) error {
	seen := map[string]bool{}
	var errs []error
	for i := range regs {
		if err := regs[i].Check(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[regs[i].Key] {
			errs = append(errs, fmt.Errorf("register %q: duplicate key", regs[i].Key))
		}
		seen[regs[i].Key] = true
	}
	return errors.Join(errs...)
}

// ParseLabels reads enum labels written as "0=stopped,1=running,2=fault".
func ParseLabels(s string) (map[int64]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	out := map[int64]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("label %q: want VALUE=NAME", strings.TrimSpace(part))
		}
		n, err := strconv.ParseInt(k, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("label %q: %q is not an integer", strings.TrimSpace(part), k)
		}
		out[n] = v
	}
	return out, nil
}

// FormatLabels writes labels in the form ParseLabels reads.
func FormatLabels(m map[int64]string) string {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strconv.FormatInt(k, 10) + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// reorder converts between the wire's word sequence and ABCD order (it
// is its own inverse).
func reorder(words []uint16, o Order, t Type) []uint16 {
	out := make([]uint16, len(words))
	n := len(words)
	for i := range words {
		w := words[i]
		if o.wordSwap() && t != String && t != Bytes && t != Bits {
			w = words[n-1-i]
		}
		if o.byteSwap() {
			w = bits.ReverseBytes16(w)
		}
		out[i] = w
	}
	return out
}

// Decode turns the raw registers of r (len(words) == r.Count(), starting at
// r.Address) into its value: bool, int64 (integers without scale, divider,
// offset or round; uint64 above the int64 range stays uint64), float64,
// string (string and bytes types) or []any of bools (bits); a label
// replaces an integer that has one. Coils and discrete inputs use
// DecodeBit or DecodeBits. NaN and infinite floats are errors: they have no
// JSON form. With the tb-gateway convention some types read differently
// (see compat.go).
func Decode(r *Register, words []uint16) (any, error) {
	if len(words) != r.Count() {
		return nil, fmt.Errorf("decoding %q: got %d registers, want %d", r.Key, len(words), r.Count())
	}
	if r.Compat == TBGateway {
		if v, ok, err := decodeGateway(r, words); ok {
			return v, err
		}
	}
	w := reorder(words, r.Order, r.Type)
	var u uint64
	if len(w) <= 4 {
		for _, x := range w {
			u = u<<16 | uint64(x)
		}
	}
	switch r.Type {
	case Bool:
		return w[0] != 0, nil
	case Bit:
		return w[0]&(1<<uint(r.Bit)) != 0, nil
	case Bits:
		out := make([]any, r.Length)
		for i := range out {
			out[i] = w[i/16]&(1<<uint(i%16)) != 0
		}
		return out, nil
	case String, Bytes:
		b := make([]byte, 0, 2*len(w))
		for _, x := range w {
			b = append(b, byte(x>>8), byte(x))
		}
		if r.Type == Bytes {
			return hex.EncodeToString(b), nil
		}
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			b = b[:i]
		}
		return strings.TrimRight(string(b), " "), nil
	case Float16, Float32:
		var f float32
		if r.Type == Float16 {
			f = halfToFloat32(w[0])
		} else {
			f = math.Float32frombits(uint32(u))
		}
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("decoding %q: %v has no JSON form", r.Key, f)
		}
		// The shortest decimal that reads back as the same float32:
		// 230.1, not 230.10000610351562.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
		return r.apply(v), nil
	case Float64:
		f := math.Float64frombits(u)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("decoding %q: %v has no JSON form", r.Key, f)
		}
		return r.apply(f), nil
	}
	var i int64
	unsignedBig := false
	switch r.Type {
	case Int8:
		i = int64(int8(u))
	case Uint8:
		i = int64(uint8(u))
	case Int16:
		i = int64(int16(u))
	case Uint16, Uint32:
		i = int64(u)
	case Int32:
		i = int64(int32(u))
	case Int64:
		i = int64(u)
	case Uint64:
		i = int64(u)
		unsignedBig = u > math.MaxInt64
	}
	return r.integer(i, u, unsignedBig), nil
}

// integer applies labels and scaling to a decoded integer.
func (r *Register) integer(i int64, u uint64, unsignedBig bool) any {
	if r.Labels != nil && !unsignedBig {
		if l, ok := r.Labels[i]; ok {
			return l
		}
	}
	if r.scaled() {
		var f float64
		if unsignedBig {
			f = r.applyRat(new(big.Rat).SetFrac(new(big.Int).SetUint64(u), big.NewInt(1)))
		} else {
			f = r.applyRat(new(big.Rat).SetInt64(i))
		}
		if r.Compat == TBGateway {
			return gatewayScaled(r, f)
		}
		return f
	}
	if unsignedBig {
		return u
	}
	return i
}

// DecodeBits returns the value of Length coils or discrete inputs read as
// one bits entry (bits holds exactly r.Count() of them): a list of bools.
func DecodeBits(r *Register, bits []bool) any {
	if r.Compat == TBGateway {
		return gatewayCoils(r, bits)
	}
	if r.Type == Bit && len(bits) > 0 {
		// bit n of a run of Length coils
		return DecodeBit(r, bits[min(r.Bit, len(bits)-1)])
	}
	if r.Type != Bits {
		if len(bits) == 0 {
			return nil
		}
		return DecodeBit(r, bits[0])
	}
	out := make([]any, len(bits))
	for i, b := range bits {
		out[i] = b
	}
	return out
}

// DecodeBit returns the value of a coil or discrete input: a bool, or its
// label when labels name 0 or 1.
func DecodeBit(r *Register, b bool) any {
	if r.Labels != nil {
		n := int64(0)
		if b {
			n = 1
		}
		if l, ok := r.Labels[n]; ok {
			return l
		}
	}
	return b
}

func (r *Register) apply(v float64) float64 {
	if !r.scaled() {
		return v // keeps -0
	}
	return r.applyRat(decimalOf(v))
}
