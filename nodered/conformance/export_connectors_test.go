package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/internal/peers"
)

// connectorFlow has the five connector node types Node-RED also has: an
// inject publishes through mqtt-out to a mosquitto (port %[1]d) and
// mqtt-in reads it back; http-request calls %[2]s; http-in takes posts.
const connectorFlow = `[
 {"id":"x-tab","type":"tab","label":"connectors"},
 {"id":"x-mb","type":"mqtt-broker","host":"127.0.0.1","port":%[1]d,"clientId":"","username":"nr-user","keepalive":"20s","reconnectMax":"2s"},
 {"id":"x-in","type":"inject","z":"x-tab","payloadType":"string","payload":"hello via mqtt","x":100,"y":40,"wires":[["x-out"]]},
 {"id":"x-out","type":"mqtt-out","z":"x-tab","broker":"x-mb","topic":"tbflow/export/up","qos":1,"x":300,"y":40,"wires":[[]]},
 {"id":"x-min","type":"mqtt-in","z":"x-tab","broker":"x-mb","topic":"tbflow/export/#","qos":1,"format":"text","deviceSource":"topic","deviceLevel":2,"x":100,"y":100,"wires":[["x-dbg-mqtt"]]},
 {"id":"x-dbg-mqtt","type":"debug","z":"x-tab","x":300,"y":100,"wires":[]},
 {"id":"x-req-in","type":"inject","z":"x-tab","payloadType":"string","payload":"go","x":100,"y":160,"wires":[["x-req"]]},
 {"id":"x-req","type":"http-request","z":"x-tab","url":"%[2]s/api/{{payload}}","method":"GET","format":"json","x":300,"y":160,"wires":[["x-dbg-http"]]},
 {"id":"x-dbg-http","type":"debug","z":"x-tab","x":500,"y":160,"wires":[]},
 {"id":"x-hin","type":"http-in","z":"x-tab","path":"/hook/{device}","method":"POST","auth":"none","deviceSource":"path","x":100,"y":220,"wires":[["x-dbg-hin"]]},
 {"id":"x-dbg-hin","type":"debug","z":"x-tab","x":300,"y":220,"wires":[]}
]`

// TestExportConnectorsWorkInNodeRED exports mqtt-broker, mqtt-in,
// mqtt-out, http-in and http-request, loads them into Node-RED with none
// missing, and shows them working there: the exported mqtt out publishes
// to a real mosquitto and the exported mqtt in receives it, http request
// fills in its URL template and parses the JSON answer, and http in
// serves its path with the parameter.
func TestExportConnectorsWorkInNodeRED(t *testing.T) {
	mosq := peers.StartMosquitto(t, peers.MosquittoConfig{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"t":21}`, r.URL.Path)
	}))
	defer api.Close()
	nr := startNodeRED(t)

	reg := engine.DefaultRegistry()
	f, err := engine.ParseFlow(fmt.Appendf(nil, connectorFlow, mosq.Port, api.URL))
	if err != nil {
		t.Fatal(err)
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("test flow invalid: %v", ps.Err())
	}
	out, rep := reg.ExportNodeRED(f)
	if len(rep.Missing) != 0 {
		t.Fatalf("export report misses %v, want none", rep.MissingTypes())
	}
	data, _ := out.MarshalJSON()
	before := len(nr.logText())
	if err := nr.deploy(data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(nr.logText()[before:], "Started flows") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if log := nr.logText()[before:]; strings.Contains(log, "missing types") || !strings.Contains(log, "Started flows") {
		t.Fatalf("Node-RED did not start the exported connectors:\n%s", lastLines(log, 30))
	}

	// mqtt out → mosquitto → mqtt in, inside Node-RED. The subscription
	// may follow the first publish, so inject until it arrives.
	ctx := context.Background()
	got := waitDebug(t, nr, "x-dbg-mqtt", func() error { return nr.inject(ctx, "x-in") })
	if got != "hello via mqtt" {
		t.Errorf("Node-RED's mqtt in got %#v, want the text Node-RED's mqtt out published", got)
	}
	if log := nr.logText()[before:]; !strings.Contains(log, fmt.Sprintf("Connected to broker: mqtt://127.0.0.1:%d", mosq.Port)) {
		t.Errorf("Node-RED did not log its connection to mosquitto:\n%s", lastLines(log, 20))
	}

	// The user name reached Node-RED's credentials; no password did.
	resp, err := http.Get(nr.base + "/credentials/mqtt-broker/x-mb")
	if err != nil {
		t.Fatal(err)
	}
	var creds map[string]any
	json.NewDecoder(resp.Body).Decode(&creds)
	resp.Body.Close()
	if creds["user"] != "nr-user" || creds["has_password"] != false {
		t.Errorf("Node-RED's broker credentials = %v, want user nr-user and no password", creds)
	}

	// http request: the {{payload}} template and the JSON answer.
	got = waitDebug(t, nr, "x-dbg-http", func() error { return nr.inject(ctx, "x-req-in") })
	if want := map[string]any{"path": "/api/go", "t": 21.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("Node-RED's http request gave %#v, want %#v", got, want)
	}

	// http in: /hook/{device} became /hook/:device under httpNodeRoot.
	// Node-RED answers only through an http response node (the export
	// report says so), so the post is not waited for.
	got = waitDebug(t, nr, "x-dbg-hin", func() error {
		go func() {
			c := &http.Client{Timeout: time.Second}
			resp, err := c.Post(nr.base+"/nodes/hook/dev-1", "application/json", strings.NewReader(`{"temp":5}`))
			if err == nil {
				resp.Body.Close()
			}
		}()
		return nil
	})
	if want := map[string]any{"temp": 5.0}; !reflect.DeepEqual(got, want) {
		t.Errorf("Node-RED's http in gave %#v, want %#v", got, want)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, w := range []string{"does not answer by itself", "the device name and profile (topic", "the device name and profile (path"} {
		if !strings.Contains(notes, w) {
			t.Errorf("export report lacks %q:\n%s", w, notes)
		}
	}
}

// waitDebug calls poke every half second until Node-RED's debug node id
// shows a value, and returns the first one.
func waitDebug(t *testing.T, nr *nodeRED, id string, poke func() error) any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := poke(); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			for _, d := range nr.debugSeen() {
				if d.ID == id {
					return decodeDebug(d)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	seen, _ := json.Marshal(nr.debugSeen())
	t.Fatalf("Node-RED's debug node %s showed nothing; debug seen: %s\n%s", id, seen, lastLines(nr.logText(), 30))
	return nil
}
