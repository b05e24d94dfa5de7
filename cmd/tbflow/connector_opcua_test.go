package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
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
func runFlow(t *testing.T, file string) *logBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	done := make(chan int, 1)
	var out logBuffer
	go func() {
		done <- runMain(ctx, []string{"run", "-log-format", "json", "-stop-timeout", "5s", file}, &out, logs)
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

func waitLog(t *testing.T, logs *logBuffer, from int, want ...string) int {
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
	logs := runFlow(t, file)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tbs.WaitTelemetry(ctx, "PLC 1", "counter", 3); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
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
	mark := waitLog(t, logs, 0, `connected`)
	srv.Stop()
	mark = waitLog(t, logs, mark, `error: `)
	n := len(tbs.History("PLC 1", "counter"))
	srv.Start()
	waitLog(t, logs, mark, `"text\":\"connected\"`)
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
