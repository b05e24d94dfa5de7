// Package modbus holds the Modbus node types: modbus-connection (a shared
// link and its poll scheduler), modbus-in (polls a unit's register map)
// and modbus-write (writes a mapped value). The protocol work is done by
// the modbus package; see docs/modbus.md.
package modbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

const (
	category = "modbus"
	color    = "#e9b872"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-connection", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "modbus connection", Color: color, Icon: "modbus",
		Summary: "A Modbus link (TCP, RTU over serial, RTU over TCP) shared by modbus-in and modbus-write nodes.",
		Help: `One physical Modbus link and its scheduler. Every ` + "`modbus-in`" + ` and ` + "`modbus-write`" + ` node that uses this
connection shares it: requests go out one at a time (a serial bus cannot do otherwise, and most TCP
gateways serialise too), writes go ahead of waiting polls.

- **transport** ` + "`tcp`" + `: Modbus TCP to **host**:**port**; ` + "`rtu-over-tcp`" + `: RTU frames through a TCP socket
  (serial-to-Ethernet converters in transparent mode); ` + "`rtu`" + `: RTU over the serial **device** with
  **baud**, **dataBits**, **parity** and **stopBits**.
- Neighbouring registers of the same function and unit are read in one request (up to 125 registers or
  2000 coils), reading across at most **maxGap** unmapped addresses. A device that refuses such a read
  with "illegal data address" gets the request split again automatically.
- A unit that does not answer within **timeout** is left alone for a while (doubling from **timeout**
  up to **backoffMax**) while the other units keep their schedule.
- After a network error the link is reopened by the next request.`,
		Fields: []engine.Field{
			{Name: "transport", Identity: true, Kind: engine.KindEnum, Default: "tcp", Enum: []string{"tcp", "rtu-over-tcp", "rtu"}, Help: "Modbus TCP, RTU frames over TCP, or RTU over a serial line."},
			{Name: "host", Identity: true, Kind: engine.KindString, Default: "127.0.0.1", Help: "Host name or IP address of the device or gateway (tcp, rtu-over-tcp)."},
			{Name: "port", Identity: true, Kind: engine.KindInt, Default: 502, Min: engine.Float(1), Max: engine.Float(65535), Help: "TCP port (tcp, rtu-over-tcp); 502 is the Modbus standard."},
			{Name: "device", Identity: true, Kind: engine.KindString, Default: "/dev/ttyUSB0", Help: "Serial device (rtu).", Example: "/dev/ttyUSB0"},
			{Name: "baud", Kind: engine.KindInt, Default: 19200, Min: engine.Float(300), Max: engine.Float(921600), Help: "Serial speed in baud (rtu)."},
			{Name: "dataBits", Kind: engine.KindInt, Default: 8, Min: engine.Float(7), Max: engine.Float(8), Help: "Data bits per character (rtu).", Advanced: true},
			{Name: "parity", Kind: engine.KindEnum, Default: "none", Enum: []string{"none", "even", "odd"}, Help: "Serial parity (rtu)."},
			{Name: "stopBits", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(2), Help: "Stop bits (rtu); 0 follows the RTU spec: 2 without parity, 1 with parity."},
			{Name: "timeout", Kind: engine.KindDuration, Default: "1s", Min: engine.Float(0.001), Help: "How long to wait for each answer."},
			{Name: "delay", Kind: engine.KindDuration, Default: "0s", Help: "Pause after every request, for devices or RS-485 converters that need silence between frames.", Advanced: true},
			{Name: "maxGap", Kind: engine.KindInt, Default: 10, Min: engine.Float(0), Max: engine.Float(124), Help: "Unmapped registers (or coils) one merged request may read across; 0 merges only adjacent ones."},
			{Name: "backoffMax", Kind: engine.KindDuration, Default: "1m", Help: "Longest pause before trying a unit that stopped answering again.", Advanced: true},
		},
		New: engine.Construct(newConnection),
	})
}

type connectionConfig struct {
	Transport  string          `json:"transport"`
	Host       string          `json:"host"`
	Port       int             `json:"port"`
	Device     string          `json:"device"`
	Baud       int             `json:"baud"`
	DataBits   int             `json:"dataBits"`
	Parity     string          `json:"parity"`
	StopBits   int             `json:"stopBits"`
	Timeout    engine.Duration `json:"timeout"`
	Delay      engine.Duration `json:"delay"`
	MaxGap     int             `json:"maxGap"`
	BackoffMax engine.Duration `json:"backoffMax"`
}

// busConfig turns the settings into the modbus package's Config.
func (c *connectionConfig) busConfig() modbus.Config {
	var url string
	switch c.Transport {
	case "rtu":
		url = "rtu://" + c.Device
	case "rtu-over-tcp":
		url = "rtuovertcp://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	default:
		url = "tcp://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	}
	return modbus.Config{
		URL: url, Speed: uint(c.Baud), DataBits: uint(c.DataBits), Parity: c.Parity, StopBits: uint(c.StopBits),
		Timeout: c.Timeout.D(), Delay: c.Delay.D(), MaxGap: c.MaxGap,
		BackoffMin: c.Timeout.D(), BackoffMax: c.BackoffMax.D(),
	}
}

// Validate checks what the spec cannot express.
func (c *connectionConfig) Validate() error {
	switch c.Transport {
	case "rtu":
		if c.Device == "" {
			return &engine.FieldError{Field: "device", Message: "a serial device is needed for rtu"}
		}
	default:
		if c.Host == "" {
			return &engine.FieldError{Field: "host", Message: "a host is needed for " + c.Transport}
		}
	}
	if _, err := modbus.NewBus(c.busConfig()); err != nil {
		return &engine.FieldError{Field: "transport", Message: err.Error()}
	}
	return nil
}

// Connection is a running modbus-connection: the Bus its users share.
type Connection struct {
	nc  *engine.NodeContext
	cfg modbus.Config

	mu  sync.Mutex
	bus *modbus.Bus
}

func newConnection(nc *engine.NodeContext, c *connectionConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := c.busConfig()
	cfg.Logger = nc.Logger()
	return &Connection{nc: nc, cfg: cfg}, nil
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
