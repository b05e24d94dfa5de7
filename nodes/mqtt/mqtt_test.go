package mqtt_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/internal/testcerts"
	_ "github.com/tbflow/tbflow/nodes/mqtt"
)

// broker is an mqtt-broker object for a mosquitto on port.
func broker(port int, extra ...any) map[string]any {
	b := map[string]any{"id": "mb", "type": "mqtt-broker", "host": "127.0.0.1", "port": float64(port), "reconnectMax": "1s", "connectTimeout": "2s"}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// pub publishes with Debian's mosquitto_pub.
func pub(t *testing.T, port int, topic, payload string, args ...string) {
	t.Helper()
	bin := peers.Find(t, "mosquitto_pub", "mosquitto-clients")
	cmd := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-t", topic, "-m", payload}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %s: %v\n%s", topic, err, out)
	}
}

// waitStatus waits until node id has shown a status containing text.
func waitStatus(t *testing.T, h *enginetest.Harness, id, text string) {
	t.Helper()
	waitStatusAfter(t, h, id, text, 0)
}

// waitStatusAfter waits until node id shows a status containing text
// after its first from statuses.
func waitStatusAfter(t *testing.T, h *enginetest.Harness, id, text string, from int) {
	t.Helper()
	deadline := time.Now().Add(enginetest.WaitLimit)
	for time.Now().Before(deadline) {
		ss := h.Statuses(id)
		for _, s := range ss[min(from, len(ss)):] {
			if strings.HasPrefix(s.Text, text) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s never showed %q; statuses: %v", id, text, h.Statuses(id))
}

func TestConformance(t *testing.T) {
	dead := peers.FreePort(t)
	t.Run("mqtt-broker", func(t *testing.T) {
		enginetest.Conformance(t, "mqtt-broker", enginetest.ConformanceOptions{Settings: map[string]any{"port": float64(dead)}})
	})
	t.Run("mqtt-in", func(t *testing.T) {
		enginetest.Conformance(t, "mqtt-in", enginetest.ConformanceOptions{
			Settings: map[string]any{"broker": "mb", "topic": "a/#"}, Extra: []map[string]any{broker(dead)}})
	})
	t.Run("mqtt-out", func(t *testing.T) {
		enginetest.Conformance(t, "mqtt-out", enginetest.ConformanceOptions{
			Settings: map[string]any{"broker": "mb", "topic": "a/b"}, Extra: []map[string]any{broker(dead)}})
	})
}

// TestValidation: bad settings are refused with the field they are about.
func TestValidation(t *testing.T) {
	for _, c := range []struct {
		node  map[string]any
		field string
		msg   string
	}{
		{map[string]any{"type": "mqtt-in", "topic": "a/#/b"}, "topic", "`#` must be the last level"},
		{map[string]any{"type": "mqtt-in", "topic": "a/b+"}, "topic", "a wildcard must be a whole level"},
		{map[string]any{"type": "mqtt-in", "topic": "a/b", "qos": 3.0}, "qos", ""},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "deviceSource": "topic", "deviceLevel": 0.0}, "deviceLevel", "levels count from 1"},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "deviceSource": "topic", "deviceLevel": 3.0}, "deviceLevel", "has only 2 levels"},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "deviceSource": "payload"}, "deviceField", "a payload field"},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "deviceSource": "constant"}, "device", "a name is needed"},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "deviceSource": "topic", "typeSource": "payload", "typeField": "x..y"}, "typeField", "a payload field"},
		{map[string]any{"type": "mqtt-in", "topic": "a/+", "format": "xml"}, "format", ""},
		{map[string]any{"type": "mqtt-out", "topic": "a/{{device"}, "topic", "without a closing"},
		{map[string]any{"type": "mqtt-out", "topic": "a/+/b"}, "topic", "wildcards"},
		{map[string]any{"type": "mqtt-out", "qos": 5.0}, "qos", ""},
	} {
		node := map[string]any{"id": "n", "z": "tab", "broker": "mb", "wires": []any{}}
		for k, v := range c.node {
			node[k] = v
		}
		checkProblem(t, []map[string]any{node, broker(1883)}, c.field, c.msg)
	}
	for _, c := range []struct {
		settings    []any
		field, what string
	}{
		{[]any{"password", "secret"}, "username", "a password needs a user name"},
		{[]any{"cleanSession", false}, "clientId", "needs a fixed client id"},
		{[]any{"tls", true, "certFile", "c.pem"}, "keyFile", "go together"},
		{[]any{"port", 70000.0}, "port", ""},
		{[]any{"host", ""}, "host", ""},
	} {
		checkProblem(t, []map[string]any{broker(1883, c.settings...)}, c.field, c.what)
	}
}

