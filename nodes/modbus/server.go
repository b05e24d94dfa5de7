package modbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-server", Category: category, Inputs: 1, Outputs: 1, OutputLabels: []string{"written by a client"},
		Label: "modbus server", Color: color, Icon: "modbus",
		Summary: "tbflow as a Modbus device: serves a register map to a SCADA, set from the flow; the SCADA's writes come out as messages.",
		Help: `Serves **registers** as a Modbus device (a slave) on TCP (**host**:**port**), TCP+TLS or RTU over the serial
**device**, answering **unit** (0 on TCP: every unit id).
- **Input**: ` + "`msg.payload`" + ` an object of key → value sets those rows (encoded by their type, order, scale, …), e.g.
  ThingsBoard attributes from ` + "`tb-attr-in`" + ` or telemetry computed in the flow; or ` + "`msg.topic`" + ` naming a row and
  ` + "`msg.payload`" + ` its value. Keys no row has are ignored; a message where none matches is an error for ` + "`catch`" + `.
- **Output**: when a client writes coils or holding registers, one message with ` + "`msg.payload`" + ` = the decoded values
  of the rows the write touched (` + "`{\"setpoint\": 21.5}`" + `), ` + "`msg.topic`" + ` = the key when there is one.
Addresses no row covers answer "illegal data address". Values start at zero.
Status: ` + "`serving`" + ` with the address, or the error.`,
		Fields: []engine.Field{
			{Name: "transport", Label: "Transport", Kind: engine.KindEnum, Default: "tcp", Enum: []string{"tcp", "tcp-tls", "rtu"},
				Help: "Modbus TCP, Modbus/TCP Security (TLS), or RTU on a serial line."},
			{Name: "host", Label: "Listen address", Kind: engine.KindString, Default: "0.0.0.0", Help: "Address to listen on; 0.0.0.0 is every interface.",
				ShowIf: map[string][]any{"transport": {"tcp", "tcp-tls"}}},
			{Name: "port", Label: "Port", Kind: engine.KindInt, Default: 5020, Min: engine.Float(1), Max: engine.Float(65535),
				Help: "TCP port; 502 is the standard one (it needs privileges on most systems).", ShowIf: map[string][]any{"transport": {"tcp", "tcp-tls"}}},
			{Name: "tlsCert", Label: "Server certificate", Kind: engine.KindString, Default: "", Help: "The server's certificate (PEM text or a file path).",
				ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "tlsKey", Label: "Server key", Kind: engine.KindSecret, Help: "The server certificate's private key (PEM text or a file path).",
				ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "tlsCA", Label: "Client CA", Kind: engine.KindString, Default: "", Help: "The CA certificate(s) that authenticate clients (PEM text or a file path).",
				ShowIf: map[string][]any{"transport": {"tcp-tls"}}},
			{Name: "device", Label: "Serial device", Kind: engine.KindString, Default: "/dev/ttyUSB0", Help: "The serial port.", ShowIf: map[string][]any{"transport": {"rtu"}}},
			{Name: "baud", Label: "Baud rate", Kind: engine.KindInt, Default: 19200, Min: engine.Float(300), Max: engine.Float(921600), Help: "Serial speed in baud.",
				ShowIf: map[string][]any{"transport": {"rtu"}}},
			{Name: "dataBits", Label: "Data bits", Kind: engine.KindInt, Default: 8, Min: engine.Float(7), Max: engine.Float(8), Help: "Data bits per character.",
				Advanced: true, ShowIf: map[string][]any{"transport": {"rtu"}}},
			{Name: "parity", Label: "Parity", Kind: engine.KindEnum, Default: "none", Enum: []string{"none", "even", "odd"}, Help: "Serial parity.",
				ShowIf: map[string][]any{"transport": {"rtu"}}},
			{Name: "stopBits", Label: "Stop bits", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(2),
				Help: "Stop bits; 0 follows the spec: 2 without parity, 1 with parity.", ShowIf: map[string][]any{"transport": {"rtu"}}},
			{Name: "unit", Label: "Unit id", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(247),
				Help: "The unit id (slave address) answered; 0 answers every unit id on TCP."},
			registersField("The served rows.", []any{
				map[string]any{"key": "value", "function": "holding", "address": 0.0, "type": "uint16"},
			}, false),
		},
		New: engine.Construct(newServer),
	})
}

