package modbus_test

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbustest"
)

func seqHolding(n int) modbustest.Tables {
	t := modbustest.Tables{Holding: make([]uint16, n)}
	for i := range t.Holding {
		t.Holding[i] = uint16(i)
	}
	return t
}

func seqMap(n int) []modbus.Register {
	regs := make([]modbus.Register, n)
	for i := range regs {
		regs[i] = modbus.Register{Key: fmt.Sprintf("h%d", i), Function: modbus.Holding, Address: uint16(i)}
	}
	return regs
}

func unitStats(b *modbus.Bus, unit uint8) modbus.UnitStats {
	for _, s := range b.Stats() {
		if s.Unit == unit {
			return s
		}
	}
	return modbus.UnitStats{}
}

// TestPeerCappedDevice: a pymodbus device that refuses reads of more than
// 64 registers. 200 adjacent registers make two requests (125 + 75), both
// refused; the bus halves them, reads every value in the same poll, and
// from then on sends requests the device takes, with no more exceptions.
func TestPeerCappedDevice(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{MaxRegisters: 64, Units: map[uint8]modbustest.Tables{1: seqHolding(200)}})
	b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: 2 * time.Second})
	c := newCollector()
	remove, err := b.AddPoller(modbus.PollConfig{Unit: 1, Period: 10 * time.Millisecond, Registers: seqMap(200)}, c.add)
	if err != nil {
		t.Fatal(err)
	}
	res := c.wait(t, "3 polls", func(r []modbus.Result) bool { return len(r) >= 3 })
	remove()
	for i, r := range res[:3] {
		if r.Err != nil || len(r.Errors) != 0 || len(r.Values) != 200 || r.Values["h199"] != int64(199) {
			t.Fatalf("poll %d: %v %v (%d values)", i, r.Err, r.Errors, len(r.Values))
		}
	}
	st := unitStats(b, 1)
	if st.Exceptions != 2 || st.MaxRegisters == 0 || st.MaxRegisters > 64 {
		t.Errorf("stats %+v: want the two refusals only and a learned limit ≤ 64", st)
	}
	if res[1].Requests != 4 {
		t.Errorf("later polls send %d requests, want 4", res[1].Requests)
	}
	// A second poller of the unit starts with the size that worked.
	c2 := newCollector()
	remove, _ = b.AddPoller(modbus.PollConfig{Unit: 1, Period: 10 * time.Millisecond, Registers: seqMap(130)}, c2.add)
	r2 := c2.wait(t, "a poll", func(r []modbus.Result) bool { return len(r) >= 1 })[0]
	remove()
	if r2.Err != nil || len(r2.Values) != 130 || unitStats(b, 1).Exceptions != 2 {
		t.Errorf("second poller: %v, %d values, stats %+v", r2.Err, len(r2.Values), unitStats(b, 1))
	}
}

// TestPeerMaxRegistersSetting: with the limit set, no request is refused.
func TestPeerMaxRegistersSetting(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{MaxRegisters: 64, Units: map[uint8]modbustest.Tables{1: seqHolding(200)}})
	b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: 2 * time.Second})
	c := newCollector()
	remove, _ := b.AddPoller(modbus.PollConfig{Unit: 1, Period: 10 * time.Millisecond, Registers: seqMap(200), MaxRegisters: 64}, c.add)
	r := c.wait(t, "a poll", func(r []modbus.Result) bool { return len(r) >= 1 })[0]
	remove()
	if r.Err != nil || len(r.Values) != 200 || r.Requests != 4 || unitStats(b, 1).Exceptions != 0 {
		t.Errorf("poll %v: %d values in %d requests, stats %+v", r.Err, len(r.Values), r.Requests, unitStats(b, 1))
	}
}

// TestPeerLinkOutageReachesEveryPoller: when the device goes away, the
// attempt that finds the link down fails every poller of the link at once
// (the same attempt time), not only the one whose turn it was.
func TestPeerLinkOutageReachesEveryPoller(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: seqHolding(10), 2: seqHolding(10)}})
	b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
	var cs []*collector
	for _, u := range []uint8{1, 1, 2} {
		c := newCollector()
		cs = append(cs, c)
		remove, _ := b.AddPoller(modbus.PollConfig{Unit: u, Period: 100 * time.Millisecond, Registers: seqMap(5)}, c.add)
		defer remove()
	}
	for _, c := range cs {
		c.wait(t, "a poll", func(r []modbus.Result) bool { return okCount(r) >= 1 })
	}
	var ups, downs int
	var wmu sync.Mutex
	defer b.Watch(func(up bool, err error) {
		wmu.Lock()
		defer wmu.Unlock()
		if up {
			ups++
		} else {
			downs++
		}
	})()
	srv.Stop()
	down := func(r []modbus.Result) bool {
		return len(r) > 0 && errors.Is(r[len(r)-1].Err, modbus.ErrLinkDown)
	}
	var times []time.Time
	for _, c := range cs {
		r := c.wait(t, "the outage", down)
		for _, x := range r {
			if errors.Is(x.Err, modbus.ErrLinkDown) {
				times = append(times, x.Time)
				break
			}
		}
	}
	if !times[0].Equal(times[1]) || !times[0].Equal(times[2]) {
		t.Errorf("the pollers learnt of the outage at %v: want one attempt for all", times)
	}
	wmu.Lock()
	if downs == 0 {
		t.Error("no watcher call for the outage")
	}
	wmu.Unlock()
	srv.Start()
	for _, c := range cs {
		n := len(c.wait(t, "", func([]modbus.Result) bool { return true }))
		c.wait(t, "a poll after the restart", func(r []modbus.Result) bool { return len(r) > n && okCount(r[n:]) >= 1 })
	}
}

