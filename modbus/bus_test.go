package modbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
)

// waitLimit guards against hangs; it is not a performance assertion.
const waitLimit = 30 * time.Second

// collector gathers a poller's results.
type collector struct {
	mu  sync.Mutex
	res []modbus.Result
	ch  chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) add(r modbus.Result) {
	c.mu.Lock()
	c.res = append(c.res, r)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// wait returns the results once cond holds for them.
func (c *collector) wait(t *testing.T, what string, cond func([]modbus.Result) bool) []modbus.Result {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		res := append([]modbus.Result(nil), c.res...)
		c.mu.Unlock()
		if cond(res) {
			return res
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("waiting for %s: %d results, last %+v", what, len(res), last(res))
		}
	}
}

func last(res []modbus.Result) any {
	if len(res) == 0 {
		return nil
	}
	return res[len(res)-1]
}

func okCount(res []modbus.Result) int {
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n
}

func startSim(t *testing.T) *modbussim.Server {
	t.Helper()
	s := modbussim.New()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newBus(t *testing.T, cfg modbus.Config) *modbus.Bus {
	t.Helper()
	b, err := modbus.NewBus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return b
}

// testMap: 100 adjacent holding registers, four float32 input registers,
// ten coils and a status word with a bit and labels.
func testMap() []modbus.Register {
	var regs []modbus.Register
	for i := range 100 {
		regs = append(regs, modbus.Register{Key: "h" + itoa(i), Function: modbus.Holding, Address: uint16(100 + i)})
	}
	for i := range 4 {
		regs = append(regs, modbus.Register{Key: "f" + itoa(i), Function: modbus.Input, Address: uint16(2 * i), Type: modbus.Float32, Order: modbus.CDAB})
	}
	for i := range 10 {
		regs = append(regs, modbus.Register{Key: "c" + itoa(i), Function: modbus.Coil, Address: uint16(i)})
	}
	regs = append(regs,
		modbus.Register{Key: "state", Function: modbus.Input, Address: 20, Labels: map[int64]string{0: "idle", 1: "run"}},
		modbus.Register{Key: "alarm", Function: modbus.Input, Address: 21, Type: modbus.Bit, Bit: 2},
	)
	return regs
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func fillTestUnit(t *testing.T, u *modbussim.Unit) {
	t.Helper()
	for i, r := range testMap() {
		var v any
		switch {
		case r.Function == modbus.Coil:
			v = i%2 == 0
		case r.Type == modbus.Float32:
			v = 1.5 * float64(i)
		case r.Key == "state":
			v = "run"
		case r.Key == "alarm":
			v = true
		default:
			v = i
		}
		if err := u.Set(r, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBusMergesRequests counts the requests the server sees: the 116
// entries of testMap take three requests per poll (coils, holding, input
// with a gap of 12 allowed), not 116.
func TestBusMergesRequests(t *testing.T) {
	s := startSim(t)
	fillTestUnit(t, s.Unit(3))
	b := newBus(t, modbus.Config{URL: "tcp://" + s.Addr(), MaxGap: 16})
	c := newCollector()
	remove, err := b.AddPoller(modbus.PollConfig{Unit: 3, Period: 5 * time.Millisecond, Registers: testMap()}, c.add)
	if err != nil {
		t.Fatal(err)
	}
	res := c.wait(t, "3 polls", func(r []modbus.Result) bool { return len(r) >= 3 })
	remove()
	for _, r := range res[:3] {
		if r.Err != nil || len(r.Errors) != 0 {
			t.Fatalf("poll failed: %v %v", r.Err, r.Errors)
		}
		if r.Requests != 3 {
			t.Errorf("poll sent %d requests, want 3", r.Requests)
		}
	}
	v := res[0].Values
	if len(v) != 116 || v["h0"] != int64(0) || v["h99"] != int64(99) || v["f1"] != 151.5 || v["c0"] != true || v["c1"] != false ||
		v["state"] != "run" || v["alarm"] != true {
		t.Errorf("values %v", v)
	}
	reqs := s.Requests()
	want := []modbussim.Request{
		{Unit: 3, Function: 1, Address: 0, Count: 10, Answered: true},
		{Unit: 3, Function: 3, Address: 100, Count: 100, Answered: true},
		{Unit: 3, Function: 4, Address: 0, Count: 22, Answered: true},
	}
	for i := range 9 {
		if reqs[i] != want[i%3] {
			t.Errorf("request %d = %+v, want %+v", i, reqs[i], want[i%3])
		}
	}
	plan, _ := b.Requests(testMap())
	if len(plan) != 3 {
		t.Errorf("plan has %d requests", len(plan))
	}
	st := b.Stats()
	if len(st) != 1 || st[0].Unit != 3 || st[0].Polls < 3 || st[0].Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestBusSplitsRefusedGaps: a device that refuses reads of unmapped
// addresses gets its merged request split, once, and every value arrives.
func TestBusSplitsRefusedGaps(t *testing.T) {
	s := startSim(t)
	u := s.Unit(1)
	u.SetStrict(true)
	regs := []modbus.Register{
		{Key: "a", Function: modbus.Holding, Address: 0},
		{Key: "b", Function: modbus.Holding, Address: 5},
		{Key: "c", Function: modbus.Holding, Address: 6},
	}
	for i, r := range regs {
		_ = u.Set(r, i+1)
	}
	b := newBus(t, modbus.Config{URL: "tcp://" + s.Addr(), MaxGap: 10})
	c := newCollector()
	remove, _ := b.AddPoller(modbus.PollConfig{Unit: 1, Period: 5 * time.Millisecond, Registers: regs}, c.add)
	res := c.wait(t, "2 polls", func(r []modbus.Result) bool { return len(r) >= 2 })
	remove()
	if r := res[0]; r.Err != nil || len(r.Errors) != 0 || r.Values["a"] != int64(1) || r.Values["c"] != int64(3) || r.Requests != 3 {
		t.Fatalf("first poll %+v", r)
	}
	if r := res[1]; r.Err != nil || len(r.Values) != 3 || r.Requests != 2 {
		t.Fatalf("second poll %+v", r)
	}
	reqs := s.Requests()
	if reqs[0].Count != 7 || reqs[0].Answered != true || reqs[1].Count != 1 || reqs[2].Address != 5 || reqs[2].Count != 2 {
		t.Errorf("requests %+v", reqs[:3])
	}
}

// TestBusDeadUnitDoesNotHoldUpOthers: unit 2 never answers. Units 1 and 3
// keep being polled; unit 2 is tried again only after a backoff that
// doubles, so among the first 60 polls of unit 1 the dead unit gets a
// handful of requests (about log2 of the elapsed time over BackoffMin),
// each costing one timeout, and never the rest of its poll.
func TestBusDeadUnitDoesNotHoldUpOthers(t *testing.T) {
	s := startSim(t)
	for _, id := range []uint8{1, 2, 3} {
		fillTestUnit(t, s.Unit(id))
	}
	s.Unit(2).SetDead(true)
	b := newBus(t, modbus.Config{URL: "tcp://" + s.Addr(), Timeout: 100 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Minute, MaxGap: 16})
	cs := map[uint8]*collector{}
	for _, id := range []uint8{1, 2, 3} {
		cs[id] = newCollector()
		remove, err := b.AddPoller(modbus.PollConfig{Unit: id, Period: 2 * time.Millisecond, Registers: testMap()}, cs[id].add)
		if err != nil {
			t.Fatal(err)
		}
		defer remove()
	}
	cs[1].wait(t, "60 polls of unit 1", func(r []modbus.Result) bool { return len(r) >= 60 })
	cs[3].wait(t, "60 polls of unit 3", func(r []modbus.Result) bool { return len(r) >= 60 })
	for _, id := range []uint8{1, 3} {
		cs[id].mu.Lock()
		for _, r := range cs[id].res {
			if r.Err != nil {
				t.Errorf("unit %d: %v", id, r.Err)
			}
		}
		cs[id].mu.Unlock()
	}
	var dead, live int
	var lastDead = -1
	for i, r := range s.Requests() {
		if r.Unit == 2 {
			if r.Answered {
				t.Fatalf("dead unit answered: %+v", r)
			}
			if lastDead >= 0 && i-lastDead < 2 {
				t.Errorf("dead unit polled twice in a row (requests %d and %d)", lastDead, i)
			}
			dead++
			lastDead = i
		} else {
			live++
		}
	}
	// Without backoff unit 2 would get as many polls as unit 1 (≥ 60).
	// With it, reaching 60 polls of unit 1 takes at least 60 × 2 ms; the
	// dead unit's k-th retry comes after 50 ms × 2^(k-1), so a dozen
	// attempts would need minutes.
	if dead == 0 || dead > 12 {
		t.Errorf("dead unit got %d requests while the others got %d", dead, live)
	}
	res := cs[2].wait(t, "a failure of unit 2", func(r []modbus.Result) bool { return len(r) >= 1 })
	if !modbus.IsTimeout(res[0].Err) || res[0].Requests != 1 {
		t.Errorf("dead unit result %+v", res[0])
	}
	var st modbus.UnitStats
	for _, x := range b.Stats() {
		if x.Unit == 2 {
			st = x
		}
	}
	if st.Failures == 0 || st.Polls != 0 || st.BackoffUntil.IsZero() || st.LastError == "" {
		t.Errorf("dead unit stats %+v", st)
	}
}

// TestBusReconnects: the server goes away and comes back on the same
// address; the bus reopens the link and polls again.
func TestBusReconnects(t *testing.T) {
	s := startSim(t)
	fillTestUnit(t, s.Unit(1))
	addr := s.Addr()
	b := newBus(t, modbus.Config{URL: "tcp://" + addr, Timeout: 200 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	c := newCollector()
	remove, _ := b.AddPoller(modbus.PollConfig{Unit: 1, Period: 2 * time.Millisecond, Registers: testMap()[:5]}, c.add)
	defer remove()
	c.wait(t, "a poll", func(r []modbus.Result) bool { return okCount(r) >= 1 })
	s.Close()
	res := c.wait(t, "a failure", func(r []modbus.Result) bool { return len(r) > 0 && r[len(r)-1].Err != nil })
	n := len(res)
	if ok, err := b.Connected(); ok || err == nil {
		t.Errorf("Connected() = %v %v while the server is down", ok, err)
	}
	if err := s.Listen(addr); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "a poll after the restart", func(r []modbus.Result) bool { return len(r) > n && okCount(r[n:]) >= 1 })
	if ok, err := b.Connected(); !ok {
		t.Errorf("Connected() = %v %v after the restart", ok, err)
	}
}

func TestBusWrite(t *testing.T) {
	s := startSim(t)
	u := s.Unit(1)
	fillTestUnit(t, u)
	b := newBus(t, modbus.Config{URL: "tcp://" + s.Addr()})
	ctx := context.Background()
	f := modbus.Register{Key: "sp", Function: modbus.Holding, Address: 300, Type: modbus.Float32, Order: modbus.DCBA}
	if err := b.Write(ctx, 1, f, 21.5); err != nil {
		t.Fatal(err)
	}
	if v, _ := u.Get(f); v != 21.5 {
		t.Errorf("float32 written: %v (%04X)", v, u.Words(modbus.Holding, 300, 2))
	}
	relay := modbus.Register{Key: "relay", Function: modbus.Coil, Address: 7}
	if err := b.Write(ctx, 1, relay, "on"); err != nil || !u.Bit(modbus.Coil, 7) {
		t.Fatalf("coil: %v", err)
	}
	u.SetWords(modbus.Holding, 310, 0x00F0)
	bit := modbus.Register{Key: "en", Function: modbus.Holding, Address: 310, Type: modbus.Bit, Bit: 0}
	if err := b.Write(ctx, 1, bit, true); err != nil || u.Words(modbus.Holding, 310, 1)[0] != 0x00F1 {
		t.Fatalf("bit: %v %04X", err, u.Words(modbus.Holding, 310, 1))
	}
	in := modbus.Register{Key: "in", Function: modbus.Input, Address: 0}
	if err := b.Write(ctx, 1, in, 1); err == nil {
		t.Error("writing an input register worked")
	}
	if err := b.Write(ctx, 1, modbus.Register{Key: "x", Function: modbus.Holding, Address: 1, Type: modbus.Int16}, 40000); err == nil {
		t.Error("writing an out-of-range value worked")
	}
	u.SetStrict(true)
	err := b.Write(ctx, 1, modbus.Register{Key: "nowhere", Function: modbus.Holding, Address: 9999}, 1)
	if !modbus.IsException(err) {
		t.Errorf("write to an unmapped address: %v", err)
	}
	err = b.Write(ctx, 9, modbus.Register{Key: "x", Function: modbus.Holding, Address: 1}, 1)
	if !modbus.IsTimeout(err) {
		t.Errorf("write to an unknown unit: %v", err)
	}
	b2, _ := modbus.NewBus(modbus.Config{URL: "tcp://" + s.Addr()})
	if err := b2.Write(ctx, 1, relay, true); !errors.Is(err, modbus.ErrClosed) {
		t.Errorf("write on a bus not started: %v", err)
	}
}

func TestNewBusRejects(t *testing.T) {
	for _, cfg := range []modbus.Config{{URL: "127.0.0.1:502"}, {URL: "sctp://x:1"}, {URL: "rtu:///dev/ttyS0", Parity: "mark"}, {URL: "rtu:///dev/ttyS0", PerUnit: true}} {
		if _, err := modbus.NewBus(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