func checkProblem(t *testing.T, nodes []map[string]any, field, msg string) {
	t.Helper()
	objs := []any{map[string]any{"id": "tab", "type": "tab", "label": "t"}}
	for _, n := range nodes {
		objs = append(objs, n)
	}
	data, _ := json.Marshal(objs)
	f, err := engine.ParseFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	ps := engine.DefaultRegistry().Validate(f, func(string) (string, bool) { return "", false })
	for _, p := range ps {
		if p.Field == field && strings.Contains(p.Message, msg) {
			return
		}
	}
	t.Errorf("%v: no problem on %q containing %q; got %v", nodes[0], field, msg, ps)
}

// TestInFromMosquitto: every payload type published by mosquitto_pub to
// a real mosquitto arrives decoded, with the device and profile taken from
// the topic and from the payload.
func TestInFromMosquitto(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{})
	h := enginetest.RunNode(t, enginetest.Options{}, "mqtt-in", map[string]any{
		"broker": "mb", "topic": "sensors/+/+", "deviceSource": "topic", "deviceLevel": 2.0, "typeSource": "topic", "typeLevel": 1.0,
	}, broker(m.Port))
	waitStatus(t, h.Harness, "node", "connected")
	time.Sleep(100 * time.Millisecond) // the SUBSCRIBE goes out after the CONNACK
	pub(t, m.Port, "sensors/boiler-3/state", `{"pump":true,"pressure":1.8,"mode":"eco"}`)
	pub(t, m.Port, "sensors/boiler-3/temperature", "21.5")
	pub(t, m.Port, "sensors/plug-1/power", "ON")
	pub(t, m.Port, "sensors/plug-1/online", "true")
	out := h.WaitOut(0, 4)
	want := []struct {
		device  string
		payload map[string]any
	}{
		{"boiler-3", map[string]any{"pump": true, "pressure": 1.8, "mode": "eco"}},
		{"boiler-3", map[string]any{"temperature": 21.5}},
		{"plug-1", map[string]any{"power": "ON"}},
		{"plug-1", map[string]any{"online": true}},
	}
	for i, w := range want {
		m := out[i]
		if dev, _ := m.Get("device"); dev != w.device {
			t.Errorf("message %d: device %v, want %s", i, dev, w.device)
		}
		if typ, _ := m.Get("deviceType"); typ != "sensors" {
			t.Errorf("message %d: deviceType %v", i, typ)
		}
		if !reflect.DeepEqual(m.Payload, w.payload) {
			t.Errorf("message %d: payload %v, want %v", i, m.Payload, w.payload)
		}
		if ts, _ := m.Get("ts"); ts == nil {
			t.Errorf("message %d has no ts", i)
		}
	}
	if info, _ := out[0].Get("mqtt"); !reflect.DeepEqual(info, map[string]any{"qos": int64(1), "retain": false}) {
		t.Errorf("msg.mqtt %v", info)
	}
}

