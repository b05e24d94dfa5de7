package modbus

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// codecCases: every type in every order, with the words a device sends.
// The float32 230.1 is 0x4366199A, the float64 1234.5678 is
// 0x40934A456D5CFAAD, the int32 -123456 is 0xFFFE1DC0 and the int64
// -1234567890123 is 0xFFFFFEE08E04FB35.
var codecCases = []struct {
	typ    Type
	length int
	bit    int
	value  any
	words  map[Order][]uint16
}{
	{typ: Float32, value: 230.1, words: map[Order][]uint16{
		ABCD: {0x4366, 0x199A}, CDAB: {0x199A, 0x4366}, BADC: {0x6643, 0x9A19}, DCBA: {0x9A19, 0x6643}}},
	{typ: Float32, value: -12.75, words: map[Order][]uint16{
		ABCD: {0xC14C, 0x0000}, CDAB: {0x0000, 0xC14C}, BADC: {0x4CC1, 0x0000}, DCBA: {0x0000, 0x4CC1}}},
	{typ: Float32, value: 1234.5677, words: map[Order][]uint16{
		ABCD: {0x449A, 0x522B}, CDAB: {0x522B, 0x449A}, BADC: {0x9A44, 0x2B52}, DCBA: {0x2B52, 0x9A44}}},
	{typ: Float64, value: 1234.5678, words: map[Order][]uint16{
		ABCD: {0x4093, 0x4A45, 0x6D5C, 0xFAAD}, CDAB: {0xFAAD, 0x6D5C, 0x4A45, 0x4093},
		BADC: {0x9340, 0x454A, 0x5C6D, 0xADFA}, DCBA: {0xADFA, 0x5C6D, 0x454A, 0x9340}}},
	{typ: Int16, value: int64(-2), words: map[Order][]uint16{
		ABCD: {0xFFFE}, CDAB: {0xFFFE}, BADC: {0xFEFF}, DCBA: {0xFEFF}}},
	{typ: Uint16, value: int64(0x1234), words: map[Order][]uint16{
		ABCD: {0x1234}, CDAB: {0x1234}, BADC: {0x3412}, DCBA: {0x3412}}},
	{typ: Int32, value: int64(-123456), words: map[Order][]uint16{
		ABCD: {0xFFFE, 0x1DC0}, CDAB: {0x1DC0, 0xFFFE}, BADC: {0xFEFF, 0xC01D}, DCBA: {0xC01D, 0xFEFF}}},
	{typ: Uint32, value: int64(3000000000), words: map[Order][]uint16{
		ABCD: {0xB2D0, 0x5E00}, CDAB: {0x5E00, 0xB2D0}, BADC: {0xD0B2, 0x005E}, DCBA: {0x005E, 0xD0B2}}},
	{typ: Int64, value: int64(-1234567890123), words: map[Order][]uint16{
		ABCD: {0xFFFF, 0xFEE0, 0x8E04, 0xFB35}, CDAB: {0xFB35, 0x8E04, 0xFEE0, 0xFFFF},
		BADC: {0xFFFF, 0xE0FE, 0x048E, 0x35FB}, DCBA: {0x35FB, 0x048E, 0xE0FE, 0xFFFF}}},
	{typ: Uint64, value: int64(0x0102030405060708), words: map[Order][]uint16{
		ABCD: {0x0102, 0x0304, 0x0506, 0x0708}, CDAB: {0x0708, 0x0506, 0x0304, 0x0102},
		BADC: {0x0201, 0x0403, 0x0605, 0x0807}, DCBA: {0x0807, 0x0605, 0x0403, 0x0201}}},
	{typ: Uint64, value: uint64(0xFFFFFFFFFFFFFFFE), words: map[Order][]uint16{
		ABCD: {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE}, CDAB: {0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF},
		BADC: {0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF}, DCBA: {0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF}}},
	// Strings never reverse their registers: only the bytes swap.
	{typ: String, length: 3, value: "AB-12", words: map[Order][]uint16{
		ABCD: {0x4142, 0x2D31, 0x3200}, CDAB: {0x4142, 0x2D31, 0x3200}, BADC: {0x4241, 0x312D, 0x0032}, DCBA: {0x4241, 0x312D, 0x0032}}},
	{typ: Int8, value: int64(-2), words: map[Order][]uint16{
		ABCD: {0x00FE}, CDAB: {0x00FE}, BADC: {0xFE00}, DCBA: {0xFE00}}},
	{typ: Uint8, value: int64(200), words: map[Order][]uint16{
		ABCD: {0x00C8}, CDAB: {0x00C8}, BADC: {0xC800}, DCBA: {0xC800}}},
	// 12.34375 is the half-precision 0x4A2C.
	{typ: Float16, value: 12.34375, words: map[Order][]uint16{
		ABCD: {0x4A2C}, CDAB: {0x4A2C}, BADC: {0x2C4A}, DCBA: {0x2C4A}}},
	{typ: Bytes, length: 2, value: "0a0b0c0d", words: map[Order][]uint16{
		ABCD: {0x0A0B, 0x0C0D}, CDAB: {0x0A0B, 0x0C0D}, BADC: {0x0B0A, 0x0D0C}, DCBA: {0x0B0A, 0x0D0C}}},
	// bits list from bit 0 of the first register up.
	{typ: Bits, length: 18, value: []any{true, false, true, false, false, false, false, false, false, false, false, false, false, false, false, true, false, true},
		words: map[Order][]uint16{
			ABCD: {0x8005, 0x0002}, CDAB: {0x8005, 0x0002}, BADC: {0x0580, 0x0200}, DCBA: {0x0580, 0x0200}}},
	{typ: Bool, value: true, words: map[Order][]uint16{
		ABCD: {0x0001}, CDAB: {0x0001}, BADC: {0x0100}, DCBA: {0x0100}}},
	{typ: Bool, value: false, words: map[Order][]uint16{
		ABCD: {0}, CDAB: {0}, BADC: {0}, DCBA: {0}}},
}

