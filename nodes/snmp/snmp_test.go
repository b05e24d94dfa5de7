package snmp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/nodes/snmp"
	"github.com/tbflow/tbflow/nodes/snmp/snmptest"
)

func agentNode(port int, extra map[string]any) map[string]any {
	a := map[string]any{"id": "agent", "type": "snmp-agent", "host": "127.0.0.1", "port": float64(port), "timeout": "300ms", "retries": 0.0}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func TestConformance(t *testing.T) {
	dead := snmptest.FreeUDPPort(t)
	t.Run("snmp-agent", func(t *testing.T) {
		enginetest.Conformance(t, "snmp-agent", enginetest.ConformanceOptions{})
	})
	t.Run("snmp-in", func(t *testing.T) {
		enginetest.Conformance(t, "snmp-in", enginetest.ConformanceOptions{
			Settings: map[string]any{"agent": "agent"}, Extra: []map[string]any{agentNode(dead, nil)},
		})
	})
	t.Run("snmp-trap-in", func(t *testing.T) {
		enginetest.Conformance(t, "snmp-trap-in", enginetest.ConformanceOptions{
			Settings: map[string]any{"host": "127.0.0.1", "port": float64(snmptest.FreeUDPPort(t))},
		})
	})
	t.Run("snmp-trap-in v3", func(t *testing.T) {
		enginetest.Conformance(t, "snmp-trap-in", enginetest.ConformanceOptions{
			Settings: map[string]any{"host": "127.0.0.1", "port": float64(snmptest.FreeUDPPort(t)), "version": "v3", "username": "u",
				"authPassword": "authpass123", "privPassword": "privpass123"},
		})
	})
}

// TestValidation: bad settings are refused with the field named.
func TestValidation(t *testing.T) {
	cases := []struct {
		agent, node map[string]any
		typ         string
		field, msg  string
	}{
		{node: map[string]any{"oids": []any{map[string]any{"key": "a", "oid": "1.3.x"}}}, field: "oids[0].oid", msg: "not a numeric OID"},
		{node: map[string]any{"oids": []any{map[string]any{"key": "a", "oid": "1.3.6"}, map[string]any{"key": "a", "oid": "1.3.7"}}}, field: "oids[1].key", msg: "already used"},
		{agent: map[string]any{"version": "v3"}, field: "username", msg: "needs a user name"},
		{agent: map[string]any{"version": "v3", "username": "u", "authPassword": "short"}, field: "authPassword", msg: "at least 8"},
		{agent: map[string]any{"version": "v4"}, field: "version"},
		{typ: "snmp-trap-in", node: map[string]any{"host": "somewhere"}, field: "host", msg: "not an IP address"},
		{typ: "snmp-trap-in", node: map[string]any{"port": 70000.0}, field: "port"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3"}, field: "username", msg: "needs a user name"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3", "username": "u", "authPassword": "short"}, field: "authPassword", msg: "at least 8"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3", "username": "u", "authPassword": "12345678", "privPassword": "1234"}, field: "privPassword", msg: "at least 8"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3", "username": "u", "securityLevel": "noAuthNoPriv", "engineID": "80zz"}, field: "engineID", msg: "not hexadecimal"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3", "username": "u", "securityLevel": "noAuthNoPriv", "senderEngineID": "8000"}, field: "senderEngineID", msg: "5 to 32 octets"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v4"}, field: "version"},
		{typ: "snmp-trap-in", node: map[string]any{"version": "v3", "username": "u", "authPassword": "12345678", "privPassword": "12345678", "privProtocol": "AES256C"}, field: "privProtocol", msg: "is not one of"},
	}
	for _, c := range cases {
		typ := c.typ
		if typ == "" {
			typ = "snmp-in"
		}
		node := map[string]any{"id": "in", "type": typ, "z": "tab", "wires": []any{}}
		if typ == "snmp-in" {
			node["agent"] = "agent"
		}
		for k, v := range c.node {
			node[k] = v
		}
		data, _ := json.Marshal([]any{map[string]any{"id": "tab", "type": "tab"}, agentNode(161, c.agent), node})
		f, err := engine.ParseFlow(data)
		if err != nil {
			t.Fatal(err)
		}
		ps := engine.DefaultRegistry().Validate(f, nil)
		found := false
		for _, p := range ps {
			found = found || (p.Field == c.field && strings.Contains(p.Message, c.msg))
		}
		if !found {
			t.Errorf("%v %v: want a problem on %s (%q), got %v", c.agent, c.node, c.field, c.msg, ps)
		}
	}
}

