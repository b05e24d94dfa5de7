package modbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
)

// pymodbusServer is a short script: a pymodbus TCP server holding the
// register tables given as JSON (zero-based addresses) for units 1 and 3.
const pymodbusServer = `
import json, sys, logging
logging.basicConfig(level=logging.ERROR)
from pymodbus.server import StartTcpServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
t = json.load(open(sys.argv[1]))
def unit():
    return ModbusSlaveContext(
        co=ModbusSequentialDataBlock(0, t["coils"]),
        di=ModbusSequentialDataBlock(0, t["discrete"]),
        hr=ModbusSequentialDataBlock(0, t["holding"]),
        ir=ModbusSequentialDataBlock(0, t["input"]),
        zero_mode=True)
ctx = ModbusServerContext(slaves={1: unit(), 3: unit()}, single=False)
StartTcpServer(context=ctx, address=("127.0.0.1", int(sys.argv[2])))
`

// startPymodbus runs Debian's python3-pymodbus as the server, with the
// tables of a modbussim unit filled like the in-process tests' ones.
func startPymodbus(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pymodbus.server, serial").Run(); err != nil {
		msg := fmt.Sprintf("peer pymodbus not usable (%v): install it with apt-get install python3-pymodbus python3-serial python3-serial-asyncio (make test does this as root)", err)
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u := modbussim.New().Unit(1)
	fillTestUnit(t, u)
	coils := make([]bool, 32)
	for i := range coils {
		coils[i] = u.Bit(modbus.Coil, uint16(i))
	}
	tables := map[string]any{
		"coils": coils, "discrete": make([]bool, 32),
		"holding": u.Words(modbus.Holding, 0, 400), "input": u.Words(modbus.Input, 0, 64),
	}
	dir := t.TempDir()
	data, _ := json.Marshal(tables)
	if err := os.WriteFile(filepath.Join(dir, "tables.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.py"), []byte(pymodbusServer), 0o600); err != nil {
		t.Fatal(err)
	}
	port := peers.FreePort(t)
	var out strings.Builder
	cmd := exec.Command(py, filepath.Join(dir, "server.py"), filepath.Join(dir, "tables.json"), fmt.Sprint(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("pymodbus server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pymodbus server did not listen on %s: %s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPymodbusReadSuite runs the read, merge and write checks against
// pymodbus, an implementation written by other people.
func TestPymodbusReadSuite(t *testing.T) {
	addr := startPymodbus(t)
	b := newBus(t, modbus.Config{URL: "tcp://" + addr, MaxGap: 16, Timeout: 2 * time.Second})
	c := newCollector()
	remove, err := b.AddPoller(modbus.PollConfig{Unit: 3, Period: 5 * time.Millisecond, Registers: testMap()}, c.add)
	if err != nil {
		t.Fatal(err)
	}
	res := c.wait(t, "2 polls", func(r []modbus.Result) bool { return len(r) >= 2 })
	remove()
	r := res[0]
	if r.Err != nil || len(r.Errors) != 0 {
		t.Fatalf("poll: %v %v", r.Err, r.Errors)
	}
	if r.Requests != 3 {
		t.Errorf("poll sent %d requests, want 3 merged ones", r.Requests)
	}
	v := r.Values
	if len(v) != 116 || v["h0"] != int64(0) || v["h99"] != int64(99) || v["f1"] != 151.5 || v["c0"] != true || v["c1"] != false ||
		v["state"] != "run" || v["alarm"] != true {
		t.Errorf("values %v", v)
	}
	// Every type and order written by us and read back through pymodbus.
	ctx := context.Background()
	addrNext := uint16(200)
	for _, cc := range codecCasesForPeer() {
		r := cc.reg
		r.Address = addrNext
		addrNext += uint16(r.Count())
		if err := b.Write(ctx, 1, r, cc.value); err != nil {
			t.Fatalf("writing %s %s: %v", r.Type, r.Order, err)
		}
		c := newCollector()
		remove, _ := b.AddPoller(modbus.PollConfig{Unit: 1, Period: time.Millisecond, Registers: []modbus.Register{r}}, c.add)
		got := c.wait(t, "a read back", func(x []modbus.Result) bool { return len(x) >= 1 })[0]
		remove()
		if got.Err != nil || got.Values[r.Key] != cc.value {
			t.Errorf("%s %s: wrote %#v, read %#v (%v)", r.Type, r.Order, cc.value, got.Values[r.Key], got.Err)
		}
	}
	relay := modbus.Register{Key: "relay", Function: modbus.Coil, Address: 1}
	if err := b.Write(ctx, 1, relay, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, 1, modbus.Register{Key: "far", Function: modbus.Holding, Address: 5000}, 1); !modbus.IsException(err) {
		t.Errorf("write past pymodbus's table: %v", err)
	}
}

type peerCase struct {
	reg   modbus.Register
	value any
}

func codecCasesForPeer() []peerCase {
	var out []peerCase
	vals := map[modbus.Type]any{
		modbus.Int16: int64(-2), modbus.Uint16: int64(4660), modbus.Int32: int64(-123456), modbus.Uint32: int64(3000000000),
		modbus.Int64: int64(-1234567890123), modbus.Uint64: int64(72623859790382856), modbus.Float32: 230.1, modbus.Float64: 1234.5678,
	}
	for typ, v := range vals {
		for _, o := range modbus.Orders {
			out = append(out, peerCase{modbus.Register{Key: string(typ) + string(o), Function: modbus.Holding, Type: typ, Order: o}, v})
		}
	}
	out = append(out, peerCase{modbus.Register{Key: "s", Function: modbus.Holding, Type: modbus.String, Length: 4}, "SN-0042"})
	return out
}