func TestCodecEveryTypeAndOrder(t *testing.T) {
	seen := map[Type]map[Order]bool{}
	for _, c := range codecCases {
		for _, o := range Orders {
			words, ok := c.words[o]
			if !ok {
				t.Fatalf("%s: no words for %s", c.typ, o)
			}
			r := Register{Key: "k", Function: Holding, Type: c.typ, Order: o, Length: c.length}
			if err := r.Check(); err != nil {
				t.Fatal(err)
			}
			got, err := Decode(&r, words)
			if err != nil {
				t.Fatalf("%s %s: decode: %v", c.typ, o, err)
			}
			if !reflect.DeepEqual(got, c.value) {
				t.Errorf("%s %s: decode %04X = %#v, want %#v", c.typ, o, words, got, c.value)
			}
			enc, err := Encode(&r, c.value)
			if err != nil {
				t.Fatalf("%s %s: encode: %v", c.typ, o, err)
			}
			if !reflect.DeepEqual(enc, words) {
				t.Errorf("%s %s: encode %#v = %04X, want %04X", c.typ, o, c.value, enc, words)
			}
			if seen[c.typ] == nil {
				seen[c.typ] = map[Order]bool{}
			}
			seen[c.typ][o] = true
		}
	}
	// bit-of-register: bit 3 of 0x0008 (ABCD) is byte-swapped in BADC.
	for _, o := range Orders {
		r := Register{Key: "b", Function: Holding, Type: Bit, Bit: 3, Order: o}
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		w := uint16(0x0008)
		if o.byteSwap() {
			w = 0x0800
		}
		if v, err := Decode(&r, []uint16{w}); err != nil || v != true {
			t.Errorf("bit %s: %v %v", o, v, err)
		}
		if v, _ := Decode(&r, []uint16{^w}); v != false {
			t.Errorf("bit %s of %04X: %v", o, ^w, v)
		}
		nw, err := EncodeBit(&r, 0xFF00, true)
		if err != nil {
			t.Fatal(err)
		}
		if nw != 0xFF00|w {
			t.Errorf("bit %s: set in FF00 = %04X, want %04X", o, nw, 0xFF00|w)
		}
		if nw, _ := EncodeBit(&r, 0xFFFF, false); nw != 0xFFFF&^w {
			t.Errorf("bit %s: clear = %04X", o, nw)
		}
		seen[Bit] = map[Order]bool{ABCD: true, CDAB: true, BADC: true, DCBA: true}
	}
	for _, typ := range Types {
		if len(seen[typ]) != 4 {
			t.Errorf("type %s tested in %d orders, want 4", typ, len(seen[typ]))
		}
	}
}

