package modbus

import "sort"

// Protocol limits of one read request.
const (
	MaxRegisters = 125  // FC 3 and 4
	MaxBits      = 2000 // FC 1 and 2
)

// Request is one read request of a poll plan: Count coils or registers of
// one function from Address, covering the map entries Regs (indices into
// the map the plan was made from).
type Request struct {
	Function Function
	Address  uint16
	Count    uint16
	Regs     []int
	// Gaps tells whether the request also reads addresses no entry maps.
	Gaps bool
}

// Plan merges a register map into read requests: entries of the same
// function whose addresses are at most maxGap apart share one request, as
// long as it stays within maxRegs registers (maxBits bits for coils and
// discrete inputs); zero limits mean the protocol's. Overlapping entries
// (a bit of a register, a register read as two types) share the read.
// The map must have passed CheckMap.
func Plan(regs []Register, maxGap, maxRegs, maxBits int) []Request {
	if maxRegs <= 0 || maxRegs > MaxRegisters {
		maxRegs = MaxRegisters
	}
	if maxBits <= 0 || maxBits > MaxBits {
		maxBits = MaxBits
	}
	if maxGap < 0 {
		maxGap = 0
	}
	idx := make([]int, len(regs))
	for i := range idx {
		idx[i] = i
	}
	order := map[Function]int{Coil: 0, Discrete: 1, Holding: 2, Input: 3}
	sort.SliceStable(idx, func(a, b int) bool {
		ra, rb := &regs[idx[a]], &regs[idx[b]]
		if ra.Function != rb.Function {
			return order[ra.Function] < order[rb.Function]
		}
		return ra.Address < rb.Address
	})
	var out []Request
	cur := -1   // index in out of the request being extended
	var end int // exclusive end of out[cur]
	for _, i := range idx {
		r := &regs[i]
		start, stop := int(r.Address), int(r.Address)+r.Count()
		limit := maxRegs
		if r.Function.IsBit() {
			limit = maxBits
		}
		if cur >= 0 && out[cur].Function == r.Function && start <= end+maxGap && max(end, stop)-int(out[cur].Address) <= limit {
			c := &out[cur]
			if start > end {
				c.Gaps = true
			}
			end = max(end, stop)
			c.Count = uint16(end - int(c.Address))
			c.Regs = append(c.Regs, i)
			continue
		}
		out = append(out, Request{Function: r.Function, Address: r.Address, Count: uint16(r.Count()), Regs: []int{i}})
		cur = len(out) - 1
		end = stop
	}
	return out
}
