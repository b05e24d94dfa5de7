package tb_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// A device that sends telemetry, follows a shared attribute and answers an
// RPC, against tbsim (point Host/Port at a ThingsBoard server instead).
func Example() {
	sim, _ := tbsim.New(tbsim.Options{})
	defer sim.Close()
	_ = sim.AddDevice(tbsim.Device{Name: "meter-1", Token: "METER1_TOKEN"})
	_ = sim.SetShared("meter-1", map[string]any{"interval": 10})
	host, port, _ := net.SplitHostPort(sim.MQTTAddr())
	p, _ := strconv.Atoi(port)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := tb.Connect(ctx, tb.Config{
		Host: host, Port: p, AccessToken: "METER1_TOKEN",
		// Outbox: tb.OutboxConfig{Path: "/var/lib/meter/outbox.db"}, // survive restarts
	})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close(ctx)

	// The current value arrives at once, later changes as they happen.
	got := make(chan tb.AttributeUpdate, 1)
	d.SubscribeAttributes([]string{"interval"}, func(u tb.AttributeUpdate) { got <- u })
	fmt.Println("interval:", (<-got).Values["interval"])

	d.HandleRPC("setRelay", func(ctx context.Context, req tb.RPCRequest) (any, error) {
		return map[string]any{"relay": string(req.Params)}, nil
	})

	// SendTelemetry returns once the server acknowledged the message.
	if err := d.SendTelemetry(ctx, map[string]any{"power": 1520.5, "voltage": 229.8}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored power:", sim.Latest("meter-1")["power"].Value)

	reply, _ := sim.RPC(ctx, "meter-1", "setRelay", "on", false)
	fmt.Println("rpc reply:", string(reply))
	// Output:
	// interval: 10
	// stored power: 1520.5
	// rpc reply: {"relay":"\"on\""}
}

// A gateway that represents two meters through one connection.
func ExampleGateway() {
	sim, _ := tbsim.New(tbsim.Options{})
	defer sim.Close()
	_ = sim.AddDevice(tbsim.Device{Name: "site-gateway", Token: "GW_TOKEN", Gateway: true})
	host, port, _ := net.SplitHostPort(sim.MQTTAddr())
	p, _ := strconv.Atoi(port)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := tb.ConnectGateway(ctx, tb.Config{Host: host, Port: p, AccessToken: "GW_TOKEN"})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close(ctx)

	// Connect the sub-devices with their device profile; the gateway
	// connects them again after every reconnect.
	for _, name := range []string{"Meter A", "Meter B"} {
		if _, err := g.ConnectDevice(ctx, name, "energy-meter"); err != nil {
			log.Fatal(err)
		}
	}
	g.HandleDeviceRPC("", func(ctx context.Context, req tb.RPCRequest) (any, error) {
		return map[string]any{"device": req.Device, "done": req.Method}, nil
	})

	// Telemetry of many devices goes out in as few messages as the
	// server's limits allow; Wait returns when the server acknowledged.
	ack, err := g.PublishTelemetryBatch(ctx, map[string]any{
		"Meter A": map[string]any{"power": 1520.5},
		"Meter B": map[string]any{"power": 730},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ack.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Meter B power:", sim.Latest("Meter B")["power"].Value)

	reply, _ := sim.RPC(ctx, "Meter A", "reset", nil, false)
	fmt.Println("rpc reply:", string(reply))
	// Output:
	// Meter B power: 730
	// rpc reply: {"device":"Meter A","done":"reset"}
}
