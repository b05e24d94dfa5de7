package modbus_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
	_ "github.com/tbflow/tbflow/nodes/modbus"
)

func sim(t *testing.T) *modbussim.Server {
	t.Helper()
	s := modbussim.New()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// connection is a modbus-connection object for addr.
func connection(addr string) map[string]any {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return map[string]any{"id": "conn", "type": "modbus-connection", "host": host, "port": float64(p), "timeout": "200ms", "backoffMax": "400ms"}
}

// rows turns a register map into table rows.
func rows(regs []modbus.Register) []any {
	var out []any
	for _, r := range regs {
		row := map[string]any{"key": r.Key, "function": string(r.Function), "address": float64(r.Address)}
		if r.Type != "" {
			row["type"] = string(r.Type)
		}
		if r.Order != "" {
			row["order"] = string(r.Order)
		}
		out = append(out, row)
	}
	return out
}

func TestConformance(t *testing.T) {
	dead := "127.0.0.1:" + strconv.Itoa(peers.FreePort(t))
	t.Run("modbus-connection", func(t *testing.T) {
		enginetest.Conformance(t, "modbus-connection", enginetest.ConformanceOptions{Settings: map[string]any{"port": 1.0}})
	})
	t.Run("modbus-server", func(t *testing.T) {
		enginetest.Conformance(t, "modbus-server", enginetest.ConformanceOptions{Settings: map[string]any{"host": "127.0.0.1", "port": float64(peers.FreePort(t))}})
	})
	for _, typ := range []string{"modbus-in", "modbus-read", "modbus-write"} {
		t.Run(typ, func(t *testing.T) {
			in := engine.NewMsg(1.0)
			in.Topic = "value"
			enginetest.Conformance(t, typ, enginetest.ConformanceOptions{
				Settings: map[string]any{"connection": "conn"},
				Extra:    []map[string]any{connection(dead)},
				Input:    in,
			})
		})
	}
}

func TestModbusInEnergyMeter(t *testing.T) {
	s := sim(t)
	if err := modbussim.EnergyMeter(s.Unit(1)); err != nil {
		t.Fatal(err)
	}
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-in", map[string]any{
		"connection": "conn", "unit": 1.0, "period": "20ms", "topic": "meter", "registers": rows(modbussim.EnergyMeterMap),
	}, connection(s.Addr()))
	out := h.WaitOut(0, 2)
	m := out[0]
	p, ok := m.Payload.(map[string]any)
	if !ok || m.Topic != "meter" {
		t.Fatalf("message %v", m)
	}
	v, _ := p["voltage"].(float64)
	if v < 227 || v > 233 || p["relay"] != true || p["powerLimit"] != int64(3680) {
		t.Errorf("payload %v", p)
	}
	if e, _ := p["energy"].(float64); e < 1234 {
		t.Errorf("energy %v", p["energy"])
	}
	info, _ := m.Get("modbus")
	if im, _ := info.(map[string]any); im["requests"] != int64(3) || im["unit"] != int64(1) {
		t.Errorf("msg.modbus %v", info)
	}
	if _, ok := m.Get("ts"); !ok {
		t.Error("no msg.ts")
	}
	b, err := json.Marshal(m)
	if err != nil || !strings.Contains(string(b), `"voltage"`) {
		t.Errorf("JSON %s %v", b, err)
	}
	found := false
	for _, st := range h.Statuses("node") {
		found = found || st.Text == "polling"
	}
	if !found {
		t.Errorf("statuses %v", h.Statuses("node"))
	}
}

func TestModbusInReportByException(t *testing.T) {
	s := sim(t)
	u := s.Unit(2)
	regs := []modbus.Register{
		{Key: "a", Function: modbus.Holding, Address: 0},
		{Key: "b", Function: modbus.Holding, Address: 1},
		{Key: "t", Function: modbus.Input, Address: 0, Type: modbus.Float32, Order: modbus.CDAB},
	}
	for _, r := range regs {
		_ = u.Set(r, 7)
	}
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-in", map[string]any{
		"connection": "conn", "unit": 2.0, "period": "5ms", "registers": rows(regs), "reportByException": true, "fullReport": "0s",
	}, connection(s.Addr()))
	first := h.WaitOut(0, 1)[0].Payload.(map[string]any)
	if len(first) != 3 || first["t"] != 7.0 {
		t.Fatalf("first report %v", first)
	}
	n := s.Count()
	// Several polls with no change send nothing.
	for s.Count() < n+10 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(h.Out(0)); got != 1 {
		t.Fatalf("%d messages without a change", got)
	}
	_ = u.Set(regs[1], 8)
	second := h.WaitOut(0, 2)[1].Payload.(map[string]any)
	if len(second) != 1 || second["b"] != int64(8) {
		t.Fatalf("change report %v", second)
	}
}

