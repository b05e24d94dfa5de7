package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tbflow/tbflow/nodes/snmp/snmptest"
)

// TestRunSNMPConnector runs flows/snmp-to-tb.json through `tbflow run`
// against Debian's snmpd and tbsim: every SNMP type arrives as telemetry
// of the device "UPS 1", a trap sent with snmptrap as telemetry of its
// sender, and an agent outage is survived and shown in the status log.
func TestRunSNMPConnector(t *testing.T) {
	agent := snmptest.Start(t)
	tbs, tbPort := startGatewaySim(t)
	trapPort := snmptest.FreeUDPPort(t)
	objs := connectorFlow(t, "snmp-to-tb.json")
	flowNode(t, objs, "gw")["port"] = tbPort
	a := flowNode(t, objs, "agent")
	a["port"], a["timeout"], a["retries"] = float64(agent.Port), "300ms", 0.0
	ups := flowNode(t, objs, "ups")
	rows := append(snmptest.Rows(false), map[string]any{"key": "ent", "oid": "1.3.6.1.4.1.99999.1", "method": "bulkwalk", "type": "auto"})
	ups["oids"], ups["period"] = rows, "100ms"
	flowNode(t, objs, "traps")["port"] = float64(trapPort)
	file := writeFlow(t, objs, `{"gw": {"accessToken": "gateway-token"}, "agent": {"community": "public"}}`)
	logs := runFlow(t, file, "-metrics", "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tbs.WaitTelemetry(ctx, "UPS 1", "uptime", 3); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	checkMetrics(t, logs, `tbflow_node_messages_out_total{node_id="ups",node_type="snmp-in"}`)
	latest := tbs.Latest("UPS 1")
	for _, it := range snmptest.Items {
		got, _ := json.Marshal(latest[it.Key].Value)
		if it.JSON == "" {
			if _, ok := latest[it.Key].Value.(int64); !ok {
				t.Errorf("telemetry %s = %s, want a number", it.Key, got)
			}
		} else if string(got) != it.JSON {
			t.Errorf("telemetry %s = %s, want %s", it.Key, got, it.JSON)
		}
	}
	if got, _ := json.Marshal(latest["ent.6.0"].Value); string(got) != `"hello snmp"` {
		t.Errorf("telemetry ent.6.0 = %s", got)
	}

	snmptest.Trap(t, "v2c", "public", fmt.Sprintf("127.0.0.1:%d", trapPort), "", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.2", "i", "2")
	if err := tbs.WaitTelemetry(ctx, "127.0.0.1", "ifIndex.2", 1); err != nil {
		t.Fatalf("trap: %v\n%s", err, logs.String())
	}

	mark := waitLogFrom(t, logs, 0, `"text\":\"polling\"`)
	agent.Stop()
	mark = waitLogFrom(t, logs, mark, `error: `)
	n := len(tbs.History("UPS 1", "uptime"))
	agent.Start()
	waitLogFrom(t, logs, mark, `"text\":\"polling\"`)
	if err := tbs.WaitTelemetry(ctx, "UPS 1", "uptime", n+3); err != nil {
		t.Fatalf("no telemetry after the agent came back: %v", err)
	}
}
