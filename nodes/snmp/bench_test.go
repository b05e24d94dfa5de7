package snmp_test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/nodes/snmp/snmptest"
)

// BenchmarkPolls polls the 10 variables of snmptest.Items from Debian's
// snmpd (v2c, one GET per poll) as fast as the agent answers for a while
// (TBFLOW_BENCH_SNMP_DURATION, default 3s), once with a plain gosnmp loop
// (the baseline) and once through eight snmp-in nodes sharing one
// snmp-agent in an engine (period 1ms each, more than the agent answers,
// so the shared agent polls back to back), in the same run. It reports
// both poll rates and their ratio.
func BenchmarkPolls(b *testing.B) {
	dur := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("TBFLOW_BENCH_SNMP_DURATION")); err == nil && v > 0 {
		dur = v
	}
	a := snmptest.Start(b)
	oids := make([]string, len(snmptest.Items))
	for i, it := range snmptest.Items {
		oids[i] = it.OID
	}
	for range b.N {
		g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(a.Port), Community: snmptest.Community, Version: gosnmp.Version2c, Timeout: time.Second, MaxOids: gosnmp.MaxOids}
		if err := g.Connect(); err != nil {
			b.Fatal(err)
		}
		n, t0 := 0, time.Now()
		for time.Since(t0) < dur {
			res, err := g.Get(oids)
			if err != nil || len(res.Variables) != len(oids) {
				b.Fatalf("baseline poll: %v", err)
			}
			n++
		}
		base := float64(n) / time.Since(t0).Seconds()
		g.Conn.Close()

		h := enginetest.New(b, enginetest.Options{})
		objs := []any{map[string]any{"id": "tab", "type": "tab"}, agentNode(a.Port, map[string]any{"timeout": "1s"})}
		out := h.Capture("out")
		out["z"] = "tab"
		objs = append(objs, out)
		for i := range 8 {
			objs = append(objs, map[string]any{"id": fmt.Sprintf("in%d", i), "type": "snmp-in", "z": "tab", "agent": "agent",
				"period": "1ms", "oids": snmptest.Rows(false), "wires": []any{[]any{"out"}}})
		}
		flow, _ := json.Marshal(objs)
		h.Deploy(flow, engine.DeployFull)
		h.WaitOutputs("out", 8)
		n0, t1 := len(h.Outputs("out")), time.Now()
		time.Sleep(dur)
		rate := float64(len(h.Outputs("out"))-n0) / time.Since(t1).Seconds()
		if len(h.Errors()) > 0 {
			b.Fatalf("errors: %v", h.Errors()[0].Message)
		}
		b.ReportMetric(rate, "polls/s")
		b.ReportMetric(base, "baseline-polls/s")
		b.ReportMetric(rate/base, "x-baseline-rate")
		b.ReportMetric(0, "ns/op")
	}
}
