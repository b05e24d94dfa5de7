package modbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbustest"
	"github.com/tbflow/tbflow/tb/tbsim"
)

func hostPort(addr string) (string, float64) {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return h, float64(n)
}

func holding(vals ...uint16) modbustest.Tables { return modbustest.Tables{Holding: vals} }

// waitStatus waits until node id's last status satisfies ok.
func waitStatus(t *testing.T, h *enginetest.Harness, id string, ok func(engine.Status) bool) engine.Status {
	t.Helper()
	deadline := time.Now().Add(enginetest.WaitLimit)
	for {
		sts := h.Statuses(id)
		if len(sts) > 0 && ok(sts[len(sts)-1]) {
			return sts[len(sts)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: statuses %v", id, sts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func red(s engine.Status) bool { return s.Fill == "red" }

// TestPeerOutageReachesEveryNode: when the pymodbus device goes away, every
// node on the link shows it (two pollers, a write node and a read node),
// and each poller reports it to catch once; when it is back they recover.
func TestPeerOutageReachesEveryNode(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: holding(1, 2, 3), 2: holding(4, 5, 6)}})
	host, port := hostPort(srv.Addr)
	flow := []any{
		map[string]any{"id": "tab", "type": "tab"},
		map[string]any{"id": "conn", "type": "modbus-connection", "host": host, "port": port, "timeout": "500ms", "backoffMax": "1s"},
	}
	h := enginetest.New(t, enginetest.Options{})
	reg := []any{map[string]any{"key": "a", "function": "holding", "address": 0.0}}
	for _, n := range []map[string]any{
		{"id": "in1", "type": "modbus-in", "unit": 1.0, "period": "300ms"},
		{"id": "in2", "type": "modbus-in", "unit": 2.0, "period": "300ms"},
		{"id": "w", "type": "modbus-write", "unit": 1.0},
		{"id": "r", "type": "modbus-read", "unit": 1.0},
	} {
		n["z"], n["connection"], n["registers"] = "tab", "conn", reg
		n["wires"] = []any{[]any{"out-" + n["id"].(string)}}
		c := h.Capture("out-" + n["id"].(string))
		c["z"] = "tab"
		flow = append(flow, n, c)
	}
	data, _ := json.Marshal(flow)
	h.Deploy(data, engine.DeployFull)
	h.WaitOutputs("out-in1", 1)
	h.WaitOutputs("out-in2", 1)
	srv.Stop()
	for _, id := range []string{"in1", "in2", "w", "r"} {
		st := waitStatus(t, h, id, red)
		if !strings.Contains(st.Text, "link is down") && !strings.Contains(st.Text, "connection") && !strings.Contains(st.Text, "EOF") {
			t.Errorf("%s shows %q", id, st.Text)
		}
	}
	errs := map[string]int{}
	for _, e := range h.Events("error") {
		errs[e.Node.ID]++
	}
	if errs["in1"] != 1 || errs["in2"] != 1 {
		t.Errorf("catch messages per node: %v (want one per poller)", errs)
	}
	srv.Start()
	for _, id := range []string{"in1", "in2"} {
		waitStatus(t, h, id, func(s engine.Status) bool { return s.Text == "polling" })
	}
	waitStatus(t, h, "w", func(s engine.Status) bool { return s.Fill == "green" })
}

// TestPeerReportScopeAndRanges: one poll of pymodbus feeds telemetry (first
// output) and attributes (second), each row reported as its report says;
// a range row gives one key per address.
func TestPeerReportScopeAndRanges(t *testing.T) {
	vals := make([]uint16, 20)
	vals[0], vals[1], vals[2], vals[10], vals[11], vals[12] = 2301, 7, 100, 210, 211, 212
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: holding(vals...)}})
	host, port := hostPort(srv.Addr)
	conn := map[string]any{"id": "conn", "type": "modbus-connection", "host": host, "port": port, "timeout": "1s"}
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-in", map[string]any{
		"connection": "conn", "unit": 1.0, "period": "30ms", "registers": []any{
			map[string]any{"key": "voltage", "function": "holding", "address": 0.0, "scale": 0.1},
			map[string]any{"key": "mode", "function": "holding", "address": 1.0, "scope": "attribute", "report": "change"},
			map[string]any{"key": "level", "function": "holding", "address": 2.0, "report": "change", "deadband": 5.0},
			map[string]any{"key": "t_{address}", "function": "holding", "address": 10.0, "to": 12.0, "divider": 10.0},
		},
	}, conn)
	tel := h.WaitOut(0, 3)
	first := tel[0].Payload.(map[string]any)
	if first["voltage"] != 230.1 || first["level"] != int64(100) || first["t_10"] != 21.0 || first["t_12"] != 21.2 || first["mode"] != nil {
		t.Errorf("first telemetry %v", first)
	}
	if p := tel[1].Payload.(map[string]any); p["level"] != nil || p["voltage"] != 230.1 {
		t.Errorf("second telemetry %v", p)
	}
	attrs := h.WaitOut(1, 1)
	if p := attrs[0].Payload.(map[string]any); len(p) != 1 || p["mode"] != int64(7) {
		t.Errorf("attributes %v", p)
	}
	b, err := modbus.NewBus(modbus.Config{URL: srv.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Start()
	defer b.Close(context.Background())
	level := modbus.Register{Key: "level", Function: modbus.Holding, Address: 2}
	if err := b.Write(context.Background(), 1, level, 103); err != nil { // within the deadband
		t.Fatal(err)
	}
	n := len(h.Out(0))
	h.WaitOut(0, n+3)
	if err := b.Write(context.Background(), 1, level, 110); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(enginetest.WaitLimit)
	for {
		var seen []any
		for _, m := range h.Out(0) {
			if v, ok := m.Payload.(map[string]any)["level"]; ok {
				seen = append(seen, v)
			}
		}
		if len(seen) == 2 {
			if seen[1] != int64(110) {
				t.Errorf("level reported %v", seen)
			}
			break
		}
		if len(seen) > 2 || time.Now().After(deadline) {
			t.Fatalf("level reported %v: want 100 then 110 (103 is within the deadband)", seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(h.Out(1)); got != 1 {
		t.Errorf("%d attribute messages for an unchanged attribute", got)
	}
}

// TestPeerCappedDeviceNode: the connection's maxRegisters keeps a device
// that refuses reads over 64 registers polling cleanly.
func TestPeerCappedDeviceNode(t *testing.T) {
	vals := make([]uint16, 200)
	for i := range vals {
		vals[i] = uint16(i)
	}
	srv := modbustest.Start(t, modbustest.Spec{MaxRegisters: 64, Units: map[uint8]modbustest.Tables{1: holding(vals...)}})
	host, port := hostPort(srv.Addr)
	var rows []any
	for i := range 200 {
		rows = append(rows, map[string]any{"key": fmt.Sprintf("r%d", i), "function": "holding", "address": float64(i)})
	}
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-in", map[string]any{"connection": "conn", "unit": 1.0, "period": "20ms", "registers": rows},
		map[string]any{"id": "conn", "type": "modbus-connection", "host": host, "port": port, "maxRegisters": 64.0})
	for _, m := range h.WaitOut(0, 3) {
		info, _ := m.Get("modbus")
		if p := m.Payload.(map[string]any); len(p) != 200 || p["r199"] != int64(199) || info.(map[string]any)["requests"] != int64(4) || info.(map[string]any)["errors"] != nil {
			t.Fatalf("poll: %d values, %v", len(p), info)
		}
	}
}

// TestPeerReadOnRPC: an RPC from ThingsBoard reads a register on demand
// and the decoded value is the reply.
func TestPeerReadOnRPC(t *testing.T) {
	srv := modbustest.Start(t, modbustest.Spec{Units: map[uint8]modbustest.Tables{1: holding(2301, 42)}})
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "meter", Token: "meter-token"}); err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(srv.Addr)
	tbHost, tbPort := hostPort(tbs.MQTTAddr())
	flow := []any{
		map[string]any{"id": "tab", "type": "tab"},
		map[string]any{"id": "tb", "type": "tb-connection", "host": tbHost, "port": tbPort, "accessToken": "meter-token"},
		map[string]any{"id": "mb", "type": "modbus-connection", "host": host, "port": port},
		map[string]any{"id": "rpc", "type": "tb-rpc-in", "z": "tab", "connection": "tb", "wires": []any{[]any{"read"}}},
		map[string]any{"id": "read", "type": "modbus-read", "z": "tab", "connection": "mb", "unit": 1.0, "wires": []any{[]any{"reply"}},
			"registers": []any{
				map[string]any{"key": "voltage", "function": "holding", "address": 0.0, "scale": 0.1},
				map[string]any{"key": "count", "function": "holding", "address": 1.0},
			}},
		map[string]any{"id": "reply", "type": "tb-rpc-out", "z": "tab", "connection": "tb", "wires": []any{}},
	}
	data, _ := json.Marshal(flow)
	h := enginetest.New(t, enginetest.Options{})
	h.Deploy(data, engine.DeployFull)
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
	defer cancel()
	var reply json.RawMessage
	for {
		reply, err = tbs.RPC(ctx, "meter", "voltage", nil, false)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || string(reply) != `{"voltage":230.1}` {
		t.Fatalf("voltage rpc: %s %v", reply, err)
	}
	reply, err = tbs.RPC(ctx, "meter", "all", nil, false)
	if err != nil || !strings.Contains(string(reply), `"count":42`) || !strings.Contains(string(reply), `"voltage":230.1`) {
		t.Errorf("rpc of every row: %s %v", reply, err)
	}
}

// TestPeerServerNode: values set from the flow are read by mbpoll
// (libmodbus) as a SCADA would, and mbpoll's writes come out as messages.
func TestPeerServerNode(t *testing.T) {
	port := peers.FreePort(t)
	h := enginetest.RunNode(t, enginetest.Options{}, "modbus-server", map[string]any{
		"host": "127.0.0.1", "port": float64(port), "unit": 1.0, "registers": []any{
			map[string]any{"key": "temperature", "function": "input", "address": 0.0, "type": "int16", "scale": 0.1},
			map[string]any{"key": "setpoint", "function": "holding", "address": 0.0, "type": "uint16", "scale": 0.1},
		},
	})
	waitStatus(t, h.Harness, "node", func(s engine.Status) bool { return s.Fill == "green" })
	h.Send(engine.NewMsg(map[string]any{"temperature": 21.5, "other": 1.0}))
	h.WaitIdle()
	link := []string{"-1", "-0", "-a", "1", "-m", "tcp", "-p", strconv.Itoa(port)}
	out := modbustest.Mbpoll(t, append(append([]string(nil), link...), "-t", "3", "-r", "0", "127.0.0.1")...)
	if !strings.Contains(out, "[0]: \t215") {
		t.Errorf("mbpoll read:\n%s", out)
	}
	modbustest.Mbpoll(t, append(append([]string(nil), link...), "-t", "4", "-r", "0", "127.0.0.1", "225")...)
	m := h.WaitOut(0, 1)[0]
	if p := m.Payload.(map[string]any); p["setpoint"] != 22.5 || m.Topic != "setpoint" {
		t.Errorf("write message %v %q", m.Payload, m.Topic)
	}
	bad := engine.NewMsg(map[string]any{"nothing": 1.0})
	h.Send(bad)
	h.WaitEvents("error", 1)
}
