package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tbflow/tbflow/modbus/modbussim"
	"github.com/tbflow/tbflow/tb/tbsim"
)

func init() {
	register("sim", "run a ThingsBoard-compatible MQTT endpoint (and its HTTP API) for offline work", runSim)
}

// deviceFlags collects repeated --device NAME:TOKEN values.
type deviceFlags []tbsim.Device

func (d *deviceFlags) String() string {
	parts := make([]string, len(*d))
	for i, x := range *d {
		parts[i] = x.Name + ":" + x.Token
	}
	return strings.Join(parts, ",")
}

func (d *deviceFlags) Set(v string) error {
	name, token, ok := strings.Cut(v, ":")
	if !ok || name == "" || token == "" {
		return fmt.Errorf("device %q: want NAME:TOKEN", v)
	}
	*d = append(*d, tbsim.Device{Name: name, Token: token})
	return nil
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sim", stderr)
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "MQTT listen address")
	httpAddr := fs.String("http", "127.0.0.1:8080", `HTTP API listen address ("" to disable)`)
	tlsCert := fs.String("tls-cert", "", "PEM certificate for an MQTTS listener")
	tlsKey := fs.String("tls-key", "", "PEM private key for --tls-cert")
	tlsAddr := fs.String("tls-addr", "127.0.0.1:8883", "MQTTS listen address (with --tls-cert)")
	modbusAddr := fs.String("modbus", "127.0.0.1:5020", `simulated Modbus TCP energy meter (unit 1) listen address ("" to disable)`)
	verbose := fs.Bool("v", false, "log every connection and request")
	var devices deviceFlags
	fs.Var(&devices, "device", "device NAME:TOKEN (repeatable; default demo-device:demo-token and the gateway demo-gateway:gateway-token)")
	setUsage(fs, stderr,
		"usage: tbflow sim [flags]",
		"",
		"Runs a ThingsBoard-compatible MQTT endpoint until interrupted. See docs/tbsim.md.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tbflow sim: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if len(devices) == 0 {
		devices = deviceFlags{
			{Name: "demo-device", Token: "demo-token"},
			{Name: "demo-gateway", Token: "gateway-token", Gateway: true},
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts := tbsim.Options{
		MQTTAddr: *mqttAddr,
		HTTPAddr: *httpAddr,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "tbflow sim: --tls-cert and --tls-key go together")
		return 2
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow sim: loading tls key pair: %v\n", err)
			return 1
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		opts.TLSAddr = *tlsAddr
	}
	s, err := tbsim.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow sim: %v\n", err)
		return 1
	}
	defer func() {
		if err := s.Close(); err != nil {
			fmt.Fprintf(stderr, "tbflow sim: %v\n", err)
		}
	}()
	for _, d := range devices {
		if err := s.AddDevice(d); err != nil {
			fmt.Fprintf(stderr, "tbflow sim: %v\n", err)
			return 1
		}
	}

	// A simulated Modbus device next to the ThingsBoard endpoint.
	var mb *modbussim.Server
	if *modbusAddr != "" {
		if mb, err = startMeter(*modbusAddr); err != nil {
			fmt.Fprintf(stderr, "tbflow sim: %v\n", err)
			return 1
		}
		defer mb.Close()
	}

	fmt.Fprintf(stdout, "ThingsBoard-compatible MQTT on %s\n", s.MQTTAddr())
	if a := s.TLSAddr(); a != "" {
		fmt.Fprintf(stdout, "MQTTS on %s\n", a)
	}
	if u := s.HTTPURL(); u != "" {
		fmt.Fprintf(stdout, "HTTP API on %s\n", u)
	}
	if mb != nil {
		fmt.Fprintf(stdout, "Modbus TCP on %s (simulated energy meter, unit 1)\n", mb.Addr())
	}
	for _, d := range devices {
		kind := "device"
		if d.Gateway {
			kind = "gateway"
		}
		fmt.Fprintf(stdout, "%s %q token %q\n", kind, d.Name, d.Token)
	}
	host, port := splitHostPort(s.MQTTAddr())
	first := devices[0]
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "try:")
	fmt.Fprintf(stdout, "  mosquitto_pub -h %s -p %s -u %s -t v1/devices/me/telemetry -m '{\"temperature\":21.5}'\n", host, port, first.Token)
	if u := s.HTTPURL(); u != "" {
		fmt.Fprintf(stdout, "  curl %s/api/devices/%s/telemetry\n", u, first.Name)
	}
	if mb != nil {
		h, p := splitHostPort(mb.Addr())
		fmt.Fprintf(stdout, "  mbpoll -m tcp -a 1 -r 1 -c 4 -t 3:float -B -1 -p %s %s\n", p, h)
	}
	<-ctx.Done()
	return 0
}

// startMeter serves the simulated energy meter on unit 1 (see
// modbussim.EnergyMeter and docs/modbus.md) on addr.
func startMeter(addr string) (*modbussim.Server, error) {
	mb := modbussim.New()
	if err := modbussim.EnergyMeter(mb.Unit(1)); err != nil {
		return nil, err
	}
	if err := mb.Listen(addr); err != nil {
		return nil, err
	}
	return mb, nil
}

func splitHostPort(addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return addr, "1883"
	}
	return addr[:i], addr[i+1:]
}
