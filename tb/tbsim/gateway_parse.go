package tbsim

import (
	"bytes"
	"encoding/json"
	"strings"
)

// --- payload parsers ---------------------------------------------------
//
// Whole-payload errors are returned as runtime failures ("wrong shape",
// the gateway connection is closed) except for invalid JSON, which is a
// format error (§1.6).

// gwEntry is one device's part of a multi-device gateway payload.
type gwEntry struct {
	device string
	raw    json.RawMessage
}

// gwObject parses a payload that must be a JSON object.
func gwObject(payload []byte) ([]member, error) {
	raw, err := parseJSON(payload)
	if err != nil {
		return nil, err
	}
	if kind(raw) != '{' {
		return nil, runtimeFailure("can't parse value: %s", truncate(raw))
	}
	return objectMembers(raw)
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// parseGatewayEntries parses {"Dev A": <value>, ...} for telemetry (want
// '[') or attributes and claims (want '{'). Entries of another kind are
// skipped; none left is a wrong shape, and so is an empty device name.
func parseGatewayEntries(payload []byte, want byte) ([]gwEntry, error) {
	ms, err := gwObject(payload)
	if err != nil {
		return nil, err
	}
	var out []gwEntry
	for _, m := range ms {
		if kind(m.raw) != want {
			continue
		}
		if m.key == "" {
			return nil, runtimeFailure("device name is empty")
		}
		out = append(out, gwEntry{device: m.key, raw: m.raw})
	}
	if len(out) == 0 {
		return nil, runtimeFailure("no usable device entries")
	}
	return out, nil
}

// parseGatewayTelemetryDevice converts one device's telemetry array; every
// element must be an object (flat or {ts, values}); an optional "metadata"
// member (gateway latency data) is stripped.
func parseGatewayTelemetryDevice(raw json.RawMessage) ([]tsRecord, error) {
	elems, err := arrayElements(raw)
	if err != nil {
		return nil, err
	}
	out := make([]tsRecord, 0, len(elems))
	for _, e := range elems {
		if kind(e) != '{' {
			return nil, malformed("can't parse value: %s", truncate(e))
		}
		ms, err := objectMembers(e)
		if err != nil {
			return nil, err
		}
		for i, m := range ms {
			if m.key == "metadata" {
				ms = append(ms[:i:i], ms[i+1:]...)
				break
			}
		}
		rec, err := parseTelemetryMembers(ms)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// gwDeviceName reads the required, non-empty "device" member.
func gwDeviceName(ms []member) (string, error) {
	r, ok := findMember(ms, "device")
	if !ok {
		return "", runtimeFailure("device is missing")
	}
	name, ok := gsonString(r)
	if !ok {
		return "", runtimeFailure("device is not a string")
	}
	if name == "" {
		return "", runtimeFailure("device name is empty")
	}
	return name, nil
}

// parseGatewayConnect parses {"device", "type"}; type defaults to
// "default" (also when null or empty).
func parseGatewayConnect(payload []byte) (name, typ string, err error) {
	ms, err := gwObject(payload)
	if err != nil {
		return "", "", err
	}
	if name, err = gwDeviceName(ms); err != nil {
		return "", "", err
	}
	typ = defaultDeviceType
	if r, ok := findMember(ms, "type"); ok && kind(r) != 'n' {
		t, ok := gsonString(r)
		if !ok {
			return "", "", runtimeFailure("type is not a string")
		}
		if t != "" {
			typ = t
		}
	}
	return name, typ, nil
}

// parseGatewayDisconnect parses {"device"}.
func parseGatewayDisconnect(payload []byte) (string, error) {
	ms, err := gwObject(payload)
	if err != nil {
		return "", err
	}
	return gwDeviceName(ms)
}

// gwAttrRequest is a parsed v1/gateway/attributes/request.
type gwAttrRequest struct {
	id     int
	device string
	client bool
	keys   []string // distinct, in request order
}

// gsonInt is JsonElement.getAsInt.
func gsonInt(raw json.RawMessage) (int, error) {
	switch kind(raw) {
	case '0':
		v, err := gsonLong(raw)
		if err != nil {
			return 0, runtimeFailure("%s is not an int", raw)
		}
		return int(int32(v)), nil
	case '"':
		str, _ := gsonString(raw)
		v, ok := javaParseInt(str)
		if !ok {
			return 0, runtimeFailure("%q is not an int", str)
		}
		return v, nil
	case '[':
		elems, err := arrayElements(raw)
		if err != nil || len(elems) != 1 {
			return 0, runtimeFailure("%s is not an int", truncate(raw))
		}
		return gsonInt(elems[0])
	default:
		return 0, runtimeFailure("%s is not an int", truncate(raw))
	}
}

// gsonBool is JsonElement.getAsBoolean: strings are Boolean.parseBoolean.
func gsonBool(raw json.RawMessage) (bool, error) {
	switch kind(raw) {
	case 't':
		return true, nil
	case 'f', '0':
		return false, nil
	case '"':
		str, _ := gsonString(raw)
		return strings.EqualFold(str, "true"), nil
	case '[':
		elems, err := arrayElements(raw)
		if err != nil || len(elems) != 1 {
			return false, runtimeFailure("%s is not a boolean", truncate(raw))
		}
		return gsonBool(elems[0])
	default:
		return false, runtimeFailure("%s is not a boolean", truncate(raw))
	}
}

// parseGatewayAttrRequest parses {"id", "device", "client", "key"|"keys"};
// all required, "key" wins over "keys".
func parseGatewayAttrRequest(payload []byte) (gwAttrRequest, error) {
	var req gwAttrRequest
	ms, err := gwObject(payload)
	if err != nil {
		return req, err
	}
	idRaw, ok := findMember(ms, "id")
	if !ok {
		return req, runtimeFailure("id is missing")
	}
	if req.id, err = gsonInt(idRaw); err != nil {
		return req, err
	}
	if req.device, err = gwDeviceName(ms); err != nil {
		return req, err
	}
	clientRaw, ok := findMember(ms, "client")
	if !ok {
		return req, runtimeFailure("client is missing")
	}
	if req.client, err = gsonBool(clientRaw); err != nil {
		return req, err
	}
	if r, ok := findMember(ms, "key"); ok {
		k, ok := gsonString(r)
		if !ok {
			return req, runtimeFailure("key is not a string")
		}
		req.keys = []string{k}
		return req, nil
	}
	r, ok := findMember(ms, "keys")
	if !ok {
		return req, runtimeFailure("key or keys is missing")
	}
	if kind(r) != '[' {
		return req, runtimeFailure("keys is not an array")
	}
	elems, err := arrayElements(r)
	if err != nil {
		return req, err
	}
	seen := map[string]bool{}
	for _, e := range elems {
		k, ok := gsonString(e)
		if !ok {
			return req, runtimeFailure("key %s is not a string", truncate(e))
		}
		if !seen[k] {
			seen[k] = true
			req.keys = append(req.keys, k)
		}
	}
	return req, nil
}

// parseGatewayRPCReply parses {"device", "id", "data"} (all required); data
// is kept as compact JSON text.
func parseGatewayRPCReply(payload []byte) (name string, id int, data json.RawMessage, err error) {
	ms, err := gwObject(payload)
	if err != nil {
		return "", 0, nil, err
	}
	if name, err = gwDeviceName(ms); err != nil {
		return "", 0, nil, err
	}
	idRaw, ok := findMember(ms, "id")
	if !ok {
		return "", 0, nil, runtimeFailure("id is missing")
	}
	if id, err = gsonInt(idRaw); err != nil {
		return "", 0, nil, err
	}
	d, ok := findMember(ms, "data")
	if !ok {
		return "", 0, nil, runtimeFailure("data is missing")
	}
	var b bytes.Buffer
	_ = json.Compact(&b, d)
	return name, id, b.Bytes(), nil
}
