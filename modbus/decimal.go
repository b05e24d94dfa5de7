package modbus

import (
	"math"
	"math/big"
	"strconv"
)

// decimalOf is the shortest decimal that reads back as f, exactly: 0.1 is
// 1/10, not the binary fraction nearest to it. Scaling with these is what
// makes raw 2301 × 0.1 come out as 230.1 and not 230.10000000000002.
func decimalOf(f float64) *big.Rat {
	x, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if !ok {
		return new(big.Rat)
	}
	return x
}

// applyRat computes x × scale ÷ divider + offset in exact decimal
// arithmetic, rounds it when Round is set, and returns the float64 nearest
// to the result.
func (r *Register) applyRat(x *big.Rat) float64 {
	if s := r.scale(); s != 1 {
		x.Mul(x, decimalOf(s))
	}
	if d := r.divider(); d != 1 {
		x.Quo(x, decimalOf(d))
	}
	if r.Offset != 0 {
		x.Add(x, decimalOf(r.Offset))
	}
	if r.Round != nil {
		x = roundRat(x, *r.Round, false)
	}
	f, _ := x.Float64()
	if f == 0 {
		return 0 // never -0
	}
	return f
}

// unapply reverses the scaling for a write: (v − offset) ÷ scale × divider,
// exactly.
func (r *Register) unapply(v float64) float64 {
	x := decimalOf(v)
	if r.Offset != 0 {
		x.Sub(x, decimalOf(r.Offset))
	}
	if s := r.scale(); s != 1 {
		x.Quo(x, decimalOf(s))
	}
	if d := r.divider(); d != 1 {
		x.Mul(x, decimalOf(d))
	}
	f, _ := x.Float64()
	return f
}

// roundRat rounds x to n decimals: half away from zero, or half to even
// when even is set (Python's round on the exact binary value).
func roundRat(x *big.Rat, n int, even bool) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	y := new(big.Rat).Mul(x, new(big.Rat).SetInt(p))
	num, den := y.Num(), y.Denom()
	q, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	twice := new(big.Int).Abs(rem)
	twice.Lsh(twice, 1)
	switch c := twice.Cmp(den); {
	case c > 0, c == 0 && (!even || q.Bit(0) == 1):
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return new(big.Rat).SetFrac(q, p)
}

// halfToFloat32 converts an IEEE 754 half-precision value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h & 0x3ff)
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(frac) / 1024 / 16384
		if sign != 0 {
			return -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// float32ToHalf converts to half precision, rounding to nearest even; ok
// is false when the value does not fit (too large).
func float32ToHalf(f float32) (uint16, bool) {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	frac := b & 0x7fffff
	if math.IsNaN(float64(f)) {
		return sign | 0x7e00, true
	}
	if exp >= 0x1f {
		return sign | 0x7c00, math.IsInf(float64(f), 0)
	}
	if exp <= 0 {
		if exp < -10 {
			return sign, true
		}
		frac |= 0x800000
		shift := uint(14 - exp)
		half := frac >> shift
		rem := frac & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half), true
	}
	half := uint32(exp)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++
	}
	if half >= 0x7c00 {
		return sign | 0x7c00, false
	}
	return sign | uint16(half), true
}
