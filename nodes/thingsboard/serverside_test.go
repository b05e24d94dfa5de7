package thingsboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestDeadLetterGoesToCatch: telemetry for a device whose profile expects
// PROTOBUF is refused by the server for good; the flow's catch node gets
// the message with the reason, and the connection's status says so.
func TestDeadLetterGoesToCatch(t *testing.T) {
	s := sim(t, tbsim.Options{})
	if err := s.AddDeviceProfile(tbsim.DeviceProfile{Name: "proto", PayloadType: "PROTOBUF"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(tbsim.Device{Name: "pb", Token: "pb-token", Profile: "proto"}); err != nil {
		t.Fatal(err)
	}
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "device", "pb-token"),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "0s"}),
		node("catch", "catch", nil, []string{"caught"}),
		h.Capture("caught"))
	h.Send("out", engine.NewMsg(map[string]any{"t": 1.5}))
	got := h.WaitOutputs("caught", 1)
	msg := got[0].Fields["error"].(map[string]any)["message"].(string)
	if !strings.Contains(msg, "dead-lettered") {
		t.Fatalf("caught %q, want the dead letter", msg)
	}
	deadline := time.Now().Add(enginetest.WaitLimit)
	for {
		var texts []string
		for _, st := range h.Statuses("out") {
			texts = append(texts, st.Text)
			if strings.Contains(st.Text, "dead-lettered") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %q never mention the dead letter", texts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGWDeviceFollowsRename: ThingsBoard renames a sub-device; the
// gw-device node shows it and its data lands on the new name, without
// re-creating the old one.
func TestGWDeviceFollowsRename(t *testing.T) {
	s := sim(t, tbsim.Options{})
	h := enginetest.New(t, enginetest.Options{})
	deploy(h, engine.DeployFull, conn(s, "c", "gateway", "gw-token"),
		node("a", "gw-device", map[string]any{"connection": "c", "device": "Meter A"}, []string{"out"}),
		node("out", "tb-telemetry-out", map[string]any{"connection": "c", "linger": "0s"}))
	ctx := waitCtx(t)
	if err := s.WaitConnected(ctx, "Meter A"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameDevice("Meter A", "Meter 1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(enginetest.WaitLimit)
	for seen := false; !seen; {
		for _, st := range h.Statuses("a") {
			seen = seen || strings.Contains(st.Text, "renamed in ThingsBoard: Meter A → Meter 1")
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %v never show the rename", h.Statuses("a"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kick("gw") // a new session: the old name no longer reaches the renamed device by itself
	if err := s.WaitConnected(ctx, "Meter 1"); err != nil {
		t.Fatal(err)
	}
	h.Send("a", engine.NewMsg(map[string]any{"p": 7.5}))
	if err := s.WaitTelemetry(ctx, "Meter 1", "p", 1); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.Devices() {
		if d.Name == "Meter A" {
			t.Fatal("the old name was created again")
		}
	}
}
