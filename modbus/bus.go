package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// Errors of the bus.
var (
	// ErrClosed is a call on a bus that is closed or not started.
	ErrClosed = errors.New("modbus bus is closed")
	// ErrLinkDown wraps a failure to open the link (dial, serial port).
	ErrLinkDown = errors.New("modbus link is down")
)

// Config configures a Bus.
type Config struct {
	// URL is the link: tcp://host:port (Modbus TCP),
	// rtuovertcp://host:port (RTU frames over a TCP socket, serial
	// gateways), or rtu:///dev/ttyUSB0 (RTU over a serial line).
	URL string
	// Serial line settings (rtu only): speed in baud (default 19200),
	// data bits (default 8), parity "none", "even" or "odd", stop bits
	// (default 2 without parity, 1 with parity, as the RTU spec says).
	Speed    uint
	DataBits uint
	Parity   string
	StopBits uint
	// Timeout bounds each request (default 1s).
	Timeout time.Duration
	// Delay is a pause after every request, for devices or RS-485
	// converters that need silence between frames.
	Delay time.Duration
	// MaxGap is how many unmapped registers (or bits) a merged request
	// may read across to save a request (0: only adjacent ones). A device
	// that refuses such a read with "illegal data address" gets the
	// request split again automatically.
	MaxGap int
	// MaxRegisters and MaxBits lower the per-request limits for devices
	// that cannot serve the protocol's 125 registers / 2000 bits.
	MaxRegisters, MaxBits int
	// BackoffMin and BackoffMax bound how long a unit that did not answer
	// is left alone (doubling from BackoffMin; defaults 1s and 1m), and how
	// long to wait before reopening a link that failed to open.
	BackoffMin, BackoffMax time.Duration
	// Logger receives the bus's logs; nil discards them.
	Logger *slog.Logger
}

// PollConfig is one poller: a unit, a period and a register map.
type PollConfig struct {
	Unit      uint8
	Period    time.Duration
	Registers []Register
}

// Result is the outcome of one poll.
type Result struct {
	Unit uint8
	Time time.Time
	// Values holds the decoded values by key of every entry read.
	Values map[string]any
	// Errors holds the entries that could not be read (a Modbus exception
	// for their request) or decoded, by key.
	Errors map[string]error
	// Err is set when the unit or the link failed: no answer in time, a
	// network error, the link down, or the unit backing off. Values is
	// then empty.
	Err error
	// Requests is how many requests the poll sent; Latency their total
	// round-trip time.
	Requests int
	Latency  time.Duration
}

// UnitStats are the counters of one unit id.
type UnitStats struct {
	Unit        uint8
	Polls       int64 // polls that got an answer
	Failures    int64 // polls without an answer
	Requests    int64
	Exceptions  int64
	LastLatency time.Duration // of the last successful poll
	LastError   string
	// BackoffUntil is when the unit is tried again, zero when it is fine.
	BackoffUntil time.Time
}

// Bus polls and writes units over one link, one request at a time.
type Bus struct {
	cfg Config
	log *slog.Logger

	writes chan *writeJob
	wake   chan struct{}

	mu      sync.Mutex
	pollers map[int]*poller
	nextID  int
	units   map[uint8]*unitState
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	linkErr error
	open    bool

	// owned by the run goroutine
	client    *mb.ModbusClient
	linkUntil time.Time
	linkFails int
}

type poller struct {
	id   int
	conf PollConfig
	reqs []Request
	fn   func(Result)
	next time.Time
}

type unitState struct {
	stats UnitStats
	fails int
}

type writeJob struct {
	unit  uint8
	reg   Register
	words []uint16
	coil  bool
	value any
	done  chan error
}

// NewBus checks cfg and returns a bus; it does no I/O until Start.
func NewBus(cfg Config) (*Bus, error) {
	scheme, _, ok := strings.Cut(cfg.URL, "://")
	if !ok {
		return nil, fmt.Errorf("modbus url %q: want tcp://host:port, rtuovertcp://host:port or rtu:///dev/tty…", cfg.URL)
	}
	switch scheme {
	case "tcp", "rtuovertcp", "rtu":
	default:
		return nil, fmt.Errorf("modbus url %q: unknown scheme %q", cfg.URL, scheme)
	}
	switch cfg.Parity {
	case "", "none", "even", "odd":
	default:
		return nil, fmt.Errorf("modbus parity %q: want none, even or odd", cfg.Parity)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(time.Minute, cfg.BackoffMin)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Bus{
		cfg: cfg, log: lg,
		writes:  make(chan *writeJob),
		wake:    make(chan struct{}, 1),
		pollers: map[int]*poller{},
		units:   map[uint8]*unitState{},
	}, nil
}

// Config returns the bus's configuration with defaults filled in.
func (b *Bus) Config() Config { return b.cfg }

// Start starts the bus goroutine. The link is opened by the first request
// and reopened after network errors, so Start does not fail when the
// device is unreachable. Start after Close fails with ErrClosed.
func (b *Bus) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return nil
	}
	b.started = true
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go b.run(ctx)
	return nil
}

