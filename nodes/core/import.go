package core

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Import rules for Node-RED's core nodes.
func init() {
	engine.RegisterImport("inject", importInject)
	engine.RegisterImport("debug", importDebug)
	engine.RegisterImport("catch", importScope("catch"))
	engine.RegisterImport("status", importScope("status"))
	engine.RegisterImport("delay", importDelay)
	engine.RegisterImport("switch", importSwitch)
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

func seconds(s string) string {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f <= 0 {
		return "0s"
	}
	return strconv.FormatFloat(f, 'f', -1, 64) + "s"
}

func importInject(in map[string]any) (string, map[string]any, []string, error) {
	out := map[string]any{}
	var notes []string
	// Node-RED 1.1+ keeps payload and topic in "props"; older exports at the top.
	payload, ptype, topic := str(in, "payload"), str(in, "payloadType"), str(in, "topic")
	if props, ok := in["props"].([]any); ok {
		for _, p := range props {
			pm, _ := p.(map[string]any)
			switch str(pm, "p") {
			case "payload":
				if _, has := pm["v"]; has {
					payload = str(pm, "v")
				}
				if _, has := pm["vt"]; has {
					ptype = str(pm, "vt")
				}
			case "topic":
				if _, has := pm["v"]; has {
					topic = str(pm, "v")
				}
			default:
				notes = append(notes, fmt.Sprintf("property %q is not set by tbflow's inject", str(pm, "p")))
			}
		}
	}
	switch ptype {
	case "date", "":
		out["payloadType"] = "timestamp"
	case "json":
		out["payloadType"] = "json"
	case "num":
		out["payloadType"] = "number"
	case "str":
		out["payloadType"] = "string"
	case "bool":
		out["payloadType"] = "boolean"
	default:
		out["payloadType"] = "string"
		notes = append(notes, fmt.Sprintf("payload type %q became a string", ptype))
	}
	if out["payloadType"] != "timestamp" {
		out["payload"] = payload
	}
	out["topic"] = topic
	if r := str(in, "repeat"); r != "" {
		out["interval"] = seconds(r)
	}
	if c := str(in, "crontab"); c != "" {
		out["schedule"] = c
	}
	if once, _ := in["once"].(bool); once {
		out["once"] = true
		if d := str(in, "onceDelay"); d != "" {
			out["onceDelay"] = seconds(d)
		}
	}
	return "inject", out, notes, nil
}

func importDebug(in map[string]any) (string, map[string]any, []string, error) {
	out := map[string]any{}
	var notes []string
	if str(in, "targetType") == "jsonata" {
		notes = append(notes, fmt.Sprintf("output formatted by JSONata %q is not supported; the node shows msg.payload", str(in, "complete")))
		in = map[string]any{"complete": "false", "active": in["active"], "console": in["console"]}
	}
	switch c := str(in, "complete"); c {
	case "true":
		out["property"] = "msg"
	case "false", "", "payload":
		out["property"] = "payload"
	default:
		out["property"] = c
	}
	if a, ok := in["active"].(bool); ok {
		out["active"] = a
	}
	if in["tostatus"] == true {
		notes = append(notes, "showing the value as the node's status is not supported")
	}
	if in["tosidebar"] == false {
		if in["console"] == true {
			notes = append(notes, "console-only output is not supported: the value shows in the debug sidebar too")
		} else {
			out["active"] = false
		}
	}
	if c, ok := in["console"].(bool); ok {
		out["console"] = c
	}
	return "debug", out, notes, nil
}

func importScope(typ string) engine.ImportFunc {
	return func(in map[string]any) (string, map[string]any, []string, error) {
		out := map[string]any{"scope": "all"}
		if ids, ok := in["scope"].([]any); ok {
			rows := []any{}
			for _, id := range ids {
				if s, ok := id.(string); ok {
					rows = append(rows, map[string]any{"node": s})
				}
			}
			out["scope"], out["nodes"] = "nodes", rows
		} else if s := str(in, "scope"); s == "group" {
			return typ, out, []string{"group scope became the whole tab"}, nil
		}
		return typ, out, nil, nil
	}
}

var unitSeconds = map[string]float64{"milliseconds": 0.001, "seconds": 1, "minutes": 60, "hours": 3600, "days": 86400,
	"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400}

func importDelay(in map[string]any) (string, map[string]any, []string, error) {
	switch str(in, "pauseType") {
	case "delay", "":
		n, _ := strconv.ParseFloat(str(in, "timeout"), 64)
		u := unitSeconds[str(in, "timeoutUnits")]
		if u == 0 {
			u = 1
		}
		return "delay", map[string]any{"delay": seconds(strconv.FormatFloat(n*u, 'f', -1, 64))}, nil, nil
	case "rate":
		rate, _ := strconv.Atoi(str(in, "rate"))
		per, _ := strconv.ParseFloat(str(in, "nbRateUnits"), 64)
		if per <= 0 {
			per = 1
		}
		u := unitSeconds[str(in, "rateUnits")]
		if u == 0 {
			u = 1
		}
		drop, _ := in["drop"].(bool)
		return "rate-limit", map[string]any{"rate": float64(max(rate, 1)), "per": seconds(strconv.FormatFloat(per*u, 'f', -1, 64)), "drop": drop}, nil, nil
	}
	return "", nil, nil, fmt.Errorf("delay mode %q has no tbflow equivalent", str(in, "pauseType"))
}

// importSwitch converts rules on msg properties with simple comparisons.
func importSwitch(in map[string]any) (string, map[string]any, []string, error) {
	var notes []string
	prop := "msg." + str(in, "property")
	if prop == "msg." {
		prop = "payload"
	}
	switch pt := str(in, "propertyType"); pt {
	case "", "msg":
	case "jsonata":
		ex, ok := JSONataToExpr(str(in, "property"))
		if !ok {
			return "", nil, nil, fmt.Errorf("the JSONata value %q has no expr equivalent", str(in, "property"))
		}
		prop = "(" + ex + ")"
		notes = append(notes, fmt.Sprintf("JSONata value %q became the expression %q", str(in, "property"), ex))
	default:
		return "", nil, nil, fmt.Errorf("switch on %s properties is not supported", pt)
	}
	ops := map[string]string{"eq": "==", "neq": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
	rules, _ := in["rules"].([]any)
	var out []any
	for i, r := range rules {
		rm, _ := r.(map[string]any)
		t := str(rm, "t")
		var cond string
		switch t {
		case "eq", "neq", "lt", "lte", "gt", "gte":
			lit, err := switchOperand(str(rm, "v"), str(rm, "vt"))
			if err != nil {
				return "", nil, nil, fmt.Errorf("rule %d: %v", i+1, err)
			}
			cond = prop + " " + ops[t] + " " + lit
		case "btwn":
			a, err := switchOperand(str(rm, "v"), str(rm, "vt"))
			if err != nil {
				return "", nil, nil, fmt.Errorf("rule %d: %v", i+1, err)
			}
			b, err := switchOperand(str(rm, "v2"), str(rm, "v2t"))
			if err != nil {
				return "", nil, nil, fmt.Errorf("rule %d: %v", i+1, err)
			}
			cond = fmt.Sprintf("(%s >= %s && %s <= %s) || (%s >= %s && %s <= %s)", prop, a, prop, b, prop, b, prop, a)
		case "cont":
			lit, err := switchOperand(str(rm, "v"), str(rm, "vt"))
			if err != nil {
				return "", nil, nil, fmt.Errorf("rule %d: %v", i+1, err)
			}
			cond = fmt.Sprintf("type(%s) == \"string\" && %s contains string(%s)", prop, prop, lit)
		case "regex":
			re := str(rm, "v")
			if rm["case"] == true {
				re = "(?i)" + re
			}
			b, _ := json.Marshal(re)
			cond = fmt.Sprintf("type(%s) == \"string\" && %s matches %s", prop, prop, b)
		case "hask":
			b, _ := json.Marshal(str(rm, "v"))
			cond = fmt.Sprintf("type(%s) == \"map\" && %s in %s", prop, b, prop)
		case "empty", "nempty":
			op := map[string]string{"empty": "==", "nempty": ">"}[t]
			cond = fmt.Sprintf("type(%s) in [\"string\", \"array\", \"map\"] && len(%s) %s 0", prop, prop, op)
		case "istype":
			types := map[string]string{"string": `["string"]`, "number": `["int", "float"]`, "boolean": `["bool"]`,
				"array": `["array"]`, "object": `["map"]`}
			switch v := str(rm, "v"); v {
			case "null", "undefined":
				cond = prop + " == nil"
			default:
				list, ok := types[v]
				if !ok {
					return "", nil, nil, fmt.Errorf("rule %d: type %q is not supported", i+1, v)
				}
				cond = fmt.Sprintf("type(%s) in %s", prop, list)
			}
		case "true":
			cond = prop + " == true"
		case "false":
			cond = prop + " == false"
		case "null":
			cond = prop + " == nil"
		case "nnull":
			cond = prop + " != nil"
		case "else":
			cond = "true"
		case "jsonata_exp":
			ex, ok := JSONataToExpr(str(rm, "v"))
			if !ok {
				return "", nil, nil, fmt.Errorf("rule %d: the JSONata expression %q has no expr equivalent", i+1, str(rm, "v"))
			}
			cond = ex
			notes = append(notes, fmt.Sprintf("rule %d: JSONata %q became the expression %q", i+1, str(rm, "v"), ex))
		default:
			return "", nil, nil, fmt.Errorf("rule %d (%s) is not supported", i+1, t)
		}
		out = append(out, map[string]any{"condition": cond, "label": ""})
	}
	if len(out) == 0 {
		return "", nil, nil, fmt.Errorf("switch without rules")
	}
	mode := "all"
	if c, _ := in["checkall"].(string); c == "false" {
		mode = "first"
	}
	return "switch", map[string]any{"rules": out, "mode": mode}, notes, nil
}

// switchOperand writes a switch rule's value as an expression operand.
func switchOperand(v, vt string) (string, error) {
	switch vt {
	case "num":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("%q is not a number", v)
		}
		return v, nil
	case "str", "":
		b, _ := json.Marshal(v)
		return string(b), nil
	case "bool":
		if v != "true" && v != "false" {
			return "", fmt.Errorf("%q is not true or false", v)
		}
		return v, nil
	case "msg":
		if _, err := parsePath(v); err != nil {
			return "", err
		}
		return "msg." + v, nil
	case "env":
		b, _ := json.Marshal(v)
		return "env(" + string(b) + ")", nil
	case "jsonata":
		ex, ok := JSONataToExpr(v)
		if !ok {
			return "", fmt.Errorf("the JSONata value %q has no expr equivalent", v)
		}
		return "(" + ex + ")", nil
	}
	return "", fmt.Errorf("comparing with a %s value is not supported", vt)
}
