package modbus

import (
	"errors"
	"fmt"
	"time"

	mb "github.com/simonvetter/modbus"
)

// poll runs one poll of p.
func (l *lane) poll(p *poller, now time.Time) {
	b := l.b
	// Schedule the next poll first: a slow poll does not make the next
	// ones pile up, missed periods are skipped.
	p.next = p.next.Add(p.conf.Period)
	if p.next.Before(now) {
		p.next = now.Add(p.conf.Period)
	}
	b.mu.Lock()
	b.replanLocked(p)
	reqs := p.reqs
	b.mu.Unlock()
	res, plan, learned := l.execute(p.conf.Unit, p.conf.Registers, reqs, now)
	if res.Err != nil && errors.Is(res.Err, ErrLinkDown) {
		l.failAll(p, res, now)
		return
	}
	b.mu.Lock()
	if plan != nil {
		p.reqs = plan
	}
	if learned[0] > 0 || learned[1] > 0 {
		st := &b.unit(p.conf.Unit).stats
		if learned[0] > 0 && (st.MaxRegisters == 0 || learned[0] < st.MaxRegisters) {
			st.MaxRegisters = learned[0]
		}
		if learned[1] > 0 && (st.MaxBits == 0 || learned[1] < st.MaxBits) {
			st.MaxBits = learned[1]
		}
		p.limit[0], p.limit[1] = b.limitsLocked(&p.conf)
	}
	b.mu.Unlock()
	l.finish(p, &res)
}

// failAll hands a link failure to every poller of the lane, not only the
// one whose turn it was: each node on the link shows the outage at once.
func (l *lane) failAll(p *poller, res Result, now time.Time) {
	b := l.b
	b.mu.Lock()
	var others []*poller
	for _, q := range b.pollers {
		if q != p && b.laneKey(q.conf.Unit) == l.key {
			others = append(others, q)
			if q.next.Before(now.Add(q.conf.Period)) {
				q.next = now.Add(q.conf.Period)
			}
		}
	}
	b.mu.Unlock()
	l.finish(p, &res)
	for _, q := range others {
		r := Result{Unit: q.conf.Unit, Time: now, Values: map[string]any{}, Err: res.Err}
		l.finish(q, &r)
	}
}

// execute sends the requests of a plan and decodes the answers. A request
// refused across a gap is split at the gaps; one refused otherwise is
// halved (a device with a smaller request limit) until the parts are
// single entries. plan is the new plan when a split happened; learned the
// register and bit limits that worked after halving, when every part was
// answered.
func (l *lane) execute(unit uint8, regs []Register, reqs []Request, now time.Time) (res Result, plan []Request, learned [2]int) {
	b := l.b
	res = Result{Unit: unit, Time: now, Values: map[string]any{}}
	// Full slice expression: only a split (appending parts) copies the
	// plan, so an ordinary poll allocates no queue.
	queue := reqs[:len(reqs):len(reqs)]
	var split, halved, partFailed bool
	var refusedMin, okMax [2]int
	kind := func(f Function) int {
		if f.IsBit() {
			return 1
		}
		return 0
	}
	for i := 0; i < len(queue); i++ {
		if l.ctx.Err() != nil {
			res.Err = ErrClosed
			return res, nil, learned
		}
		rq := queue[i]
		start := time.Now()
		words, bits, err := l.send(unit, rq)
		res.Latency += time.Since(start)
		res.Requests++
		l.pause()
		switch {
		case err == nil:
			decodeInto(&res, regs, rq, words, bits)
			okMax[kind(rq.Function)] = max(okMax[kind(rq.Function)], int(rq.Count))
		case IsException(err):
			b.mu.Lock()
			b.unit(unit).stats.Exceptions++
			b.mu.Unlock()
			if parts, how := splitRefused(regs, rq, err, b.cfg.MaxGap); parts != nil {
				b.log.Info("modbus unit refuses a request: splitting it", "unit", unit, "function", string(rq.Function),
					"address", rq.Address, "count", rq.Count, "how", how, "requests", len(parts))
				queue = append(queue, parts...)
				split = true
				if how == "halved" {
					halved = true
					k := kind(rq.Function)
					if refusedMin[k] == 0 || int(rq.Count) < refusedMin[k] {
						refusedMin[k] = int(rq.Count)
					}
				}
				continue
			}
			partFailed = true
			for _, ri := range rq.Regs {
				res.setErr(regs[ri].Key, fmt.Errorf("reading %q (%s %d+%d): %w", regs[ri].Key, rq.Function, rq.Address, rq.Count, err))
			}
		default:
			// No answer, or the link broke: the rest of this poll would
			// fail the same way, so stop here and let the other units go.
			res.Values = map[string]any{}
			res.Errors = nil
			if errors.Is(err, ErrLinkDown) {
				res.Err = err
			} else {
				res.Err = fmt.Errorf("unit %d: reading %s %d+%d: %w", unit, rq.Function, rq.Address, rq.Count, err)
			}
			if isLinkError(err) && !errors.Is(err, ErrLinkDown) {
				l.closeLink(err)
			}
			return res, nil, learned
		}
	}
	if split {
		plan = dropRefused(queue, reqs)
		if halved && !partFailed {
			// The biggest request answered below the smallest refused.
			for k := range 2 {
				if refusedMin[k] > 0 && okMax[k] < refusedMin[k] {
					learned[k] = okMax[k]
				}
			}
		}
	}
	return res, plan, learned
}

