// Package modbussim is a simulated Modbus TCP device (a server) for the
// demo, the tests and the benchmarks: units with coil, discrete-input,
// holding- and input-register tables whose values can be set directly or
// scripted (fixed values, ramps, counters, noise), units that stop
// answering (to test timeouts and backoff), and a log of every request
// served (to count merged requests).
//
//	s := modbussim.New()
//	modbussim.EnergyMeter(s.Unit(1))
//	if err := s.Listen("127.0.0.1:5020"); err != nil { ... }
//	defer s.Close()
package modbussim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/tbflow/tbflow/modbus"
)

// Modbus exception codes the server answers with.
const (
	ExIllegalFunction   = 0x01
	ExIllegalAddress    = 0x02
	ExIllegalValue      = 0x03
	ExGWTargetNoRespond = 0x0B
)

// Request is one request the server received.
type Request struct {
	Unit     uint8
	Function uint8 // the function code (1–6, 15, 16)
	Address  uint16
	Count    uint16
	// Answered is false for requests to a dead unit.
	Answered bool
}

// Server is a simulated Modbus TCP device with any number of units.
type Server struct {
	start time.Time

	mu      sync.Mutex
	ln      net.Listener
	units   map[uint8]*Unit
	conns   map[net.Conn]struct{}
	log     []Request
	logMax  int
	dropped int
	closed  bool
	wg      sync.WaitGroup
}

// New returns a server with no units; unknown unit ids are answered with
// the gateway exception "target device failed to respond" (0x0B).
func New() *Server {
	return &Server{start: time.Now(), units: map[uint8]*Unit{}, conns: map[net.Conn]struct{}{}, logMax: 1 << 20}
}

// Listen starts serving on addr ("127.0.0.1:0" picks a free port). A
// server can listen again after Close, on the same or another address,
// keeping its units (a device restart).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("modbussim: listening on %q: %w", addr, err)
	}
	s.mu.Lock()
	s.ln, s.closed = ln, false
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// Addr is the listening address (host:port), "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops listening, drops every connection and waits for the
// server's goroutines. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed || s.ln == nil {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Unit returns unit id, creating it (empty, answering zeros for
// unset addresses) if needed.
func (s *Server) Unit(id uint8) *Unit {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.units[id]
	if u == nil {
		u = newUnit(s.start, uint64(id))
		s.units[id] = u
	}
	return u
}

// Requests returns a copy of the requests served so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Count returns how many requests were received (answered or not).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log) + s.dropped
}

// ResetRequests clears the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.log, s.dropped = nil, 0
	s.mu.Unlock()
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	if len(s.log) < s.logMax {
		s.log = append(s.log, r)
	} else {
		s.dropped++
	}
	s.mu.Unlock()
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	hdr := make([]byte, 7)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:6]))
		if binary.BigEndian.Uint16(hdr[2:4]) != 0 || n < 2 || n > 254 {
			return // not Modbus TCP
		}
		pdu := make([]byte, n-1)
		if _, err := io.ReadFull(c, pdu); err != nil {
			return
		}
		unit := hdr[6]
		s.mu.Lock()
		u := s.units[unit]
		s.mu.Unlock()
		req := Request{Unit: unit, Function: pdu[0]}
		if len(pdu) >= 5 {
			req.Address = binary.BigEndian.Uint16(pdu[1:3])
			req.Count = binary.BigEndian.Uint16(pdu[3:5])
		}
		var resp []byte
		if u == nil {
			resp = exception(pdu[0], ExGWTargetNoRespond)
		} else {
			var dead bool
			resp, dead = u.handle(pdu)
			if dead {
				s.record(req)
				continue
			}
		}
		req.Answered = true
		s.record(req)
		out := make([]byte, 7, 7+len(resp))
		copy(out, hdr[:4])
		binary.BigEndian.PutUint16(out[4:6], uint16(len(resp)+1))
		out[6] = unit
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func exception(fc, code byte) []byte { return []byte{fc | 0x80, code} }

// Unit is one simulated unit (slave id).
type Unit struct {
	start time.Time

	mu       sync.Mutex
	coils    map[uint16]bool
	discrete map[uint16]bool
	holding  map[uint16]uint16
	input    map[uint16]uint16
	scripts  []script
	dead     bool
	strict   bool
	rng      *rand.Rand
}

