package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Node-RED's side of the flow workload. The source is a function node
// started by an MQTT message on bench/go: it sends N messages, 1,000 per
// setImmediate turn (Node-RED has no backpressure), or at a paced rate
// (a timer every 1 ms, or every message's period when longer) stamped with
// their send time in µs. A second function node is the
// transform, mqtt out (QoS 1) the sink.

const noderedSettings = `const { performance } = require('perf_hooks');
module.exports = {
  uiHost: "127.0.0.1",
  httpAdminRoot: false,
  httpNodeRoot: false,
  disableEditor: true,
  credentialSecret: false,
  functionGlobalContext: { setImmediate, performance },
  logging: { console: { level: "info", metrics: false, audit: false } },
};
`

const noderedGen = `const N = %d, RATE = %d;
const si = global.get('setImmediate'), perf = global.get('performance');
let i = 0;
if (RATE > 0) {
  const t0 = perf.now();
  const h = setInterval(() => {
    const target = Math.min(N, Math.floor((perf.now() - t0) * RATE / 1000));
    for (; i < target; i++) node.send({payload: {t: 215, h: 40, seq: i, sent: Math.round((perf.timeOrigin + perf.now()) * 1000)}});
    if (i >= N) clearInterval(h);
  }, Math.max(1, Math.floor(1000 / RATE)));
} else {
  const step = () => {
    const end = Math.min(i + 1000, N);
    for (; i < end; i++) node.send({payload: {t: 215, h: 40, seq: i}});
    if (i < N) si(step);
  };
  step();
}
return null;`

const noderedTransform = `const p = msg.payload;
msg.payload = {temperature: p.t / 10, humidity: p.h, seq: p.seq};
if (p.sent !== undefined) msg.payload.sent = p.sent;
return msg;`

func (nr nodeREDPeer) tool(b *testing.B, br *broker, n, rate int) (*proc, func()) {
	dir := b.TempDir()
	flow := []map[string]any{
		{"id": "tab", "type": "tab", "label": "bench"},
		{"id": "go", "type": "mqtt in", "z": "tab", "topic": "bench/go", "qos": "1", "datatype": "utf8", "broker": "br", "nl": false, "rap": false, "inputs": 0, "wires": []any{[]any{"gen"}}},
		{"id": "gen", "type": "function", "z": "tab", "func": fmt.Sprintf(noderedGen, n, rate), "outputs": 1, "wires": []any{[]any{"tr"}}},
		{"id": "tr", "type": "function", "z": "tab", "func": noderedTransform, "outputs": 1, "wires": []any{[]any{"out"}}},
		{"id": "out", "type": "mqtt out", "z": "tab", "topic": "v1/devices/me/telemetry", "qos": "1", "retain": "false", "broker": "br", "wires": []any{}},
		{"id": "br", "type": "mqtt-broker", "broker": "127.0.0.1", "port": fmt.Sprint(br.Port), "clientid": fmt.Sprintf("nodered-%d", time.Now().UnixNano()),
			"usetls": false, "protocolVersion": "4", "keepalive": "30", "cleansession": true, "autoConnect": true},
	}
	fb, _ := json.Marshal(flow)
	for name, body := range map[string][]byte{"flow.json": fb, "settings.js": []byte(noderedSettings)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command("node", nr.redJS, "--userDir", dir, "--settings", filepath.Join(dir, "settings.js"), filepath.Join(dir, "flow.json"))
	cmd.Dir = dir
	p := startProc(b, cmd)
	p.waitLine(b, "Connected to broker", 60*time.Second)
	return p, func() {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + br.Addr).SetClientID(fmt.Sprintf("go-%d", time.Now().UnixNano()))
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("trigger: %v", tok.Error())
		}
		c.Publish("bench/go", 1, false, "go").Wait()
		c.Disconnect(50)
	}
}