// TestInDevicesFromPayload: a device name in the payload (the IoT
// Gateway's deviceNameExpressionSource "message") is taken out of it; a
// payload that is not JSON or lacks the name is an error for catch.
func TestInDevicesFromPayload(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{})
	h := enginetest.RunNode(t, enginetest.Options{}, "mqtt-in", map[string]any{
		"broker": "mb", "topic": "devices/data", "format": "json", "qos": 2.0,
		"deviceSource": "payload", "deviceField": "serialNumber", "typeSource": "payload", "typeField": "meta.model",
	}, broker(m.Port))
	waitStatus(t, h.Harness, "node", "connected")
	time.Sleep(100 * time.Millisecond)
	pub(t, m.Port, "devices/data", `{"serialNumber":"SN-7","meta":{"model":"TH-2"},"humidity":41}`, "-q", "2")
	pub(t, m.Port, "devices/data", `humidity=41`)
	pub(t, m.Port, "devices/data", `{"humidity":42}`)
	out := h.WaitOut(0, 1)
	if dev, _ := out[0].Get("device"); dev != "SN-7" {
		t.Errorf("device %v", dev)
	}
	if typ, _ := out[0].Get("deviceType"); typ != "TH-2" {
		t.Errorf("deviceType %v", typ)
	}
	if !reflect.DeepEqual(out[0].Payload, map[string]any{"humidity": int64(41), "meta": map[string]any{}}) {
		t.Errorf("payload %v", out[0].Payload)
	}
	errs := h.WaitEvents(engine.TopicError, 2)
	if !strings.Contains(errs[0].Data.(*engine.ErrorData).Message, "payload is not JSON") ||
		!strings.Contains(errs[1].Data.(*engine.ErrorData).Message, `payload has no field "serialNumber" for the device name`) {
		t.Errorf("errors: %v / %v", errs[0].Data, errs[1].Data)
	}
	if em := errs[0].Data.(*engine.ErrorData).Msg; em == nil || em.Topic != "devices/data" || em.Payload != "humidity=41" {
		t.Errorf("the error's message %v", em)
	}
	if len(h.Out(0)) != 1 {
		t.Errorf("bad payloads were sent on: %d messages", len(h.Out(0)))
	}
}

// TestOutToMosquitto: mqtt-out publishes to a topic built from the
// message, retained, and mosquitto_sub (which subscribes afterwards) reads
// it back; the message goes on once the broker acknowledged it.
func TestOutToMosquitto(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{})
	sub := peers.Find(t, "mosquitto_sub", "mosquitto-clients")
	h := enginetest.RunNode(t, enginetest.Options{}, "mqtt-out", map[string]any{
		"broker": "mb", "topic": "cmnd/{{device}}/{{method}}", "qos": 1.0, "retain": true,
	}, broker(m.Port))
	waitStatus(t, h.Harness, "node", "connected")
	for i, c := range []struct {
		payload any
		want    string
	}{
		{map[string]any{"on": true}, `{"on":true}`},
		{55.0, `55`},
		{"OFF", `OFF`},
	} {
		msg := engine.NewMsg(c.payload)
		msg.Set("device", "plug-1")
		msg.Set("method", "m"+strconv.Itoa(i))
		h.Send(msg)
		out := h.WaitOut(0, i+1)
		if info, _ := out[i].Get("mqtt"); info.(map[string]any)["topic"] != "cmnd/plug-1/m"+strconv.Itoa(i) {
			t.Fatalf("msg.mqtt %v; errors %v", info, h.Errors())
		}
		got, err := exec.Command(sub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port), "-t", "cmnd/plug-1/m"+strconv.Itoa(i), "-C", "1", "-W", "10").Output()
		if err != nil || strings.TrimSpace(string(got)) != c.want {
			t.Errorf("mosquitto_sub read %q (%v), want %s", got, err, c.want)
		}
	}
	h.Send(engine.NewMsg(1.0)) // no msg.device for the topic
	errs := h.WaitEvents(engine.TopicError, 1)
	if !strings.Contains(errs[0].Data.(*engine.ErrorData).Message, "msg.device, which the message lacks") {
		t.Errorf("error %v", errs[0].Data)
	}
}

