package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/nodes/opcua/opcuatest"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// connectorFlow loads an example flow as objects, for a test to adjust.
func connectorFlow(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "flows", name))
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(data, &objs); err != nil {
		t.Fatal(err)
	}
	return objs
}

func flowNode(t *testing.T, objs []map[string]any, id string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["id"] == id {
			return o
		}
	}
	t.Fatalf("no node %q in the flow", id)
	return nil
}

// writeFlow writes objs and their credentials file into a temporary
// directory and returns the flow file's path.
func writeFlow(t *testing.T, objs []map[string]any, creds string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "flow.json")
	data, _ := json.Marshal(objs)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flow_cred.json"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startGatewaySim starts a tbsim with the demo gateway.
func startGatewaySim(t *testing.T) (*tbsim.Server, float64) {
	t.Helper()
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "demo-gateway", Gateway: true, Token: "gateway-token"}); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	return tbs, float64(port)
}

// runFlow runs `tbflow run` on file until the test ends.
func runFlow(t *testing.T, file string, flags ...string) *logBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	done := make(chan int, 1)
	var out logBuffer
	go func() {
		args := append(append([]string{"run", "-log-format", "json", "-stop-timeout", "5s"}, flags...), file)
		done <- runMain(ctx, args, &out, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("tbflow run exited %d:\n%s", code, logs.String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("tbflow run did not stop:\n%s", logs.String())
		}
	})
	return logs
}

func waitLogFrom(t *testing.T, logs *logBuffer, from int, want ...string) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := logs.String()
		if from < len(s) {
			all := true
			for _, w := range want {
				all = all && strings.Contains(s[from:], w)
			}
			if all {
				return len(s)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q after byte %d:\n%s", want, from, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunOPCUAConnector runs flows/opcua-to-tb.json through `tbflow run`
// against the node-opcua server and tbsim: every data type arrives as
// telemetry of the device "PLC 1", an RPC writes a variable, and a server
// outage is survived and shown in the status log.
func TestRunOPCUAConnector(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{Tick: 100 * time.Millisecond})
	tbs, tbPort := startGatewaySim(t)
	objs := connectorFlow(t, "opcua-to-tb.json")
	flowNode(t, objs, "gw")["port"] = tbPort
	flowNode(t, objs, "ua")["endpoint"] = srv.Endpoint
	flowNode(t, objs, "ua")["timeout"] = "1s"
	plc := flowNode(t, objs, "plc")
	rows := opcuatest.Rows()
	rows = append(rows, map[string]any{"key": "setpoint", "nodeId": "ns=2;s=Float"})
	plc["items"], plc["interval"], plc["samplingInterval"], plc["keepAlive"] = rows, "100ms", "50ms", "500ms"
	file := writeFlow(t, objs, `{"gw": {"accessToken": "gateway-token"}}`)
	logs := runFlow(t, file, "-metrics", "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tbs.WaitTelemetry(ctx, "PLC 1", "counter", 3); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	checkMetrics(t, logs, `tbflow_node_messages_out_total{node_id="plc",node_type="opcua-in"}`)
	latest := tbs.Latest("PLC 1")
	for _, it := range opcuatest.Items {
		got, _ := json.Marshal(latest[it.Key].Value)
		if string(got) != it.JSON {
			t.Errorf("telemetry %s = %s, want %s", it.Key, got, it.JSON)
		}
	}

	reply, err := tbs.RPC(ctx, "PLC 1", "setpoint", 72.5, false)
	if err != nil || !strings.Contains(string(reply), `"ok":true`) {
		t.Fatalf("rpc reply %s %v\n%s", reply, err, logs.String())
	}
	reply, err = tbs.RPC(ctx, "PLC 1", "setpoint", "warm", false)
	if err != nil || !strings.Contains(string(reply), "not a number") {
		t.Fatalf("rpc reply to a bad value %s %v", reply, err)
	}
	waitTelemetryValue(t, tbs, "PLC 1", "setpoint", "72.5")

	// An outage: the status log shows the error, then the link again.
	mark := waitLogFrom(t, logs, 0, `connected`)
	srv.Stop()
	mark = waitLogFrom(t, logs, mark, `error: `)
	n := len(tbs.History("PLC 1", "counter"))
	srv.Start()
	waitLogFrom(t, logs, mark, `"text\":\"connected\"`)
	if err := tbs.WaitTelemetry(ctx, "PLC 1", "counter", n+3); err != nil {
		t.Fatalf("no telemetry after the server came back: %v", err)
	}
}

func waitTelemetryValue(t *testing.T, tbs *tbsim.Server, device, key, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := json.Marshal(tbs.Latest(device)[key].Value)
		if string(got) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("telemetry %s of %s = %s, want %s", key, device, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkMetrics reads the metrics `tbflow run -metrics` serves and checks
// that series is there with a value above 0.
func checkMetrics(t *testing.T, logs *logBuffer, series string) {
	t.Helper()
	m := regexp.MustCompile(`"url":"(http://[^"]+/metrics)"`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", logs.String())
	}
	res, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if n, _ := strconv.ParseFloat(v, 64); n > 0 {
				return
			}
		}
	}
	t.Errorf("metrics lack %s > 0:\n%s", series, body)
}

// TestConnectorNodes: `tbflow nodes` lists the OPC UA and SNMP node types,
// and `tbflow validate` names the field of a bad connector setting.
func TestConnectorNodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"nodes"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, typ := range []string{"opcua-connection", "opcua-in", "opcua-write", "snmp-agent", "snmp-in", "snmp-trap-in"} {
		if !strings.Contains(out.String(), "### `"+typ+"`") {
			t.Errorf("tbflow nodes lacks %s", typ)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`[
	 {"id":"ua","type":"opcua-connection","endpoint":"http://plc:4840","securityPolicy":"Basic256Sha256","securityMode":"Sign"},
	 {"id":"in","type":"opcua-in","z":"t","connection":"ua","items":[{"key":"t","nodeId":"ns=two;s=1"}],"wires":[]},
	 {"id":"agent","type":"snmp-agent","version":"v3"},
	 {"id":"poll","type":"snmp-in","z":"t","agent":"agent","oids":[{"key":"up","oid":"sysUpTime.0"}],"wires":[]},
	 {"id":"t","type":"tab"}
	]`), 0o644)
	out.Reset()
	if code := runMain(context.Background(), []string{"validate", bad}, &out, &errOut); code != 1 {
		t.Fatalf("validate exit %d: %s", code, out.String())
	}
	for _, want := range []string{
		`node "ua" (opcua-connection) endpoint: "http://plc:4840" is not an OPC UA endpoint`,
		`node "ua" (opcua-connection) serverCertFile: a secure channel needs the server's certificate`,
		`node "in" (opcua-in) items[0].nodeId: "ns=two;s=1" is not a node id`,
		`node "agent" (snmp-agent) username: SNMP v3 needs a user name`,
		`node "poll" (snmp-in) oids[0].oid: "sysUpTime.0" is not a numeric OID`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out.String())
		}
	}
}
