package http

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Import rules for Node-RED's HTTP nodes.
func init() {
	engine.RegisterImport("http request", importRequest)
	engine.RegisterImport("http in", importIn)
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

func importRequest(in map[string]any) (string, map[string]any, []string, error) {
	url := strings.NewReplacer("{{{", "{{", "}}}", "}}").Replace(str(in, "url"))
	if url == "" {
		return "", nil, nil, fmt.Errorf("a URL from msg.url is not supported: set the node's URL")
	}
	out := map[string]any{"url": url}
	var notes []string
	switch m := strings.ToUpper(str(in, "method")); m {
	case "GET", "POST", "PUT", "PATCH", "DELETE":
		out["method"] = m
	default:
		out["method"] = "GET"
		notes = append(notes, fmt.Sprintf("method %q became GET", str(in, "method")))
	}
	switch str(in, "ret") {
	case "obj": // Node-RED passes a body that is not JSON on as text, with a warning
		out["format"] = "auto"
	case "txt":
		out["format"] = "text"
	default:
		out["format"] = "auto"
		notes = append(notes, "a binary answer became auto (JSON or text)")
	}
	var headers []any
	if hs, ok := in["headers"].([]any); ok {
		for _, h := range hs {
			hm, _ := h.(map[string]any)
			if str(hm, "keyType") != "other" || str(hm, "valueType") != "other" {
				notes = append(notes, "a header with a predefined name or value from msg was dropped")
				continue
			}
			headers = append(headers, map[string]any{"name": str(hm, "keyValue"), "value": str(hm, "valueValue")})
		}
	}
	if headers != nil {
		out["headers"] = headers
	}
	if str(in, "authType") != "" {
		notes = append(notes, "credentials are not part of Node-RED exports: put the Authorization header's value in authValue (a secret)")
	}
	if str(in, "tls") != "" || str(in, "proxy") != "" {
		notes = append(notes, "TLS and proxy configuration nodes did not carry over")
	}
	return "http-request", out, notes, nil
}

func importIn(in map[string]any) (string, map[string]any, []string, error) {
	m := strings.ToUpper(str(in, "method"))
	if m != "POST" && m != "PUT" {
		return "", nil, nil, fmt.Errorf("method %q: http-in takes POST and PUT", str(in, "method"))
	}
	path := str(in, "url")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	// Node-RED's /:name path parameters are {name} here.
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok && name != "" {
			parts[i] = "{" + name + "}"
		}
	}
	out := map[string]any{"path": strings.Join(parts, "/"), "method": m, "auth": authToken}
	notes := []string{"http-in listens on its own address (listen, 127.0.0.1:8081 by default), answers by itself (drop the http response node) and needs a token: set secret"}
	return "http-in", out, notes, nil
}
