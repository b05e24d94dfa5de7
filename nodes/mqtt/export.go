package mqtt

import (
	"strconv"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// Export rules: tbflow's MQTT nodes written as Node-RED's mqtt-broker,
// mqtt in and mqtt out, which the import rules read back.
func init() {
	engine.RegisterExport("mqtt-broker", exportBroker)
	engine.RegisterExport("mqtt-in", exportIn)
	engine.RegisterExport("mqtt-out", exportOut)
}

func isTrue(m map[string]any, k string) bool { return m[k] == true || str(m, k) == "true" }

// intOf reads a whole number setting (JSON numbers are float64).
func intOf(m map[string]any, k string, def int) int {
	switch v := m[k].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n
		}
	}
	return def
}

func exportBroker(in map[string]any) (string, map[string]any, []string) {
	tls := isTrue(in, "tls")
	port := intOf(in, "port", 0)
	if port == 0 {
		port = 1883
		if tls {
			port = 8883
		}
	}
	keepalive := 30.0
	if d, err := time.ParseDuration(str(in, "keepalive")); err == nil && d >= time.Second {
		keepalive = d.Seconds()
	}
	out := map[string]any{
		"broker": str(in, "host"), "port": strconv.Itoa(port), "clientid": str(in, "clientId"),
		"autoConnect": true, "usetls": tls, "verifyservercert": tls && !isTrue(in, "insecure"),
		"protocolVersion": "4", "keepalive": strconv.FormatFloat(keepalive, 'f', -1, 64),
		"cleansession": in["cleanSession"] != false, "autoUnsubscribe": true,
		"birthTopic": "", "birthQos": "0", "birthRetain": "false", "birthPayload": "", "birthMsg": map[string]any{},
		"closeTopic": "", "closeQos": "0", "closeRetain": "false", "closePayload": "", "closeMsg": map[string]any{},
		"willTopic": "", "willQos": "0", "willRetain": "false", "willPayload": "", "willMsg": map[string]any{},
		"userProps": "", "sessionExpiry": "",
	}
	var notes []string
	if u := str(in, "username"); u != "" {
		out["credentials"] = map[string]any{"user": u}
	}
	if tls && (str(in, "caFile") != "" || str(in, "certFile") != "" || str(in, "keyFile") != "" || str(in, "serverName") != "") {
		notes = append(notes, "caFile, certFile, keyFile and serverName need a Node-RED tls-config node: add one to the broker")
	}
	notes = append(notes, engine.UnmappedNotes("mqtt-broker", in, "password", "connectTimeout", "reconnectMax", "publishTimeout")...)
	return "mqtt-broker", out, notes
}

func exportIn(in map[string]any) (string, map[string]any, []string) {
	out := map[string]any{
		"broker": str(in, "broker"), "topic": str(in, "topic"), "qos": strconv.Itoa(intOf(in, "qos", 1)),
		"nl": false, "rap": true, "rh": 0.0, "inputs": 0.0,
	}
	notes := []string{"Node-RED's mqtt in passes a number, text or boolean payload as it is; tbflow's makes it {key: value}"}
	switch str(in, "format") {
	case formatJSON:
		out["datatype"] = "json"
	case formatText:
		out["datatype"] = "utf8"
	case formatNumber:
		out["datatype"] = "auto-detect"
		notes = append(notes, "format number became auto-detect (a payload that is not a number is not an error)")
	default:
		out["datatype"] = "auto-detect"
	}
	if s := str(in, "deviceSource"); s != "" && s != sourceNone {
		notes = append(notes, "the device name and profile ("+s+": msg.device, msg.deviceType) are tbflow's and are not set in Node-RED: add a change node")
	}
	notes = append(notes, engine.UnmappedNotes("mqtt-in", in, "key", "maxBytes")...)
	return "mqtt in", out, notes
}

func exportOut(in map[string]any) (string, map[string]any, []string) {
	out := map[string]any{
		"broker": str(in, "broker"), "topic": str(in, "topic"), "qos": strconv.Itoa(intOf(in, "qos", 1)),
		"retain":    strconv.FormatBool(isTrue(in, "retain")),
		"respTopic": "", "contentType": "", "userProps": "", "correl": "", "expiry": "",
	}
	notes := []string{"Node-RED's mqtt out has no output: nodes wired after it get nothing"}
	if strings.Contains(str(in, "topic"), "{{") {
		notes = append(notes, "Node-RED publishes to the topic as written ({{…}} is not filled in): set msg.topic before and leave the topic empty")
	}
	if str(in, "format") == formatJSON {
		notes = append(notes, "format json: Node-RED sends text as it is, not quoted")
	}
	return "mqtt out", out, notes
}
