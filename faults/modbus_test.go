package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
	_ "github.com/tbflow/tbflow/nodes/modbus"
)

// unitGone is how long the Modbus unit stays silent at least.
const unitGone = 5 * time.Second

// TestFaultModbusUnitVanishes runs modbus-in polling a simulated unit every
// 100 ms, makes the unit stop answering (it reads requests and never
// replies, like a device switched off behind a gateway) for 5 s, changes the
// register while the unit is gone, and brings the unit back. While it is
// gone every poll fails on the connection's timeout, the node shows the
// error and reports it (once) to catch; when it returns the same running
// flow resumes, without a redeploy, and the first values are the device's
// current ones, not the last ones read before the outage.
//
// Counting: every poll is one request (one register). Sent = requests the
// unit received, acknowledged = requests it answered, delivered = messages
// modbus-in sent; an answered poll whose values never left the node is lost.
func TestFaultModbusUnitVanishes(t *testing.T) {
	sim := modbussim.New()
	unit := sim.Unit(1)
	reg := modbus.Register{Key: "seq", Function: modbus.Holding, Address: 0, Type: modbus.Uint16}
	if err := unit.Set(reg, uint16(1)); err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	_, port := hostPort(t, sim.Addr())

	h := enginetest.New(t, enginetest.Options{})
	capture := h.Capture("out")
	capture["z"] = "tab"
	flow, err := json.Marshal([]map[string]any{
		{"id": "tab", "type": "tab", "label": "modbus unit"},
		{"id": "mb", "type": "modbus-connection", "host": "127.0.0.1", "port": port, "timeout": "300ms", "backoffMax": "2s"},
		{
			"id": "meter", "type": "modbus-in", "z": "tab", "x": 100, "y": 100, "wires": []any{[]any{"out"}},
			"connection": "mb", "unit": 1, "period": "100ms",
			"registers": []any{map[string]any{"key": "seq", "function": "holding", "address": 0, "type": "uint16"}},
		},
		capture,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Deploy(flow, engine.DeployFull)

	seqOf := func(m *engine.Msg) float64 {
		p, _ := m.Payload.(map[string]any)
		switch v := p["seq"].(type) {
		case float64:
			return v
		case int64:
			return float64(v)
		case uint16:
			return float64(v)
		case int:
			return float64(v)
		}
		return -1
	}
	h.WaitOutputs("out", 10)

	unit.SetDead(true)
	goneReq := len(sim.Requests())
	if err := unit.Set(reg, uint16(2)); err != nil { // changed while nobody can read it
		t.Fatal(err)
	}
	failedSince := func(from int) int {
		n := 0
		for _, r := range sim.Requests()[from:] {
			if r.Unit == 1 && !r.Answered {
				n++
			}
		}
		return n
	}
	time.Sleep(unitGone) // the unit stays away this long by design
	eventually(t, 30*time.Second, "3 polls failing while the unit is gone", func() bool { return failedSince(goneReq) >= 3 })
	var errMsg string
	eventually(t, 30*time.Second, "the failure reported to catch", func() bool {
		for _, e := range h.Errors() {
			if strings.Contains(e.Message, "unit 1") {
				errMsg = e.Message
				return true
			}
		}
		return false
	})
	var statusText string
	for _, s := range h.Statuses("meter") {
		if s.Fill == "red" {
			statusText = s.Text
		}
	}
	outDuring := h.Outputs("out")
	backReq := len(sim.Requests())
	failed := failedSince(goneReq)
	unit.SetDead(false)
	back := time.Now()
	eventually(t, 60*time.Second, "a fresh value after the unit returned", func() bool {
		for _, m := range h.Outputs("out")[len(outDuring):] {
			if seqOf(m) == 2 {
				return true
			}
		}
		return false
	})
	recovery := time.Since(back)
	h.WaitOutputs("out", len(outDuring)+10)
	var statusBack engine.Status
	if st := h.Statuses("meter"); len(st) > 0 {
		statusBack = st[len(st)-1]
	}

	// Stop the answers and let the last results through, so that answered
	// polls and messages can be compared exactly.
	unit.SetDead(true)
	answered := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Unit == 1 && r.Answered {
				n++
			}
		}
		return n
	}
	waitFor(30*time.Second, func() bool { return len(h.Outputs("out")) >= answered() })
	outs := h.Outputs("out")
	reqs := sim.Requests()
	ans := answered()

	stale, staleDuring := 0, 0
	for _, m := range outs[len(outDuring):] {
		if seqOf(m) != 2 {
			stale++
		}
	}
	for _, m := range outDuring {
		if seqOf(m) == 2 {
			staleDuring++ // a value set while the unit was gone cannot have been read then
		}
	}
	lost := max(ans-len(outs), 0)
	record(t, Result{
		Fault: "modbus unit gone + back", Sent: len(reqs), Acknowledged: ans, Delivered: len(outs),
		Duplicated: max(len(outs)-ans, 0), Lost: lost, Recovery: recovery,
		Extra: map[string]int64{
			"failed_polls": int64(failed), "stale_after_return": int64(stale),
			"polls_while_gone": int64(backReq - goneReq),
		},
		Notes: fmt.Sprintf("status while gone %q", statusText),
	})
	if lost > 0 {
		t.Errorf("%d answered polls produced no message", lost)
	}
	if len(outs) > ans {
		t.Errorf("%d messages for %d answered polls", len(outs), ans)
	}
	if stale > 0 {
		t.Errorf("%d messages after the unit returned carried the value read before the outage", stale)
	}
	if staleDuring > 0 {
		t.Errorf("%d messages during the outage carried the value set while the unit was gone", staleDuring)
	}
	if !strings.Contains(errMsg, "unit 1") || !strings.Contains(strings.ToLower(errMsg), "timeout") && !strings.Contains(strings.ToLower(errMsg), "timed out") {
		t.Errorf("error reported while the unit was gone does not say which unit and why: %q", errMsg)
	}
	if statusText == "" {
		t.Errorf("modbus-in showed no error status while the unit was gone; statuses: %+v", h.Statuses("meter"))
	}
	if statusBack.Fill != "green" {
		t.Errorf("modbus-in status after the unit returned: %+v", statusBack)
	}
}
