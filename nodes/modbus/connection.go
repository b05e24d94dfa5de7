// Package modbus holds the Modbus node types: modbus-connection (a shared
// link and its poll scheduler), modbus-in (polls a unit's register map),
// modbus-read (reads it when a message asks), modbus-write (writes a
// mapped value) and modbus-server (tbflow as a Modbus device). The
// protocol work is done by the modbus package; see docs/modbus.md.
package modbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

const (
	category = "modbus"
	color    = "#e9b872"
)

var (
	serialTransports = []any{"rtu", "ascii"}
	socketTransports = []any{"tcp", "tcp-tls", "udp", "rtu-over-tcp", "rtu-over-udp", "ascii-over-tcp"}
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-connection", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "modbus connection", Color: color, Icon: "modbus",
		Summary: "A Modbus link (TCP, TCP+TLS, UDP, RTU or ASCII over serial or a socket) shared by the Modbus nodes.",
		Help: `One physical Modbus link and its scheduler. Every ` + "`modbus-in`" + `, ` + "`modbus-read`" + ` and ` + "`modbus-write`" + ` node that
uses this connection shares it: requests go out one at a time (a serial bus cannot do otherwise, and most TCP
gateways serialise too), writes and reads on demand go ahead of waiting polls.
- **transport** ` + "`tcp`" + `: Modbus TCP to **host**:**port**; ` + "`tcp-tls`" + `: Modbus/TCP Security (TLS with a client
  certificate); ` + "`udp`" + `: Modbus TCP framing over UDP; ` + "`rtu-over-tcp`" + `, ` + "`rtu-over-udp`" + `, ` + "`ascii-over-tcp`" + `: RTU or
  ASCII frames through a socket (serial-to-Ethernet converters in transparent mode); ` + "`rtu`" + `, ` + "`ascii`" + `: over the
  serial **device** with **baud**, **dataBits**, **parity** and **stopBits**.
- Neighbouring registers of the same function and unit are read in one request (up to **maxRegisters**
  registers or **maxBits** coils), reading across at most **maxGap** unmapped addresses. A device that refuses
  a read across a gap gets the request split at the gaps; one that refuses a big read gets it halved until it
  answers, and the unit keeps the size that worked.
- A unit that does not answer within **timeout** is skipped (a circuit breaker, doubling from **timeout** up
  to **backoffMax**) while the other units keep their schedule; with **unitConnections** ` + "`per-unit`" + ` every unit has
  its own TCP connection and a silent one costs the others nothing.
- When the link cannot be opened, every node on it shows the error at the next poll.
- **order** and **compat** are the defaults of the register rows that say ` + "`default`" + `.`,
		Fields: []engine.Field{
			{Name: "transport", Identity: true, Label: "Transport", Kind: engine.KindEnum, Default: "tcp",
				Enum: []string{"tcp", "tcp-tls", "udp", "rtu-over-tcp", "rtu-over-udp", "ascii-over-tcp", "rtu", "ascii"},
				Help: "Modbus TCP, TCP with TLS, UDP, RTU or ASCII frames over a socket, or RTU or ASCII over a serial line."},
			{Name: "host", Identity: true, Label: "Host", Kind: engine.KindString, Default: "127.0.0.1", Help: "Host name or IP address of the device or gateway.",
				ShowIf: map[string][]any{"transport": socketTransports}},
			{Name: "port", Identity: true, Label: "Port", Kind: engine.KindInt, Default: 502, Min: engine.Float(1), Max: engine.Float(65535),
				Help: "TCP or UDP port; 502 is the Modbus standard, 802 the usual one for Modbus/TCP Security.", ShowIf: map[string][]any{"transport": socketTransports}},
			{Name: "tlsCert", Label: "Client certificate", Kind: engine.KindString, Default: "",
				Help: "The client certificate (PEM text or a file path) the device authenticates tbflow with.", ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "tlsKey", Label: "Client key", Kind: engine.KindSecret,
				Help: "The client certificate's private key (PEM text or a file path).", ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "tlsCA", Identity: true, Label: "Server CA", Kind: engine.KindString, Default: "",
				Help: "The CA certificate(s) or the pinned server certificate (PEM text or a file path) that authenticate the device.", ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "device", Identity: true, Label: "Serial device", Kind: engine.KindString, Default: "/dev/ttyUSB0", Help: "The serial port.", Example: "/dev/ttyUSB0",
				ShowIf: map[string][]any{"transport": serialTransports}},
			{Name: "baud", Label: "Baud rate", Kind: engine.KindInt, Default: 19200, Min: engine.Float(300), Max: engine.Float(921600), Help: "Serial speed in baud.",
				ShowIf: map[string][]any{"transport": serialTransports}},
			{Name: "dataBits", Label: "Data bits", Kind: engine.KindInt, Default: 8, Min: engine.Float(7), Max: engine.Float(8),
				Help: "Data bits per character: 8 for RTU, usually 7 for ASCII.", Advanced: true, ShowIf: map[string][]any{"transport": serialTransports}},
			{Name: "parity", Label: "Parity", Kind: engine.KindEnum, Default: "none", Enum: []string{"none", "even", "odd"}, Help: "Serial parity.",
				ShowIf: map[string][]any{"transport": serialTransports}},
			{Name: "stopBits", Label: "Stop bits", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(2),
				Help: "Stop bits; 0 follows the spec: 2 without parity, 1 with parity.", ShowIf: map[string][]any{"transport": serialTransports}},
			{Name: "timeout", Label: "Timeout", Kind: engine.KindDuration, Default: "1s", Min: engine.Float(0.001), Help: "How long to wait for each answer."},
			{Name: "retries", Label: "Retries", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(10),
				Help: "How many times a request that failed (see the two settings below) is sent again before the poll fails."},
			{Name: "retryOnEmpty", Label: "Retry on no answer", Kind: engine.KindBool, Default: true, Help: "Retries apply when the unit did not answer in time."},
			{Name: "retryOnInvalid", Label: "Retry on a bad answer", Kind: engine.KindBool, Default: true,
				Help: "Retries apply when the answer was malformed (bad CRC or LRC, wrong unit or transaction id)."},
			{Name: "delay", Label: "Delay between requests", Kind: engine.KindDuration, Default: "0s",
				Help: "Pause after every request, for devices or RS-485 converters that need silence between frames.", Advanced: true},
			{Name: "maxGap", Label: "Max gap", Kind: engine.KindInt, Default: 10, Min: engine.Float(0), Max: engine.Float(124),
				Help: "Unmapped registers (or coils) one merged request may read across; 0 merges only adjacent ones."},
			{Name: "maxRegisters", Label: "Max registers per request", Kind: engine.KindInt, Default: 125, Min: engine.Float(1), Max: engine.Float(125),
				Help: "Largest read of registers one request may make; many meters take only 32 or 64."},
			{Name: "maxBits", Label: "Max coils per request", Kind: engine.KindInt, Default: 2000, Min: engine.Float(1), Max: engine.Float(2000),
				Help: "Largest read of coils or discrete inputs one request may make."},
			{Name: "unitConnections", Label: "Connections", Kind: engine.KindEnum, Default: "shared", Enum: []string{"shared", "per-unit"},
				Help:   "One connection for all units, or one per unit so a silent unit never delays the others (the device must accept several connections).",
				ShowIf: map[string][]any{"transport": {"tcp", "tcp-tls", "udp"}}},
			{Name: "order", Label: "Default byte/word order", Kind: engine.KindEnum, Default: "ABCD", Enum: enumOf(modbus.Orders),
				Help: "The order of register rows set to default: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA little-endian."},
			{Name: "compat", Label: "Convention", Kind: engine.KindEnum, Default: "tbflow", Enum: []string{"tbflow", "tb-gateway"},
				Help: "How strings, bits and floats are read by default: tbflow's way, or as the ThingsBoard IoT Gateway and pymodbus read them (see docs/modbus.md)."},
			{Name: "backoffMax", Label: "Longest back-off", Kind: engine.KindDuration, Default: "1m",
				Help: "Longest pause before trying a unit that stopped answering (or a link that failed to open) again.", Advanced: true},
		},
		New: engine.Construct(newConnection),
	})
}