// splitRefused returns the parts to read instead of a refused request: at
// its gaps when the device refused to read across them, else in halves
// when the refusal can be about the size; nil when it cannot be split.
func splitRefused(regs []Register, rq Request, err error, maxGap int) ([]Request, string) {
	sub := make([]Register, len(rq.Regs))
	maxCount := 1
	for k, ri := range rq.Regs {
		sub[k] = regs[ri]
		maxCount = max(maxCount, regs[ri].Count())
	}
	var parts []Request
	how := ""
	switch {
	case rq.Gaps && errors.Is(err, mb.ErrIllegalDataAddress):
		parts, how = Plan(sub, 0, MaxRegisters, MaxBits), "at gaps"
	case len(rq.Regs) > 1 && (int(rq.Count)+1)/2 >= maxCount &&
		(errors.Is(err, mb.ErrIllegalDataAddress) || errors.Is(err, mb.ErrIllegalDataValue)):
		// A device that takes smaller requests says "illegal data
		// address" or "illegal data value" (the quantity); busy and
		// failure answers are not about the size.
		lim := (int(rq.Count) + 1) / 2
		parts, how = Plan(sub, maxGap, lim, lim), "halved"
	default:
		return nil, ""
	}
	if len(parts) < 2 {
		return nil, ""
	}
	for k := range parts {
		for m, si := range parts[k].Regs {
			parts[k].Regs[m] = rq.Regs[si]
		}
	}
	return parts, how
}

// decodeInto decodes the entries of rq from its answer.
func decodeInto(res *Result, regs []Register, rq Request, words []uint16, bits []bool) {
	for _, ri := range rq.Regs {
		r := &regs[ri]
		off := int(r.Address - rq.Address)
		if off+r.Count() > len(words)+len(bits) {
			res.setErr(r.Key, fmt.Errorf("reading %q: short answer", r.Key))
			continue
		}
		if r.Function.IsBit() {
			if r.Count() == 1 && r.Compat == Native {
				res.Values[r.Key] = DecodeBit(r, bits[off])
			} else {
				res.Values[r.Key] = DecodeBits(r, bits[off:off+r.Count()])
			}
			continue
		}
		v, err := Decode(r, words[off:off+r.Count()])
		if err != nil {
			res.setErr(r.Key, err)
			continue
		}
		res.Values[r.Key] = v
	}
}

