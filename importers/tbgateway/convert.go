package tbgateway

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/modbus"
)

// Options tune a conversion.
type Options struct {
	// TBHost and TBPort are where the generated tb-connection (a gateway
	// connection) points; defaults 127.0.0.1 and 1883. Its access token is
	// left to ${TB_GATEWAY_TOKEN}.
	TBHost string
	TBPort int
}

// Result is a converted flow and what did not map.
type Result struct {
	// Flow is the flow document (Node-RED's flat array).
	Flow []map[string]any
	// Report lists, one line each, the options and rows that did not map
	// or map with a difference.
	Report []string
}

// JSON returns the flow as indented JSON.
func (r *Result) JSON() ([]byte, error) { return json.MarshalIndent(r.Flow, "", "  ") }

type converter struct {
	opts   Options
	flow   []map[string]any
	report []string
	ids    map[string]int
	conns  map[string]string // link signature → modbus-connection id
	unit   int               // of the slave being converted
	y      int
}

func (c *converter) id(base string) string {
	base = strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(base), "-"), "-")
	if base == "" {
		base = "node"
	}
	c.ids[base]++
	if n := c.ids[base]; n > 1 {
		return fmt.Sprintf("%s-%d", base, n)
	}
	return base
}

func (c *converter) add(n map[string]any) map[string]any {
	c.flow = append(c.flow, n)
	return n
}

func (c *converter) note(format string, a ...any) {
	c.report = append(c.report, fmt.Sprintf(format, a...))
}

// Convert converts a Modbus connector configuration: the connector's own
// JSON ({"master": …, "slave": …}), or the form ThingsBoard stores it in
// ({"Modbus": {"configurationJson": …}}).
func Convert(data []byte, opts Options) (*Result, error) {
	if opts.TBHost == "" {
		opts.TBHost = "127.0.0.1"
	}
	if opts.TBPort == 0 {
		opts.TBPort = 1883
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reading the IoT Gateway config: %w", err)
	}
	for _, k := range []string{"Modbus", "modbus"} {
		if w, ok := doc[k].(map[string]any); ok {
			if cj, ok := w["configurationJson"].(map[string]any); ok {
				doc = cj
			}
		}
	}
	master, _ := doc["master"].(map[string]any)
	slaveSrv, _ := doc["slave"].(map[string]any)
	if master == nil && slaveSrv == nil {
		if _, ok := doc["server"]; ok {
			return nil, fmt.Errorf("this is the IoT Gateway's old (2.x) Modbus format (\"server\": {\"devices\": …}); open it in a Gateway 3.x to convert it to master.slaves first")
		}
		return nil, fmt.Errorf("no master.slaves or slave section: not an IoT Gateway Modbus connector config")
	}
	c := &converter{opts: opts, ids: map[string]int{}, conns: map[string]string{}}
	tab := c.id("iot-gateway-modbus")
	name, _ := doc["name"].(string)
	c.add(map[string]any{"id": tab, "type": "tab", "label": "IoT Gateway Modbus" + suffix(name),
		"info": "Converted by `tbflow import tb-gateway` from an IoT Gateway Modbus connector config. Values are read with the tb-gateway convention (see docs/modbus.md). Set the gateway's access token in TB_GATEWAY_TOKEN."})
	gw := c.id("tb-gateway")
	c.add(map[string]any{"id": gw, "type": "tb-connection", "name": "ThingsBoard (gateway)", "host": opts.TBHost, "port": opts.TBPort,
		"mode": "gateway", "accessToken": "${TB_GATEWAY_TOKEN}"})
	for k := range doc {
		switch k {
		case "master", "slave", "name", "logLevel", "id", "enableRemoteLogging", "configVersion", "reportStrategy":
		default:
			c.note("connector option %q is not used", k)
		}
	}
	telemetry := c.id("telemetry")
	replies := c.id("rpc-reply")
	c.add(map[string]any{"id": telemetry, "type": "tb-telemetry-out", "z": tab, "name": "telemetry", "connection": gw, "x": 900, "y": 60, "wires": []any{}})
	c.add(map[string]any{"id": replies, "type": "tb-rpc-out", "z": tab, "name": "rpc reply", "connection": gw, "x": 900, "y": 180, "wires": []any{}})
	errs := c.id("errors")
	c.add(map[string]any{"id": errs, "type": "catch", "z": tab, "name": "errors", "x": 120, "y": 20, "wires": []any{[]any{c.debugNode(tab)}}})
	c.y = 260
	if master != nil {
		slaves, _ := master["slaves"].([]any)
		for i, s := range slaves {
			sl, ok := s.(map[string]any)
			if !ok {
				c.note("master.slaves[%d] is not an object", i)
				continue
			}
			c.slave(tab, gw, telemetry, replies, i, sl)
		}
		for k := range master {
			if k != "slaves" {
				c.note("master option %q is not used", k)
			}
		}
	}
	if slaveSrv != nil {
		c.server(tab, gw, slaveSrv)
	}
	sort.Strings(c.report)
	return &Result{Flow: c.flow, Report: c.report}, nil
}

