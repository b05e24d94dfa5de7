package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tbflow/tbflow/nodes/internal/msgfield"
	"github.com/tbflow/tbflow/tb"
)

// Payload formats of mqtt-in.
const (
	formatAuto   = "auto"
	formatJSON   = "json"
	formatText   = "text"
	formatNumber = "number"
)

// decodePayload turns an MQTT payload into a message value.
func decodePayload(format string, b []byte) (any, error) {
	switch format {
	case formatJSON:
		var v any
		if err := tb.UnmarshalExact(b, &v); err != nil {
			return nil, fmt.Errorf("payload is not JSON: %w", err)
		}
		return v, nil
	case formatText:
		if !utf8.Valid(b) {
			return nil, errors.New("payload is not UTF-8 text")
		}
		return string(b), nil
	case formatNumber:
		return parseNumber(b)
	}
	// auto: JSON when it parses, else a number, else text.
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[' || t[0] == '"' || t[0] == 't' || t[0] == 'f' || t[0] == 'n' || t[0] == '-' || (t[0] >= '0' && t[0] <= '9')) {
		var v any
		if err := tb.UnmarshalExact(t, &v); err == nil {
			return v, nil
		}
	}
	if n, err := parseNumber(b); err == nil {
		return n, nil
	}
	if !utf8.Valid(b) {
		return nil, errors.New("payload is neither JSON nor UTF-8 text")
	}
	return string(b), nil
}

// parseNumber reads a number as ThingsBoard types it: an integer without
// a decimal point stays an int64 (stored as a long), anything else is a
// float64 (stored as a double).
func parseNumber(b []byte) (any, error) {
	s := strings.TrimSpace(string(b))
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		if len(s) > 32 {
			s = s[:32] + "…"
		}
		return 0, fmt.Errorf("payload %q is not a number", s)
	}
	return f, nil
}

// topicLevel returns level n of topic (1-based; negative counts from the
// end, -1 being the last).
func topicLevel(topic string, n int) (string, bool) {
	levels := strings.Split(topic, "/")
	if n < 0 {
		n = len(levels) + 1 + n
	}
	if n < 1 || n > len(levels) || levels[n-1] == "" {
		return "", false
	}
	return levels[n-1], true
}

// Source of a device name or profile in mqtt-in.
const (
	sourceNone     = "none"
	sourceConstant = "constant"
	sourceTopic    = "topic"
	sourcePayload  = "payload"
)

// nameRule takes a device name or profile from a constant, a topic level
// or a payload field.
type nameRule struct {
	what   string // "device" or "device type", for errors
	source string
	value  string
	level  int
	field  string
}

// pick returns the name for a message; ok is false when the rule is none.
func (r nameRule) pick(topic string, payload any) (name string, ok bool, err error) {
	switch r.source {
	case sourceConstant:
		return r.value, true, nil
	case sourceTopic:
		if s, found := topicLevel(topic, r.level); found {
			return s, true, nil
		}
		return "", true, fmt.Errorf("topic %q has no level %d for the %s", topic, r.level, r.what)
	case sourcePayload:
		v, found := msgfield.Get(payload, r.field)
		if !found {
			return "", true, fmt.Errorf("payload has no field %q for the %s", r.field, r.what)
		}
		s, good := msgfield.Text(v)
		if !good {
			return "", true, fmt.Errorf("payload field %q (the %s) must be a non-empty string or a number", r.field, r.what)
		}
		return s, true, nil
	}
	return "", false, nil
}
