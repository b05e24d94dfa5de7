package core

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// Export rules: tbflow's core nodes written with Node-RED's type names,
// field names and values, so Node-RED loads them.
func init() {
	engine.RegisterExport("inject", exportInject)
	engine.RegisterExport("debug", exportDebug)
	engine.RegisterExport("switch", exportSwitch)
	engine.RegisterExport("delay", exportDelay)
	engine.RegisterExport("rate-limit", exportRate)
	engine.RegisterExport("catch", exportScope("catch"))
	engine.RegisterExport("status", exportScope("status"))
	engine.RegisterExport("change", exportChange)
	engine.RegisterExport("range", same("range"))
	engine.RegisterExport("json", same("json"))
	engine.RegisterExport("template", same("template"))
	engine.RegisterExport("trigger", same("trigger"))
	engine.RegisterExport("filter", same("rbe"))
	engine.RegisterExport("link-in", same("link in"))
	engine.RegisterExport("link-out", same("link out"))
	engine.RegisterExport("link-call", same("link call"))
}

// same keeps the fields (they are Node-RED's) under Node-RED's type name.
func same(nrType string) engine.ExportFunc {
	return func(in map[string]any) (string, map[string]any, []string) {
		out := make(map[string]any, len(in))
		for k, v := range in {
			out[k] = engine.CloneValue(v)
		}
		return nrType, out, nil
	}
}

func durSeconds(v any) float64 {
	switch t := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(t))
		if err == nil {
			return d.Seconds()
		}
	case float64:
		return t
	}
	return 0
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

var nrPayloadType = map[string]string{"timestamp": "date", "json": "json", "number": "num", "string": "str", "boolean": "bool"}

func exportInject(in map[string]any) (string, map[string]any, []string) {
	pt := nrPayloadType[str(in, "payloadType")]
	if pt == "" {
		pt = "date"
	}
	out := map[string]any{
		"props":       []any{map[string]any{"p": "payload"}, map[string]any{"p": "topic", "vt": "str"}},
		"payload":     str(in, "payload"),
		"payloadType": pt,
		"topic":       str(in, "topic"),
		"repeat":      "",
		"crontab":     str(in, "schedule"),
		"once":        in["once"] == true,
		"onceDelay":   durSeconds(in["onceDelay"]),
	}
	if pt == "date" {
		out["payload"] = ""
	}
	if s := durSeconds(in["interval"]); s > 0 {
		out["repeat"] = num(s)
	}
	return "inject", out, nil
}

func exportDebug(in map[string]any) (string, map[string]any, []string) {
	out := map[string]any{
		"active": in["active"] != false, "tosidebar": true, "console": in["console"] == true,
		"tostatus": false, "statusVal": "", "statusType": "auto",
	}
	switch p := str(in, "property"); p {
	case "msg":
		out["complete"], out["targetType"] = "true", "full"
	case "payload", "":
		out["complete"], out["targetType"] = "false", "msg"
	default:
		out["complete"], out["targetType"] = p, "msg"
	}
	return "debug", out, nil
}

func exportDelay(in map[string]any) (string, map[string]any, []string) {
	return "delay", map[string]any{
		"pauseType": "delay", "timeout": num(durSeconds(in["delay"])), "timeoutUnits": "seconds",
		"rate": "1", "nbRateUnits": "1", "rateUnits": "second", "randomFirst": "1", "randomLast": "5",
		"randomUnits": "seconds", "drop": false, "allowrate": false, "outputs": 1.0,
	}, nil
}

func exportRate(in map[string]any) (string, map[string]any, []string) {
	rate := 1.0
	if f, ok := in["rate"].(float64); ok {
		rate = f
	} else if i, ok := in["rate"].(int); ok {
		rate = float64(i)
	}
	return "delay", map[string]any{
		"pauseType": "rate", "timeout": "5", "timeoutUnits": "seconds",
		"rate": num(rate), "nbRateUnits": num(durSeconds(in["per"])), "rateUnits": "second",
		"randomFirst": "1", "randomLast": "5", "randomUnits": "seconds",
		"drop": in["drop"] == true, "allowrate": false, "outputs": 1.0,
	}, nil
}

func exportScope(typ string) engine.ExportFunc {
	return func(in map[string]any) (string, map[string]any, []string) {
		return typ, nrScope(in), nil
	}
}