// TestInEveryType reads every SNMP type from snmpd with v1, v2c and v3
// (authNoPriv and authPriv), by GET, WALK and BULKWALK.
func TestInEveryType(t *testing.T) {
	a := snmptest.Start(t)
	for _, c := range []struct {
		name  string
		agent map[string]any
	}{
		{"v1", map[string]any{"version": "v1", "community": snmptest.Community}},
		{"v2c", map[string]any{"version": "v2c", "community": snmptest.Community}},
		{"v3-authNoPriv", map[string]any{"version": "v3", "username": snmptest.AuthUser, "securityLevel": "authNoPriv", "authProtocol": "SHA", "authPassword": snmptest.AuthPassword}},
		{"v3-authPriv", map[string]any{"version": "v3", "username": snmptest.PrivUser, "securityLevel": "authPriv", "authProtocol": "SHA", "authPassword": snmptest.AuthPassword, "privProtocol": "AES", "privPassword": snmptest.PrivPassword}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v1 := c.name == "v1"
			walk := "bulkwalk"
			if v1 {
				walk = "walk"
			}
			rows := append(snmptest.Rows(v1),
				map[string]any{"key": "ent", "oid": "1.3.6.1.4.1.99999.1", "method": walk, "type": "auto"},
				map[string]any{"key": "texthex", "oid": "1.3.6.1.4.1.99999.1.6.0", "method": "get", "type": "hex"},
				map[string]any{"key": "missing", "oid": "1.3.6.1.4.1.99999.9.9.0", "method": "get", "type": "auto"},
			)
			h := enginetest.RunNode(t, enginetest.Options{}, "snmp-in", map[string]any{
				"agent": "agent", "period": "100ms", "oids": rows, "topic": "ups", "device": "UPS 1",
			}, agentNode(a.Port, c.agent))
			msgs := h.WaitOut(0, 3)
			p := msgs[0].Payload.(map[string]any)
			for _, it := range snmptest.Items {
				if v1 && it.V2 {
					continue
				}
				got, _ := json.Marshal(p[it.Key])
				if it.JSON == "" {
					if _, ok := p[it.Key].(int64); !ok {
						t.Errorf("%s = %s, want a number", it.Key, got)
					}
					continue
				}
				if string(got) != it.JSON {
					t.Errorf("%s (%s) = %s, want %s", it.Key, it.OID, got, it.JSON)
				}
			}
			for k, want := range map[string]any{"ent.1.0": int64(-42), "ent.6.0": "hello snmp", "ent.7.0": "1.3.6.1.4.1.99999", "texthex": "68:65:6c:6c:6f:20:73:6e:6d:70"} {
				if p[k] != want {
					t.Errorf("%s = %#v, want %#v", k, p[k], want)
				}
			}
			info, _ := msgs[0].Get("snmp")
			if errs, _ := info.(map[string]any)["errors"].(map[string]any); errs["missing"] == nil {
				t.Errorf("no error for the missing OID: %v", info)
			}
			if d, _ := msgs[0].Get("device"); d != "UPS 1" || msgs[0].Topic != "ups" {
				t.Errorf("device %v topic %q", d, msgs[0].Topic)
			}
			if u0, u2 := p["uptime"].(int64), msgs[2].Payload.(map[string]any)["uptime"].(int64); u2 <= u0 {
				t.Errorf("uptime did not move: %d then %d", u0, u2)
			}
			if st := h.Statuses("node"); len(st) == 0 || !strings.HasPrefix(st[len(st)-1].Text, "polling, 1 of") {
				t.Errorf("statuses %v", st)
			}
		})
	}
}

// TestInOutage: the agent goes away and comes back; the node shows the
// error, reports it, and polls again.
func TestInOutage(t *testing.T) {
	a := snmptest.Start(t)
	h := enginetest.RunNode(t, enginetest.Options{}, "snmp-in", map[string]any{
		"agent": "agent", "period": "50ms", "oids": snmptest.Rows(false),
	}, agentNode(a.Port, nil))
	h.WaitOut(0, 2)
	a.Stop()
	waitStatus(t, h, func(s engine.Status) bool { return s.Fill == "red" && strings.Contains(s.Text, "error: ") })
	if len(h.Errors()) == 0 {
		t.Error("the outage reached no catch node")
	}
	a.Start()
	n := len(h.Out(0))
	waitStatus(t, h, func(s engine.Status) bool { return s.Text == "polling" })
	h.WaitOut(0, n+2)
}