// Close stops the bus and closes the link. It waits for a request in
// flight (at most the timeout) unless ctx ends first. It is idempotent.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing modbus bus: %w", ctx.Err())
	}
}

// Connected reports whether the link is open (it opens with the first
// request), and the last link error.
func (b *Bus) Connected() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open && !b.closed, b.linkErr
}

// AddPoller polls pc.Registers of pc.Unit every pc.Period and calls fn
// with each result. fn runs on the bus goroutine: it must not block (hand
// the result to a channel). The returned function removes the poller.
func (b *Bus) AddPoller(pc PollConfig, fn func(Result)) (remove func(), err error) {
	regs := append([]Register(nil), pc.Registers...)
	if err := CheckMap(regs); err != nil {
		return nil, err
	}
	if pc.Period <= 0 {
		return nil, errors.New("poll period must be positive")
	}
	pc.Registers = regs
	p := &poller{conf: pc, fn: fn, reqs: Plan(regs, b.cfg.MaxGap, b.cfg.MaxRegisters, b.cfg.MaxBits), next: time.Now()}
	b.mu.Lock()
	b.nextID++
	p.id = b.nextID
	b.pollers[p.id] = p
	b.unit(pc.Unit)
	b.mu.Unlock()
	b.poke()
	return func() {
		b.mu.Lock()
		delete(b.pollers, p.id)
		b.mu.Unlock()
	}, nil
}

// Requests returns the read requests a poller of regs sends per poll on
// this bus (before any splitting a device's refusal causes).
func (b *Bus) Requests(regs []Register) ([]Request, error) {
	regs = append([]Register(nil), regs...)
	if err := CheckMap(regs); err != nil {
		return nil, err
	}
	return Plan(regs, b.cfg.MaxGap, b.cfg.MaxRegisters, b.cfg.MaxBits), nil
}

// Stats returns the counters of every unit the bus has polled or written.
func (b *Bus) Stats() []UnitStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]UnitStats, 0, len(b.units))
	for id := 0; id < 256; id++ {
		if u, ok := b.units[uint8(id)]; ok {
			out = append(out, u.stats)
		}
	}
	return out
}

// Write writes v to the entry r of unit, encoded as r says, ahead of any
// poll waiting. Coils take a bool; holding registers any value Encode
// accepts; a bit of a holding register is read, changed and written back.
// A Modbus exception comes back as an error wrapping the library's
// exception error (see IsException); a link that cannot be opened as one
// wrapping ErrLinkDown.
func (b *Bus) Write(ctx context.Context, unit uint8, r Register, v any) error {
	if err := r.Check(); err != nil {
		return err
	}
	if !r.Function.Writable() {
		return fmt.Errorf("writing %q: a %s is read-only", r.Key, r.Function)
	}
	j := &writeJob{unit: unit, reg: r, value: v, done: make(chan error, 1)}
	var err error
	switch {
	case r.Function == Coil:
		j.coil, err = EncodeBool(&r, v)
	case r.Type == Bit:
		_, err = EncodeBit(&r, 0, v) // checks the value; the real write is read-modify-write
	default:
		j.words, err = Encode(&r, v)
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	running := b.started && !b.closed
	done := b.done
	b.mu.Unlock()
	if !running {
		return ErrClosed
	}
	select {
	case b.writes <- j:
	case <-done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The write is on the wire already; its outcome is not waited for.
		return ctx.Err()
	}
}

// IsException reports whether err is a Modbus exception answered by the
// device (illegal function, illegal data address, …).
func IsException(err error) bool {
	var e mb.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue, mb.ErrServerDeviceFailure,
		mb.ErrAcknowledge, mb.ErrServerDeviceBusy, mb.ErrMemoryParityError:
		return true
	}
	return false
}

// IsTimeout reports whether err means the unit did not answer: a request
// timeout, or a gateway saying its target did not respond.
func IsTimeout(err error) bool {
	return errors.Is(err, mb.ErrRequestTimedOut) || errors.Is(err, mb.ErrGWTargetFailedToRespond) || errors.Is(err, mb.ErrGWPathUnavailable)
}

func (b *Bus) unit(id uint8) *unitState {
	u := b.units[id]
	if u == nil {
		u = &unitState{stats: UnitStats{Unit: id}}
		b.units[id] = u
	}
	return u
}

