package tb_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
)

// TestGatewayFollowsRenameAndDelete: ThingsBoard tells the gateway that a
// sub-device was renamed (gateway_device_renamed) or deleted
// (gateway_device_deleted). Data sent under the old name afterwards lands
// on the new name (no device is re-created under the old one), even after
// a reconnect; a deleted device is no longer connected again.
func TestGatewayFollowsRenameAndDelete(t *testing.T) {
	s, g := newGatewaySim(t)
	ctx := ctxT(t)
	renamed := make(chan [2]string, 1)
	deleted := make(chan string, 1)
	g.OnDeviceRenamed(func(o, n string) { renamed <- [2]string{o, n} })
	g.OnDeviceDeleted(func(n string) { deleted <- n })
	ackOK(t)(g.ConnectDevice(ctx, "Pump 1", "pump"))
	ackOK(t)(g.PublishDeviceTelemetry(ctx, "Pump 1", tb.Telemetry{Ts: time.UnixMilli(1700000000000), Values: map[string]any{"flow": 1}}))
	if err := s.RenameDevice("Pump 1", "Pump A"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-renamed:
		if r != [2]string{"Pump 1", "Pump A"} {
			t.Fatalf("renamed %v", r)
		}
	case <-time.After(waitFor):
		t.Fatal("OnDeviceRenamed not called")
	}
	if got := g.ConnectedDevices(); !slices.Equal(got, []string{"Pump A"}) {
		t.Fatalf("connected devices %v, want the new name", got)
	}
	// A reconnect ends the session that still knew the old name.
	s.Kick("gw")
	if err := g.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	ackOK(t)(g.PublishDeviceTelemetry(ctx, "Pump 1", tb.Telemetry{Ts: time.UnixMilli(1700000001000), Values: map[string]any{"flow": 2}}))
	if h := s.History("Pump A", "flow"); len(h) != 2 {
		t.Fatalf("the renamed device has %d values, want 2 (data under the old name follows the rename)", len(h))
	}
	for _, d := range s.Devices() {
		if d.Name == "Pump 1" {
			t.Fatal("a device was created again under the old name")
		}
	}
	if err := s.DeleteDevice("Pump A"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-deleted:
		if n != "Pump A" {
			t.Fatalf("deleted %q", n)
		}
	case <-time.After(waitFor):
		t.Fatal("OnDeviceDeleted not called")
	}
	if got := g.ConnectedDevices(); len(got) != 0 {
		t.Fatalf("connected devices %v after the delete", got)
	}
	s.Kick("gw")
	if err := g.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, d := range s.Devices() {
		if d.Name == "Pump A" || d.Name == "Pump 1" {
			t.Fatalf("the deleted device was connected (and created) again: %+v", d)
		}
	}
}