type connectionConfig struct {
	Transport       string          `json:"transport"`
	Host            string          `json:"host"`
	Port            int             `json:"port"`
	TLSCert         string          `json:"tlsCert"`
	TLSKey          string          `json:"tlsKey"`
	TLSCA           string          `json:"tlsCA"`
	Device          string          `json:"device"`
	Baud            int             `json:"baud"`
	DataBits        int             `json:"dataBits"`
	Parity          string          `json:"parity"`
	StopBits        int             `json:"stopBits"`
	Timeout         engine.Duration `json:"timeout"`
	Retries         int             `json:"retries"`
	RetryOnEmpty    bool            `json:"retryOnEmpty"`
	RetryOnInvalid  bool            `json:"retryOnInvalid"`
	Delay           engine.Duration `json:"delay"`
	MaxGap          int             `json:"maxGap"`
	MaxRegisters    int             `json:"maxRegisters"`
	MaxBits         int             `json:"maxBits"`
	UnitConnections string          `json:"unitConnections"`
	Order           string          `json:"order"`
	Compat          string          `json:"compat"`
	BackoffMax      engine.Duration `json:"backoffMax"`
}

// busConfig turns the settings into the modbus package's Config.
func (c *connectionConfig) busConfig() (modbus.Config, error) {
	hp := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	url := map[string]string{
		"rtu": "rtu://" + c.Device, "ascii": "ascii://" + c.Device,
		"rtu-over-tcp": "rtuovertcp://" + hp, "rtu-over-udp": "rtuoverudp://" + hp, "ascii-over-tcp": "asciiovertcp://" + hp,
		"udp": "udp://" + hp, "tcp-tls": "tcp+tls://" + hp,
	}[c.Transport]
	if url == "" {
		url = "tcp://" + hp
	}
	cfg := modbus.Config{
		URL: url, Speed: uint(c.Baud), DataBits: uint(c.DataBits), Parity: c.Parity, StopBits: uint(c.StopBits),
		Timeout: c.Timeout.D(), Delay: c.Delay.D(), MaxGap: c.MaxGap, MaxRegisters: c.MaxRegisters, MaxBits: c.MaxBits,
		Retries: c.Retries, RetryOnEmpty: c.RetryOnEmpty, RetryOnInvalid: c.RetryOnInvalid,
		PerUnit:    c.UnitConnections == "per-unit" && (c.Transport == "tcp" || c.Transport == "tcp-tls" || c.Transport == "udp" || c.Transport == ""),
		BackoffMin: c.Timeout.D(), BackoffMax: c.BackoffMax.D(),
	}
	if c.Transport == "tcp-tls" {
		cert, err := tls.X509KeyPair(pemOrFile(c.TLSCert), pemOrFile(c.TLSKey))
		if err != nil {
			return cfg, &engine.FieldError{Field: "tlsCert", Message: "client certificate and key: " + err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemOrFile(c.TLSCA)) {
			return cfg, &engine.FieldError{Field: "tlsCA", Message: "no PEM certificate found"}
		}
		cfg.TLSClientCert, cfg.TLSRootCAs = &cert, pool
	}
	return cfg, nil
}

// pemOrFile returns PEM text as is, and reads anything else as a file.
func pemOrFile(s string) []byte {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "-----BEGIN") {
		return []byte(s)
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil
	}
	return b
}

