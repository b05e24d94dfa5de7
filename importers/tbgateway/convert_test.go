package tbgateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/importers/tbgateway"
)

const sample = `{"name": "Modbus", "master": {"slaves": [
 {"type": "serial", "method": "rtu", "port": "/dev/ttyUSB0", "baudrate": 9600, "parity": "E", "stopbits": 1, "bytesize": 8,
  "unitId": 7, "deviceName": "Meter", "deviceType": "meter", "pollPeriod": 2000, "byteOrder": "BIG", "wordOrder": "LITTLE",
  "timeout": 2, "retries": true, "retryOnEmpty": true, "strict": false,
  "reportStrategy": {"type": "ON_CHANGE_OR_REPORT_PERIOD", "reportPeriod": 60000},
  "timeseries": [
   {"tag": "voltage", "type": "16uint", "functionCode": 4, "objectsCount": 1, "address": 0, "multiplier": 0.1},
   {"tag": "temp_${address}", "type": "16int", "functionCode": 3, "objectsCount": 1, "address": "10-13", "divider": 10},
   {"tag": "weird", "type": "4bits", "functionCode": 3, "objectsCount": 4, "address": 20}],
  "attributes": [{"tag": "serial", "type": "string", "functionCode": 3, "objectsCount": 4, "address": 30}],
  "attributeUpdates": [{"tag": "limit", "type": "32uint", "functionCode": 16, "objectsCount": 2, "address": 40}],
  "rpc": [{"tag": "getVoltage", "type": "16uint", "functionCode": 4, "objectsCount": 1, "address": 0},
          {"tag": "setRelay", "type": "bits", "functionCode": 5, "objectsCount": 1, "address": 1}]}]},
 "slave": {"type": "tcp", "port": 5026}}`

func TestConvertMapsAndReports(t *testing.T) {
	res, err := tbgateway.Convert([]byte(sample), tbgateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(res.Flow)
	f, err := engine.ParseFlow(doc)
	if err != nil {
		t.Fatal(err)
	}
	env := func(string) (string, bool) { return "token", true }
	if ps := engine.DefaultRegistry().Validate(f, env); ps.HasErrors() {
		t.Fatalf("converted flow: %v", ps)
	}
	byType := map[string][]map[string]any{}
	for _, n := range res.Flow {
		byType[n["type"].(string)] = append(byType[n["type"].(string)], n)
	}
	conn := byType["modbus-connection"][0]
	if conn["transport"] != "rtu" || conn["device"] != "/dev/ttyUSB0" || conn["parity"] != "even" || conn["retries"] != 3.0 || conn["compat"] != "tb-gateway" || conn["timeout"] != "2s" {
		t.Errorf("connection %v", conn)
	}
	in := byType["modbus-in"][0]
	rows := in["registers"].([]any)
	if in["unit"] != 7.0 || in["period"] != "2000ms" || len(rows) != 3 {
		t.Fatalf("modbus-in %v", in)
	}
	v := rows[0].(map[string]any)
	if v["scale"] != 0.1 || v["order"] != "CDAB" || v["report"] != "change-or-period" || v["reportPeriod"] != "60000ms" || v["scope"] != "telemetry" {
		t.Errorf("voltage row %v", v)
	}
	r := rows[1].(map[string]any)
	if r["key"] != "temp_{address}" || r["address"] != 10.0 || r["to"] != 13.0 || r["divider"] != 10.0 {
		t.Errorf("range row %v", r)
	}
	if s := rows[2].(map[string]any); s["scope"] != "attribute" || s["type"] != "string" || s["length"] != 4.0 {
		t.Errorf("attribute row %v", s)
	}
	if len(byType["modbus-read"]) != 1 || len(byType["modbus-write"]) != 2 || len(byType["gw-device"]) != 1 || byType["gw-device"][0]["deviceType"] != "meter" {
		t.Errorf("write paths %v", byType)
	}
	report := strings.Join(res.Report, "\n")
	for _, want := range []string{`"4bits"`, `"strict"`, "no values to serve"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %s:\n%s", want, report)
		}
	}
}

func TestConvertRejects(t *testing.T) {
	for _, doc := range []string{`{`, `{"server": {"devices": []}}`, `{"foo": 1}`} {
		if _, err := tbgateway.Convert([]byte(doc), tbgateway.Options{}); err == nil {
			t.Errorf("%s converted", doc)
		}
	}
}
