package tbgateway

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tbflow/tbflow/modbus"
)

// serverTables maps the slave section's tables to functions.
var serverTables = []struct {
	name string
	fc   int
}{{"coils_initializer", 1}, {"discrete_inputs", 2}, {"holding_registers", 3}, {"input_registers", 4}}

var serverKnown = map[string]bool{
	"type": true, "host": true, "port": true, "method": true, "unitId": true, "deviceName": true, "deviceType": true,
	"pollPeriod": true, "sendDataToThingsBoard": true, "byteOrder": true, "wordOrder": true, "identity": true, "values": true,
	"baudrate": true, "stopbits": true, "bytesize": true, "parity": true,
}

// server converts the slave section (the Gateway as a Modbus server) into
// a modbus-server node: its values are set once at start, and the
// device's shared-attribute updates and RPCs set them later.
func (c *converter) server(tab, gw string, s map[string]any) {
	label := "slave section"
	for k := range s {
		if !serverKnown[k] {
			c.note("%s: option %q is not used", label, k)
		}
	}
	order := modbus.GatewayOrder(str(s, "byteOrder"), str(s, "wordOrder"))
	values, _ := s["values"].(map[string]any)
	var rows []any
	initial := map[string]any{}
	seen := map[string]bool{}
	for _, tbl := range serverTables {
		sec, _ := values[tbl.name].(map[string]any)
		for _, part := range []string{"attributes", "timeseries", "attributeUpdates", "rpc"} {
			list, _ := sec[part].([]any)
			for j, e := range list {
				em, _ := e.(map[string]any)
				if em == nil {
					continue
				}
				em = clone(em)
				em["functionCode"] = float64(tbl.fc)
				row, ok := c.row(fmt.Sprintf("%s %s.%s[%d]", label, tbl.name, part, j), em, order, false)
				if !ok {
					continue
				}
				if _, isRange := row["to"]; isRange {
					c.note("%s %s.%s[%d]: address ranges are not served", label, tbl.name, part, j)
					continue
				}
				k := row["key"].(string)
				if seen[k] {
					continue
				}
				seen[k] = true
				rows = append(rows, row)
				if v, ok := em["value"]; ok {
					initial[k] = v
				}
			}
		}
	}
	if len(rows) == 0 {
		c.note("%s: no values to serve", label)
		return
	}
	dev := str(s, "deviceName")
	if dev == "" {
		dev = "Modbus server"
	}
	srv := c.id(dev + " server")
	node := map[string]any{"id": srv, "type": "modbus-server", "z": tab, "name": dev, "unit": num(s, "unitId", 0), "registers": rows,
		"x": 640, "y": c.y, "wires": []any{[]any{}}}
	switch strings.ToLower(str(s, "type")) {
	case "serial":
		node["transport"], node["device"], node["baud"] = "rtu", str(s, "port"), num(s, "baudrate", 19200)
		node["parity"] = map[string]string{"E": "even", "O": "odd"}[strings.ToUpper(str(s, "parity"))]
		if node["parity"] == "" {
			node["parity"] = "none"
		}
		if node["unit"] == 0.0 {
			node["unit"] = 1.0
		}
	default:
		if m := strings.ToLower(str(s, "method")); m != "" && m != "socket" {
			c.note("%s: method %q is not served: serving Modbus TCP", label, m)
		}
		node["transport"], node["host"], node["port"] = "tcp", orDefault(str(s, "host"), "0.0.0.0"), num(s, "port", 5020)
	}
	c.add(node)
	if len(initial) > 0 {
		b, _ := json.Marshal(initial)
		in := c.id(dev + " initial values")
		c.add(map[string]any{"id": in, "type": "inject", "z": tab, "name": "initial values", "payloadType": "json", "payload": string(b),
			"once": true, "onceDelay": "100ms", "x": 140, "y": c.y, "wires": []any{[]any{srv}}})
	}
	devType := orDefault(str(s, "deviceType"), "default")
	g := c.id(dev)
	c.add(map[string]any{"id": g, "type": "gw-device", "z": tab, "name": dev, "connection": gw, "device": dev, "deviceType": devType,
		"x": 400, "y": c.y + 60, "wires": []any{[]any{}, []any{srv}, []any{srv}}})
	c.y += 200
	if boolean(s, "sendDataToThingsBoard", false) {
		c.note("%s: sendDataToThingsBoard: the served values are not sent to ThingsBoard; wire what sets them to tb-telemetry-out as well", label)
	}
	c.note("%s: RPCs to %q set the row the method names and get no reply", label, dev)
	if id, ok := s["identity"].(map[string]any); ok && len(id) > 0 {
		c.note("%s: identity (device identification) is not served", label)
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