func (b *Bus) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bus) run(ctx context.Context) {
	defer close(b.done)
	defer b.closeLink(nil)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-b.writes:
			j.done <- b.write(ctx, j)
			continue
		default:
		}
		p, due := b.nextDue()
		now := time.Now()
		if p != nil && !due.After(now) {
			b.poll(ctx, p, now)
			continue
		}
		wait := time.Hour
		if p != nil {
			wait = due.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case j := <-b.writes:
			j.done <- b.write(ctx, j)
		case <-b.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextDue returns the poller due first: its own schedule, but not before
// its unit's backoff ends.
func (b *Bus) nextDue() (*poller, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var best *poller
	var bestDue time.Time
	for _, p := range b.pollers {
		due := p.next
		if u := b.units[p.conf.Unit]; u != nil && u.stats.BackoffUntil.After(due) {
			due = u.stats.BackoffUntil
		}
		if b.linkUntil.After(due) {
			due = b.linkUntil
		}
		if best == nil || due.Before(bestDue) || (due.Equal(bestDue) && p.id < best.id) {
			best, bestDue = p, due
		}
	}
	return best, bestDue
}

// link opens the link if it is closed.
func (b *Bus) link() (*mb.ModbusClient, error) {
	if b.client != nil {
		return b.client, nil
	}
	parity := mb.PARITY_NONE
	switch b.cfg.Parity {
	case "even":
		parity = mb.PARITY_EVEN
	case "odd":
		parity = mb.PARITY_ODD
	}
	c, err := mb.NewClient(&mb.ClientConfiguration{
		URL: b.cfg.URL, Speed: b.cfg.Speed, DataBits: b.cfg.DataBits, Parity: parity, StopBits: b.cfg.StopBits,
		Timeout: b.cfg.Timeout,
		Logger:  log.New(io.Discard, "", 0),
	})
	if err == nil {
		err = c.Open()
	}
	if err != nil {
		b.linkFails++
		b.linkUntil = time.Now().Add(b.backoff(b.linkFails))
		err = fmt.Errorf("%w: opening %s: %v", ErrLinkDown, b.cfg.URL, err)
		b.setLinkErr(err)
		return nil, err
	}
	if b.linkFails > 0 {
		b.log.Info("modbus link open again", "url", b.cfg.URL, "after_failures", b.linkFails)
	}
	b.linkFails, b.linkUntil = 0, time.Time{}
	b.client = c
	b.mu.Lock()
	b.open, b.linkErr = true, nil
	b.mu.Unlock()
	return c, nil
}

func (b *Bus) setLinkErr(err error) {
	b.mu.Lock()
	b.linkErr = err
	b.mu.Unlock()
}

// closeLink drops the link after a network error; the next request
// reopens it.
func (b *Bus) closeLink(cause error) {
	if b.client == nil {
		return
	}
	_ = b.client.Close()
	b.client = nil
	b.mu.Lock()
	b.open = false
	b.mu.Unlock()
	if cause != nil {
		b.log.Warn("modbus link closed after an error", "url", b.cfg.URL, "err", cause)
		b.setLinkErr(cause)
	}
}

func (b *Bus) backoff(fails int) time.Duration {
	d := b.cfg.BackoffMin
	for i := 1; i < fails && d < b.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, b.cfg.BackoffMax)
}

// isLinkError tells errors that leave the link in an unknown state (so it
// must be reopened) from timeouts and exceptions, after which it is fine.
func isLinkError(err error) bool {
	return err != nil && !IsException(err) && !IsTimeout(err)
}

