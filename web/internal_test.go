package web

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tbflow/tbflow/engine"
)

func TestNormOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:1880":       "http://127.0.0.1:1880",
		"HTTP://LocalHost:1880/":      "http://localhost:1880",
		"https://ops.example.com:443": "https://ops.example.com",
		"http://ops.example.com:80":   "http://ops.example.com",
		"http://[::1]:1880":           "http://[::1]:1880",
		"null":                        "",
		"ftp://example.com":           "",
		"http://example.com/path":     "",
		"http://user@example.com":     "",
		"example.com":                 "",
		"":                            "",
	} {
		got, ok := normOrigin(in)
		if ok != (want != "") || got != want {
			t.Errorf("normOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestTopicPatterns(t *testing.T) {
	for p, valid := range map[string]bool{
		"debug": true, "status/#": true, "status/+": true, "#": true, "+/x": true,
		"": false, "status/#/x": false, "sta#": false, "a+": false, "status//x": false,
	} {
		if validPattern(p) != valid {
			t.Errorf("validPattern(%q) = %v", p, !valid)
		}
	}
	for p, want := range map[string]bool{"status/#": true, "+/x": true, "#": true, "status/n1": true, "debug": false, "status": false, "+": false} {
		if got := mayMatchStatus(strings.Split(p, "/")); got != want {
			t.Errorf("mayMatchStatus(%q) = %v", p, got)
		}
	}
}

func TestMarshalEvent(t *testing.T) {
	decodeData := func(b []byte) map[string]any {
		var v struct{ Event struct{ Data map[string]any } }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return v.Event.Data
	}
	small := engine.Event{Topic: "debug", Node: &engine.NodeRef{ID: "d"}, Data: &engine.DebugData{Property: "payload", Value: map[string]any{"t": 21.5}}}
	b, err := marshalEvent(small)
	if err != nil {
		t.Fatal(err)
	}
	if d := decodeData(b); d["truncated"] != nil || d["value"].(map[string]any)["t"] != 21.5 {
		t.Fatalf("small value: %s", b)
	}

	// Exactly at the limit is sent whole; one byte over is truncated.
	at := strings.Repeat("a", MaxDebugValue-2) // plus two quotes
	b, _ = marshalEvent(engine.Event{Topic: "debug", Data: &engine.DebugData{Property: "payload", Value: at}})
	if d := decodeData(b); d["truncated"] != nil || d["value"] != at {
		t.Fatal("a value of exactly the limit was truncated")
	}
	over := strings.Repeat("€", MaxDebugValue/3+1)
	b, _ = marshalEvent(engine.Event{Topic: "debug", Data: &engine.DebugData{Property: "payload", Value: over}})
	d := decodeData(b)
	s, _ := d["value"].(string)
	if d["truncated"] != true || len(s) > MaxDebugValue || !utf8.ValidString(s) || !strings.HasPrefix(s, `"€€`) {
		t.Fatalf("over the limit: truncated=%v len=%d", d["truncated"], len(s))
	}

	// A value JSON cannot hold is reported, not lost silently.
	b, err = marshalEvent(engine.Event{Topic: "debug", Data: &engine.DebugData{Property: "payload", Value: math.Inf(1)}})
	if err != nil || !strings.Contains(decodeData(b)["value"].(string), "cannot encode") {
		t.Fatalf("unencodable value: %s %v", b, err)
	}

	st, _ := marshalEvent(engine.Event{Topic: "status/n", Data: engine.Status{Fill: "red", Text: "down"}})
	if d := decodeData(st); d["fill"] != "red" || d["text"] != "down" {
		t.Fatalf("status event: %s", st)
	}
}

func TestOutboxBoundsEventsNotReplies(t *testing.T) {
	o := &outbox{maxEvents: 2, wake: make(chan struct{}, 1)}
	o.putReply([]byte("r1"))
	for range 5 {
		o.putEvent(engine.Event{Topic: "debug"})
	}
	o.putReply([]byte("r2"))
	o.addDropped(4)
	items, dropped := o.take()
	if len(items) != 4 || !items[0].reply || items[1].reply || items[2].reply || !items[3].reply || dropped != 7 {
		t.Fatalf("items %+v, dropped %d", items, dropped)
	}
	if items, dropped := o.take(); len(items) != 0 || dropped != 0 {
		t.Fatal("take did not empty the outbox")
	}
	// After a take, events fit again.
	o.putEvent(engine.Event{Topic: "debug"})
	if items, _ := o.take(); len(items) != 1 {
		t.Fatal("the event bound was not reset")
	}
}
