package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
	"github.com/tbflow/tbflow/modbus/modbussim"
)

// syncBuffer is a bytes.Buffer safe for the command goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSimCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"sim", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--modbus", "127.0.0.1:0", "--device", "a:tok-a"}, &out, &errOut)
	}()
	re := regexp.MustCompile(`HTTP API on (http://127\.0\.0\.1:\d+)`)
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil && strings.Contains(out.String(), "curl ") {
			url = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no startup output: %q %q", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "mosquitto_pub -h 127.0.0.1 -p ") || !strings.Contains(out.String(), "-u tok-a") {
		t.Fatalf("output %q", out.String())
	}
	resp, err := http.Get(url + "/api/devices")
	if err != nil {
		t.Fatal(err)
	}
	var devs []struct{ Name, Token string }
	_ = json.NewDecoder(resp.Body).Decode(&devs)
	resp.Body.Close()
	if len(devs) != 1 || devs[0].Name != "a" || devs[0].Token != "tok-a" {
		t.Fatalf("devices %+v", devs)
	}
	// The simulated energy meter answers on the printed address.
	mm := regexp.MustCompile(`Modbus TCP on (127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if mm == nil {
		t.Fatalf("no Modbus address in %q", out.String())
	}
	bus, err := modbus.NewBus(modbus.Config{URL: "tcp://" + mm[1]})
	if err != nil {
		t.Fatal(err)
	}
	_ = bus.Start()
	got := make(chan modbus.Result, 1)
	remove, _ := bus.AddPoller(modbus.PollConfig{Unit: 1, Period: time.Millisecond, Registers: modbussim.EnergyMeterMap}, func(r modbus.Result) {
		select {
		case got <- r:
		default:
		}
	})
	r := <-got
	remove()
	_ = bus.Close(context.Background())
	if v, _ := r.Values["voltage"].(float64); r.Err != nil || v < 220 || v > 240 {
		t.Fatalf("energy meter poll: %+v", r)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}

func TestSimFlags(t *testing.T) {
	var out, errOut syncBuffer
	if code := runMain(context.Background(), []string{"sim", "--device", "nocolon"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code := runMain(context.Background(), []string{"sim", "--tls-cert", "x.pem"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code := runMain(context.Background(), []string{"sim", "-h"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
