package modbus_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbustest"
)

func serverMap() []modbus.Register {
	return []modbus.Register{
		{Key: "voltage", Function: modbus.Input, Address: 0, Scale: 0.1},
		{Key: "power", Function: modbus.Input, Address: 1, Type: modbus.Float32},
		{Key: "setpoint", Function: modbus.Holding, Address: 0, Type: modbus.Int16},
		{Key: "limit", Function: modbus.Holding, Address: 1, Type: modbus.Uint32},
		{Key: "relay", Function: modbus.Coil, Address: 0},
		{Key: "alarm", Function: modbus.Discrete, Address: 0},
	}
}

type writes struct {
	mu  sync.Mutex
	got []map[string]any
}

func (w *writes) add(v map[string]any) {
	w.mu.Lock()
	w.got = append(w.got, v)
	w.mu.Unlock()
}

func (w *writes) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		w.mu.Lock()
		got := append([]map[string]any(nil), w.got...)
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes reported, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkServerWithMbpoll reads and writes the served map with mbpoll
// (libmodbus) given its link arguments.
func checkServerWithMbpoll(t *testing.T, srv *modbus.Server, w *writes, link ...string) {
	t.Helper()
	if err := srv.Set("voltage", 230.1); err != nil {
		t.Fatal(err)
	}
	_ = srv.Set("power", 1234.5)
	_ = srv.Set("relay", true)
	_ = srv.Set("alarm", true)
	args := func(extra ...string) []string {
		return append(append([]string{"-1", "-0", "-a", "1"}, extra...), link...)
	}
	out := modbustest.Mbpoll(t, args("-t", "3", "-r", "0", "-c", "1")...)
	if !strings.Contains(out, "[0]: \t2301") {
		t.Errorf("mbpoll read voltage:\n%s", out)
	}
	out = modbustest.Mbpoll(t, args("-t", "3:float", "-B", "-r", "1")...)
	if !strings.Contains(out, "[1]: \t1234.5") {
		t.Errorf("mbpoll read power:\n%s", out)
	}
	out = modbustest.Mbpoll(t, args("-t", "0", "-r", "0")...)
	if !strings.Contains(out, "[0]: \t1") {
		t.Errorf("mbpoll read relay:\n%s", out)
	}
	out = modbustest.Mbpoll(t, args("-t", "1", "-r", "0")...)
	if !strings.Contains(out, "[0]: \t1") {
		t.Errorf("mbpoll read alarm:\n%s", out)
	}
	// A SCADA's writes come out as decoded values.
	modbustest.Mbpoll(t, append(args("-t", "4", "-r", "0"), "65531")...) // -5 as an int16
	modbustest.Mbpoll(t, append(args("-t", "4:int", "-B", "-r", "1"), "100000")...)
	modbustest.Mbpoll(t, append(args("-t", "0", "-r", "0"), "0")...)
	got := w.wait(t, 3)
	if fmt.Sprint(got[0]) != "map[setpoint:-5]" || fmt.Sprint(got[1]) != "map[limit:100000]" || fmt.Sprint(got[2]) != "map[relay:false]" {
		t.Errorf("writes reported %v", got)
	}
	if v, _ := srv.Get("limit"); v != int64(100000) {
		t.Errorf("limit %v", v)
	}
	// Unmapped addresses are refused.
	out = modbustest.MbpollTry(t, args("-t", "4", "-r", "50")...)
	if !strings.Contains(strings.ToLower(out), "illegal data address") {
		t.Errorf("mbpoll read of an unmapped address:\n%s", out)
	}
}

// TestServerTCPWithMbpoll serves over Modbus TCP to mbpoll.
func TestServerTCPWithMbpoll(t *testing.T) {
	port := peers.FreePort(t)
	w := &writes{}
	srv, err := modbus.NewServer(modbus.ServerConfig{URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Unit: 1, Registers: serverMap(), OnWrite: w.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	checkServerWithMbpoll(t, srv, w, "-m", "tcp", "-p", fmt.Sprint(port), "127.0.0.1")
}

// TestServerRTUWithMbpoll serves RTU on one end of a socat pty pair to
// mbpoll on the other.
func TestServerRTUWithMbpoll(t *testing.T) {
	a, b := modbustest.PtyPair(t)
	w := &writes{}
	srv, err := modbus.NewServer(modbus.ServerConfig{URL: "rtu://" + a, Unit: 1, Speed: 19200, Parity: "even", StopBits: 1, Registers: serverMap(), OnWrite: w.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	checkServerWithMbpoll(t, srv, w, "-m", "rtu", "-b", "19200", "-P", "even", b)
}

// TestServerTLSWithMbpoll serves Modbus/TCP Security; mbpoll reaches it
// through socat, which does the TLS with a client certificate.
func TestServerTLSWithMbpoll(t *testing.T) {
	pair := modbustest.NewTLSPair(t)
	port := peers.FreePort(t)
	w := &writes{}
	srv, err := modbus.NewServer(modbus.ServerConfig{URL: fmt.Sprintf("tcp+tls://127.0.0.1:%d", port), Unit: 1, Registers: serverMap(), OnWrite: w.add,
		TLSServerCert: &pair.Server, TLSClientCAs: pair.ClientPool})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	plain := modbustest.StartTLSBack(t, fmt.Sprintf("127.0.0.1:%d", port), pair)
	host, p, _ := strings.Cut(plain, ":")
	checkServerWithMbpoll(t, srv, w, "-m", "tcp", "-p", p, host)
}