func TestScaleOffsetLabels(t *testing.T) {
	r := Register{Key: "t", Function: Input, Type: Int16, Scale: 0.1, Offset: -40}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	v, _ := Decode(&r, []uint16{652}) // 65.2 - 40
	if f, ok := v.(float64); !ok || math.Abs(f-25.2) > 1e-9 {
		t.Fatalf("scaled = %#v", v)
	}
	w, err := Encode(&r, 25.2)
	if err != nil || w[0] != 652 {
		t.Fatalf("encode scaled = %v %v", w, err)
	}
	if _, err := Encode(&r, 4000.0); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("out of range: %v", err)
	}
	labels, err := ParseLabels("0=stopped, 1=running,2=fault")
	if err != nil {
		t.Fatal(err)
	}
	if FormatLabels(labels) != "0=stopped,1=running,2=fault" {
		t.Fatalf("labels %v", FormatLabels(labels))
	}
	s := Register{Key: "state", Function: Holding, Labels: labels}
	_ = s.Check()
	if v, _ := Decode(&s, []uint16{1}); v != "running" {
		t.Fatalf("label = %#v", v)
	}
	if v, _ := Decode(&s, []uint16{7}); v != int64(7) {
		t.Fatalf("unlabelled = %#v", v)
	}
	if w, err := Encode(&s, "fault"); err != nil || w[0] != 2 {
		t.Fatalf("encode label = %v %v", w, err)
	}
	if w, err := Encode(&s, json.Number("5")); err != nil || w[0] != 5 {
		t.Fatalf("encode json.Number = %v %v", w, err)
	}
	if _, err := Encode(&s, "bogus"); err == nil {
		t.Fatal("encoding an unknown label worked")
	}
	if _, err := ParseLabels("x=1"); err == nil {
		t.Fatal("bad label parsed")
	}
	c := Register{Key: "relay", Function: Coil, Labels: map[int64]string{0: "off", 1: "on"}}
	_ = c.Check()
	if DecodeBit(&c, true) != "on" {
		t.Fatal("coil label")
	}
	if b, err := EncodeBool(&c, "off"); err != nil || b {
		t.Fatalf("coil label encode %v %v", b, err)
	}
	for _, v := range []any{true, 1.0, "on", "true", int64(1)} {
		if b, err := EncodeBool(&c, v); err != nil || !b {
			t.Errorf("EncodeBool(%#v) = %v %v", v, b, err)
		}
	}
}

func TestCheck(t *testing.T) {
	bad := []Register{
		{Function: Holding},
		{Key: "a"},
		{Key: "a", Function: "register"},
		{Key: "a", Function: Coil, Type: Int16},
		{Key: "a", Function: Holding, Type: String},
		{Key: "a", Function: Holding, Type: Bit, Bit: 16},
		{Key: "a", Function: Holding, Order: "ABDC"},
		{Key: "a", Function: Holding, Type: Float64, Address: 65533},
		{Key: "a", Function: Holding, Type: "float128"},
		{Key: "a", Function: Holding, Type: Bits},
		{Key: "a", Function: Holding, Type: Bytes},
		{Key: "a", Function: Holding, Compat: "pymodbus2"},
	}
	for _, r := range bad {
		if err := r.Check(); err == nil {
			t.Errorf("%+v passed Check", r)
		}
	}
	if err := CheckMap([]Register{{Key: "a", Function: Coil}, {Key: "a", Function: Holding}}); err == nil {
		t.Error("duplicate keys passed")
	}
	r := Register{Key: "a", Function: Holding}
	if err := r.Check(); err != nil || r.Type != Uint16 || r.Order != ABCD {
		t.Errorf("defaults: %+v %v", r, err)
	}
}

