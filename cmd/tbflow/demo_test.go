package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `tbflow demo` on free ports and checks what its printout
// promises: the meter's values arrive as telemetry of "Energy Meter" in the
// simulated ThingsBoard, the printed RPC switches the relay and is answered
// by the flow, the editor serves the flow, and Ctrl+C stops it all.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--modbus", "127.0.0.1:0"}, &out, &errOut)
	}()
	editorRe := regexp.MustCompile(`editor\s+(http://127\.0\.0\.1:\d+)/`)
	apiRe := regexp.MustCompile(`ThingsBoard \(sim\) API\s+(http://127\.0\.0\.1:\d+)`)
	var editor, api string
	waitFor(t, 10*time.Second, func() bool {
		s := out.String()
		if m, n := editorRe.FindStringSubmatch(s), apiRe.FindStringSubmatch(s); m != nil && n != nil && strings.Contains(s, "Ctrl+C") {
			editor, api = m[1], n[1]
			return true
		}
		return false
	}, func() string { return "no demo printout: " + out.String() + errOut.String() })
	if !strings.Contains(out.String(), "curl -X POST "+api+"/api/devices/Energy%20Meter/rpc") {
		t.Fatalf("the printout has no RPC example: %s", out.String())
	}

	// Moving telemetry: two readings with different timestamps.
	var first float64
	waitFor(t, 20*time.Second, func() bool {
		var latest map[string]struct {
			Ts    float64 `json:"ts"`
			Value any     `json:"value"`
		}
		getJSON(t, api+"/api/devices/Energy%20Meter/telemetry", &latest)
		v, ok := latest["voltage"]
		if !ok || latest["relay"].Value == nil {
			return false
		}
		if first == 0 {
			first = v.Ts
		}
		return v.Ts > first
	}, func() string { return "no moving telemetry for Energy Meter: " + errOut.String() })

	// The printed RPC: the flow writes the coil and replies.
	resp, err := http.Post(api+"/api/devices/Energy%20Meter/rpc", "application/json", strings.NewReader(`{"method":"relay","params":false}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok":true`) || !strings.Contains(string(body), `"relay":false`) {
		t.Fatalf("rpc: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 10*time.Second, func() bool {
		var latest map[string]struct{ Value any }
		getJSON(t, api+"/api/devices/Energy%20Meter/telemetry", &latest)
		return latest["relay"].Value == false
	}, func() string { return "the relay never read false after the RPC" })

	// The editor serves the page and the demo flow.
	var flows struct {
		Flows []map[string]any `json:"flows"`
		Rev   string           `json:"rev"`
	}
	getJSON(t, editor+"/api/flows", &flows)
	var types []string
	for _, n := range flows.Flows {
		types = append(types, n["type"].(string))
	}
	for _, want := range []string{"modbus-in", "gw-device", "tb-telemetry-out", "tb-rpc-in", "modbus-write", "tb-rpc-out", "tb-attr-in", "debug"} {
		if !strings.Contains(" "+strings.Join(types, " ")+" ", " "+want+" ") {
			t.Errorf("the editor's flow has no %s node: %v", want, types)
		}
	}
	for _, n := range flows.Flows {
		if n["accessToken"] == "gateway-token" {
			t.Errorf("the editor's flow shows the gateway token: %v", n)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}

// TestDemoSavesEdits: with --flows, the demo starts from that file when it
// exists (created from the demo flow otherwise), pointed at this run's ports.
func TestDemoSavesEdits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "demo.json")
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- runMain(ctx, []string{"demo", "--flows", file, "--listen", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--modbus", "127.0.0.1:0"}, &out, &errOut)
		}()
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "Ctrl+C") },
			func() string { return "no demo printout: " + out.String() + errOut.String() })
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("round %d: exit %d: %s", round, code, errOut.String())
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		mqtt := regexp.MustCompile(`MQTT on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(out.String())
		if mqtt == nil || !strings.Contains(string(data), `"port":`+mqtt[1]) {
			t.Fatalf("round %d: the saved flow is not pointed at this run's MQTT port %v", round, mqtt)
		}
		if strings.Contains(string(data), `"accessToken"`) {
			t.Fatalf("round %d: the token is in the flow file, not its credentials file", round)
		}
		cred, err := os.ReadFile(strings.TrimSuffix(file, ".json") + "_cred.json")
		if err != nil || !strings.Contains(string(cred), "gateway-token") {
			t.Fatalf("round %d: credentials file: %v %s", round, err, cred)
		}
	}
}

// TestDemoPortTaken: a taken default port is replaced by a free one.
func TestDemoPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"demo", "--listen", taken, "--mqtt", taken, "--http", taken, "--modbus", taken}, &out, &errOut)
	}()
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "Ctrl+C") },
		func() string { return "no demo printout: " + out.String() + errOut.String() })
	if strings.Contains(out.String(), taken) {
		t.Errorf("the printout names the taken address %s: %s", taken, out.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