func suffix(name string) string {
	if name == "" {
		return ""
	}
	return " (" + name + ")"
}

func (c *converter) debugNode(tab string) string {
	id := c.id("show-errors")
	c.add(map[string]any{"id": id, "type": "debug", "z": tab, "name": "show errors", "property": "msg", "console": true, "x": 320, "y": 20, "wires": []any{}})
	return id
}

// str, num and boolean read loosely typed JSON values.
func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

func num(m map[string]any, k string, def float64) float64 {
	switch v := m[k].(type) {
	case float64:
		return v
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return f
		}
	case bool:
		if v {
			return 1
		}
		return 0
	}
	return def
}

func boolean(m map[string]any, k string, def bool) bool {
	switch v := m[k].(type) {
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return strings.EqualFold(v, "true")
	}
	return def
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "ms" }

var slaveKnown = map[string]bool{
	"host": true, "port": true, "type": true, "method": true, "timeout": true, "byteOrder": true, "wordOrder": true,
	"retries": true, "retryOnEmpty": true, "retryOnInvalid": true, "pollPeriod": true, "unitId": true, "deviceName": true,
	"deviceType": true, "sendDataOnlyOnChange": true, "reportStrategy": true, "baudrate": true, "stopbits": true,
	"bytesize": true, "parity": true, "timeseries": true, "attributes": true, "attributeUpdates": true, "rpc": true,
	"waitAfterFailedAttemptsMs": true, "security": true, "delayBetweenRequestsMs": true,
	"connectAttemptTimeMs": true, "connectAttemptCount": true, "name": true,
}

// link returns the modbus-connection for a slave's link settings, making
// one per distinct link.
func (c *converter) link(label string, sl map[string]any) string {
	typ := strings.ToLower(str(sl, "type"))
	if typ == "" {
		typ = "tcp"
	}
	method := strings.ToLower(str(sl, "method"))
	if method == "" {
		method = "socket"
		if typ == "serial" {
			method = "rtu"
		}
	}
	conn := map[string]any{"type": "modbus-connection", "compat": "tb-gateway", "maxGap": 0.0}
	switch typ {
	case "serial":
		conn["transport"] = map[string]string{"ascii": "ascii"}[method]
		if conn["transport"] == "" {
			conn["transport"] = "rtu"
		}
		if method == "binary" || method == "socket" {
			c.note("%s: method %q over serial is not supported: using rtu", label, method)
		}
		conn["device"] = str(sl, "port")
		conn["baud"] = num(sl, "baudrate", 19200)
		conn["dataBits"] = num(sl, "bytesize", 8)
		conn["stopBits"] = num(sl, "stopbits", 1)
		conn["parity"] = map[string]string{"E": "even", "O": "odd"}[strings.ToUpper(str(sl, "parity"))]
		if conn["parity"] == "" {
			conn["parity"] = "none"
		}
	default:
		conn["host"] = str(sl, "host")
		conn["port"] = num(sl, "port", 502)
		tr := map[string]string{"tcp/socket": "tcp", "tcp/rtu": "rtu-over-tcp", "tcp/ascii": "ascii-over-tcp",
			"udp/socket": "udp", "udp/rtu": "rtu-over-udp"}[typ+"/"+method]
		if tr == "" {
			c.note("%s: transport %s with method %s is not supported: using tcp", label, typ, method)
			tr = "tcp"
		}
		if sec, ok := sl["security"].(map[string]any); ok && len(sec) > 0 && typ == "tcp" && method == "socket" {
			tr = "tcp-tls"
			conn["tlsCert"], conn["tlsKey"], conn["tlsCA"] = str(sec, "certfile"), str(sec, "keyfile"), str(sec, "certfile")
			c.note("%s: TLS: check tlsCA (the server's CA); the key file's password is not used", label)
		}
		conn["transport"] = tr
	}
	if v, ok := sl["timeout"]; ok && v != nil {
		conn["timeout"] = strconv.FormatFloat(num(sl, "timeout", 1), 'f', -1, 64) + "s"
	}
	switch r := sl["retries"].(type) {
	case bool:
		if r {
			conn["retries"] = 3.0 // pymodbus's default
		}
	case float64:
		conn["retries"] = r
	}
	conn["retryOnEmpty"] = boolean(sl, "retryOnEmpty", false)
	conn["retryOnInvalid"] = boolean(sl, "retryOnInvalid", false)
	if v := num(sl, "delayBetweenRequestsMs", 0); v > 0 {
		conn["delay"] = ms(v)
	}
	if v := num(sl, "waitAfterFailedAttemptsMs", 0); v > 0 {
		conn["backoffMax"] = ms(v)
	}
	sig, _ := json.Marshal(conn)
	if id, ok := c.conns[string(sig)]; ok {
		return id
	}
	id := c.id("modbus-" + fmt.Sprint(conn["transport"]))
	conn["id"] = id
	conn["name"] = fmt.Sprintf("%v %v%v", conn["transport"], orEmpty(conn["host"], conn["device"]), portSuffix(conn))
	c.conns[string(sig)] = id
	c.add(conn)
	return id
}