func TestPlan(t *testing.T) {
	regs := []Register{
		{Key: "h0", Function: Holding, Address: 0, Type: Float32},
		{Key: "h2", Function: Holding, Address: 2},
		{Key: "h10", Function: Holding, Address: 10}, // gap of 7
		{Key: "h2bit", Function: Holding, Address: 2, Type: Bit, Bit: 4},
		{Key: "i0", Function: Input, Address: 0},
		{Key: "c5", Function: Coil, Address: 5},
		{Key: "c1", Function: Coil, Address: 1},
		{Key: "d0", Function: Discrete, Address: 0},
	}
	if err := CheckMap(regs); err != nil {
		t.Fatal(err)
	}
	type req struct {
		fn      Function
		addr, n uint16
		gaps    bool
	}
	summary := func(rs []Request) []req {
		var out []req
		for _, r := range rs {
			out = append(out, req{r.Function, r.Address, r.Count, r.Gaps})
		}
		return out
	}
	if got, want := summary(Plan(regs, 0, 0, 0)), []req{
		{Coil, 1, 1, false}, {Coil, 5, 1, false}, {Discrete, 0, 1, false},
		{Holding, 0, 3, false}, {Holding, 10, 1, false}, {Input, 0, 1, false},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("gap 0: %v, want %v", got, want)
	}
	if got, want := summary(Plan(regs, 8, 0, 0)), []req{
		{Coil, 1, 5, true}, {Discrete, 0, 1, false}, {Holding, 0, 11, true}, {Input, 0, 1, false},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("gap 8: %v, want %v", got, want)
	}
	// 130 adjacent registers: 125 + 5; 2100 coils: 2000 + 100.
	var many []Register
	for i := range 130 {
		many = append(many, Register{Key: "h" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Function: Holding, Address: uint16(i)})
	}
	for i := range 2100 {
		many = append(many, Register{Key: "c" + strings.Repeat("x", i%7) + string(rune(0x100+i)), Function: Coil, Address: uint16(i)})
	}
	if err := CheckMap(many); err != nil {
		t.Fatal(err)
	}
	if got, want := summary(Plan(many, 0, 0, 0)), []req{
		{Coil, 0, 2000, false}, {Coil, 2000, 100, false}, {Holding, 0, 125, false}, {Holding, 125, 5, false},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("limits: %v, want %v", got, want)
	}
	// A float32 at 124 does not fit in the first request: it starts a new one.
	f := []Register{{Key: "a", Function: Input, Address: 0}, {Key: "b", Function: Input, Address: 124, Type: Float32}}
	_ = CheckMap(f)
	if got := Plan(f, 200, 0, 0); len(got) != 2 || got[1].Address != 124 || got[1].Count != 2 {
		t.Errorf("straddling the limit: %+v", got)
	}
	if got := Plan(f, 200, 0, 0); len(got[0].Regs) != 1 {
		t.Errorf("regs %+v", got)
	}
}

// FuzzDecode feeds arbitrary registers to every type and order: decoding
// never panics, and what decodes to a number encodes back to the same
// registers.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x43, 0x66, 0x19, 0x9A, 0, 0, 0, 0}, uint8(7), uint8(1), uint8(2))
	f.Add([]byte{0xFF, 0xFF}, uint8(1), uint8(3), uint8(1))
	f.Add([]byte{0x7F, 0xC0, 0, 0}, uint8(7), uint8(0), uint8(0))
	f.Add([]byte("hello world"), uint8(9), uint8(2), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, typ, order, length uint8) {
		r := Register{Key: "k", Function: Holding, Type: Types[int(typ)%len(Types)], Order: Orders[int(order)%4],
			Length: int(length%8) + 1, Bit: int(length % 16)}
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		words := make([]uint16, r.Count())
		for i := range words {
			if 2*i+1 < len(data) {
				words[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
			}
		}
		v, err := Decode(&r, words)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("%s %s %04X: %#v has no JSON form: %v", r.Type, r.Order, words, v, err)
		}
		switch r.Type {
		case Bool, Bit, String:
			return
		case Int8, Uint8:
			// Only the low byte is the value: it survives.
			back, err := Encode(&r, v)
			if again, _ := Decode(&r, back); err != nil || again != v {
				t.Fatalf("%s %s: %04X → %#v → %04X → %#v (%v)", r.Type, r.Order, words, v, back, again, err)
			}
			return
		}
		back, err := Encode(&r, v)
		if err != nil {
			t.Fatalf("%s %s %04X: re-encoding %#v: %v", r.Type, r.Order, words, v, err)
		}
		if !reflect.DeepEqual(back, words) {
			t.Fatalf("%s %s: %04X → %#v → %04X", r.Type, r.Order, words, v, back)
		}
		if _, err := Decode(&r, words[:len(words)-1]); err == nil {
			t.Fatal("short input decoded")
		}
	})
}

func TestExactDecimalScaling(t *testing.T) {
	two := 2
	cases := []struct {
		r    Register
		raw  uint16
		want any
	}{
		{Register{Scale: 0.1}, 2301, 230.1},
		{Register{Divider: 10}, 2301, 230.1},
		{Register{Scale: 0.01, Offset: -40}, 6523, 25.23},
		{Register{Scale: 0.1, Offset: 0.2}, 1, 0.3},
		{Register{Divider: 3, Round: &two}, 1, 0.33},
		{Register{Scale: 0.001, Round: &two}, 12345, 12.35},
		{Register{Type: Int16, Scale: 0.1, Round: &two}, 0xFFFB, -0.5},
		{Register{Type: Float16, Scale: 0.1}, 0x4A2C, 1.234375},
	}
	for _, c := range cases {
		r := c.r
		r.Key, r.Function = "k", Holding
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		v, err := Decode(&r, []uint16{c.raw})
		if err != nil || v != c.want {
			t.Errorf("%+v of %d: %#v (%v), want %v", c.r, c.raw, v, err, c.want)
		}
		if b, _ := json.Marshal(v); strings.Contains(string(b), "0000") {
			t.Errorf("%+v: JSON %s", c.r, b)
		}
	}
	// Writes reverse it exactly: 230.1 / 0.1 is 2301, not 2300.9999999999995.
	r := Register{Key: "k", Function: Holding, Scale: 0.1}
	_ = r.Check()
	if w, err := Encode(&r, 230.1); err != nil || w[0] != 2301 {
		t.Errorf("encode %v %v", w, err)
	}
}