func (b *Bus) pause(ctx context.Context) {
	if b.cfg.Delay <= 0 {
		return
	}
	t := time.NewTimer(b.cfg.Delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// read sends one read request.
func (b *Bus) read(c *mb.ModbusClient, unit uint8, r Request) (words []uint16, bits []bool, err error) {
	_ = c.SetUnitId(unit)
	switch r.Function {
	case Coil:
		bits, err = c.ReadCoils(r.Address, r.Count)
	case Discrete:
		bits, err = c.ReadDiscreteInputs(r.Address, r.Count)
	case Holding:
		words, err = c.ReadRegisters(r.Address, r.Count, mb.HOLDING_REGISTER)
	case Input:
		words, err = c.ReadRegisters(r.Address, r.Count, mb.INPUT_REGISTER)
	}
	return words, bits, err
}

func (b *Bus) poll(ctx context.Context, p *poller, now time.Time) {
	// Schedule the next poll first: a slow poll does not make the next
	// ones pile up, missed periods are skipped.
	p.next = p.next.Add(p.conf.Period)
	if p.next.Before(now) {
		p.next = now.Add(p.conf.Period)
	}
	res := Result{Unit: p.conf.Unit, Time: now, Values: map[string]any{}}
	c, err := b.link()
	if err != nil {
		res.Err = err
		b.finish(p, &res)
		return
	}
	regs := p.conf.Registers
	// Full slice expression: only a split (appending parts) copies the
	// plan, so an ordinary poll allocates no queue.
	queue := p.reqs[:len(p.reqs):len(p.reqs)]
	var split bool
	for i := 0; i < len(queue); i++ {
		if ctx.Err() != nil {
			return
		}
		rq := queue[i]
		start := time.Now()
		words, bits, err := b.read(c, p.conf.Unit, rq)
		res.Latency += time.Since(start)
		res.Requests++
		b.pause(ctx)
		switch {
		case err == nil:
			for _, ri := range rq.Regs {
				r := &regs[ri]
				off := int(r.Address - rq.Address)
				if r.Function.IsBit() {
					if off < len(bits) {
						res.Values[r.Key] = DecodeBit(r, bits[off])
					} else {
						res.setErr(r.Key, fmt.Errorf("reading %q: short answer", r.Key))
					}
					continue
				}
				if off+r.Count() > len(words) {
					res.setErr(r.Key, fmt.Errorf("reading %q: short answer", r.Key))
					continue
				}
				v, err := Decode(r, words[off:off+r.Count()])
				if err != nil {
					res.setErr(r.Key, err)
					continue
				}
				res.Values[r.Key] = v
			}
		case IsException(err):
			b.mu.Lock()
			b.unit(p.conf.Unit).stats.Exceptions++
			b.mu.Unlock()
			if rq.Gaps && errors.Is(err, mb.ErrIllegalDataAddress) {
				// The device refuses to read across unmapped addresses:
				// read the entries without gaps from now on.
				sub := make([]Register, len(rq.Regs))
				for k, ri := range rq.Regs {
					sub[k] = regs[ri]
				}
				parts := Plan(sub, 0, b.cfg.MaxRegisters, b.cfg.MaxBits)
				for k := range parts {
					for m, si := range parts[k].Regs {
						parts[k].Regs[m] = rq.Regs[si]
					}
				}
				b.log.Info("modbus unit refuses reads across gaps: splitting the request",
					"unit", p.conf.Unit, "function", string(rq.Function), "address", rq.Address, "count", rq.Count, "requests", len(parts))
				queue = append(queue, parts...)
				split = true
				continue
			}
			for _, ri := range rq.Regs {
				res.setErr(regs[ri].Key, fmt.Errorf("reading %q (%s %d+%d): %w", regs[ri].Key, rq.Function, rq.Address, rq.Count, err))
			}
		default:
			// No answer, or the link broke: the rest of this poll would
			// fail the same way, so stop here and let the other units go.
			res.Values = map[string]any{}
			res.Errors = nil
			res.Err = fmt.Errorf("unit %d: reading %s %d+%d: %w", p.conf.Unit, rq.Function, rq.Address, rq.Count, err)
			if isLinkError(err) {
				b.closeLink(err)
			}
			b.finish(p, &res)
			return
		}
	}
	if split {
		p.reqs = dropRefused(queue, p.reqs)
	}
	b.finish(p, &res)
}

// dropRefused returns the plan after splitting: queue holds the original
// requests followed by the parts of the ones split; the originals that
// were split (those whose entries appear again in a later part) go.
func dropRefused(queue, orig []Request) []Request {
	again := map[int]bool{}
	for _, rq := range queue[len(orig):] {
		for _, ri := range rq.Regs {
			again[ri] = true
		}
	}
	var out []Request
	for _, rq := range orig {
		if len(rq.Regs) > 0 && again[rq.Regs[0]] {
			continue
		}
		out = append(out, rq)
	}
	return append(out, queue[len(orig):]...)
}

func (r *Result) setErr(key string, err error) {
	if r.Errors == nil {
		r.Errors = map[string]error{}
	}
	r.Errors[key] = err
}

// finish updates the unit's counters and backoff and hands res over.
func (b *Bus) finish(p *poller, res *Result) {
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
	if res.Err != nil && fails > 0 {
		b.log.Warn("modbus unit did not answer: backing off", "unit", p.conf.Unit, "failures", fails, "retry_in", b.backoff(fails), "err", res.Err)
	}
	if alive && p.fn != nil {
		p.fn(*res)
	}
}

// write performs one write job on the bus goroutine.
func (b *Bus) write(ctx context.Context, j *writeJob) error {
	c, err := b.link()
	if err != nil {
		return err
	}
	defer b.pause(ctx)
	r := &j.reg
	_ = c.SetUnitId(j.unit)
	switch {
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
	b.mu.Lock()
	u := b.unit(j.unit)
	u.stats.Requests++
	if IsException(err) {
		u.stats.Exceptions++
	}
	b.mu.Unlock()
	if err != nil {
		if isLinkError(err) {
			b.closeLink(err)
		}
		return fmt.Errorf("writing %q to unit %d (%s %d): %w", r.Key, j.unit, r.Function, r.Address, err)
	}
	return nil
}