func waitStatus(t *testing.T, h *enginetest.NodeHarness, ok func(engine.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := h.Statuses("node")
		if len(st) > 0 && ok(st[len(st)-1]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrapIn receives v2c and v1 traps sent by Debian's snmptrap.
func TestTrapIn(t *testing.T) {
	port := snmptest.FreeUDPPort(t)
	h := enginetest.RunNode(t, enginetest.Options{}, "snmp-trap-in", map[string]any{
		"host": "127.0.0.1", "port": float64(port), "community": "traps",
		"oids":     []any{map[string]any{"key": "alarm", "oid": "1.3.6.1.4.1.99999.2.1"}, map[string]any{"key": "line", "oid": "1.3.6.1.4.1.99999.3"}},
		"unmapped": true, "deviceFrom": "source",
	})
	waitStatus(t, h, func(s engine.Status) bool { return s.Text == "listening" })
	to := fmt.Sprintf("127.0.0.1:%d", port)
	snmptest.Trap(t, "v2c", "traps", to, "4242", "1.3.6.1.4.1.99999.0.7",
		"1.3.6.1.4.1.99999.2.1", "i", "5", "1.3.6.1.4.1.99999.3.2", "s", "on battery", "1.3.6.1.4.1.99999.4", "u", "17")
	m := h.WaitOut(0, 1)[0]
	if m.Topic != "1.3.6.1.4.1.99999.0.7" {
		t.Errorf("topic %q", m.Topic)
	}
	p := m.Payload.(map[string]any)
	if p["alarm"] != int64(5) || p["line.2"] != "on battery" || p["1.3.6.1.4.1.99999.4"] != int64(17) {
		t.Errorf("payload %v", p)
	}
	info, _ := m.Get("trap")
	if tr := info.(map[string]any); tr["version"] != "v2c" || tr["uptime"] != int64(4242) || tr["source"] != "127.0.0.1" {
		t.Errorf("trap %v", tr)
	}
	if d, _ := m.Get("device"); d != "127.0.0.1" {
		t.Errorf("device %v", d)
	}

	// v1: enterprise, agent address, generic and specific trap.
	snmptest.Trap(t, "v1", "traps", to, "1.3.6.1.4.1.99999", "127.0.0.1", "6", "3", "77", "1.3.6.1.4.1.99999.2.1", "i", "9")
	m = h.WaitOut(0, 2)[1]
	info, _ = m.Get("trap")
	tr := info.(map[string]any)
	if m.Topic != "1.3.6.1.4.1.99999.0.3" || tr["version"] != "v1" || tr["specific"] != int64(3) || tr["uptime"] != int64(77) || m.Payload.(map[string]any)["alarm"] != int64(9) {
		t.Errorf("v1 trap: topic %q, trap %v, payload %v", m.Topic, tr, m.Payload)
	}

	// Another community is dropped and counted.
	snmptest.Trap(t, "v2c", "wrong", to, "1", "1.3.6.1.4.1.99999.0.7", "1.3.6.1.4.1.99999.2.1", "i", "1")
	waitStatus(t, h, func(s engine.Status) bool { return strings.Contains(s.Text, "1 with another community dropped") })
	if n := len(h.Out(0)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestBulkwalkNeedsV2: a bulkwalk row with a v1 agent is refused at
// deploy, naming the row's method.
func TestBulkwalkNeedsV2(t *testing.T) {
	data, _ := json.Marshal([]any{map[string]any{"id": "tab", "type": "tab"}, agentNode(161, map[string]any{"version": "v1"}),
		map[string]any{"id": "in", "type": "snmp-in", "z": "tab", "agent": "agent", "wires": []any{},
			"oids": []any{map[string]any{"key": "a", "oid": "1.3.6", "method": "bulkwalk"}}}})
	f, err := engine.ParseFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer e.Stop(context.Background())
	_, err = e.Deploy(context.Background(), f, "", engine.DeployFull)
	if err == nil || !strings.Contains(err.Error(), `node "in" (snmp-in): oids[0].method: bulkwalk needs SNMP v2c or v3`) {
		t.Fatalf("deploy: %v", err)
	}
}

// TestWalkBound: a walk stops at its bound and says so.
func TestWalkBound(t *testing.T) {
	a := snmptest.Start(t)
	defer snmp.SetMaxWalk(3)()
	h := enginetest.RunNode(t, enginetest.Options{}, "snmp-in", map[string]any{
		"agent": "agent", "period": "1h", "oids": []any{map[string]any{"key": "ent", "oid": "1.3.6.1.4.1.99999.1", "method": "walk"}},
	}, agentNode(a.Port, nil))
	m := h.WaitOut(0, 1)[0]
	if n := len(m.Payload.(map[string]any)); n != 3 {
		t.Errorf("%d values, want 3: %v", n, m.Payload)
	}
	info, _ := m.Get("snmp")
	if e, _ := info.(map[string]any)["errors"].(map[string]any)["ent"].(string); !strings.Contains(e, "more than 3 variables") {
		t.Errorf("errors %v", info)
	}
}