type script struct {
	reg modbus.Register
	sig Signal
}

func newUnit(start time.Time, seed uint64) *Unit {
	return &Unit{
		start: start,
		coils: map[uint16]bool{}, discrete: map[uint16]bool{},
		holding: map[uint16]uint16{}, input: map[uint16]uint16{},
		rng: rand.New(rand.NewPCG(seed, 0x6d6f64627573)),
	}
}

// SetDead makes the unit read requests without ever answering (a device
// that is off, or a wrong unit id behind a serial gateway).
func (u *Unit) SetDead(dead bool) {
	u.mu.Lock()
	u.dead = dead
	u.mu.Unlock()
}

// SetStrict makes reads of addresses that were never set fail with the
// exception "illegal data address", as many real devices do.
func (u *Unit) SetStrict(strict bool) {
	u.mu.Lock()
	u.strict = strict
	u.mu.Unlock()
}

// SetWords sets raw registers of a register function from addr on.
func (u *Unit) SetWords(fn modbus.Function, addr uint16, words ...uint16) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.regTable(fn)
	for i, w := range words {
		t[addr+uint16(i)] = w
	}
}

// SetBits sets coils or discrete inputs from addr on.
func (u *Unit) SetBits(fn modbus.Function, addr uint16, bits ...bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.bitTable(fn)
	for i, b := range bits {
		t[addr+uint16(i)] = b
	}
}

// Words returns n raw registers of a register function from addr.
func (u *Unit) Words(fn modbus.Function, addr uint16, n int) []uint16 {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.regTable(fn)
	out := make([]uint16, n)
	for i := range out {
		out[i] = t[addr+uint16(i)]
	}
	return out
}

// Bit returns one coil or discrete input.
func (u *Unit) Bit(fn modbus.Function, addr uint16) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bitTable(fn)[addr]
}

// Set stores v in the registers or coil r maps, encoded as r says (the
// way a device would hold it).
func (u *Unit) Set(r modbus.Register, v any) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Function.IsBit() {
		b, err := modbus.EncodeBool(&r, v)
		if err != nil {
			return err
		}
		u.SetBits(r.Function, r.Address, b)
		return nil
	}
	if r.Type == modbus.Bit {
		cur := u.Words(r.Function, r.Address, 1)[0]
		w, err := modbus.EncodeBit(&r, cur, v)
		if err != nil {
			return err
		}
		u.SetWords(r.Function, r.Address, w)
		return nil
	}
	w, err := modbus.Encode(&r, v)
	if err != nil {
		return err
	}
	u.SetWords(r.Function, r.Address, w...)
	return nil
}

// Get decodes the current value of r.
func (u *Unit) Get(r modbus.Register) (any, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	if r.Function.IsBit() {
		return modbus.DecodeBit(&r, u.Bit(r.Function, r.Address)), nil
	}
	return modbus.Decode(&r, u.Words(r.Function, r.Address, r.Count()))
}

// Script makes r's value follow sig: it is computed afresh, from the time
// since the server was created, whenever a request reads it. A write to
// the register ends its script.
func (u *Unit) Script(r modbus.Register, sig Signal) error {
	if err := r.Check(); err != nil {
		return err
	}
	u.mu.Lock()
	v := sig(0, u.rng.Float64)
	u.mu.Unlock()
	if err := u.Set(r, v); err != nil {
		return err
	}
	u.mu.Lock()
	u.scripts = append(u.scripts, script{reg: r, sig: sig})
	u.mu.Unlock()
	return nil
}

func (u *Unit) regTable(fn modbus.Function) map[uint16]uint16 {
	if fn == modbus.Input {
		return u.input
	}
	return u.holding
}

func (u *Unit) bitTable(fn modbus.Function) map[uint16]bool {
	if fn == modbus.Discrete {
		return u.discrete
	}
	return u.coils
}

