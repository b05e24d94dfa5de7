package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	mb "github.com/simonvetter/modbus"
)

// client is what a lane needs of a Modbus client; *mb.ModbusClient has it,
// and so has the ASCII client of this package.
type client interface {
	Open() error
	Close() error
	SetUnitId(id uint8) error
	ReadCoils(addr, quantity uint16) ([]bool, error)
	ReadDiscreteInputs(addr, quantity uint16) ([]bool, error)
	ReadRegisters(addr, quantity uint16, regType mb.RegType) ([]uint16, error)
	ReadRegister(addr uint16, regType mb.RegType) (uint16, error)
	WriteCoil(addr uint16, value bool) error
	WriteCoils(addr uint16, values []bool) error
	WriteRegister(addr uint16, value uint16) error
	WriteRegisters(addr uint16, values []uint16) error
}

// A lane is one connection and the goroutine that sends its requests one
// at a time: the bus has one lane, or one per unit with PerUnit.
type lane struct {
	b    *Bus
	key  int
	ctx  context.Context
	jobs chan *job
	wake chan struct{}

	// owned by the lane's goroutine
	client    client
	linkUntil time.Time
	linkFails int
}

func (b *Bus) laneKey(unit uint8) int {
	if b.cfg.PerUnit {
		return int(unit) + 1
	}
	return 0
}

// laneLocked returns the lane of unit, starting it when it is new.
func (b *Bus) laneLocked(unit uint8) *lane {
	k := b.laneKey(unit)
	if l := b.lanes[k]; l != nil {
		return l
	}
	l := &lane{b: b, key: k, ctx: b.ctx, jobs: make(chan *job), wake: make(chan struct{}, 1)}
	b.lanes[k] = l
	b.wg.Add(1)
	go l.run()
	return l
}

func (b *Bus) unit(id uint8) *unitState {
	u := b.units[id]
	if u == nil {
		u = &unitState{stats: UnitStats{Unit: id}}
		b.units[id] = u
	}
	return u
}

func (l *lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lane) run() {
	defer l.b.wg.Done()
	defer l.closeLink(nil)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case j := <-l.jobs:
			l.do(j)
			continue
		default:
		}
		p, due := l.nextDue()
		now := time.Now()
		if p != nil && !due.After(now) {
			l.poll(p, now)
			continue
		}
		wait := time.Hour
		if p != nil {
			wait = due.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-l.ctx.Done():
			return
		case j := <-l.jobs:
			l.do(j)
		case <-l.wake:
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

// nextDue returns the lane's poller due first: its own schedule, but not
// before its unit's backoff (or the link's) ends.
func (l *lane) nextDue() (*poller, time.Time) {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	var best *poller
	var bestDue time.Time
	for _, p := range b.pollers {
		if b.laneKey(p.conf.Unit) != l.key {
			continue
		}
		due := p.next
		if u := b.units[p.conf.Unit]; u != nil && u.stats.BackoffUntil.After(due) {
			due = u.stats.BackoffUntil
		}
		if l.linkUntil.After(due) {
			due = l.linkUntil
		}
		if best == nil || due.Before(bestDue) || (due.Equal(bestDue) && p.id < best.id) {
			best, bestDue = p, due
		}
	}
	return best, bestDue
}

func (l *lane) newClient() (client, error) {
	cfg := &l.b.cfg
	switch l.b.scheme {
	case "ascii", "asciiovertcp":
		return newASCIIClient(cfg)
	}
	parity := mb.PARITY_NONE
	switch cfg.Parity {
	case "even":
		parity = mb.PARITY_EVEN
	case "odd":
		parity = mb.PARITY_ODD
	}
	return mb.NewClient(&mb.ClientConfiguration{
		URL: cfg.URL, Speed: cfg.Speed, DataBits: cfg.DataBits, Parity: parity, StopBits: cfg.StopBits,
		Timeout: cfg.Timeout, TLSClientCert: cfg.TLSClientCert, TLSRootCAs: cfg.TLSRootCAs,
		Logger: log.New(io.Discard, "", 0),
	})
}

// link opens the link if it is closed.
func (l *lane) link() (client, error) {
	if l.client != nil {
		return l.client, nil
	}
	b := l.b
	c, err := l.newClient()
	if err == nil {
		err = c.Open()
	}
	if err != nil {
		l.linkFails++
		l.linkUntil = time.Now().Add(b.backoff(l.linkFails))
		err = fmt.Errorf("%w: opening %s: %v", ErrLinkDown, b.cfg.URL, err)
		l.setLink(false, err)
		return nil, err
	}
	if l.linkFails > 0 {
		b.log.Info("modbus link open again", "url", b.cfg.URL, "after_failures", l.linkFails)
	}
	l.linkFails, l.linkUntil = 0, time.Time{}
	l.client = c
	l.setLink(true, nil)
	return c, nil
}

// setLink records the link's state and tells the watchers.
func (l *lane) setLink(up bool, err error) {
	b := l.b
	b.mu.Lock()
	b.linkUp, b.linkErr = up, err
	ws := make([]func(bool, error), 0, len(b.watchers))
	for _, w := range b.watchers {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	for _, w := range ws {
		w(up, err)
	}
}

// closeLink drops the link after a network error; the next request
// reopens it.
func (l *lane) closeLink(cause error) {
	if l.client == nil {
		return
	}
	_ = l.client.Close()
	l.client = nil
	if cause != nil {
		l.b.log.Warn("modbus link closed after an error", "url", l.b.cfg.URL, "err", cause)
		l.setLink(false, cause)
	} else {
		l.b.mu.Lock()
		l.b.linkUp = false
		l.b.mu.Unlock()
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

// isInvalid reports an answer that came but was malformed.
func isInvalid(err error) bool {
	return errors.Is(err, mb.ErrBadCRC) || errors.Is(err, mb.ErrShortFrame) || errors.Is(err, mb.ErrProtocolError) ||
		errors.Is(err, mb.ErrBadUnitId) || errors.Is(err, mb.ErrBadTransactionId) || errors.Is(err, mb.ErrUnknownProtocolId) ||
		errors.Is(err, mb.ErrUnexpectedParameters) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (l *lane) pause() {
	if l.b.cfg.Delay <= 0 {
		return
	}
	t := time.NewTimer(l.b.cfg.Delay)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
	case <-t.C:
	}
}

// send sends one read request, again as the retry settings say.
func (l *lane) send(unit uint8, r Request) (words []uint16, bits []bool, err error) {
	cfg := &l.b.cfg
	for attempt := 0; ; attempt++ {
		var c client
		c, err = l.link()
		if err != nil {
			return nil, nil, err
		}
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
		if err == nil || attempt >= cfg.Retries || l.ctx.Err() != nil {
			return words, bits, err
		}
		empty, invalid := IsTimeout(err), isInvalid(err)
		if !(empty && cfg.RetryOnEmpty) && !(invalid && cfg.RetryOnInvalid) {
			return words, bits, err
		}
		l.b.mu.Lock()
		l.b.unit(unit).stats.Retries++
		l.b.mu.Unlock()
		if invalid {
			// The stream may hold the rest of a bad frame: start afresh.
			l.closeLink(nil)
		}
		l.pause()
	}
}