func orEmpty(a, b any) any {
	if a != nil && a != "" {
		return a
	}
	return b
}

func portSuffix(conn map[string]any) string {
	if p, ok := conn["port"].(float64); ok {
		return ":" + strconv.FormatFloat(p, 'f', -1, 64)
	}
	return ""
}

// slave converts one master.slaves entry.
func (c *converter) slave(tab, gw, telemetry, replies string, i int, sl map[string]any) {
	dev := str(sl, "deviceName")
	if dev == "" {
		dev = fmt.Sprintf("Modbus device %d", i+1)
		c.note("master.slaves[%d]: no deviceName: using %q", i, dev)
	}
	label := fmt.Sprintf("slave %q", dev)
	for k := range sl {
		if !slaveKnown[k] {
			c.note("%s: option %q is not used", label, k)
		}
	}
	for _, k := range []string{"connectAttemptTimeMs", "connectAttemptCount"} {
		if _, ok := sl[k]; ok {
			c.note("%s: %s has no equivalent: tbflow reopens the link with a growing pause up to backoffMax (from waitAfterFailedAttemptsMs)", label, k)
		}
	}
	conn := c.link(label, sl)
	order := modbus.GatewayOrder(str(sl, "byteOrder"), str(sl, "wordOrder"))
	unit := num(sl, "unitId", 1)
	c.unit = int(unit)
	devType := str(sl, "deviceType")
	if devType == "" {
		devType = "default"
	}
	strategy, _ := sl["reportStrategy"].(map[string]any)
	onChange := boolean(sl, "sendDataOnlyOnChange", false)
	y := float64(c.y)
	c.y += 200

	var rows []any
	for _, sec := range []struct{ name, scope string }{{"timeseries", "telemetry"}, {"attributes", "attribute"}} {
		list, _ := sl[sec.name].([]any)
		for j, e := range list {
			em, _ := e.(map[string]any)
			row, ok := c.row(fmt.Sprintf("%s %s[%d]", label, sec.name, j), em, order, false)
			if !ok {
				continue
			}
			if f := row["function"]; f != "holding" && f != "input" && f != "coil" && f != "discrete" {
				continue
			}
			row["scope"] = sec.scope
			applyReport(row, em, strategy, onChange)
			rows = append(rows, row)
		}
	}
	gwDev := c.id(dev)
	inID := c.id(dev + " poll")
	attrOut := c.id(dev + " attributes")
	period := num(sl, "pollPeriod", 5000)
	if len(rows) > 0 {
		c.add(map[string]any{"id": inID, "type": "modbus-in", "z": tab, "name": dev, "connection": conn, "unit": unit, "period": ms(period),
			"registers": rows, "x": 140, "y": y, "wires": []any{[]any{gwDev}, []any{attrOut}}})
		c.add(map[string]any{"id": attrOut, "type": "tb-attr-out", "z": tab, "name": dev + " attributes", "connection": gw, "device": dev,
			"x": 420, "y": y + 60, "wires": []any{}})
	}
	rpcWires, attrWires := []any{}, []any{}
	// attribute updates: shared attributes written to the device
	var upd []any
	if list, _ := sl["attributeUpdates"].([]any); len(list) > 0 {
		for j, e := range list {
			em, _ := e.(map[string]any)
			if row, ok := c.row(fmt.Sprintf("%s attributeUpdates[%d]", label, j), em, order, true); ok {
				upd = append(upd, row)
			}
		}
	}
	if len(upd) > 0 {
		w := c.id(dev + " attribute updates")
		c.add(map[string]any{"id": w, "type": "modbus-write", "z": tab, "name": dev + " attribute updates", "connection": conn, "unit": unit,
			"registers": upd, "x": 640, "y": y + 120, "wires": []any{[]any{}}})
		attrWires = []any{w}
	}
	// rpc: reads (functions 1–4) and writes (5, 6, 15, 16)
	var reads, writes []any
	var readKeys, writeKeys []string
	if list, _ := sl["rpc"].([]any); len(list) > 0 {
		for j, e := range list {
			em, _ := e.(map[string]any)
			fc := int(num(em, "functionCode", 0))
			row, ok := c.row(fmt.Sprintf("%s rpc[%d]", label, j), em, order, fc >= 5)
			if !ok {
				continue
			}
			if fc >= 5 {
				writes = append(writes, row)
				writeKeys = append(writeKeys, row["key"].(string))
			} else {
				reads = append(reads, row)
				readKeys = append(readKeys, row["key"].(string))
			}
		}
	}
	if len(reads)+len(writes) > 0 {
		sw := c.id(dev + " rpc")
		var rules, outs []any
		if len(reads) > 0 {
			r := c.id(dev + " rpc read")
			shape := c.id(dev + " rpc result")
			c.add(map[string]any{"id": r, "type": "modbus-read", "z": tab, "name": dev + " rpc read", "connection": conn, "unit": unit,
				"registers": reads, "x": 640, "y": y + 40, "wires": []any{[]any{shape}}})
			// The Gateway answers a read with {"result": {"value": …}}.
			c.add(map[string]any{"id": shape, "type": "transform", "z": tab, "name": "as the Gateway answers", "expression": `{"result": {"value": payload[topic]}}`,
				"x": 780, "y": y + 40, "wires": []any{[]any{replies}}})
			rules = append(rules, map[string]any{"condition": "topic in " + jsonList(readKeys), "label": "read"})
			outs = append(outs, []any{r})
		}
		if len(writes) > 0 {
			w := c.id(dev + " rpc write")
			c.add(map[string]any{"id": w, "type": "modbus-write", "z": tab, "name": dev + " rpc write", "connection": conn, "unit": unit,
				"registers": writes, "x": 640, "y": y + 80, "wires": []any{[]any{replies}}})
			rules = append(rules, map[string]any{"condition": "topic in " + jsonList(writeKeys), "label": "write"})
			outs = append(outs, []any{w})
		}
		c.add(map[string]any{"id": sw, "type": "switch", "z": tab, "name": dev + " rpc", "rules": rules, "mode": "first", "x": 420, "y": y + 40, "wires": outs})
		rpcWires = []any{sw}
	}
	c.add(map[string]any{"id": gwDev, "type": "gw-device", "z": tab, "name": dev, "connection": gw, "device": dev, "deviceType": devType,
		"x": 420, "y": y, "wires": []any{[]any{telemetry}, rpcWires, attrWires}})
}

func jsonList(xs []string) string {
	b, _ := json.Marshal(xs)
	return string(b)
}

// applyReport sets a row's report from the key's or the device's report
// strategy, or sendDataOnlyOnChange.
func applyReport(row, e, device map[string]any, onChange bool) {
	rs, _ := e["reportStrategy"].(map[string]any)
	if rs == nil {
		rs = device
	}
	if rs != nil {
		switch strings.ToUpper(str(rs, "type")) {
		case "ON_CHANGE":
			row["report"] = "change"
		case "ON_REPORT_PERIOD":
			row["report"] = "period"
		case "ON_CHANGE_OR_REPORT_PERIOD":
			row["report"] = "change-or-period"
		case "ON_RECEIVED":
			row["report"] = "poll"
		}
		if p := num(rs, "reportPeriod", 0); p > 0 {
			row["reportPeriod"] = ms(p)
		}
		return
	}
	if onChange {
		row["report"] = "change"
	} else {
		row["report"] = "poll"
	}
}
