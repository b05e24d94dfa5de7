package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/flows"
	"github.com/tbflow/tbflow/modbus/modbussim"
	"github.com/tbflow/tbflow/tb/tbsim"
)

func init() {
	register("demo", "run the demo: simulated ThingsBoard and Modbus meter, an example flow, and the editor", runDemo)
}

// The demo's names, as flows/demo.json has them.
const (
	demoGateway      = "demo-gateway"
	demoGatewayToken = "gateway-token"
	demoDevice       = "Energy Meter"
	demoTBConn       = "demo-gw" // the flow's tb-connection
	demoMBConn       = "demo-mb" // the flow's modbus-connection
)

// demoEnv is what the demo starts besides the engine: the simulated
// ThingsBoard and the simulated Modbus energy meter.
type demoEnv struct {
	sim *tbsim.Server
	mb  *modbussim.Server
}

func (d *demoEnv) Close() {
	if d.mb != nil {
		d.mb.Close()
	}
	if d.sim != nil {
		d.sim.Close()
	}
}

// startDemoEnv starts tbsim (MQTT and HTTP API) and the energy meter on the
// given addresses; an address already in use is replaced by a free port on
// the same host, so that the demo runs beside another broker.
func startDemoEnv(mqttAddr, httpAddr, modbusAddr string, log *slog.Logger) (*demoEnv, error) {
	d := &demoEnv{}
	var err error
	d.sim, err = tbsim.New(tbsim.Options{MQTTAddr: mqttAddr, HTTPAddr: httpAddr, Logger: log})
	if isAddrInUse(err) {
		log.Warn("address in use, taking free ports instead", "mqtt", mqttAddr, "http", httpAddr)
		d.sim, err = tbsim.New(tbsim.Options{MQTTAddr: anyPort(mqttAddr), HTTPAddr: anyPort(httpAddr), Logger: log})
	}
	if err != nil {
		return nil, fmt.Errorf("simulated ThingsBoard: %w", err)
	}
	if err := d.sim.AddDevice(tbsim.Device{Name: demoGateway, Token: demoGatewayToken, Gateway: true}); err != nil {
		d.Close()
		return nil, err
	}
	d.mb, err = startMeter(modbusAddr)
	if isAddrInUse(err) {
		log.Warn("address in use, taking a free port instead", "modbus", modbusAddr)
		d.mb, err = startMeter(anyPort(modbusAddr))
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("simulated Modbus meter: %w", err)
	}
	return d, nil
}

// demoFlow returns flows/demo.json with its credentials.
func demoFlow() (*engine.Flow, error) {
	data, credData := flows.Demo()
	f, err := engine.ParseFlow(data)
	if err != nil {
		return nil, fmt.Errorf("demo flow: %w", err)
	}
	var creds engine.Credentials
	if err := json.Unmarshal(credData, &creds); err != nil {
		return nil, fmt.Errorf("demo credentials: %w", err)
	}
	engine.MergeSecrets(f, creds)
	return f, nil
}

// pointDemoAt points the demo flow's connections, when f still has them, at
// the addresses d actually listens on.
func pointDemoAt(f *engine.Flow, d *demoEnv) error {
	if err := pointAt(f, demoTBConn, d.sim.MQTTAddr()); err != nil {
		return err
	}
	return pointAt(f, demoMBConn, d.mb.Addr())
}

// pointAt sets the host and port of the config node id, if f has it, to addr.
func pointAt(f *engine.Flow, id, addr string) error {
	n := f.Node(id)
	if n == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("port of %s: %w", addr, err)
	}
	n.Fields["host"] = host
	n.Fields["port"] = float64(p)
	return nil
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// anyPort keeps addr's host and asks for a free port.
func anyPort(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, "0")
}

// printDemo tells the user where everything is and what to try.
func printDemo(w io.Writer, editorURL string, d *demoEnv) {
	api := d.sim.HTTPURL()
	dev := url.PathEscape(demoDevice)
	fmt.Fprintf(w, `tbflow demo is running.

  editor                 %s
  ThingsBoard (sim) API  %s   MQTT on %s, gateway %q token %q
  Modbus energy meter    %s, unit 1

The flow reads the meter every second and sends its values as the device %q
through the gateway; watch them in the editor's debug sidebar, or:

  curl %s/api/devices/%s/telemetry

Switch the meter's relay off with an RPC through ThingsBoard (the flow writes the coil and replies):

  curl -X POST %s/api/devices/%s/rpc -d '{"method":"relay","params":false}'

Press Ctrl+C to stop.
`, editorURL, api, d.sim.MQTTAddr(), demoGateway, demoGatewayToken, d.mb.Addr(), demoDevice, api, dev, api, dev)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	listen := fs.String("listen", "127.0.0.1:1880", "editor and API listen address")
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "simulated ThingsBoard MQTT address (a free port if taken)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "simulated ThingsBoard HTTP API address (a free port if taken)")
	modbusAddr := fs.String("modbus", "127.0.0.1:5020", "simulated Modbus energy meter address (a free port if taken)")
	flowsFile := fs.String("flows", "", "save deploys from the editor to this flow file (created from the demo flow when missing); empty keeps them in memory")
	level := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	setUsage(fs, stderr,
		"usage: tbflow demo [flags]",
		"",
		"Runs everything in one process: a simulated ThingsBoard (MQTT and its HTTP API),",
		"a simulated Modbus energy meter, the demo flow wired to them (flows/demo.json,",
		"built into the binary) and the editor. Stop it with Ctrl+C.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tbflow demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		return 2
	}
	env, err := startDemoEnv(*mqttAddr, *httpAddr, *modbusAddr, log.With("component", "sim"))
	if err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		return 1
	}
	defer env.Close()
	f, err := demoFlow()
	if err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		return 1
	}
	reg := engine.DefaultRegistry()
	opts := engine.Options{Registry: reg, Logger: log}
	if *flowsFile != "" {
		store := &engine.FileStore{Path: *flowsFile, Registry: reg}
		if _, err := os.Stat(*flowsFile); err == nil {
			if f, err = store.Load(); err != nil {
				fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
				return 1
			}
		}
		opts.Store = store
	}
	if err := pointDemoAt(f, env); err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		return 1
	}
	e := engine.New(opts)
	if _, err := e.Deploy(ctx, f, "", engine.DeployFull); err != nil {
		for _, p := range engine.ProblemsFromError(err) {
			fmt.Fprintf(stderr, "tbflow demo: %s\n", p)
		}
		return 1
	}
	return serveDemo(ctx, e, env, *listen, log, stdout, stderr)
}

// serveDemo serves the editor over e until ctx ends (on a free port when
// listen is taken), prints where everything is, then stops the flow.
func serveDemo(ctx context.Context, e *engine.Engine, env *demoEnv, listen string, log *slog.Logger, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", listen)
	if isAddrInUse(err) {
		log.Warn("address in use, taking a free port instead", "listen", listen)
		ln, err = net.Listen("tcp", anyPort(listen))
	}
	if err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		return 1
	}
	cfg := serveConfig{Listener: ln, OnListen: func(url string) { printDemo(stdout, url, env) }}
	code := 0
	if err := serveEngine(ctx, e, cfg, log, io.Discard); err != nil {
		fmt.Fprintf(stderr, "tbflow demo: %v\n", err)
		code = 1
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.Stop(stopCtx); err != nil {
		fmt.Fprintf(stderr, "tbflow demo: stopping the flow: %v\n", err)
		code = 1
	}
	return code
}
