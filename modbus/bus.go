package modbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
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
	// URL is the link: tcp://host:port (Modbus TCP), tcp+tls://host:port
	// (Modbus TCP Security), udp://host:port (Modbus TCP framing over UDP),
	// rtuovertcp://host:port and rtuoverudp://host:port (RTU frames over a
	// socket, serial gateways), asciiovertcp://host:port (ASCII frames over
	// TCP), rtu:///dev/ttyUSB0 and ascii:///dev/ttyUSB0 (RTU or ASCII over
	// a serial line).
	URL string
	// Serial line settings (rtu and ascii): speed in baud (default 19200),
	// data bits (default 8), parity "none", "even" or "odd", stop bits
	// (default 2 without parity, 1 with parity, as the RTU spec says).
	Speed    uint
	DataBits uint
	Parity   string
	StopBits uint
	// TLS settings (tcp+tls): the client's key pair and the CAs (or pinned
	// server certificates) that authenticate the server.
	TLSClientCert *tls.Certificate
	TLSRootCAs    *x509.CertPool
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
	// that cannot serve the protocol's 125 registers / 2000 bits. A device
	// that refuses a merged request with an exception gets it halved until
	// it answers, and the unit keeps the size that worked.
	MaxRegisters, MaxBits int
	// Retries is how many times a failed request is sent again: after no
	// answer when RetryOnEmpty is set, after a malformed answer (bad CRC,
	// wrong transaction or unit id) when RetryOnInvalid is set.
	Retries                      int
	RetryOnEmpty, RetryOnInvalid bool
	// PerUnit gives every unit its own connection (tcp, tcp+tls and udp
	// only), so a unit that does not answer costs the others nothing. By
	// default all units share one connection and a silent unit is skipped
	// (a circuit breaker) until its back-off ends.
	PerUnit bool
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
	// MaxRegisters and MaxBits lower the bus's request limits for this
	// poller's device (0: the bus's).
	MaxRegisters, MaxBits int
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
	Retries     int64
	LastLatency time.Duration // of the last successful poll
	LastError   string
	// BackoffUntil is when the unit is tried again, zero when it is fine.
	BackoffUntil time.Time
	// MaxRegisters and MaxBits are the request sizes the unit was found
	// to accept after refusing bigger ones (0: not limited so far).
	MaxRegisters, MaxBits int
}

// Bus polls and writes units over one link, one request at a time (or one
// per unit at a time with PerUnit).
type Bus struct {
	cfg    Config
	log    *slog.Logger
	scheme string

	mu       sync.Mutex
	pollers  map[int]*poller
	nextID   int
	units    map[uint8]*unitState
	lanes    map[int]*lane
	watchers map[int]func(up bool, err error)
	started  bool
	closed   bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	linkErr  error
	linkUp   bool
}

type poller struct {
	id    int
	conf  PollConfig
	reqs  []Request
	limit [2]int // the register and bit limits reqs were planned with
	fn    func(Result)
	next  time.Time
}

type unitState struct {
	stats UnitStats
	fails int
}

// job is a write or a read on demand, queued ahead of polls.
type job struct {
	unit  uint8
	reg   Register
	words []uint16
	coil  bool
	coils []bool
	value any
	read  []Register // a read on demand when set
	res   Result
	done  chan error
}

// NewBus checks cfg and returns a bus; it does no I/O until Start.
func NewBus(cfg Config) (*Bus, error) {
	scheme, _, ok := strings.Cut(cfg.URL, "://")
	if !ok {
		return nil, fmt.Errorf("modbus url %q: want tcp://host:port, rtuovertcp://host:port or rtu:///dev/tty…", cfg.URL)
	}
	switch scheme {
	case "tcp", "tcp+tls", "udp", "rtuovertcp", "rtuoverudp", "rtu", "ascii", "asciiovertcp":
	default:
		return nil, fmt.Errorf("modbus url %q: unknown scheme %q", cfg.URL, scheme)
	}
	if cfg.PerUnit && scheme != "tcp" && scheme != "tcp+tls" && scheme != "udp" {
		return nil, fmt.Errorf("modbus url %q: a connection per unit needs tcp, tcp+tls or udp (a serial line is one link)", cfg.URL)
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
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Bus{
		cfg: cfg, log: lg, scheme: scheme,
		pollers:  map[int]*poller{},
		units:    map[uint8]*unitState{},
		lanes:    map[int]*lane{},
		watchers: map[int]func(bool, error){},
	}, nil
}

// Config returns the bus's configuration with defaults filled in.
func (b *Bus) Config() Config { return b.cfg }

// Start starts the bus. The link is opened by the first request and
// reopened after network errors, so Start does not fail when the device
// is unreachable. Start after Close fails with ErrClosed.
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
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.done = make(chan struct{})
	if !b.cfg.PerUnit {
		b.laneLocked(0)
	}
	for _, p := range b.pollers {
		b.laneLocked(p.conf.Unit)
	}
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
	go func() {
		b.wg.Wait()
		close(done)
	}()
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
	return b.linkUp && !b.closed, b.linkErr
}