// dropRefused returns the plan after splitting: queue holds the original
// requests followed by the parts of the ones split; the originals that
// were split (those whose entries appear again in a later part) go, and so
// do parts that were split again.
func dropRefused(queue, orig []Request) []Request {
	var out []Request
	for i, rq := range queue {
		again := false
		if len(rq.Regs) > 0 {
			for _, later := range queue[max(i+1, len(orig)):] {
				if len(later.Regs) > 0 && containsInt(later.Regs, rq.Regs[0]) {
					again = true
					break
				}
			}
		}
		if !again {
			out = append(out, rq)
		}
	}
	return out
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (r *Result) setErr(key string, err error) {
	if r.Errors == nil {
		r.Errors = map[string]error{}
	}
	r.Errors[key] = err
}

// finish updates the unit's counters and backoff and hands res over.
func (l *lane) finish(p *poller, res *Result) {
	b := l.b
	b.mu.Lock()
	u := b.unit(p.conf.Unit)
	u.stats.Requests += int64(res.Requests)
	if res.Err != nil {
		u.stats.Failures++
		u.stats.LastError = res.Err.Error()
		if !errors.Is(res.Err, ErrLinkDown) && !isLinkError(errors.Unwrap(res.Err)) {
			u.fails++
			u.stats.BackoffUntil = time.Now().Add(b.backoff(u.fails))
		}
	} else {
		u.stats.Polls++
		u.stats.LastLatency = res.Latency
		u.stats.LastError = ""
		u.fails = 0
		u.stats.BackoffUntil = time.Time{}
	}
	fails := u.fails
	_, alive := b.pollers[p.id]
	b.mu.Unlock()
	if res.Err != nil && fails > 0 && !errors.Is(res.Err, ErrLinkDown) {
		b.log.Warn("modbus unit did not answer: backing off", "unit", p.conf.Unit, "failures", fails, "retry_in", b.backoff(fails), "err", res.Err)
	}
	if alive && p.fn != nil {
		p.fn(*res)
	}
}

// do performs a write or a read on demand on the lane's goroutine.
func (l *lane) do(j *job) {
	if j.read != nil {
		b := l.b
		b.mu.Lock()
		pc := PollConfig{Unit: j.unit}
		r, bt := b.limitsLocked(&pc)
		b.mu.Unlock()
		j.res, _, _ = l.execute(j.unit, j.read, Plan(j.read, b.cfg.MaxGap, r, bt), time.Now())
		j.done <- nil
		return
	}
	j.done <- l.write(j)
}

// write performs one write job.
func (l *lane) write(j *job) error {
	c, err := l.link()
	if err != nil {
		return err
	}
	defer l.pause()
	r := &j.reg
	_ = c.SetUnitId(j.unit)
	switch {
	case r.Function == Coil && r.Type == Bits:
		err = c.WriteCoils(r.Address, j.coils)
	case r.Function == Coil:
		err = c.WriteCoil(r.Address, j.coil)
	case r.Type == Bit:
		var cur uint16
		cur, err = c.ReadRegister(r.Address, mb.HOLDING_REGISTER)
		if err == nil {
			var w uint16
			if w, err = EncodeBit(r, cur, j.value); err == nil {
				err = c.WriteRegister(r.Address, w)
			}
		}
	case len(j.words) == 1:
		err = c.WriteRegister(r.Address, j.words[0])
	default:
		err = c.WriteRegisters(r.Address, j.words)
	}
	b := l.b
	b.mu.Lock()
	u := b.unit(j.unit)
	u.stats.Requests++
	if IsException(err) {
		u.stats.Exceptions++
	}
	b.mu.Unlock()
	if err != nil {
		if isLinkError(err) {
			l.closeLink(err)
		}
		return fmt.Errorf("writing %q to unit %d (%s %d): %w", r.Key, j.unit, r.Function, r.Address, err)
	}
	return nil
}