// TestBrokerLossAndReturn: mosquitto killed (by its PID) and started
// again; the nodes show the lost session and the reconnect, the
// subscription is made again, and mqtt-out messages sent during the outage
// wait and are published after it.
func TestBrokerLossAndReturn(t *testing.T) {
	m := peers.StartMosquitto(t, peers.MosquittoConfig{})
	sub := peers.Find(t, "mosquitto_sub", "mosquitto-clients")
	h := enginetest.New(t, enginetest.Options{})
	flow := `[{"id":"tab","type":"tab","label":"t"},
	 {"id":"mb","type":"mqtt-broker","host":"127.0.0.1","port":` + strconv.Itoa(m.Port) + `,"reconnectMax":"1s","keepalive":"2s"},
	 {"id":"in","type":"mqtt-in","z":"tab","broker":"mb","topic":"t/+","key":"v","wires":[["cap"]]},
	 {"id":"out","type":"mqtt-out","z":"tab","broker":"mb","topic":"o/x","retain":true,"wires":[]},
	 ` + capture(h, "cap") + `]`
	h.Deploy([]byte(flow), engine.DeployFull)
	waitStatus(t, h, "in", "connected")
	time.Sleep(100 * time.Millisecond)
	pub(t, m.Port, "t/a", "1")
	h.WaitOutputs("cap", 1)

	mark := len(h.Statuses("in"))
	m.Stop()
	waitStatusAfter(t, h, "in", "disconnected", mark)
	waitStatusAfter(t, h, "out", "disconnected", mark)
	h.Send("out", engine.NewMsg("during the outage"))
	m.Start()
	waitStatusAfter(t, h, "in", "connected", mark+1)
	time.Sleep(200 * time.Millisecond)
	pub(t, m.Port, "t/b", "2")
	out := h.WaitOutputs("cap", 2)
	if !reflect.DeepEqual(out[1].Payload, map[string]any{"v": int64(2)}) {
		t.Errorf("after the restart: %v", out[1].Payload)
	}
	got, err := exec.Command(sub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port), "-t", "o/x", "-C", "1", "-W", "10").Output()
	if err != nil || strings.TrimSpace(string(got)) != "during the outage" {
		t.Errorf("the message sent during the outage: %q %v", got, err)
	}
	var texts []string
	for _, s := range h.Statuses("in") {
		texts = append(texts, s.Text)
	}
	joined := strings.Join(texts, " | ")
	if !strings.Contains(joined, "connected | disconnected: ") || !strings.HasSuffix(joined, " | connected") {
		t.Errorf("statuses of mqtt-in: %s", joined)
	}
}

// TestRefusedCredentials: a broker that refuses the password shows the
// broker's reason on the nodes and reports it to catch.
func TestRefusedCredentials(t *testing.T) {
	passwd := peers.Find(t, "mosquitto_passwd", "mosquitto", "/usr/bin")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "site", "right").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	os.Chmod(pwFile, 0o600)
	m := peers.StartMosquitto(t, peers.MosquittoConfig{Extra: "allow_anonymous false\npassword_file " + pwFile})
	h := enginetest.RunNode(t, enginetest.Options{}, "mqtt-in", map[string]any{"broker": "mb", "topic": "#"},
		broker(m.Port, "username", "site", "password", "wrong"))
	waitStatus(t, h.Harness, "node", "error: not Authorized")
	errs := h.WaitEvents(engine.TopicError, 1)
	if msg := errs[0].Data.(*engine.ErrorData).Message; !strings.Contains(msg, "not Authorized") || strings.Contains(msg, "wrong") {
		t.Errorf("error %q", msg)
	}
}

func capture(h *enginetest.Harness, id string) string {
	c := h.Capture(id)
	c["z"] = "tab"
	b, _ := json.Marshal(c)
	return string(b)
}

