package tbsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
)

// TestPythonSDKCalls replays the device calls of ThingsBoard's official
// Python SDK with Debian's python3-paho-mqtt (MQTT 5, as the SDK connects)
// against tbsim.
func TestPythonSDKCalls(t *testing.T) {
	py := debianPython(t)
	s, err := New(Options{ClientRPC: func(_ context.Context, _, method string, params json.RawMessage) (json.RawMessage, error) {
		if method == "echo" {
			return params, nil
		}
		return json.RawMessage(`{"error":"timeout"}`), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddDevice(Device{Name: "sdk-device", Token: "sdk-token"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("sdk-device", map[string]any{"target": 22.5}); err != nil {
		t.Fatal(err)
	}
	fw := make([]byte, 10_000)
	for i := range fw {
		fw[i] = byte(i * 7)
	}
	if err := s.AssignOTA("sdk-device", "fw", OTAPackage{Title: "sdk-fw", Version: "2", Data: fw, ChecksumAlgorithm: "SHA256"}); err != nil {
		t.Fatal(err)
	}
	s.AddProvisionProfile(ProvisionProfile{Key: "pk", Secret: "ps"})
	host, port, _ := net.SplitHostPort(s.MQTTAddr())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rpcReply := make(chan json.RawMessage, 1)
	result := runSDKScript(t, ctx, py, []string{"testdata/sdk_device_calls.py", host, port, "sdk-token", "pk", "ps"}, func(line string) {
		if line == "READY_FOR_RPC" {
			go func() {
				r, err := s.RPC(ctx, "sdk-device", "setValve", map[string]any{"open": true}, false)
				if err != nil {
					t.Errorf("rpc to the SDK client: %v", err)
				}
				rpcReply <- r
			}()
		}
	})
	check := func(key, want string) {
		t.Helper()
		var buf bytes.Buffer
		if err := json.Compact(&buf, result[key]); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		if got := buf.String(); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	check("connack", "0")
	check("telemetryRc", "0")
	check("claimRc", "0")
	check("attributes", `{"client":{"serial":"SN-1"},"shared":{"target":22.5}}`)
	check("clientRpc", `{"x":1}`)
	check("serverRpc", `{"id":"0","method":"setValve","params":{"open":true}}`)
	var sl struct {
		MaxPayloadSize      int
		MaxInflightMessages int
		RateLimits          map[string]any
	}
	if err := json.Unmarshal(result["sessionLimits"], &sl); err != nil || sl.MaxPayloadSize != 65536 || sl.MaxInflightMessages != 100 || len(sl.RateLimits) != 3 {
		t.Errorf("sessionLimits %s", result["sessionLimits"])
	}
	check("firmware", `{"title":"sdk-fw","size":10000,"chunks":3,"sha256ok":true}`)
	var prov struct{ Status, CredentialsType, CredentialsValue string }
	if err := json.Unmarshal(result["provision"], &prov); err != nil || prov.Status != "SUCCESS" || prov.CredentialsType != "ACCESS_TOKEN" || prov.CredentialsValue == "" {
		t.Errorf("provision %s", result["provision"])
	}
	if r := <-rpcReply; strings.ReplaceAll(string(r), " ", "") != `{"done":true,"echo":{"open":true}}` {
		t.Errorf("rpc reply %s", r)
	}
	latest := s.Latest("sdk-device")
	if latest["temperature"].Value != 21.5 || latest["on"].Value != true || latest["fw_state"].Value != "UPDATED" {
		t.Errorf("telemetry %+v", latest)
	}
	if h := s.History("sdk-device", "temperature"); len(h) != 2 || h[0].Ts != 1700000000000 {
		t.Errorf("temperature history %+v", h)
	}
	if a := s.ClientAttributes("sdk-device"); a["serial"] != "SN-1" {
		t.Errorf("client attributes %+v", a)
	}
	if c := s.Claims("sdk-device"); len(c) != 1 || c[0].SecretKey != "sdk-secret" || c[0].DurationMs != 60000 {
		t.Errorf("claims %+v", c)
	}
}

// debianPython returns Debian's python3 with python3-paho-mqtt, or skips
// (fails when peers are required).
func debianPython(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs python3-paho-mqtt")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import paho.mqtt.client").Run(); err != nil {
		msg := "Debian's python3-paho-mqtt not found: apt-get install python3-paho-mqtt (make test does this as root)"
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}

// TestPythonSDKGatewayCalls replays the gateway calls of the official
// Python SDK (tb_gateway_mqtt.py) with Debian's python3-paho-mqtt.
func TestPythonSDKGatewayCalls(t *testing.T) {
	py := debianPython(t)
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "sdk-gateway", Token: "sdk-gw-token", Gateway: true})
	mustAdd(t, s, Device{Name: "Gw Dev A", Type: "meter"})
	if err := s.SetShared("Gw Dev A", map[string]any{"target": 22.5, "mode": "eco"}); err != nil {
		t.Fatal(err)
	}
	s.SetGatewayRateLimits("sdk-gateway", RateLimits{Messages: "100:1"})
	host, port, _ := net.SplitHostPort(s.MQTTAddr())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rpcReply := make(chan json.RawMessage, 1)
	result := runSDKScript(t, ctx, py, []string{"testdata/sdk_gateway_calls.py", host, port, "sdk-gw-token"}, func(line string) {
		switch line {
		case "READY_FOR_UPDATE":
			if err := s.SetShared("Gw Dev B", map[string]any{"threshold": 5}); err != nil {
				t.Error(err)
			}
		case "READY_FOR_RPC":
			go func() {
				r, err := s.RPC(ctx, "Gw Dev A", "setValve", map[string]any{"open": true}, false)
				if err != nil {
					t.Errorf("rpc through the SDK gateway: %v", err)
				}
				rpcReply <- r
			}()
		}
	})
	check := func(key, want string) {
		t.Helper()
		jsonEqual(t, key, result[key], want)
	}
	check("connack", "0")
	check("suback", "[1,1,1,1,1,1,1]")
	check("connectRc", "0")
	check("telemetryRc", "0")
	check("clientAttr", `{"id":1,"device":"Gw Dev A","value":"SN-A"}`)
	check("sharedAttr", `{"id":2,"device":"Gw Dev A","values":{"target":22.5,"mode":"eco"}}`)
	check("update", `{"device":"Gw Dev B","data":{"threshold":5}}`)
	check("serverRpc", `{"device":"Gw Dev A","data":{"id":0,"method":"setValve","params":{"open":true}}}`)
	check("rpcReplyRc", "0")
	check("claimRc", "0")
	check("disconnectRc", "0")
	var sl struct {
		RateLimits        map[string]any
		GatewayRateLimits map[string]any
	}
	if err := json.Unmarshal(result["sessionLimits"], &sl); err != nil || len(sl.RateLimits) != 3 || sl.GatewayRateLimits["messages"] != "100:1" {
		t.Errorf("sessionLimits %s", result["sessionLimits"])
	}
	if r := <-rpcReply; string(r) != `{"done":true,"echo":{"open":true}}` {
		t.Errorf("rpc reply %s", r)
	}
	latest := s.Latest("Gw Dev A")
	if latest["temperature"].Value != 21.5 || latest["on"].Value != true {
		t.Errorf("telemetry %+v", latest)
	}
	if h := s.History("Gw Dev A", "temperature"); len(h) != 2 || h[0].Ts != 1700000000000 {
		t.Errorf("temperature history %+v", h)
	}
	if a := s.ClientAttributes("Gw Dev A"); a["serial"] != "SN-A" || a["fwVersion"] != "v1" {
		t.Errorf("client attributes %+v", a)
	}
	if c := s.Claims("Gw Dev A"); len(c) != 1 || c[0].SecretKey != "sdk-secret" || c[0].DurationMs != 60000 {
		t.Errorf("claims %+v", c)
	}
	if s.Latest("Gw Dev B")["level"].Value != int64(3) {
		t.Errorf("implicitly connected device telemetry %+v", s.Latest("Gw Dev B"))
	}
	for _, d := range s.Devices() {
		if d.Name == "Gw Dev A" && (d.Type != "meter" || d.LastGateway != "sdk-gateway") {
			t.Errorf("existing device changed: %+v", d)
		}
		if d.Name == "Gw Dev B" && d.Type != "default" {
			t.Errorf("implicit device type %q", d.Type)
		}
	}
}

// runSDKScript runs a replay script with Debian's python3, hands every
// output line to onLine, and returns the JSON of its "RESULT " line.
func runSDKScript(t *testing.T, ctx context.Context, py string, args []string, onLine func(string)) map[string]json.RawMessage {
	t.Helper()
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var result map[string]json.RawMessage
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			if err := json.Unmarshal([]byte(rest), &result); err != nil {
				t.Fatal(err)
			}
			continue
		}
		onLine(line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", args[0], err)
	}
	if result == nil {
		t.Fatalf("%s printed no result", args[0])
	}
	return result
}