// Watch calls fn each time the link opens (up, nil) or fails to open or
// breaks (false, the error). fn runs on a bus goroutine: it must not block.
// The returned function stops the calls.
func (b *Bus) Watch(fn func(up bool, err error)) (remove func()) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.watchers[id] = fn
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.watchers, id)
		b.mu.Unlock()
	}
}

// AddPoller polls pc.Registers of pc.Unit every pc.Period and calls fn
// with each result. fn runs on a bus goroutine: it must not block (hand
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
	p := &poller{conf: pc, fn: fn, next: time.Now()}
	b.mu.Lock()
	b.nextID++
	p.id = b.nextID
	b.replanLocked(p)
	b.pollers[p.id] = p
	b.unit(pc.Unit)
	var l *lane
	if b.started && !b.closed {
		l = b.laneLocked(pc.Unit)
	}
	b.mu.Unlock()
	if l != nil {
		l.poke()
	}
	return func() {
		b.mu.Lock()
		delete(b.pollers, p.id)
		b.mu.Unlock()
	}, nil
}

// limits returns the request limits for a poller of unit: the bus's,
// lowered by the poller's and by what the unit was found to accept.
func (b *Bus) limitsLocked(pc *PollConfig) (regs, bits int) {
	regs, bits = MaxRegisters, MaxBits
	low := func(cur, v int) int {
		if v > 0 && v < cur {
			return v
		}
		return cur
	}
	regs, bits = low(regs, b.cfg.MaxRegisters), low(bits, b.cfg.MaxBits)
	regs, bits = low(regs, pc.MaxRegisters), low(bits, pc.MaxBits)
	if u := b.units[pc.Unit]; u != nil {
		regs, bits = low(regs, u.stats.MaxRegisters), low(bits, u.stats.MaxBits)
	}
	return regs, bits
}

// replanLocked plans p's requests again when its limits changed.
func (b *Bus) replanLocked(p *poller) {
	r, bt := b.limitsLocked(&p.conf)
	if p.reqs != nil && p.limit == [2]int{r, bt} {
		return
	}
	p.limit = [2]int{r, bt}
	p.reqs = Plan(p.conf.Registers, b.cfg.MaxGap, r, bt)
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
// poll waiting. Coils take a bool (a bits entry of coils a list of
// bools); holding registers any value Encode accepts; a bit of a holding
// register is read, changed and written back. A Modbus exception comes
// back as an error wrapping the library's exception error (see
// IsException); a link that cannot be opened as one wrapping ErrLinkDown.
func (b *Bus) Write(ctx context.Context, unit uint8, r Register, v any) error {
	if err := r.Check(); err != nil {
		return err
	}
	if !r.Function.Writable() {
		return fmt.Errorf("writing %q: a %s is read-only", r.Key, r.Function)
	}
	j := &job{unit: unit, reg: r, value: v, done: make(chan error, 1)}
	var err error
	switch {
	case r.Function == Coil && r.Type == Bits:
		list, ok := v.([]any)
		if !ok || len(list) > r.Length {
			return fmt.Errorf("writing %q: want a list of at most %d bools", r.Key, r.Length)
		}
		j.coils = make([]bool, len(list))
		var offs []int
		if r.Compat == TBGateway {
			// Written so that the Gateway's reading gives the list back.
			j.coils = make([]bool, r.Length)
			offs = gatewayCoilOffsets(r.Length)
		}
		for i, x := range list {
			c, err := EncodeBool(&r, x)
			if err != nil {
				return err
			}
			switch {
			case offs == nil:
				j.coils[i] = c
			case i < len(offs) && offs[i] >= 0:
				j.coils[offs[i]] = c
			}
		}
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
	return b.submit(ctx, j)
}

// Read reads regs of unit now, ahead of any poll waiting (a read on
// demand), and returns the result as a poll would. A unit that does not
// answer, or a link that cannot be opened, is an error.
func (b *Bus) Read(ctx context.Context, unit uint8, regs []Register) (Result, error) {
	regs = append([]Register(nil), regs...)
	if err := CheckMap(regs); err != nil {
		return Result{}, err
	}
	if len(regs) == 0 {
		return Result{}, errors.New("nothing to read")
	}
	j := &job{unit: unit, read: regs, done: make(chan error, 1)}
	if err := b.submit(ctx, j); err != nil {
		return j.res, err
	}
	return j.res, j.res.Err
}

func (b *Bus) submit(ctx context.Context, j *job) error {
	b.mu.Lock()
	if !b.started || b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	l := b.laneLocked(j.unit)
	b.mu.Unlock()
	select {
	case l.jobs <- j:
	case <-l.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		// The request is on the wire already; its outcome is not waited for.
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