func TestGatewayConvention(t *testing.T) {
	reg := func(typ Type, n, bit int) Register {
		r := Register{Key: "k", Function: Holding, Type: typ, Length: n, Bit: bit, Order: DCBA, Compat: TBGateway}
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Strings ignore the byte order.
	r := reg(String, 2, 0)
	if v, _ := Decode(&r, []uint16{0x6162, 0x6364}); v != "abcd" {
		t.Errorf("string %v", v)
	}
	// Register bits: the high byte's bits first, least significant first.
	r = reg(Bits, 16, 0)
	v, _ := Decode(&r, []uint16{0x0102})
	l := v.([]any)
	if l[0] != true || l[9] != true || l[1] != false || l[8] != false {
		t.Errorf("bits %v", l)
	}
	r = reg(Bit, 16, 9)
	if v, _ := Decode(&r, []uint16{0x0102}); v != int64(1) {
		t.Errorf("bit 9 %v", v)
	}
	// Floats rounded to 6 decimals, integral ones kept floats.
	r = reg(Float32, 0, 0)
	if v, _ := Decode(&r, []uint16{0, 0}); v != json.Number("0.0") {
		t.Errorf("0.0: %#v", v)
	}
	r = reg(Float16, 0, 0)
	r.Order = ABCD
	if v, _ := Decode(&r, []uint16{0x2C4A}); v != 0.067017 {
		t.Errorf("float16 %#v", v)
	}
	// Coils: each byte's coils from the highest address down.
	c := Register{Key: "c", Function: Coil, Type: Bits, Length: 16, Compat: TBGateway}
	_ = c.Check()
	bits := make([]bool, 16)
	bits[0], bits[9] = true, true
	got := DecodeBits(&c, bits).([]any)
	if got[7] != true || got[14] != true || got[0] != false {
		t.Errorf("coils %v", got)
	}
	if GatewayOrder("", "") != DCBA || GatewayOrder("big", "LITTLE") != CDAB || GatewayOrder("LITTLE", "BIG") != BADC {
		t.Error("orders")
	}
}

// TestGatewayConventionRoundTrip: what tbflow writes with the tb-gateway
// convention reads back (the Gateway's way) as the value written.
func TestGatewayConventionRoundTrip(t *testing.T) {
	list := []any{false, true, false, true, true, false, true, true, true, true, false, true, false, false, true, true}
	for _, n := range []int{16, 4, 1} {
		r := Register{Key: "b", Function: Holding, Type: Bits, Length: n, Order: DCBA, Compat: TBGateway}
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		w, err := Encode(&r, list[:n])
		if err != nil {
			t.Fatal(err)
		}
		got, _ := Decode(&r, w)
		if n == 1 {
			if got != list[0] {
				t.Errorf("1 bit: %v", got)
			}
			continue
		}
		if !reflect.DeepEqual(got, list[:n]) {
			t.Errorf("%d bits: wrote %v, read %v", n, list[:n], got)
		}
	}
	for _, n := range []int{16, 5} {
		r := Register{Key: "c", Function: Coil, Type: Bits, Length: n, Compat: TBGateway}
		_ = r.Check()
		coils := make([]bool, n)
		for j, off := range gatewayCoilOffsets(n) {
			if off >= 0 {
				coils[off] = list[j].(bool)
			}
		}
		if got := DecodeBits(&r, coils); !reflect.DeepEqual(got, list[:n]) {
			t.Errorf("%d coils: wrote %v, read %v", n, list[:n], got)
		}
	}
	s := Register{Key: "s", Function: Holding, Type: String, Length: 2, Order: DCBA, Compat: TBGateway}
	_ = s.Check()
	if w, _ := Encode(&s, "abcx"); w[0] != 0x6162 || w[1] != 0x6378 {
		t.Errorf("string %04X", w)
	}
}