// TestTLS: a mosquitto TLS listener that requires a client certificate;
// mqtt-out and mqtt-in share the TLS session, and a broker certificate
// from an unknown CA shows as the error.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	other := testcerts.NewCA(t, dir, "other-ca")
	srv := ca.Server(t, dir, "server")
	cli := ca.Client(t, dir, "site")
	tlsPort := peers.FreePort(t)
	peers.StartMosquitto(t, peers.MosquittoConfig{Extra: fmt.Sprintf(
		"listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.2\n",
		tlsPort, ca.File, srv.CertFile, srv.KeyFile)})
	h := enginetest.New(t, enginetest.Options{})
	flow := fmt.Sprintf(`[{"id":"tab","type":"tab","label":"t"},
	 {"id":"mb","type":"mqtt-broker","host":"127.0.0.1","port":%d,"tls":true,"caFile":%q,"certFile":%q,"keyFile":%q,"reconnectMax":"1s"},
	 {"id":"bad","type":"mqtt-broker","host":"127.0.0.1","port":%d,"tls":true,"caFile":%q,"certFile":%q,"keyFile":%q,"reconnectMax":"1s"},
	 {"id":"in","type":"mqtt-in","z":"tab","broker":"mb","topic":"secure/#","wires":[["cap"]]},
	 {"id":"out","type":"mqtt-out","z":"tab","broker":"mb","topic":"secure/v","wires":[]},
	 {"id":"in2","type":"mqtt-in","z":"tab","broker":"bad","topic":"#","wires":[]},
	 %s]`, tlsPort, ca.File, cli.CertFile, cli.KeyFile, tlsPort, other.File, cli.CertFile, cli.KeyFile, capture(h, "cap"))
	h.Deploy([]byte(flow), engine.DeployFull)
	waitStatus(t, h, "in", "connected")
	h.Send("out", engine.NewMsg(7.0))
	out := h.WaitOutputs("cap", 1)
	if !reflect.DeepEqual(out[0].Payload, map[string]any{"v": int64(7)}) {
		t.Errorf("payload %v", out[0].Payload)
	}
	waitStatus(t, h, "in2", "error: ")
	if s := h.Engine.Statuses()["in2"].Text; !strings.Contains(s, "certificate") {
		t.Errorf("status with a CA the broker's certificate is not from: %q", s)
	}
}

// TestImportNodeRED: Node-RED's mqtt-broker, mqtt in and mqtt out (as
// Node-RED 3 exports them) become tbflow's and validate.
func TestImportNodeRED(t *testing.T) {
	export := `[
	 {"id":"f1","type":"tab","label":"Flow 1"},
	 {"id":"b","type":"mqtt-broker","name":"site","broker":"mqtt://10.0.0.5","port":"1884","clientid":"nr-1","autoConnect":true,"usetls":false,"protocolVersion":"4","keepalive":"60","cleansession":true,"birthTopic":"","closeTopic":"","willTopic":""},
	 {"id":"i","type":"mqtt in","z":"f1","name":"","topic":"sensors/+/temp","qos":"2","datatype":"auto-detect","broker":"b","nl":false,"rap":true,"rh":0,"inputs":0,"x":100,"y":40,"wires":[["o"]]},
	 {"id":"o","type":"mqtt out","z":"f1","name":"","topic":"echo","qos":"0","retain":"true","broker":"b","x":300,"y":40,"wires":[]},
	 {"id":"d","type":"mqtt in","z":"f1","topic":"","qos":"2","datatype":"buffer","broker":"b","inputs":1,"x":100,"y":100,"wires":[[]]}
	]`
	reg := engine.DefaultRegistry()
	f, rep, err := reg.ImportNodeRED([]byte(export))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.UnsupportedTypes(), ","); got != "mqtt in" || len(rep.Unsupported["mqtt in"]) != 1 {
		t.Fatalf("unsupported = %v", rep.Unsupported)
	}
	if ps := reg.Validate(f, nil); ps.HasErrors() {
		t.Fatalf("imported flow does not validate: %v", ps.Err())
	}
	want := map[string]any{"host": "10.0.0.5", "port": 1884.0, "clientId": "nr-1", "keepalive": "60s", "cleanSession": true}
	if !reflect.DeepEqual(f.Node("b").Fields, want) {
		t.Errorf("broker = %v", f.Node("b").Fields)
	}
	if in := f.Node("i"); in.Type != "mqtt-in" || in.Fields["topic"] != "sensors/+/temp" || in.Fields["qos"] != 2.0 || in.Fields["format"] != "auto" {
		t.Errorf("mqtt in = %+v", in)
	}
	if out := f.Node("o"); out.Type != "mqtt-out" || out.Fields["qos"] != 0.0 || out.Fields["retain"] != true {
		t.Errorf("mqtt out = %+v", out)
	}
}