type serverConfig struct {
	Transport string        `json:"transport"`
	Host      string        `json:"host"`
	Port      int           `json:"port"`
	TLSCert   string        `json:"tlsCert"`
	TLSKey    string        `json:"tlsKey"`
	TLSCA     string        `json:"tlsCA"`
	Device    string        `json:"device"`
	Baud      int           `json:"baud"`
	DataBits  int           `json:"dataBits"`
	Parity    string        `json:"parity"`
	StopBits  int           `json:"stopBits"`
	Unit      int           `json:"unit"`
	Registers []registerRow `json:"registers"`
}

// Validate checks the register map.
func (c *serverConfig) Validate() error {
	_, _, err := toRegisters(polledRows(c.Registers), rowDefaults{})
	return err
}

func (c *serverConfig) serverConfig(regs []modbus.Register) (modbus.ServerConfig, error) {
	cfg := modbus.ServerConfig{Unit: uint8(c.Unit), Registers: regs, Speed: uint(c.Baud), DataBits: uint(c.DataBits), Parity: c.Parity, StopBits: uint(c.StopBits)}
	hp := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	switch c.Transport {
	case "rtu":
		cfg.URL = "rtu://" + c.Device
	case "tcp-tls":
		cfg.URL = "tcp+tls://" + hp
		cert, err := tls.X509KeyPair(pemOrFile(c.TLSCert), pemOrFile(c.TLSKey))
		if err != nil {
			return cfg, &engine.FieldError{Field: "tlsCert", Message: "server certificate and key: " + err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemOrFile(c.TLSCA)) {
			return cfg, &engine.FieldError{Field: "tlsCA", Message: "no PEM certificate found"}
		}
		cfg.TLSServerCert, cfg.TLSClientCAs = &cert, pool
	default:
		cfg.URL = "tcp://" + hp
	}
	return cfg, nil
}

type serverNode struct {
	nc   *engine.NodeContext
	conf *serverConfig
	regs []modbus.Register

	writes chan map[string]any

	mu  sync.Mutex
	srv *modbus.Server
}

func newServer(nc *engine.NodeContext, c *serverConfig) (engine.Node, error) {
	regs, _, err := toRegisters(polledRows(c.Registers), rowDefaults{})
	if err != nil {
		return nil, err
	}
	return &serverNode{nc: nc, conf: c, regs: regs, writes: make(chan map[string]any, 64)}, nil
}

// Start starts serving.
func (n *serverNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return nil
	}
	cfg, err := n.conf.serverConfig(n.regs)
	if err != nil {
		return err
	}
	cfg.OnWrite = func(v map[string]any) {
		select {
		case n.writes <- v:
		default:
			n.nc.Logger().Warn("modbus-server: the flow is behind, a client's write is not reported", "values", v)
		}
	}
	srv, err := modbus.NewServer(cfg)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		n.nc.Status(engine.StatusError(err))
		return fmt.Errorf("modbus-server: %w", err)
	}
	n.srv = srv
	n.nc.Status(engine.Status{Fill: "green", Shape: "dot", Text: "serving on " + cfg.URL})
	return nil
}

// Stop stops serving.
func (n *serverNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		_ = n.srv.Close()
		n.srv = nil
	}
	return nil
}

// Handle sets rows from a message.
func (n *serverNode) Handle(_ context.Context, m *engine.Msg) error {
	n.mu.Lock()
	srv := n.srv
	n.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("modbus-server: %w", engine.ErrNotConnected)
	}
	var known bool
	for _, r := range n.regs {
		if r.Key == m.Topic {
			known = true
		}
	}
	if known {
		if _, isObj := m.Payload.(map[string]any); !isObj {
			return srv.Set(m.Topic, m.Payload)
		}
	}
	obj, ok := m.Payload.(map[string]any)
	if !ok {
		return errors.New("modbus-server: msg.payload is neither an object of key → value nor the value of the row msg.topic names")
	}
	var errs []error
	set := 0
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, r := range n.regs {
			if r.Key == k {
				if err := srv.Set(k, obj[k]); err != nil {
					errs = append(errs, err)
				} else {
					set++
				}
			}
		}
	}
	if set == 0 && len(errs) == 0 {
		return fmt.Errorf("modbus-server: no row has any of the keys %q", keys)
	}
	return errors.Join(errs...)
}

// Run sends the clients' writes.
func (n *serverNode) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case v := <-n.writes:
			m := engine.NewMsg(v)
			if len(v) == 1 {
				for k := range v {
					m.Topic = k
				}
			}
			if err := n.nc.Send(ctx, m); err != nil {
				return nil
			}
		}
	}
}

var (
	_ engine.Handler = (*serverNode)(nil)
	_ engine.Runner  = (*serverNode)(nil)
)