// refresh recomputes scripted values; u.mu is held.
func (u *Unit) refresh() {
	if len(u.scripts) == 0 {
		return
	}
	t := time.Since(u.start)
	for _, s := range u.scripts {
		r := s.reg
		v := s.sig(t, u.rng.Float64)
		if r.Function.IsBit() {
			b, err := modbus.EncodeBool(&r, v)
			if err == nil {
				u.bitTable(r.Function)[r.Address] = b
			}
			continue
		}
		w, err := modbus.Encode(&r, v)
		if err != nil {
			continue
		}
		tab := u.regTable(r.Function)
		for i, x := range w {
			tab[r.Address+uint16(i)] = x
		}
	}
}

// unscript ends the scripts of registers a write touches; u.mu is held.
func (u *Unit) unscript(fn modbus.Function, addr, count uint16) {
	kept := u.scripts[:0]
	for _, s := range u.scripts {
		r := s.reg
		if r.Function == fn && int(r.Address) < int(addr)+int(count) && int(addr) < int(r.Address)+r.Count() {
			continue
		}
		kept = append(kept, s)
	}
	u.scripts = kept
}

// handle answers one PDU; dead reports a unit that does not answer.
func (u *Unit) handle(pdu []byte) (resp []byte, dead bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dead {
		return nil, true
	}
	fc := pdu[0]
	p := pdu[1:]
	be := binary.BigEndian
	switch fc {
	case 1, 2:
		if len(p) != 4 {
			return exception(fc, ExIllegalValue), false
		}
		addr, n := be.Uint16(p), be.Uint16(p[2:])
		if n < 1 || n > modbus.MaxBits || int(addr)+int(n) > 0x10000 {
			return exception(fc, ExIllegalValue), false
		}
		fn := modbus.Coil
		if fc == 2 {
			fn = modbus.Discrete
		}
		u.refresh()
		t := u.bitTable(fn)
		out := make([]byte, 2+(int(n)+7)/8)
		out[0], out[1] = fc, byte((int(n)+7)/8)
		for i := 0; i < int(n); i++ {
			b, ok := t[addr+uint16(i)]
			if !ok && u.strict {
				return exception(fc, ExIllegalAddress), false
			}
			if b {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out, false
	case 3, 4:
		if len(p) != 4 {
			return exception(fc, ExIllegalValue), false
		}
		addr, n := be.Uint16(p), be.Uint16(p[2:])
		if n < 1 || n > modbus.MaxRegisters || int(addr)+int(n) > 0x10000 {
			return exception(fc, ExIllegalValue), false
		}
		fn := modbus.Holding
		if fc == 4 {
			fn = modbus.Input
		}
		u.refresh()
		t := u.regTable(fn)
		out := make([]byte, 2+2*int(n))
		out[0], out[1] = fc, byte(2*n)
		for i := 0; i < int(n); i++ {
			w, ok := t[addr+uint16(i)]
			if !ok && u.strict {
				return exception(fc, ExIllegalAddress), false
			}
			be.PutUint16(out[2+2*i:], w)
		}
		return out, false
	case 5:
		if len(p) != 4 {
			return exception(fc, ExIllegalValue), false
		}
		addr, v := be.Uint16(p), be.Uint16(p[2:])
		if v != 0xFF00 && v != 0 {
			return exception(fc, ExIllegalValue), false
		}
		if _, ok := u.coils[addr]; !ok && u.strict {
			return exception(fc, ExIllegalAddress), false
		}
		u.unscript(modbus.Coil, addr, 1)
		u.coils[addr] = v == 0xFF00
		return append([]byte{fc}, p...), false
	case 6:
		if len(p) != 4 {
			return exception(fc, ExIllegalValue), false
		}
		addr := be.Uint16(p)
		if _, ok := u.holding[addr]; !ok && u.strict {
			return exception(fc, ExIllegalAddress), false
		}
		u.unscript(modbus.Holding, addr, 1)
		u.holding[addr] = be.Uint16(p[2:])
		return append([]byte{fc}, p...), false
	case 15, 16:
		if len(p) < 5 {
			return exception(fc, ExIllegalValue), false
		}
		addr, n, bc := be.Uint16(p), be.Uint16(p[2:]), int(p[4])
		data := p[5:]
		if n < 1 || len(data) != bc || int(addr)+int(n) > 0x10000 {
			return exception(fc, ExIllegalValue), false
		}
		if fc == 15 {
			if bc != (int(n)+7)/8 || n > 1968 {
				return exception(fc, ExIllegalValue), false
			}
			u.unscript(modbus.Coil, addr, n)
			for i := 0; i < int(n); i++ {
				u.coils[addr+uint16(i)] = data[i/8]&(1<<(i%8)) != 0
			}
		} else {
			if bc != 2*int(n) || n > 123 {
				return exception(fc, ExIllegalValue), false
			}
			if u.strict {
				for i := 0; i < int(n); i++ {
					if _, ok := u.holding[addr+uint16(i)]; !ok {
						return exception(fc, ExIllegalAddress), false
					}
				}
			}
			u.unscript(modbus.Holding, addr, n)
			for i := 0; i < int(n); i++ {
				u.holding[addr+uint16(i)] = be.Uint16(data[2*i:])
			}
		}
		return []byte{fc, p[0], p[1], p[2], p[3]}, false
	}
	return exception(fc, ExIllegalFunction), false
}

// Signal computes a scripted value from the time since the server was
// created; rnd returns uniform numbers in [0, 1) for noise.
type Signal func(t time.Duration, rnd func() float64) any

// Fixed is a constant value.
func Fixed(v any) Signal { return func(time.Duration, func() float64) any { return v } }

// Ramp rises linearly from lo to hi over period, then starts again at lo
// (a sawtooth).
func Ramp(lo, hi float64, period time.Duration) Signal {
	return func(t time.Duration, _ func() float64) any {
		if period <= 0 {
			return lo
		}
		frac := float64(t%period) / float64(period)
		return lo + (hi-lo)*frac
	}
}

// Counter starts at start and grows by perSecond every second (an energy
// or pulse counter).
func Counter(start, perSecond float64) Signal {
	return func(t time.Duration, _ func() float64) any { return start + perSecond*t.Seconds() }
}

// Noise is center plus uniform noise of ±amplitude.
func Noise(center, amplitude float64) Signal {
	return func(_ time.Duration, rnd func() float64) any { return center + amplitude*(2*rnd()-1) }
}

// Sum adds signals' numeric values (a ramp with noise on top).
func Sum(sigs ...Signal) Signal {
	return func(t time.Duration, rnd func() float64) any {
		var s float64
		for _, g := range sigs {
			if f, ok := g(t, rnd).(float64); ok {
				s += f
			}
		}
		return s
	}
}

// EnergyMeterMap is the register map of the EnergyMeter profile.
var EnergyMeterMap = []modbus.Register{
	{Key: "voltage", Function: modbus.Input, Address: 0, Type: modbus.Float32},
	{Key: "current", Function: modbus.Input, Address: 2, Type: modbus.Float32},
	{Key: "power", Function: modbus.Input, Address: 4, Type: modbus.Float32},
	{Key: "frequency", Function: modbus.Input, Address: 6, Type: modbus.Float32},
	{Key: "energy", Function: modbus.Holding, Address: 0, Type: modbus.Float32},
	{Key: "powerLimit", Function: modbus.Holding, Address: 10, Type: modbus.Uint16},
	{Key: "relay", Function: modbus.Coil, Address: 0},
}

// EnergyMeter scripts u as a single-phase energy meter, float32 values in
// ABCD order (see EnergyMeterMap): input registers 0 voltage (V, 230 ± 2),
// 2 current (A, ramping 0–16 every minute), 4 active power (W, about
// 230 × current), 6 frequency (Hz, 50 ± 0.05); holding registers 0 energy
// (kWh, counting up) and 10 a writable power limit (W, uint16); coil 0 the
// relay (on).
func EnergyMeter(u *Unit) error {
	cur := Ramp(0, 16, time.Minute)
	sigs := []Signal{
		Noise(230, 2),
		cur,
		Sum(func(t time.Duration, rnd func() float64) any { return 230 * cur(t, rnd).(float64) }, Noise(0, 5)),
		Noise(50, 0.05),
		Counter(1234.5, 0.001),
	}
	var errs []error
	for i, s := range sigs {
		errs = append(errs, u.Script(EnergyMeterMap[i], s))
	}
	errs = append(errs, u.Set(EnergyMeterMap[5], 3680), u.Set(EnergyMeterMap[6], true))
	return errors.Join(errs...)
}
