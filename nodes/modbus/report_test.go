package modbus

import (
	"testing"
	"time"
)

// TestReporter drives the per-row report decisions with a fake clock.
func TestReporter(t *testing.T) {
	rp := reporter{metas: map[string]rowMeta{
		"p":  {report: "poll"},
		"c":  {report: "change", deadband: 1},
		"t":  {report: "period", period: 10 * time.Second},
		"ct": {report: "change-or-period", period: 10 * time.Second},
		"a":  {report: "change", scope: "attribute"},
	}}
	t0 := time.Unix(1000, 0)
	step := func(sec int, vals map[string]any) (map[string]any, map[string]any) {
		return rp.pick(vals, t0.Add(time.Duration(sec)*time.Second))
	}
	all := map[string]any{"p": 1.0, "c": 10.0, "t": 5.0, "ct": "on", "a": "x"}
	tel, attr := step(0, all)
	if len(tel) != 4 || len(attr) != 1 {
		t.Fatalf("first poll: %v %v", tel, attr)
	}
	tel, attr = step(1, map[string]any{"p": 1.0, "c": 10.5, "t": 6.0, "ct": "on", "a": "x"})
	if len(tel) != 1 || tel["p"] != 1.0 || len(attr) != 0 {
		t.Errorf("within deadband and period: %v %v", tel, attr)
	}
	tel, _ = step(2, map[string]any{"c": 11.5, "ct": "off"})
	if tel["c"] != 11.5 || tel["ct"] != "off" {
		t.Errorf("changes: %v", tel)
	}
	tel, _ = step(11, map[string]any{"t": 6.0, "ct": "off"})
	if tel["t"] != 6.0 || tel["ct"] != nil {
		t.Errorf("after 11 s: %v (ct was sent at 2 s)", tel)
	}
	tel, _ = step(12, map[string]any{"t": 6.0, "ct": "off"})
	if tel["t"] != nil || tel["ct"] != "off" {
		t.Errorf("after 12 s: %v", tel)
	}
	// report by exception with a full report
	rb := reporter{metas: map[string]rowMeta{"x": {}}, byException: true, full: time.Minute}
	if tel, _ := rb.pick(map[string]any{"x": 1.0}, t0); tel["x"] != 1.0 {
		t.Error("first")
	}
	if tel, _ := rb.pick(map[string]any{"x": 1.0}, t0.Add(time.Second)); len(tel) != 0 {
		t.Errorf("unchanged: %v", tel)
	}
	if tel, _ := rb.pick(map[string]any{"x": 1.0}, t0.Add(61*time.Second)); tel["x"] != 1.0 {
		t.Errorf("full report: %v", tel)
	}
}
