package mqtt

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Import rules for Node-RED's MQTT nodes: its config node has the same
// type name, mqtt-broker, with other settings.
func init() {
	engine.RegisterImport("mqtt-broker", importBroker)
	engine.RegisterImport("mqtt in", importIn)
	engine.RegisterImport("mqtt out", importOut)
}

func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func num(m map[string]any, k string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(str(m, k)), 64)
	return f, err == nil
}

func truthy(m map[string]any, k string) bool {
	s := str(m, k)
	return s == "true" || s == "1"
}

func importBroker(in map[string]any) (string, map[string]any, []string, error) {
	if _, nr := in["broker"]; !nr {
		return "mqtt-broker", in, nil, nil // already tbflow's: Node-RED's has "broker", tbflow's "host"
	}
	out := map[string]any{}
	var notes []string
	if c, _ := in["credentials"].(map[string]any); str(c, "user") != "" {
		out["username"] = str(c, "user")
		notes = append(notes, "the password is not part of Node-RED exports: set it (a secret)")
	} else {
		notes = append(notes, "user name and password are not part of Node-RED exports: set them (the password is a secret)")
	}
	host := str(in, "broker")
	for _, p := range []string{"mqtts://", "mqtt://", "tcp://", "ssl://", "tls://"} {
		if rest, ok := strings.CutPrefix(host, p); ok {
			host = rest
			if p == "mqtts://" || p == "ssl://" || p == "tls://" {
				out["tls"] = true
			}
		}
	}
	if h, p, ok := strings.Cut(host, ":"); ok {
		host = h
		if n, err := strconv.Atoi(p); err == nil {
			out["port"] = float64(n)
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	out["host"] = host
	if p, ok := num(in, "port"); ok {
		out["port"] = p
	}
	if truthy(in, "usetls") {
		out["tls"] = true
		if str(in, "tls") != "" {
			notes = append(notes, "the TLS configuration node did not carry over: set caFile, certFile and keyFile")
		}
	}
	if id := str(in, "clientid"); id != "" {
		out["clientId"] = id
	}
	if k, ok := num(in, "keepalive"); ok && k >= 1 {
		out["keepalive"] = strconv.FormatFloat(k, 'f', -1, 64) + "s"
	}
	if v, ok := in["cleansession"].(bool); ok {
		out["cleanSession"] = v
		if !v && out["clientId"] == nil {
			out["cleanSession"] = true
			notes = append(notes, "a persistent session needs a fixed client id: clean sessions are used")
		}
	}
	if str(in, "protocolVersion") == "5" {
		notes = append(notes, "MQTT 5 became MQTT 3.1.1")
	}
	for _, k := range []string{"birthTopic", "closeTopic", "willTopic"} {
		if str(in, k) != "" {
			notes = append(notes, fmt.Sprintf("%s is not supported and was dropped", k))
		}
	}
	return "mqtt-broker", out, notes, nil
}

func importIn(in map[string]any) (string, map[string]any, []string, error) {
	if truthy(in, "inputs") {
		return "", nil, nil, fmt.Errorf("dynamic subscriptions (an mqtt in with an input) are not supported")
	}
	out := map[string]any{"broker": str(in, "broker"), "topic": str(in, "topic")}
	var notes []string
	if q, ok := num(in, "qos"); ok {
		out["qos"] = q
	}
	switch dt := str(in, "datatype"); dt {
	case "", "auto", "auto-detect":
		out["format"] = formatAuto
	case "json":
		out["format"] = formatJSON
	case "utf8":
		out["format"] = formatText
	default:
		out["format"] = formatAuto
		notes = append(notes, fmt.Sprintf("output %q became auto (JSON, number or text)", dt))
	}
	notes = append(notes, "a number, text or boolean payload becomes {key: value}, the key being the topic's last level")
	return "mqtt-in", out, notes, nil
}

func importOut(in map[string]any) (string, map[string]any, []string, error) {
	out := map[string]any{"broker": str(in, "broker"), "topic": str(in, "topic")}
	var notes []string
	if q, ok := num(in, "qos"); ok {
		out["qos"] = q
	} else {
		notes = append(notes, "QoS from msg.qos became 1")
	}
	switch str(in, "retain") {
	case "true":
		out["retain"] = true
	case "false":
		out["retain"] = false
	default:
		notes = append(notes, "retain from msg.retain became off")
	}
	return "mqtt-out", out, notes, nil
}