// defaults returns the register-row defaults of the connection.
func (c *connectionConfig) defaults() rowDefaults {
	d := rowDefaults{order: modbus.Order(c.Order)}
	if c.Compat == "tb-gateway" {
		d.compat = modbus.TBGateway
	}
	return d
}

// Validate checks what the spec cannot express.
func (c *connectionConfig) Validate() error {
	switch c.Transport {
	case "rtu", "ascii":
		if c.Device == "" {
			return &engine.FieldError{Field: "device", Message: "a serial device is needed for " + c.Transport}
		}
	default:
		if c.Host == "" {
			return &engine.FieldError{Field: "host", Message: "a host is needed for " + c.Transport}
		}
	}
	if c.Transport == "tcp-tls" && (c.TLSCert == "" || c.TLSCA == "") {
		return &engine.FieldError{Field: "tlsCert", Message: "tcp-tls needs a client certificate, its key and the server's CA"}
	}
	if c.Transport == "tcp-tls" {
		return nil // the files are read when the node starts
	}
	cfg, err := c.busConfig()
	if err != nil {
		return err
	}
	if _, err := modbus.NewBus(cfg); err != nil {
		return &engine.FieldError{Field: "transport", Message: err.Error()}
	}
	return nil
}

// Connection is a running modbus-connection: the Bus its users share.
type Connection struct {
	nc   *engine.NodeContext
	conf *connectionConfig
	cfg  modbus.Config
	mu   sync.Mutex
	bus  *modbus.Bus
}

func newConnection(nc *engine.NodeContext, c *connectionConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg, err := c.busConfig()
	if err != nil {
		return nil, err
	}
	cfg.Logger = nc.Logger()
	return &Connection{nc: nc, conf: c, cfg: cfg}, nil
}

// Start starts the link's scheduler; the link itself opens with the first
// request and reopens after errors, so Start does not fail when the device
// is away.
func (c *Connection) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bus != nil {
		return nil
	}
	b, err := modbus.NewBus(c.cfg)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	c.bus = b
	return nil
}

// Stop closes the link.
func (c *Connection) Stop(ctx context.Context) error {
	c.mu.Lock()
	b := c.bus
	c.bus = nil
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.Close(ctx)
}

// Bus returns the running bus, or an error wrapping engine.ErrNotConnected
// before Start.
func (c *Connection) Bus() (*modbus.Bus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bus == nil {
		return nil, fmt.Errorf("modbus connection %q: %w", c.nc.ID(), engine.ErrNotConnected)
	}
	return c.bus, nil
}

// URL returns the link's address, for status texts and logs.
func (c *Connection) URL() string { return c.cfg.URL }

// linkError maps bus errors for the engine: a link that cannot be opened
// or a closed bus is "not connected" (the engine retries the message).
func linkError(err error) error {
	if errors.Is(err, modbus.ErrLinkDown) || errors.Is(err, modbus.ErrClosed) {
		return fmt.Errorf("%w: %w", engine.ErrNotConnected, err)
	}
	return err
}

var _ engine.Node = (*Connection)(nil)
