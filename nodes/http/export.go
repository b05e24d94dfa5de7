package http

import (
	"regexp"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Export rules: tbflow's HTTP nodes written as Node-RED's http in and
// http request, which the import rules read back.
func init() {
	engine.RegisterExport("http-in", exportIn)
	engine.RegisterExport("http-request", exportRequest)
}

// pathParam is one {name} segment of an http-in path.
var pathParam = regexp.MustCompile(`^\{([A-Za-z0-9_]+)\}$`)

func exportIn(in map[string]any) (string, map[string]any, []string) {
	parts := strings.Split(str(in, "path"), "/")
	for i, p := range parts {
		if m := pathParam.FindStringSubmatch(p); m != nil {
			parts[i] = ":" + m[1] // Node-RED's (Express's) path parameter
		}
	}
	method := strings.ToLower(str(in, "method"))
	if method == "" {
		method = "post"
	}
	out := map[string]any{
		"url": strings.Join(parts, "/"), "method": method,
		"upload": false, "skipBodyParsing": false, "swaggerDoc": "",
	}
	notes := []string{
		"Node-RED's http in does not answer by itself: wire an http response node at the end of the flow",
		"Node-RED serves it on its own HTTP port (httpNodeRoot), not on listen",
	}
	if a := str(in, "auth"); a != authNone {
		notes = append(notes, "the "+a+" check (auth) is tbflow's and was dropped: Node-RED's http in checks nothing (httpNodeAuth in settings.js guards every http in)")
	}
	if s := str(in, "deviceSource"); s != "" && s != sourceNone {
		notes = append(notes, "the device name and profile ("+s+": msg.device, msg.deviceType) are tbflow's and are not set in Node-RED: add a change node")
	}
	notes = append(notes, engine.UnmappedNotes("http-in", in, "secret", "username", "listen", "maxBytes", "timeout")...)
	return "http in", out, notes
}

func exportRequest(in map[string]any) (string, map[string]any, []string) {
	// tbflow's {{path}} inserts the value as it is, as Node-RED's {{{path}}}.
	url := strings.NewReplacer("{{", "{{{", "}}", "}}}").Replace(str(in, "url"))
	ret := "obj"
	if str(in, "format") == "text" {
		ret = "txt"
	}
	headers := []any{}
	rows, _ := in["headers"].([]any)
	for _, r := range rows {
		if h, ok := r.(map[string]any); ok && str(h, "name") != "" {
			headers = append(headers, map[string]any{"keyType": "other", "keyValue": str(h, "name"), "valueType": "other", "valueValue": str(h, "value")})
		}
	}
	out := map[string]any{
		"method": str(in, "method"), "ret": ret, "paytoqs": "ignore", "url": url,
		"tls": "", "persist": false, "proxy": "", "insecureHTTPParser": false,
		"authType": "", "senderr": false, "headers": headers,
	}
	if out["method"] == "" {
		out["method"] = "GET"
	}
	var notes []string
	if str(in, "format") == "json" {
		notes = append(notes, "format json: Node-RED passes a body that is not JSON on as text with a warning, not as an error")
	}
	if d := str(in, "interval"); d != "" && d != "0s" && d != "0" {
		notes = append(notes, "Node-RED's http request does not poll: wire an inject node repeating every "+d+" to it")
	}
	if str(in, "device") != "" || str(in, "deviceType") != "" {
		notes = append(notes, "device and deviceType (msg.device, msg.deviceType of the answers) are tbflow's: add a change node")
	}
	if in["insecure"] == true {
		notes = append(notes, "insecure (skip TLS verification) needs a Node-RED tls-config node with verification off")
	}
	notes = append(notes, engine.UnmappedNotes("http-request", in, "authValue", "authHeader", "timeout", "maxBytes", "backoffMax")...)
	return "http request", out, notes
}
