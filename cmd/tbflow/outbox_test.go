package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestOutboxCommand: a PROTOBUF-profile device dead-letters its JSON
// telemetry; `tbflow outbox list` shows it with its reason, `retry` queues
// it again, `drop` forgets it.
func TestOutboxCommand(t *testing.T) {
	s, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddDeviceProfile(tbsim.DeviceProfile{Name: "proto", PayloadType: "PROTOBUF"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(tbsim.Device{Name: "pb", Token: "pb-token", Profile: "proto"}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	p, _ := strconv.Atoi(port)
	path := filepath.Join(t.TempDir(), "outbox.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := tb.Connect(ctx, tb.Config{Host: host, Port: p, AccessToken: "pb-token", Outbox: tb.OutboxConfig{Path: path}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.PublishTelemetry(ctx, map[string]any{"t": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err == nil {
		t.Fatal("a JSON message to a PROTOBUF device was acknowledged")
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := runOutbox(ctx, args, &out, &errb)
		return out.String() + errb.String(), code
	}
	out, code := run("list", path)
	if code != 0 || !strings.Contains(out, "0 queued, 1 dead-lettered") || !strings.Contains(out, "0x99") || !strings.Contains(out, `"t":1`) {
		t.Fatalf("list (%d): %s", code, out)
	}
	if out, code = run("retry", path); code != 0 || !strings.Contains(out, "1 dead letters queued again") {
		t.Fatalf("retry (%d): %s", code, out)
	}
	if out, code = run("list", path); code != 0 || !strings.Contains(out, "1 queued, 0 dead-lettered") {
		t.Fatalf("list after retry (%d): %s", code, out)
	}
	if out, code = run("drop", path); code != 0 || !strings.Contains(out, "0 dead letters dropped") {
		t.Fatalf("drop (%d): %s", code, out)
	}
	if _, code = run("sweep", path); code != 2 {
		t.Fatalf("unknown action: exit %d, want 2", code)
	}
}