// maxGap is the longest pause between two consecutive results.
func maxGap(res []modbus.Result) time.Duration {
	var g time.Duration
	for i := 1; i < len(res); i++ {
		g = max(g, res[i].Time.Sub(res[i-1].Time))
	}
	return g
}

// TestPeerSilentUnitPerUnitConnections: with a connection per unit, a unit
// pymodbus never answers (it is not in its table) does not hold up the
// live one at all: the live unit's polls keep their 20 ms period while the
// silent unit waits out 400 ms timeouts on its own connection.
func TestPeerSilentUnitPerUnitConnections(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: seqHolding(10)}})
	b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: 400 * time.Millisecond, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, PerUnit: true})
	live, dead := newCollector(), newCollector()
	r1, _ := b.AddPoller(modbus.PollConfig{Unit: 1, Period: 20 * time.Millisecond, Registers: seqMap(5)}, live.add)
	defer r1()
	r2, _ := b.AddPoller(modbus.PollConfig{Unit: 9, Period: 20 * time.Millisecond, Registers: seqMap(5)}, dead.add)
	defer r2()
	dead.wait(t, "3 timeouts", func(r []modbus.Result) bool { return len(r) >= 3 })
	res := live.wait(t, "live polls", func(r []modbus.Result) bool { return len(r) >= 2 })
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("live unit: %v", r.Err)
		}
	}
	if g := maxGap(res); g >= 400*time.Millisecond {
		t.Errorf("the live unit waited %v between polls: held up by the silent one", g)
	}
}

// dropProxy forwards Modbus TCP to upstream, dropping the first drop
// answers and corrupting the unit id of the next corrupt ones.
func dropProxy(t *testing.T, upstream string, drop, corrupt int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() {
				defer c.Close()
				hdr := make([]byte, 6)
				for {
					if _, err := io.ReadFull(u, hdr); err != nil {
						return
					}
					body := make([]byte, binary.BigEndian.Uint16(hdr[4:]))
					if _, err := io.ReadFull(u, body); err != nil {
						return
					}
					mu.Lock()
					skip := drop > 0
					bad := !skip && corrupt > 0
					if skip {
						drop--
					} else if bad {
						corrupt--
						body[0] ^= 0xFF // the unit id
					}
					mu.Unlock()
					if skip {
						continue
					}
					if _, err := c.Write(append(append([]byte(nil), hdr...), body...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestPeerRetries: an answer lost on the way (or a malformed one) is sent
// again when retries allow it, so the poll succeeds; without retries it
// fails.
func TestPeerRetries(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: seqHolding(10)}})
	for _, tc := range []struct {
		name          string
		drop, corrupt int
		cfg           modbus.Config
		ok            bool
	}{
		{"empty, no retries", 1, 0, modbus.Config{}, false},
		{"empty, retried", 1, 0, modbus.Config{Retries: 2, RetryOnEmpty: true}, true},
		{"empty, retries only on invalid", 1, 0, modbus.Config{Retries: 2, RetryOnInvalid: true}, false},
		{"invalid, retried", 0, 1, modbus.Config{Retries: 1, RetryOnInvalid: true}, true},
		{"invalid, no retries", 0, 1, modbus.Config{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL, cfg.Timeout = "tcp://"+dropProxy(t, srv.Addr, tc.drop, tc.corrupt), 300*time.Millisecond
			b := newBus(t, cfg)
			r, err := b.Read(context.Background(), 1, seqMap(3))
			if tc.ok != (err == nil) || (err == nil && r.Values["h2"] != int64(2)) {
				t.Errorf("read: %v %v", r.Values, err)
			}
			if st := unitStats(b, 1); tc.ok && st.Retries == 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestPeerTypesAndExactScaling reads values pymodbus's own payload builder
// encoded: scaled integers come out as the decimal the scale says, and the
// new types decode.
func TestPeerTypesAndExactScaling(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: {}}, Builder: `
b = BinaryPayloadBuilder(byteorder=Endian.Big, wordorder=Endian.Big)
b.add_16bit_uint(2301)
b.add_16bit_int(-405)
b.add_16bit_float(12.34375)
b.add_16bit_int(-2)
b.add_32bit_uint(123456789)
b.add_string("0A0B")
units[1]["holding"] = b.to_registers()
units[1]["coils"] = [True, False, True, True]
`})
	two := 2
	regs := []modbus.Register{
		{Key: "voltage", Function: modbus.Holding, Address: 0, Scale: 0.1},
		{Key: "voltageDiv", Function: modbus.Holding, Address: 0, Divider: 10},
		{Key: "temp", Function: modbus.Holding, Address: 1, Type: modbus.Int16, Scale: 0.01, Offset: 0.5},
		{Key: "half", Function: modbus.Holding, Address: 2, Type: modbus.Float16},
		{Key: "i8", Function: modbus.Holding, Address: 3, Type: modbus.Int8},
		{Key: "u8", Function: modbus.Holding, Address: 3, Type: modbus.Uint8},
		{Key: "energy", Function: modbus.Holding, Address: 4, Type: modbus.Uint32, Divider: 1000, Round: &two},
		{Key: "raw", Function: modbus.Holding, Address: 6, Type: modbus.Bytes, Length: 2},
		{Key: "flags", Function: modbus.Holding, Address: 1, Type: modbus.Bits, Length: 4},
		{Key: "coils", Function: modbus.Coil, Address: 0, Type: modbus.Bits, Length: 4},
	}
	b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: 2 * time.Second})
	r, err := b.Read(context.Background(), 1, regs)
	if err != nil || len(r.Errors) > 0 {
		t.Fatal(err, r.Errors)
	}
	want := map[string]any{"voltage": 230.1, "voltageDiv": 230.1, "temp": -3.55, "half": 12.34375, "i8": int64(-2), "u8": int64(254),
		"energy": 123456.79, "raw": "30413042"}
	for k, v := range want {
		if r.Values[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r.Values[k], v)
		}
	}
	// -405 is 0xFE6B: bits 0, 1, 3 set, 2 clear.
	if got := fmt.Sprint(r.Values["flags"], r.Values["coils"]); got != "[true true false true] [true false true true]" {
		t.Errorf("bits %s", got)
	}
}

