package modbus_test

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
	_ "github.com/tbflow/tbflow/nodes/core"
	_ "github.com/tbflow/tbflow/nodes/thingsboard"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestExampleFlowModbusToTB runs flows/modbus-to-tb.json headless against
// a tbsim and a simulated energy meter (on free ports instead of the
// defaults of `tbflow sim`): meter values arrive as ThingsBoard telemetry,
// and RPCs write the relay and the power limit, or get the error.
func TestExampleFlowModbusToTB(t *testing.T) {
	data, err := os.ReadFile("../../flows/modbus-to-tb.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.ParseFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	var creds engine.Credentials
	cb, err := os.ReadFile("../../flows/modbus-to-tb_cred.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cb, &creds); err != nil {
		t.Fatal(err)
	}
	engine.MergeSecrets(f, creds)

	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "demo-device", Token: "demo-token"}); err != nil {
		t.Fatal(err)
	}
	mb := modbussim.New()
	meter := mb.Unit(1)
	if err := modbussim.EnergyMeter(meter); err != nil {
		t.Fatal(err)
	}
	if err := mb.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })

	port := func(addr string) float64 {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return float64(n)
	}
	f.Node("tb").Fields["port"] = port(tbs.MQTTAddr())
	f.Node("mb").Fields["port"] = port(mb.Addr())
	f.Node("meter").Fields["period"] = "50ms"

	h := enginetest.New(t, enginetest.Options{})
	h.DeployFlow(f, engine.DeployFull)
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
	defer cancel()
	if err := tbs.WaitTelemetry(ctx, "demo-device", "voltage", 2); err != nil {
		t.Fatalf("no voltage telemetry: %v", err)
	}
	latest := tbs.Latest("demo-device")
	if v, _ := latest["voltage"].Value.(float64); v < 220 || v > 240 {
		t.Errorf("voltage %v", latest["voltage"])
	}
	if latest["relay"].Value != true || latest["powerLimit"].Value != int64(3680) {
		t.Errorf("telemetry %v", latest)
	}

	reply, err := tbs.RPC(ctx, "demo-device", "relay", false, false)
	if err != nil || !strings.Contains(string(reply), `"ok":true`) {
		t.Fatalf("rpc reply %s %v", reply, err)
	}
	if meter.Bit(modbus.Coil, 0) {
		t.Error("the RPC did not switch the relay off")
	}
	reply, err = tbs.RPC(ctx, "demo-device", "powerLimit", 2500, false)
	if err != nil || !strings.Contains(string(reply), `"ok":true`) {
		t.Fatalf("rpc reply %s %v", reply, err)
	}
	if v, _ := meter.Get(modbussim.EnergyMeterMap[5]); v != int64(2500) {
		t.Errorf("power limit %v", v)
	}
	reply, err = tbs.RPC(ctx, "demo-device", "powerLimit", 99999, false)
	if err != nil || !strings.Contains(string(reply), "out of range") {
		t.Fatalf("rpc reply to a bad value %s %v", reply, err)
	}
}

// TestExampleFlowModbusMeter runs flows/modbus-meter.json against a tbsim
// and the simulated meter: rows rounded and reported as they say, the
// power limit as an attribute, and an RPC reading on demand.
func TestExampleFlowModbusMeter(t *testing.T) {
	data, err := os.ReadFile("../../flows/modbus-meter.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := engine.ParseFlow(data)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "demo-device", Token: "demo-token"}); err != nil {
		t.Fatal(err)
	}
	mb := modbussim.New()
	if err := modbussim.EnergyMeter(mb.Unit(1)); err != nil {
		t.Fatal(err)
	}
	if err := mb.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	port := func(addr string) float64 {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return float64(n)
	}
	f.Node("tb").Fields["port"] = port(tbs.MQTTAddr())
	f.Node("tb").Fields["accessToken"] = "demo-token"
	f.Node("mb").Fields["port"] = port(mb.Addr())
	f.Node("meter").Fields["period"] = "50ms"
	h := enginetest.New(t, enginetest.Options{})
	h.DeployFlow(f, engine.DeployFull)
	ctx, cancel := context.WithTimeout(context.Background(), enginetest.WaitLimit)
	defer cancel()
	if err := tbs.WaitTelemetry(ctx, "demo-device", "current", 3); err != nil {
		t.Fatalf("no current telemetry: %v", err)
	}
	latest := tbs.Latest("demo-device")
	v, _ := latest["voltage"].Value.(float64)
	if v < 220 || v > 240 || math.Round(v*10)/10 != v {
		t.Errorf("voltage %v: want one decimal", latest["voltage"])
	}
	if h := tbs.History("demo-device", "energy"); len(h) != 1 {
		t.Errorf("energy sent %d times in the first 10 s", len(h))
	}
	for tbs.ClientAttributes("demo-device")["powerLimit"] == nil && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if got := tbs.ClientAttributes("demo-device")["powerLimit"]; got != int64(3680) {
		t.Errorf("powerLimit attribute %#v", got)
	}
	reply, err := tbs.RPC(ctx, "demo-device", "get", []string{"voltage", "energy"}, false)
	if err != nil || !strings.Contains(string(reply), `"voltage":`) || !strings.Contains(string(reply), `"energy":1234.`) {
		t.Errorf("rpc get: %s %v", reply, err)
	}
}
