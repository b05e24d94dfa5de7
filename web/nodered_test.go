package web_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
)

func TestNodeREDImportAndExportEndpoints(t *testing.T) {
	s := newAPIServer(t, false)
	nr := `[{"id":"i","type":"inject","z":"t9","props":[{"p":"payload"}],"payload":"2","payloadType":"num","repeat":"","x":10,"y":10,"wires":[["f"]]},
	 {"id":"f","type":"function","z":"t9","func":"return msg;","outputs":1,"libs":[],"x":20,"y":10,"wires":[["x"]]},
	 {"id":"x","type":"exec","z":"t9","command":"ls","x":30,"y":10,"wires":[[],[],[]]}]`
	code, _, b := s.do("POST", "/api/nodered/import", nr)
	if code != 200 {
		t.Fatalf("import: %d %s", code, b)
	}
	res := decode[struct {
		NodeRED  bool            `json:"nodered"`
		Flows    json.RawMessage `json:"flows"`
		Text     string          `json:"text"`
		Problems []engine.Problem
	}](t, b)
	if !res.NodeRED || !strings.Contains(res.Text, `not converted: 1 "exec" node(s)`) || len(res.Problems) != 0 {
		t.Fatalf("import answer: %s", b)
	}
	f, err := engine.ParseFlow(res.Flows)
	if err != nil || f.Node("t9") == nil || f.Node("i").Fields["payloadType"] != "number" || f.Node("x") != nil {
		t.Fatalf("converted flow: %s (%v)", res.Flows, err)
	}
	// A tbflow flow is left alone.
	code, _, b = s.do("POST", "/api/nodered/import", basicFlow)
	if code != 200 || !strings.Contains(string(b), `"nodered":false`) {
		t.Fatalf("tbflow flow: %d %s", code, b)
	}
	// Export: Node-RED's names, the test type as a missing one.
	code, _, b = s.do("POST", "/api/nodered/export", basicFlow)
	if code != 200 {
		t.Fatalf("export: %d %s", code, b)
	}
	exp := decode[struct {
		Flows  []map[string]any `json:"flows"`
		Report struct {
			Missing map[string][]string `json:"missing"`
		} `json:"report"`
	}](t, b)
	if exp.Flows[1]["payloadType"] != "str" || exp.Flows[2]["complete"] != "false" || len(exp.Report.Missing["test-lamp"]) != 1 {
		t.Fatalf("export answer: %s", b)
	}
	if code, _, b := s.do("POST", "/api/nodered/import", `[{"id":`); code != 400 || !strings.Contains(string(b), "line 1") {
		t.Fatalf("bad JSON: %d %s", code, b)
	}
}