// TestPeerTransports reads the same table over every transport pymodbus
// serves: UDP, RTU frames over TCP and UDP, ASCII frames over TCP, and RTU
// and ASCII over a serial line (a socat pty pair).
func TestPeerTransports(t *testing.T) {
	for _, tr := range []string{"udp", "rtuovertcp", "rtuoverudp", "asciiovertcp", "rtu", "ascii"} {
		t.Run(tr, func(t *testing.T) {
			srv := modbustest.Start(t, modbustest.Spec{Transport: tr, Units: map[uint8]modbustest.Tables{3: seqHolding(20)}})
			b := newBus(t, modbus.Config{URL: srv.URL(), Timeout: 2 * time.Second, Speed: 19200, Parity: "none", StopBits: 1})
			r, err := b.Read(context.Background(), 3, seqMap(20))
			if err != nil || r.Values["h19"] != int64(19) {
				t.Fatalf("%s read: %v %v", tr, r.Values, err)
			}
			reg := modbus.Register{Key: "w", Function: modbus.Holding, Address: 7, Type: modbus.Uint16}
			if err := b.Write(context.Background(), 3, reg, 4242); err != nil {
				t.Fatal(err)
			}
			r, err = b.Read(context.Background(), 3, []modbus.Register{reg})
			if err != nil || r.Values["w"] != int64(4242) {
				t.Fatalf("%s read back: %v %v", tr, r.Values, err)
			}
		})
	}
}

// TestPeerTLS reads over Modbus/TCP Security: socat terminates TLS with
// mutual authentication in front of pymodbus.
func TestPeerTLS(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: seqHolding(20)}})
	front := modbustest.StartTLSFront(t, srv.Addr)
	b := newBus(t, modbus.Config{URL: "tcp+tls://" + front.Addr, Timeout: 2 * time.Second, TLSClientCert: &front.ClientCert, TLSRootCAs: front.RootCAs})
	r, err := b.Read(context.Background(), 1, seqMap(20))
	if err != nil || r.Values["h19"] != int64(19) {
		t.Fatalf("read over TLS: %v %v", r.Values, err)
	}
	// Without the pinned server certificate the link does not open.
	bad := newBus(t, modbus.Config{URL: "tcp+tls://" + front.Addr, Timeout: 2 * time.Second, TLSClientCert: &front.ClientCert, TLSRootCAs: x509.NewCertPool()})
	if _, err := bad.Read(context.Background(), 1, seqMap(2)); !errors.Is(err, modbus.ErrLinkDown) {
		t.Errorf("read with an unknown server certificate: %v", err)
	}
}
