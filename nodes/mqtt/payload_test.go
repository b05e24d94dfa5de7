package mqtt

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/internal/msgfield"
)

func TestDecodePayload(t *testing.T) {
	for _, c := range []struct {
		format, in string
		want       any
		err        string
	}{
		{formatAuto, `{"t":21.5,"on":true}`, map[string]any{"t": 21.5, "on": true}, ""},
		{formatAuto, `21.5`, 21.5, ""},
		{formatAuto, ` -3 `, int64(-3), ""},
		{formatAuto, `true`, true, ""},
		{formatAuto, `[1,2]`, []any{int64(1), int64(2)}, ""},
		{formatAuto, `ON`, "ON", ""},
		{formatAuto, `{"broken"`, `{"broken"`, ""},
		{formatAuto, "\xff\xfe", nil, "neither JSON nor UTF-8"},
		{formatJSON, `{"a":1}`, map[string]any{"a": int64(1)}, ""},
		{formatJSON, `{"a":1.0}`, map[string]any{"a": 1.0}, ""},
		{formatNumber, `42`, int64(42), ""},
		{formatJSON, `ON`, nil, "not JSON"},
		{formatText, `21.5`, "21.5", ""},
		{formatText, "\xff", nil, "not UTF-8"},
		{formatNumber, ` 7e2 `, 700.0, ""},
		{formatNumber, `NaN`, nil, "not a number"},
		{formatNumber, `warm`, nil, `"warm" is not a number`},
	} {
		got, err := decodePayload(c.format, []byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %q: error %v, want %q", c.format, c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %q = %#v, %v; want %#v", c.format, c.in, got, err, c.want)
		}
	}
}

func TestTopicLevelAndNameRules(t *testing.T) {
	for _, c := range []struct {
		topic string
		n     int
		want  string
		ok    bool
	}{
		{"sensors/boiler-3/data", 2, "boiler-3", true},
		{"sensors/boiler-3/data", -1, "data", true},
		{"sensors/boiler-3/data", -3, "sensors", true},
		{"sensors/boiler-3/data", 4, "", false},
		{"sensors/boiler-3/data", -4, "", false},
		{"a//b", 2, "", false},
	} {
		got, ok := topicLevel(c.topic, c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("topicLevel(%q, %d) = %q, %v", c.topic, c.n, got, ok)
		}
	}
	payload := map[string]any{"serialNumber": "SN-1", "meta": map[string]any{"model": "TH-2", "id": 42.0, "sn": int64(1234)}, "list": []any{1.0}}
	for _, c := range []struct {
		rule nameRule
		want string
		err  string
	}{
		{nameRule{what: "device name", source: sourceConstant, value: "Boiler"}, "Boiler", ""},
		{nameRule{what: "device name", source: sourceTopic, level: 2}, "boiler-3", ""},
		{nameRule{what: "device name", source: sourceTopic, level: 5}, "", "has no level 5 for the device name"},
		{nameRule{what: "device name", source: sourcePayload, field: "serialNumber"}, "SN-1", ""},
		{nameRule{what: "device profile", source: sourcePayload, field: "meta.model"}, "TH-2", ""},
		{nameRule{what: "device name", source: sourcePayload, field: "meta.id"}, "42", ""},
		{nameRule{what: "device name", source: sourcePayload, field: "meta.sn"}, "1234", ""},
		{nameRule{what: "device name", source: sourcePayload, field: "meta.nope"}, "", `no field "meta.nope" for the device name`},
		{nameRule{what: "device name", source: sourcePayload, field: "list"}, "", "must be a non-empty string or a number"},
	} {
		got, ok, err := c.rule.pick("sensors/boiler-3/data", payload)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want %q", c.rule, err, c.err)
			}
			continue
		}
		if err != nil || !ok || got != c.want {
			t.Errorf("%+v = %q, %v, %v; want %q", c.rule, got, ok, err, c.want)
		}
	}
	if _, ok, _ := (nameRule{source: sourceNone}).pick("a", nil); ok {
		t.Error("source none picked a name")
	}
	msgfield.Delete(payload, "meta.model")
	if _, ok := msgfield.Get(payload, "meta.model"); ok {
		t.Error("Delete left meta.model")
	}
}

func TestTopicTemplate(t *testing.T) {
	m := engine.NewMsg(map[string]any{"id": 7.0})
	m.Set("device", "boiler-3")
	m.Set("method", "setpoint")
	tp, err := msgfield.ParseTemplate("sensors/{{device}}/rpc/{{method}}/{{payload.id}}")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Expand(m, "topic", nil); err != nil || got != "sensors/boiler-3/rpc/setpoint/7" {
		t.Fatalf("expand = %q, %v", got, err)
	}
	tp, _ = msgfield.ParseTemplate("x/{{nope}}")
	if _, err := tp.Expand(m, "topic", nil); err == nil || !strings.Contains(err.Error(), "msg.nope") {
		t.Fatalf("missing reference: %v", err)
	}
	for _, bad := range []string{"a/{{device", "a/{{}}"} {
		if _, err := msgfield.ParseTemplate(bad); err == nil {
			t.Errorf("msgfield.ParseTemplate(%q) accepted", bad)
		}
	}
	for _, f := range []string{"a/#/b", "a/b+/c", "", "a/#x"} {
		if checkFilter(f) == nil {
			t.Errorf("checkFilter(%q) accepted", f)
		}
	}
	for _, f := range []string{"a/+/c", "#", "a/b/#", "+"} {
		if err := checkFilter(f); err != nil {
			t.Errorf("checkFilter(%q): %v", f, err)
		}
	}
}

// BenchmarkConvert measures turning one MQTT message (a JSON object naming
// its device) into a flow message, beside the same-run baseline of decoding
// the same JSON with encoding/json alone, and reports the ratio.
func BenchmarkConvert(b *testing.B) {
	raw := []byte(`{"serialNumber":"SN-1","temperature":21.5,"humidity":40,"battery":97}`)
	n := &inNode{conf: &inConfig{Format: formatAuto, MaxBytes: 1 << 20, RemoveFields: true},
		device: nameRule{source: sourcePayload, field: "serialNumber"}, dtype: nameRule{source: sourceConstant, value: "default"}}
	b.ReportAllocs()
	var convert, decode time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := n.convert("devices/data", raw, t0); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			b.Fatal(err)
		}
		convert += t1.Sub(t0)
		decode += time.Since(t1)
	}
	b.ReportMetric(float64(convert.Nanoseconds())/float64(b.N), "convert-ns/msg")
	b.ReportMetric(float64(decode.Nanoseconds())/float64(b.N), "json-ns/msg")
	b.ReportMetric(float64(convert)/float64(decode), "x-json-decode-time")
}
