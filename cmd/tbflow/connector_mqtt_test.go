package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// exampleFlow copies flows/NAME.json and its credentials file into a
// temporary directory, changing the nodes' settings as patch says (node id
// → field → value), and returns the copy's path.
func exampleFlow(t *testing.T, name string, patch map[string]map[string]any) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "flows", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	if err := json.Unmarshal(data, &objs); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		for k, v := range patch[o["id"].(string)] {
			o[k] = v
		}
	}
	dir := t.TempDir()
	out, _ := json.Marshal(objs)
	file := filepath.Join(dir, name+".json")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if cred, err := os.ReadFile(filepath.Join("..", "..", "flows", name+"_cred.json")); err == nil {
		os.WriteFile(filepath.Join(dir, name+"_cred.json"), cred, 0o600)
	}
	return file
}

// gatewaySim starts a tbsim with the gateway of the example flows.
func gatewaySim(t *testing.T) (*tbsim.Server, int) {
	t.Helper()
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "demo-gateway", Token: "gateway-token", Gateway: true}); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	return tbs, port
}

// tbflowRun runs `tbflow run --log-format json --metrics 127.0.0.1:0 FILE`
// until the test ends, and returns its log and the metrics URL.
func tbflowRun(t *testing.T, file string) (*logBuffer, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	done := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		done <- runMain(ctx, []string{"run", "-log-format", "json", "-stop-timeout", "5s", "-metrics", "127.0.0.1:0", file}, &out, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("tbflow run exit %d:\n%s", code, logs.String())
		}
	})
	re := regexp.MustCompile(`"url":"(http://[^"]+/metrics)"`)
	var url string
	waitLog(t, logs, func(s string) bool {
		if m := re.FindStringSubmatch(s); m != nil {
			url = m[1]
		}
		return url != "" && strings.Contains(s, `"msg":"running flow"`)
	}, "the flow running")
	return logs, url
}

