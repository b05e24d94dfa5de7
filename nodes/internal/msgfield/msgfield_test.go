package msgfield

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
)

func TestGetDelete(t *testing.T) {
	v := map[string]any{"meta": map[string]any{"model": "TH-2", "sn": int64(7)}}
	if got, ok := Get(v, "meta.model"); !ok || got != "TH-2" {
		t.Fatalf("Get = %v, %v", got, ok)
	}
	if _, ok := Get(v, "meta.model.x"); ok {
		t.Error("a path through text was found")
	}
	Delete(v, "meta.model")
	if _, ok := Get(v, "meta.model"); ok {
		t.Error("Delete left meta.model")
	}
	if _, ok := Get(v, "meta.sn"); !ok {
		t.Error("Delete took a sibling")
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
		ok   bool
	}{
		{"boiler", "boiler", true}, {"", "", false}, {21.5, "21.5", true}, {int64(1234), "1234", true},
		{uint64(18446744073709551615), "18446744073709551615", true}, {json.Number("123456789012345678901234"), "123456789012345678901234", true},
		{7, "7", true}, {true, "true", true}, {nil, "", false}, {map[string]any{}, "", false},
	} {
		if got, ok := Text(c.in); got != c.want || ok != c.ok {
			t.Errorf("Text(%#v) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestTemplate(t *testing.T) {
	m := engine.NewMsg(map[string]any{"id": int64(7)})
	m.Set("device", "boiler 3")
	tp, err := ParseTemplate("sensors/{{device}}/{{ payload.id }}")
	if err != nil || tp.Static() {
		t.Fatalf("parse: %v", err)
	}
	if got, err := tp.Expand(m, "topic", nil); err != nil || got != "sensors/boiler 3/7" {
		t.Errorf("Expand = %q, %v", got, err)
	}
	if got, err := tp.Expand(m, "URL", url.PathEscape); err != nil || got != "sensors/boiler%203/7" {
		t.Errorf("Expand escaped = %q, %v", got, err)
	}
	tp, _ = ParseTemplate("x/{{nope}}")
	if _, err := tp.Expand(m, "topic", nil); err == nil || !strings.Contains(err.Error(), "the topic refers to msg.nope") {
		t.Errorf("missing field: %v", err)
	}
	for _, bad := range []string{"a/{{b", "a/{{ }}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("ParseTemplate(%q) accepted", bad)
		}
	}
	if tp, _ := ParseTemplate("plain"); !tp.Static() {
		t.Error("plain text is not static")
	}
}