func TestModbusInDeadUnitReportsError(t *testing.T) {
	s := sim(t)
	s.Unit(5).SetDead(true)
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-in", map[string]any{
		"connection": "conn", "unit": 5.0, "period": "10ms",
	}, connection(s.Addr()))
	evs := h.WaitEvents("error", 1)
	if d := evs[0].Data.(*engine.ErrorData); !strings.Contains(d.Message, "unit 5") || !strings.Contains(d.Message, "timed out") {
		t.Errorf("error %q", d.Message)
	}
	h.WaitEvents("status/node", 2)
	sts := h.Statuses("node")
	if last := sts[len(sts)-1]; last.Fill != "red" {
		t.Errorf("status %+v", sts)
	}
	if n := len(h.Out(0)); n != 0 {
		t.Errorf("%d messages from a dead unit", n)
	}
}

func TestModbusWrite(t *testing.T) {
	s := sim(t)
	u := s.Unit(1)
	if err := modbussim.EnergyMeter(u); err != nil {
		t.Fatal(err)
	}
	u.SetStrict(true)
	regs := append(append([]modbus.Register(nil), modbussim.EnergyMeterMap[4:]...),
		modbus.Register{Key: "missing", Function: modbus.Holding, Address: 900})
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-write", map[string]any{
		"connection": "conn", "unit": 1.0, "registers": rows(regs),
	}, connection(s.Addr()))

	// key from msg.topic, as tb-rpc-in sets it; other fields are kept
	m := engine.NewMsg(false)
	m.Topic = "relay"
	m.Set("rpc", map[string]any{"id": 3.0})
	h.Send(m)
	out := h.WaitOut(0, 1)[0]
	if p := out.Payload.(map[string]any); p["ok"] != true || p["written"].(map[string]any)["relay"] != false {
		t.Errorf("reply %v", out.Payload)
	}
	if rpc, _ := out.Get("rpc"); rpc == nil {
		t.Error("msg.rpc was lost")
	}
	if u.Bit(modbus.Coil, 0) {
		t.Error("relay still on")
	}
	// an object of key → value
	h.Send(engine.NewMsg(map[string]any{"powerLimit": 2500.0, "energy": 10.5, "unknown": 1.0}))
	h.WaitOut(0, 2)
	if v, _ := u.Get(modbussim.EnergyMeterMap[5]); v != int64(2500) {
		t.Errorf("powerLimit %v", v)
	}
	if v, _ := u.Get(modbussim.EnergyMeterMap[4]); v != 10.5 {
		t.Errorf("energy %v", v)
	}
	// a Modbus exception is an error for catch nodes
	bad := engine.NewMsg(1.0)
	bad.Topic = "missing"
	h.Send(bad)
	evs := h.WaitEvents("error", 1)
	if d := evs[0].Data.(*engine.ErrorData); !strings.Contains(d.Message, "illegal data address") {
		t.Errorf("error %q", d.Message)
	}
	// an out-of-range value too
	big := engine.NewMsg(70000.0)
	big.Topic = "powerLimit"
	h.Send(big)
	evs = h.WaitEvents("error", 2)
	if d := evs[1].Data.(*engine.ErrorData); !strings.Contains(d.Message, "out of range") {
		t.Errorf("error %q", d.Message)
	}
	if n := len(h.Out(0)); n != 2 {
		t.Errorf("%d outputs", n)
	}
}

func TestValidation(t *testing.T) {
	flow := `[{"id":"tab","type":"tab"},
{"id":"conn","type":"modbus-connection","transport":"rtu","device":""},
{"id":"in","type":"modbus-in","z":"tab","connection":"conn","registers":[
  {"key":"a","function":"coil","type":"int16"},
  {"key":"a","function":"holding","address":1},
  {"key":"s","function":"holding","type":"string"},
  {"key":"l","function":"holding","labels":"zero"}],"wires":[]},
{"id":"w","type":"modbus-write","z":"tab","connection":"conn","key":"nope","registers":[{"key":"i","function":"input"}],"wires":[]}]`
	f, err := engine.ParseFlow([]byte(flow))
	if err != nil {
		t.Fatal(err)
	}
	ps := engine.DefaultRegistry().Validate(f, nil)
	var got []string
	for _, p := range ps {
		got = append(got, p.NodeID+" "+p.Field)
	}
	s := strings.Join(got, "\n")
	for _, want := range []string{"conn device", "in registers[0].type", "in registers[1].key", "in registers[2].type", "in registers[3].labels", "w registers[0].function", "w key"} {
		if !strings.Contains(s, want) {
			t.Errorf("no problem %q in:\n%s", want, ps)
		}
	}
	_ = context.Background
}