// waitLog waits until ok holds for the log.
func waitLog(t *testing.T, logs *logBuffer, ok func(string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the log:\n%s", what, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusLogged reports whether a status node logged node id's status with
// text after the log's first from bytes.
func statusLogged(logs string, from int, id, text string) bool {
	for _, line := range strings.Split(logs[min(from, len(logs)):], "\n") {
		if strings.Contains(line, `\"text\":\"`+text) && strings.Contains(line, `\"id\":\"`+id+`\"`) {
			return true
		}
	}
	return false
}

// metric reads one counter of a node from the metrics page.
func metric(t *testing.T, url, name, node string) float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	re := regexp.MustCompile(regexp.QuoteMeta(name+`{node_id="`+node+`"`) + `[^}]*\} (\S+)`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s for %s in the metrics:\n%s", name, node, body)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func mosquittoPub(t *testing.T, port int, topic, payload string) {
	t.Helper()
	bin := peers.Find(t, "mosquitto_pub", "mosquitto-clients")
	if out, err := exec.Command(bin, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
}

// TestRunMQTTDevices runs flows/mqtt-devices-to-tb.json with `tbflow run`
// against Debian's mosquitto (the site broker) and tbsim: every payload type
// mosquitto_pub sends arrives as telemetry of the device the topic or the
// payload names; an RPC goes back over MQTT; mosquitto killed and started
// again is shown in the status and survived.
func TestRunMQTTDevices(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{})
	sub := peers.Find(t, "mosquitto_sub", "mosquitto-clients")
	tbs, tbPort := gatewaySim(t)
	file := exampleFlow(t, "mqtt-devices-to-tb", map[string]map[string]any{
		"gw":          {"port": tbPort},
		"site-broker": {"port": m.Port, "reconnectMax": "1s"},
	})
	logs, metrics := tbflowRun(t, file)
	waitLog(t, logs, func(s string) bool { return statusLogged(s, 0, "sensors", "connected") }, "connected status")
	time.Sleep(100 * time.Millisecond)

	mosquittoPub(t, m.Port, "sensors/boiler-3/temperature", "21.5")                                // number
	mosquittoPub(t, m.Port, "sensors/boiler-3/state", `{"pump":true,"pressure":1.8,"mode":"eco"}`) // JSON object
	mosquittoPub(t, m.Port, "sensors/plug-1/power", "ON")                                          // text
	mosquittoPub(t, m.Port, "sensors/plug-1/online", "true")                                       // boolean
	mosquittoPub(t, m.Port, "sensors/plug-1/count", "42")                                          // integer
	mosquittoPub(t, m.Port, "devices/data", `{"serialNumber":"SN-7","humidity":41}`)               // device named in the payload
	mosquittoPub(t, m.Port, "devices/data", `not json`)                                            // to catch

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range []struct {
		device, key string
		value       any
	}{
		{"boiler-3", "temperature", 21.5},
		{"boiler-3", "pump", true},
		{"boiler-3", "pressure", 1.8},
		{"boiler-3", "mode", "eco"},
		{"plug-1", "power", "ON"},
		{"plug-1", "online", true},
		{"plug-1", "count", int64(42)},
		{"SN-7", "humidity", int64(41)},
	} {
		if err := tbs.WaitTelemetry(ctx, w.device, w.key, 1); err != nil {
			t.Fatalf("%s %s: %v\n%s", w.device, w.key, err, logs.String())
		}
		if got := tbs.Latest(w.device)[w.key].Value; got != w.value {
			t.Errorf("%s %s = %#v, want %#v", w.device, w.key, got, w.value)
		}
	}
	if _, ok := tbs.Latest("SN-7")["serialNumber"]; ok {
		t.Error("the device name field became telemetry")
	}
	for _, d := range tbs.Devices() {
		if (d.Name == "boiler-3" || d.Name == "SN-7") && d.Type != "mqtt-sensor" {
			t.Errorf("device %s has profile %q", d.Name, d.Type)
		}
	}
	waitLog(t, logs, func(s string) bool { return strings.Contains(s, `payload is not JSON`) }, "the bad payload reported to catch")
	if v := metric(t, metrics, "tbflow_node_messages_out_total", "sensors"); v != 5 {
		t.Errorf("sensors sent %v messages, want 5", v)
	}
	if v := metric(t, metrics, "tbflow_node_errors_total", "json-devices"); v != 1 {
		t.Errorf("json devices errors %v, want 1", v)
	}

	// An RPC to a device goes back to it over MQTT.
	subCmd := exec.Command(sub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port), "-t", "sensors/boiler-3/rpc/setpoint", "-C", "1", "-W", "20")
	var subOut bytes.Buffer
	subCmd.Stdout = &subOut
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // mosquitto_sub subscribes
	reply, err := tbs.RPC(ctx, "boiler-3", "setpoint", 55, false)
	if err != nil || !strings.Contains(string(reply), `"ok":true`) {
		t.Fatalf("rpc reply %s %v", reply, err)
	}
	if err := subCmd.Wait(); err != nil || strings.TrimSpace(subOut.String()) != "55" {
		t.Fatalf("the device got %q (%v)", subOut.String(), err)
	}

	// The site broker goes away (killed by its PID) and comes back.
	mark := len(logs.String())
	m.Stop()
	waitLog(t, logs, func(s string) bool { return statusLogged(s, mark, "sensors", "disconnected: ") }, "disconnected status")
	mark = len(logs.String())
	m.Start()
	waitLog(t, logs, func(s string) bool { return statusLogged(s, mark, "sensors", "connected") }, "connected status after the restart")
	time.Sleep(100 * time.Millisecond)
	mosquittoPub(t, m.Port, "sensors/boiler-3/temperature", "22.5")
	if err := tbs.WaitTelemetry(ctx, "boiler-3", "temperature", 2); err != nil {
		t.Fatalf("after the broker came back: %v", err)
	}
	if got := tbs.Latest("boiler-3")["temperature"].Value; got != 22.5 {
		t.Errorf("temperature after the restart %v", got)
	}
}

// TestValidateMQTT: `tbflow validate` names the field of a bad setting.
func TestValidateMQTT(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[
	 {"id":"b","type":"mqtt-broker","host":"127.0.0.1","password":"x"},
	 {"id":"i","type":"mqtt-in","broker":"b","topic":"sensors/#/data","deviceSource":"payload","wires":[[]]},
	 {"id":"o","type":"mqtt-out","broker":"b","topic":"cmnd/{{device","wires":[[]]}
	]`), 0o600)
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"validate", bad}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	for _, w := range []string{
		`node "b" (mqtt-broker) username: a password needs a user name`,
		`node "i" (mqtt-in) topic: ` + "`#`" + ` must be the last level`,
		`node "i" (mqtt-in) deviceField: a payload field`,
		`node "o" (mqtt-out) topic: ` + "`{{`" + ` without a closing`,
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("validate output lacks %q:\n%s", w, out.String())
		}
	}
}
