package mqtt_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
)

// effective returns a field's value with the spec's default applied, as
// text (so 1883 and 1883.0 compare equal).
func effective(t *testing.T, reg *engine.Registry, n *engine.NodeDef, field string) string {
	t.Helper()
	if v, ok := n.Fields[field]; ok && v != nil {
		return fmt.Sprint(v)
	}
	typ, ok := reg.Lookup(n.Type)
	if !ok {
		t.Fatalf("no type %q", n.Type)
	}
	for _, f := range typ.Fields {
		if f.Name == field {
			return fmt.Sprint(f.Default)
		}
	}
	return "<nil>"
}

func nodeByID(f *engine.Flow, id string) *engine.NodeDef {
	for _, n := range f.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

const mqttFlow = `[
 {"id":"tab","type":"tab","label":"mqtt"},
 {"id":"mb","type":"mqtt-broker","host":"broker.example.com","port":1884,"clientId":"gw-7","username":"alice","password":"hunter2-literal","keepalive":"45s","cleanSession":false,"tls":true,"caFile":"/etc/ca.pem","reconnectMax":"5s"},
 {"id":"mb2","type":"mqtt-broker","host":"10.0.0.2","password":"${MQTT_PASSWORD}"},
 {"id":"in","type":"mqtt-in","z":"tab","broker":"mb","topic":"sensors/+/data","qos":2,"format":"text","deviceSource":"topic","deviceLevel":2,"maxBytes":1024,"x":100,"y":40,"wires":[["out"]]},
 {"id":"in2","type":"mqtt-in","z":"tab","broker":"mb2","topic":"a/#","x":100,"y":100,"wires":[[]]},
 {"id":"out","type":"mqtt-out","z":"tab","broker":"mb","topic":"cmnd/{{device}}/POWER","qos":0,"retain":true,"format":"json","x":300,"y":40,"wires":[[]]},
 {"id":"out2","type":"mqtt-out","z":"tab","broker":"mb2","x":300,"y":100,"wires":[[]]}
]`

// TestExportNodeRED: the MQTT nodes are written with Node-RED's types and
// fields, no password leaves, what does not map is reported, and the
// import reads the export back to the same settings.
func TestExportNodeRED(t *testing.T) {
	reg := engine.DefaultRegistry()
	f, err := engine.ParseFlow([]byte(mqttFlow))
	if err != nil {
		t.Fatal(err)
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("test flow invalid: %v", ps.Err())
	}
	out, rep := reg.ExportNodeRED(f)
	if len(rep.Missing) != 0 {
		t.Errorf("missing types %v, want none", rep.MissingTypes())
	}
	data, _ := out.MarshalJSON()
	for _, secret := range []string{"hunter2", "MQTT_PASSWORD", "password"} {
		if strings.Contains(string(data), secret) {
			t.Errorf("export holds %q:\n%s", secret, data)
		}
	}
	var nodes []map[string]any
	json.Unmarshal(data, &nodes)
	byID := map[string]map[string]any{}
	for _, n := range nodes {
		byID[n["id"].(string)] = n
	}
	want := map[string]map[string]any{
		"mb": {"type": "mqtt-broker", "broker": "broker.example.com", "port": "1884", "clientid": "gw-7", "usetls": true,
			"verifyservercert": true, "keepalive": "45", "cleansession": false, "protocolVersion": "4",
			"credentials": map[string]any{"user": "alice"}},
		"mb2":  {"type": "mqtt-broker", "broker": "10.0.0.2", "port": "1883", "usetls": false, "keepalive": "30", "cleansession": true},
		"in":   {"type": "mqtt in", "broker": "mb", "topic": "sensors/+/data", "qos": "2", "datatype": "utf8", "inputs": 0.0},
		"in2":  {"type": "mqtt in", "broker": "mb2", "topic": "a/#", "qos": "1", "datatype": "auto-detect"},
		"out":  {"type": "mqtt out", "broker": "mb", "topic": "cmnd/{{device}}/POWER", "qos": "0", "retain": "true"},
		"out2": {"type": "mqtt out", "broker": "mb2", "topic": "", "qos": "1", "retain": "false"},
	}
	for id, fields := range want {
		for k, v := range fields {
			if got := byID[id][k]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("node %s: %s = %#v, want %#v", id, k, got, v)
			}
		}
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, w := range []string{
		`"mb" (mqtt-broker): password (Password) is a secret and is not exported`,
		`"mb2" (mqtt-broker → mqtt-broker): password (Password) = ${MQTT_PASSWORD} is a secret and is not exported`,
		`"mb" (mqtt-broker → mqtt-broker): caFile, certFile`,
		`"mb" (mqtt-broker → mqtt-broker): reconnectMax (Longest reconnect pause) = 5s`,
		`"in" (mqtt-in → mqtt in): the device name and profile (topic`,
		`"in" (mqtt-in → mqtt in): maxBytes (Largest payload) = 1024`,
		`"out" (mqtt-out → mqtt out): Node-RED publishes to the topic as written`,
		`"out" (mqtt-out → mqtt out): format json`,
	} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
	if strings.Contains(notes, `"in2" (mqtt-in → mqtt in): the device`) || strings.Contains(notes, `"mb2" (mqtt-broker → mqtt-broker): reconnectMax`) {
		t.Errorf("notes about settings left at their defaults:\n%s", notes)
	}

	back, irep, err := reg.ImportNodeRED(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(irep.Unsupported) != 0 {
		t.Fatalf("import of the export drops %v", irep.UnsupportedTypes())
	}
	if ps := reg.Validate(back, nil); ps.HasErrors() {
		t.Fatalf("import of the export invalid: %v", ps.Err())
	}
	mapped := map[string][]string{
		"mqtt-broker": {"host", "port", "clientId", "username", "keepalive", "cleanSession", "tls"},
		"mqtt-in":     {"broker", "topic", "qos", "format"},
		"mqtt-out":    {"broker", "topic", "qos", "retain"},
	}
	for _, n := range f.Nodes {
		if n.Type == "tab" {
			continue
		}
		b := nodeByID(back, n.ID)
		if b == nil || b.Type != n.Type {
			t.Errorf("node %s (%s) came back as %+v", n.ID, n.Type, b)
			continue
		}
		for _, k := range mapped[n.Type] {
			w, g := effective(t, reg, n, k), effective(t, reg, b, k)
			if k == "port" && w == "0" {
				w = map[bool]string{false: "1883", true: "8883"}[n.Fields["tls"] == true]
			}
			if w != g {
				t.Errorf("round trip of %s.%s: %s, want %s", n.ID, k, g, w)
			}
		}
		if len(b.Wires) != len(n.Wires) || (len(n.Wires) > 0 && strings.Join(b.Wires[0], ",") != strings.Join(n.Wires[0], ",")) {
			t.Errorf("round trip of %s: wires %v, want %v", n.ID, b.Wires, n.Wires)
		}
	}
}