func nrScope(in map[string]any) map[string]any {
	out := map[string]any{"scope": nil, "uncaught": false}
	if str(in, "scope") == "nodes" {
		ids := []any{}
		rows, _ := in["nodes"].([]any)
		for _, r := range rows {
			if m, ok := r.(map[string]any); ok {
				ids = append(ids, str(m, "node"))
			}
		}
		out["scope"] = ids
	}
	return out
}

// condRE matches the switch conditions the import writes:
// msg.path op literal.
var condRE = regexp.MustCompile(`^\s*(msg\.[A-Za-z_$][\w$.]*|payload[\w$.]*)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$`)

func exportSwitch(in map[string]any) (string, map[string]any, []string) {
	rows, _ := in["rules"].([]any)
	ops := map[string]string{"==": "eq", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
	var prop string
	var rules []any
	var notes []string
	simple := true
	for _, r := range rows {
		m, _ := r.(map[string]any)
		c := strings.TrimSpace(str(m, "condition"))
		if c == "true" {
			rules = append(rules, map[string]any{"t": "else"})
			continue
		}
		sm := condRE.FindStringSubmatch(c)
		if sm == nil {
			simple = false
			break
		}
		p := strings.TrimPrefix(sm[1], "msg.")
		if prop != "" && p != prop {
			simple = false
			break
		}
		prop = p
		lit := sm[3]
		switch {
		case lit == "nil" && (sm[2] == "==" || sm[2] == "!="):
			rules = append(rules, map[string]any{"t": map[string]string{"==": "null", "!=": "nnull"}[sm[2]]})
		case (lit == "true" || lit == "false") && sm[2] == "==":
			rules = append(rules, map[string]any{"t": lit})
		case strings.HasPrefix(lit, `"`):
			s, err := strconv.Unquote(lit)
			if err != nil {
				simple = false
			}
			rules = append(rules, map[string]any{"t": ops[sm[2]], "v": s, "vt": "str"})
		default:
			if _, err := strconv.ParseFloat(lit, 64); err != nil {
				simple = false
			}
			rules = append(rules, map[string]any{"t": ops[sm[2]], "v": lit, "vt": "num"})
		}
	}
	if !simple {
		// Each condition as a JSONata expression on the whole message.
		rules, prop = nil, "payload"
		for _, r := range rows {
			m, _ := r.(map[string]any)
			c := strings.TrimSpace(str(m, "condition"))
			if c == "true" {
				rules = append(rules, map[string]any{"t": "else"})
				continue
			}
			rules = append(rules, map[string]any{"t": "jsonata_exp", "v": exprToJSONata(c), "vt": "jsonata"})
			notes = append(notes, fmt.Sprintf("condition %q became a JSONata expression; check it in Node-RED", c))
		}
	}
	if prop == "" {
		prop = "payload"
	}
	checkall := "true"
	if str(in, "mode") == "first" {
		checkall = "false"
	}
	return "switch", map[string]any{
		"property": prop, "propertyType": "msg", "rules": rules, "checkall": checkall,
		"repair": false, "outputs": float64(len(rules)),
	}, notes
}

// exprToJSONata rewrites the operators expr and JSONata spell
// differently; paths lose their msg. prefix.
func exprToJSONata(s string) string {
	s = strings.ReplaceAll(s, "==", "=")
	s = strings.ReplaceAll(s, "&&", " and ")
	s = strings.ReplaceAll(s, "||", " or ")
	s = regexp.MustCompile(`\bmsg\.`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "nil", "null")
}

// exportChange writes expr values as JSONata where the spelling allows.
func exportChange(in map[string]any) (string, map[string]any, []string) {
	_, out, _ := same("change")(in)
	var notes []string
	rows, _ := out["rules"].([]any)
	for i, r := range rows {
		m, _ := r.(map[string]any)
		for _, k := range []string{"tot", "fromt"} {
			if m[k] == "expr" {

				v := strings.TrimSuffix(k, "t")
				m[k], m[v] = "jsonata", exprToJSONata(str(m, v))
				notes = append(notes, fmt.Sprintf("rule %d: the expression became JSONata %q; check it in Node-RED", i+1, m[v]))
			}
		}
	}
	out["action"], out["property"], out["from"], out["to"], out["reg"] = "", "", "", "", false
	return "change", out, notes
}
