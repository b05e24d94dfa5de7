package http_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
)

const httpFlow = `[
 {"id":"tab","type":"tab","label":"http"},
 {"id":"hin","type":"http-in","z":"tab","listen":"0.0.0.0:8085","path":"/api/v1/{device}/telemetry","method":"PUT","auth":"token","secret":"tok-literal-42","deviceSource":"path","maxBytes":2048,"x":100,"y":40,"wires":[["req"]]},
 {"id":"hin2","type":"http-in","z":"tab","path":"/plain","auth":"none","x":100,"y":100,"wires":[[]]},
 {"id":"req","type":"http-request","z":"tab","url":"http://127.0.0.1:8090/api/{{device}}/x?q={{payload.id}}","method":"POST","format":"text",
  "headers":[{"name":"Accept","value":"application/json"}],"authHeader":"X-Api-Key","authValue":"key-literal-43","device":"Weather","timeout":"3s","x":300,"y":40,"wires":[[]]},
 {"id":"req2","type":"http-request","z":"tab","url":"https://example.com/w","interval":"30s","x":300,"y":100,"wires":[[]]}
]`

func nodeByID(f *engine.Flow, id string) *engine.NodeDef {
	for _, n := range f.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func effective(t *testing.T, reg *engine.Registry, n *engine.NodeDef, field string) string {
	t.Helper()
	if v, ok := n.Fields[field]; ok && v != nil {
		b, _ := json.Marshal(v)
		return string(b)
	}
	typ, _ := reg.Lookup(n.Type)
	for _, f := range typ.Fields {
		if f.Name == field {
			b, _ := json.Marshal(f.Default)
			return string(b)
		}
	}
	return "null"
}

// TestExportNodeRED: http-in and http-request are written as Node-RED's
// http in and http request, no secret leaves, the token check and the
// other tbflow-only settings are reported, and the import reads the
// export back to the same settings.
func TestExportNodeRED(t *testing.T) {
	reg := engine.DefaultRegistry()
	f, err := engine.ParseFlow([]byte(httpFlow))
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
	for _, secret := range []string{"tok-literal-42", "key-literal-43"} {
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
		"hin":  {"type": "http in", "url": "/api/v1/:device/telemetry", "method": "put", "upload": false},
		"hin2": {"type": "http in", "url": "/plain", "method": "post"},
		"req": {"type": "http request", "url": "http://127.0.0.1:8090/api/{{{device}}}/x?q={{{payload.id}}}", "method": "POST", "ret": "txt",
			"headers": []any{map[string]any{"keyType": "other", "keyValue": "Accept", "valueType": "other", "valueValue": "application/json"}}},
		"req2": {"type": "http request", "url": "https://example.com/w", "method": "GET", "ret": "obj", "headers": []any{}},
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
		`"hin" (http-in → http in): the token check (auth) is tbflow's`,
		`"hin" (http-in → http in): Node-RED's http in does not answer by itself`,
		`"hin" (http-in → http in): the device name and profile (path`,
		`"hin" (http-in → http in): listen (Listen address) = 0.0.0.0:8085`,
		`"hin" (http-in → http in): maxBytes (Largest body) = 2048`,
		`"req2" (http-request → http request): Node-RED's http request does not poll: wire an inject node repeating every 30s`,
		`"req" (http-request): authValue (Secret header value) is a secret and is not exported`,
		`"req" (http-request → http request): authHeader (Secret header) = X-Api-Key has no Node-RED counterpart`,
		`"hin" (http-in): secret (Token or password) is a secret and is not exported`,
		`"req" (http-request → http request): device and deviceType`,
		`"req" (http-request → http request): timeout (Timeout) = 3s`,
	} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
	for _, no := range []string{`"hin2" (http-in → http in): the`, `"req" (http-request → http request): Node-RED's http request does not poll`, `"req2" (http-request → http request): authValue`} {
		if strings.Contains(notes, no) {
			t.Errorf("notes hold %q for a setting not made:\n%s", no, notes)
		}
	}

	back, irep, err := reg.ImportNodeRED(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(irep.Unsupported) != 0 {
		t.Fatalf("import of the export drops %v", irep.UnsupportedTypes())
	}
	mapped := map[string][]string{
		"http-in":      {"path", "method"},
		"http-request": {"url", "method", "format", "headers"},
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
			if w, g := effective(t, reg, n, k), effective(t, reg, b, k); w != g {
				t.Errorf("round trip of %s.%s: %s, want %s", n.ID, k, g, w)
			}
		}
	}
}
