package thingsboard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

const (
	modeDevice  = "device"
	modeGateway = "gateway"
)

// tlsOnly marks the fields that apply only with TLS on.
var tlsOnly = map[string][]any{"tls": {true}}

func init() {
	engine.Register(engine.Type{
		Name: "tb-connection", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "ThingsBoard connection", Color: "#4fa3d1", Icon: "thingsboard",
		Summary: "One MQTT session to a ThingsBoard server, as a device or as a gateway, shared by every node that uses it.",
		Help: `A connection to ThingsBoard's MQTT transport. Every ThingsBoard node names one; all nodes that
name the same connection share **one MQTT session**, and a deploy that does not change the
connection's settings keeps that session open (no reconnect).

**mode** says what the session is: ` + "`device`" + ` (one ThingsBoard device, its access token or MQTT basic
credentials) or ` + "`gateway`" + ` (a ThingsBoard gateway device that represents many field devices; use
` + "`gw-device`" + ` nodes or ` + "`msg.device`" + ` to name them).

Credentials: an **accessToken**, or MQTT basic credentials (**clientId**, **username**, **password**),
or, with **tls**, an X.509 client certificate (**certFile**/**keyFile**). Tokens and passwords are
secrets: write ` + "`${TB_TOKEN}`" + ` and set the environment variable, or enter them in the editor, which keeps
them in the credentials file beside the flow.

QoS 1 telemetry and attributes go through a durable **outbox**: they are kept until the server
acknowledged them and are replayed in order after an outage. Leave **outboxPath** empty for an
in-memory outbox (survives reconnects, not restarts) or give a file to survive restarts and ` + "`kill -9`" + `.

Every node using the connection shows its state: ` + "`connecting`" + `, ` + "`connected`" + `, ` + "`offline (n queued)`" + ` or
` + "`error: …`" + ` (for example refused credentials). After every reconnect the connection subscribes again,
connects the gateway's devices again and re-reads watched shared attributes.

Server-side RPCs are shared out to the ` + "`tb-rpc-in`" + ` and ` + "`gw-device`" + ` nodes using the connection; a request
that no node takes gets an ` + "`{\"error\": …}`" + ` reply after 2 s.`,
		Fields: []engine.Field{
			{Name: "host", Identity: true, Kind: engine.KindString, Label: "Host", Default: "127.0.0.1", Required: true, Help: "Host name or IP address of the ThingsBoard MQTT transport.", Example: "thingsboard.example.com"},
			{Name: "port", Identity: true, Kind: engine.KindInt, Label: "Port", Default: 0, Min: engine.Float(0), Max: engine.Float(65535), Help: "MQTT port; 0 means 1883, or 8883 with TLS."},
			{Name: "protocol", Label: "MQTT version", Kind: engine.KindEnum, Default: "5", Enum: []string{"5", "3.1.1"}, Help: "MQTT version: `5` (default; the server's reason codes such as quota exceeded or payload invalid are acted on) or `3.1.1` (for servers or proxies that do not speak MQTT 5)."},
			{Name: "mode", Kind: engine.KindEnum, Label: "Mode", Default: modeDevice, Enum: []string{modeDevice, modeGateway}, Help: "`device`: the session is one ThingsBoard device. `gateway`: a gateway that sends for many devices."},
			{Name: "accessToken", Kind: engine.KindSecret, Label: "Access token", Help: "The device's access token (its MQTT user name). Leave empty for MQTT basic or X.509 credentials.", Example: "${TB_TOKEN}"},
			{Name: "clientId", Kind: engine.KindString, Label: "Client id", Help: "MQTT basic credentials: client id.", Advanced: true},
			{Name: "username", Kind: engine.KindString, Label: "User name", Help: "MQTT basic credentials: user name.", Advanced: true},
			{Name: "password", Kind: engine.KindSecret, Label: "Password", Help: "MQTT basic credentials: password.", Advanced: true},
			{Name: "tls", Identity: true, Kind: engine.KindBool, Label: "Use TLS", Default: false, Help: "Connect with TLS 1.2 or newer."},
			{Name: "caFile", Identity: true, Kind: engine.KindString, Label: "CA file", ShowIf: tlsOnly, Help: "PEM file of the CAs to trust; empty uses the system's.", Advanced: true},
			{Name: "certFile", Kind: engine.KindString, Label: "Client certificate file", ShowIf: tlsOnly, Help: "PEM client certificate, for X.509 authentication.", Advanced: true},
			{Name: "keyFile", Kind: engine.KindString, Label: "Client key file", ShowIf: tlsOnly, Help: "PEM private key of the client certificate.", Advanced: true},
			{Name: "serverName", Identity: true, Kind: engine.KindString, Label: "Server name", ShowIf: tlsOnly, Help: "Name to check in the server certificate (default: host).", Advanced: true},
			{Name: "insecure", Identity: true, Kind: engine.KindBool, Label: "Skip certificate check", ShowIf: tlsOnly, Default: false, Help: "Do not verify the server certificate. Only for lab set-ups.", Advanced: true},
			{Name: "qos", Kind: engine.KindInt, Label: "QoS", Default: 1, Min: engine.Float(0), Max: engine.Float(1), Help: "MQTT QoS of telemetry and attributes: 1 (kept in the outbox until acknowledged) or 0 (fire and forget; fails while offline). Gateways always use 1."},
			{Name: "telemetryTopic", Label: "Telemetry topic", Kind: engine.KindString, Default: "", ShowIf: map[string][]any{"mode": {modeDevice}}, Help: "Only for a device profile with custom MQTT topic filters: the topic to publish telemetry on (ThingsBoard drops data on the default topic then). Empty = `v1/devices/me/telemetry`.", Example: "sensors/meter-1/telemetry", Advanced: true},
			{Name: "attributesTopic", Label: "Attributes topic", Kind: engine.KindString, Default: "", ShowIf: map[string][]any{"mode": {modeDevice}}, Help: "Only for a device profile with custom MQTT topic filters: the topic to publish client attributes on. Empty = `v1/devices/me/attributes`.", Example: "sensors/meter-1/attributes", Advanced: true},
			{Name: "outboxPath", Label: "Outbox file", Kind: engine.KindString, DataPath: true, Default: "", Help: "File of the durable outbox; empty keeps it in memory (lost on restart). A relative path is in the data directory (`--data-dir`, by default the flow file's folder); `serve` refuses a path outside it.", Example: "site-outbox.db"},
			{Name: "outboxMaxBytes", Kind: engine.KindInt, Label: "Outbox size limit (bytes)", Default: tb.DefaultOutboxMaxBytes, Min: engine.Float(1024), Help: "Most memory the outbox's messages hold: each is charged its topic and payload plus about 256 bytes of bookkeeping (32 MiB by default, which keeps a small edge box safe; set `GOMEMLIMIT` to override the soft memory limit tbflow derives from it).", Advanced: true},
			{Name: "outboxFull", Kind: engine.KindEnum, Label: "When the outbox is full", Default: "block", Enum: []string{"block", "reject", "drop-oldest"}, Help: "When the outbox is full: `block` holds the flow until there is room, `reject` fails the message (to `catch`), `drop-oldest` evicts the oldest messages.", Advanced: true},
			{Name: "reconnectMin", Kind: engine.KindDuration, Label: "Shortest reconnect wait", Default: "500ms", Help: "Shortest wait before reconnecting.", Advanced: true},
			{Name: "reconnectMax", Kind: engine.KindDuration, Label: "Longest reconnect wait", Default: "30s", Help: "Longest wait between reconnection attempts (the wait doubles up to it, with jitter).", Advanced: true},
			{Name: "requestTimeout", Kind: engine.KindDuration, Label: "Request timeout", Default: "30s", Help: "How long attribute requests and client-side RPCs wait for the answer.", Advanced: true},
			{Name: "rpcTimeout", Kind: engine.KindDuration, Label: "RPC reply timeout", Default: "30s", Help: "How long a server-side RPC waits for the flow's `tb-rpc-out` reply before it expires.", Advanced: true},
			{Name: "manage", Label: "Manage this box", Kind: engine.KindBool, Default: false, Help: "Make this ThingsBoard device the box's management channel (`tbflow run --managed`): flows arrive as its software packages, it gets health telemetry and answers the `tbflow.*` service RPCs. At most one connection of a flow manages the box; it runs even when no node uses it."},
			{Name: "statsInterval", Label: "Health interval", Kind: engine.KindDuration, Default: "60s", Help: "How often the managing device sends health telemetry (uptime, nodes, connections, outbox, CPU, memory).", ShowIf: map[string][]any{"manage": {true}}},
			{Name: "provisionKey", Label: "Provision key", Kind: engine.KindString, Help: "The device profile's provision key: on first start the device provisions itself — without credentials it keeps the access token ThingsBoard issues in the credentials file; with its own MQTT basic credentials or client certificate it registers those.", Advanced: true},
			{Name: "provisionSecret", Label: "Provision secret", Kind: engine.KindSecret, Help: "The device profile's provision secret (write `${TB_PROVISION_SECRET}` or keep it in the credentials file).", Example: "${TB_PROVISION_SECRET}", Advanced: true},
			{Name: "deviceName", Label: "Device name", Kind: engine.KindString, Help: "Name of the device to provision; empty uses the host name.", Advanced: true},
		},
		New: engine.Construct(newConnection),
	})
}

type connConfig struct {
	Host            string          `json:"host"`
	Port            int             `json:"port"`
	Mode            string          `json:"mode"`
	Protocol        string          `json:"protocol"`
	TelemetryTopic  string          `json:"telemetryTopic"`
	AttributesTopic string          `json:"attributesTopic"`
	AccessToken     string          `json:"accessToken"`
	ClientID        string          `json:"clientId"`
	Username        string          `json:"username"`
	Password        string          `json:"password"`
	TLS             bool            `json:"tls"`
	CAFile          string          `json:"caFile"`
	CertFile        string          `json:"certFile"`
	KeyFile         string          `json:"keyFile"`
	ServerName      string          `json:"serverName"`
	Insecure        bool            `json:"insecure"`
	QoS             int             `json:"qos"`
	OutboxPath      string          `json:"outboxPath"`
	OutboxMaxBytes  int64           `json:"outboxMaxBytes"`
	OutboxFull      string          `json:"outboxFull"`
	ReconnectMin    engine.Duration `json:"reconnectMin"`
	ReconnectMax    engine.Duration `json:"reconnectMax"`
	RequestTimeout  engine.Duration `json:"requestTimeout"`
	RPCTimeout      engine.Duration `json:"rpcTimeout"`

	// Managed mode and self-provisioning.
	Manage          bool            `json:"manage"`
	StatsInterval   engine.Duration `json:"statsInterval"`
	ProvisionKey    string          `json:"provisionKey"`
	ProvisionSecret string          `json:"provisionSecret"`
	DeviceName      string          `json:"deviceName"`
}

// Validate checks what the spec cannot express.
func (c *connConfig) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, &engine.FieldError{Field: "keyFile", Message: "certFile and keyFile go together"})
	}
	if c.CertFile != "" && !c.TLS {
		errs = append(errs, &engine.FieldError{Field: "certFile", Message: "a client certificate needs tls"})
	}
	if c.AccessToken != "" && (c.Username != "" || c.Password != "") {
		errs = append(errs, &engine.FieldError{Field: "accessToken", Message: "set an access token or MQTT basic credentials, not both"})
	}
	if c.ReconnectMax > 0 && c.ReconnectMin > c.ReconnectMax {
		errs = append(errs, &engine.FieldError{Field: "reconnectMin", Message: "longer than reconnectMax"})
	}
	if (c.ProvisionKey == "") != (c.ProvisionSecret == "") {
		errs = append(errs, &engine.FieldError{Field: "provisionSecret", Message: "provisionKey and provisionSecret go together"})
	}
	if c.StatsInterval < 0 || (c.StatsInterval > 0 && c.StatsInterval.D() < time.Second) {
		errs = append(errs, &engine.FieldError{Field: "statsInterval", Message: "at least 1s"})
	}
	if c.OutboxFull != "" {
		if _, err := tb.ParseOutboxFullPolicy(c.OutboxFull); err != nil {
			errs = append(errs, &engine.FieldError{Field: "outboxFull", Message: err.Error()})
		}
	}
	return errors.Join(errs...)
}

// Connection is a running tb-connection: one tb.Device or tb.Gateway that
// the nodes using it share.
type Connection struct {
	nc   *engine.NodeContext
	conf *connConfig

	mu       sync.Mutex
	dev      *tb.Device
	gw       *tb.Gateway // set in gateway mode; gw.Device == dev
	status   tb.Status
	hasStat  bool
	users    map[*engine.NodeContext]struct{}
	rpcSeq   int
	rpcs     map[int]*rpcListener
	rpcAdded chan struct{} // closed and replaced when an RPC node registers
	stopped  bool
	mgmt     mgmtState
	release  func() // takes the outbox's bound back from the soft memory limit
}

// rpcListener is a node that takes server-side RPCs.
type rpcListener struct {
	seq    int
	device string // "" = every device (device mode: the device itself)
	method string // "" = every method
	// fallback marks a gw-device's listener: a tb-rpc-in naming the same
	// device (and method filter) takes the device's requests before it.
	fallback bool
	fn       func(ctx context.Context, req tb.RPCRequest) error
}

func newConnection(nc *engine.NodeContext, c *connConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Connection{nc: nc, conf: c, users: map[*engine.NodeContext]struct{}{}, rpcs: map[int]*rpcListener{}}, nil
}

func (c *Connection) gateway() bool { return c.conf.Mode == modeGateway }

func (c *Connection) tbConfig() (tb.Config, error) {
	cf := c.conf
	cfg := tb.Config{
		Host: cf.Host, Port: cf.Port, Protocol: cf.Protocol,
		TelemetryTopic: cf.TelemetryTopic, AttributesTopic: cf.AttributesTopic,
		AccessToken: cf.AccessToken, ClientID: cf.ClientID, Username: cf.Username, Password: cf.Password,
		ReconnectMin:      cf.ReconnectMin.D(),
		ReconnectMax:      cf.ReconnectMax.D(),
		RequestTimeout:    cf.RequestTimeout.D(),
		RPCHandlerTimeout: cf.RPCTimeout.D(),
		Logger:            c.nc.Logger(),
		OnStatus:          c.onStatus,
		OnError:           func(err error) { c.nc.Logger().Warn("thingsboard client", "err", err) },
		Outbox:            tb.OutboxConfig{Path: cf.OutboxPath, MaxBytes: cf.OutboxMaxBytes},
	}
	if cf.QoS == 0 && !c.gateway() {
		cfg.QoS0 = true
	}
	if cf.OutboxFull != "" {
		p, err := tb.ParseOutboxFullPolicy(cf.OutboxFull)
		if err != nil {
			return cfg, err
		}
		cfg.Outbox.Full = p
	}
	if cf.TLS {
		cfg.TLS = &tb.TLSConfig{CAFile: cf.CAFile, CertFile: cf.CertFile, KeyFile: cf.KeyFile,
			ServerName: cf.ServerName, InsecureSkipVerify: cf.Insecure}
	}
	return cfg, nil
}

// Start creates the client and starts its connection loop without waiting
// for the server: nodes using the connection start at once, QoS 1 data is
// kept in the outbox until the server is reachable, and the state shows on
// every user's status.
func (c *Connection) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.checkProvisioned(); err != nil {
		return err
	}
	cfg, err := c.tbConfig()
	if err != nil {
		return err
	}
	var dev *tb.Device
	var gw *tb.Gateway
	if c.gateway() {
		gw, err = tb.NewGateway(cfg)
		if gw != nil {
			dev = gw.Device
		}
	} else {
		dev, err = tb.NewDevice(cfg)
	}
	if err != nil {
		return fmt.Errorf("tb-connection %s: %w", c.addr(), err)
	}
	dev.HandleRPC("", c.dispatchRPC)
	if gw != nil {
		gw.HandleDeviceRPC("", c.dispatchRPC)
	}
	if err := dev.Start(); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		dev.Close(closeCtx)
		cancel()
		return fmt.Errorf("tb-connection %s: %w", c.addr(), err)
	}
	c.dev, c.gw, c.stopped = dev, gw, false
	c.release = reserveOutbox(cfg.Outbox.MaxBytes)
	return nil
}

func (c *Connection) addr() string {
	port := c.conf.Port
	if port == 0 {
		port = 1883
		if c.conf.TLS {
			port = 8883
		}
	}
	return c.conf.Host + ":" + strconv.Itoa(port)
}

// Stop sends what the outbox holds while ctx allows, then disconnects.
func (c *Connection) Stop(ctx context.Context) error {
	c.mu.Lock()
	dev, release := c.dev, c.release
	c.dev, c.gw, c.stopped, c.release = nil, nil, true, nil
	c.mu.Unlock()
	if dev == nil {
		return nil
	}
	defer release()
	if err := dev.Close(ctx); err != nil && !errors.Is(err, tb.ErrClosed) && ctx.Err() == nil {
		return fmt.Errorf("closing tb-connection %s: %w", c.addr(), err)
	}
	return nil
}

// Device returns the running client (the gateway's own device in gateway
// mode), or an error wrapping engine.ErrNotConnected before Start.
func (c *Connection) Device() (*tb.Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return nil, fmt.Errorf("tb-connection %q is not started: %w", c.nc.ID(), engine.ErrNotConnected)
	}
	return c.dev, nil
}

// Gateway returns the gateway client; it fails in device mode.
func (c *Connection) Gateway() (*tb.Gateway, error) {
	if !c.gateway() {
		return nil, fmt.Errorf("tb-connection %q is in device mode; this needs a gateway connection", c.nc.ID())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gw == nil {
		return nil, fmt.Errorf("tb-connection %q is not started: %w", c.nc.ID(), engine.ErrNotConnected)
	}
	return c.gw, nil
}

// Connected reports whether the session is up now.
func (c *Connection) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dev != nil && c.dev.Status().State == tb.StateConnected
}

// QoS0 reports whether publishes use QoS 0 (never queued while offline).
func (c *Connection) QoS0() bool { return c.conf.QoS == 0 && !c.gateway() }

// --- status -----------------------------------------------------------------

// attach shows the connection's state on nc from now on.
func (c *Connection) attach(nc *engine.NodeContext) {
	c.mu.Lock()
	c.users[nc] = struct{}{}
	st, has := c.status, c.hasStat
	c.mu.Unlock()
	if has {
		nc.Status(statusOf(st))
	} else {
		nc.Status(engine.StatusConnecting)
	}
}

// detach stops showing the state on nc.
func (c *Connection) detach(nc *engine.NodeContext) {
	c.mu.Lock()
	delete(c.users, nc)
	c.mu.Unlock()
}

func (c *Connection) onStatus(st tb.Status) {
	c.mu.Lock()
	c.noteStatusLocked(st)
	c.status, c.hasStat = st, true
	users := make([]*engine.NodeContext, 0, len(c.users))
	for u := range c.users {
		users = append(users, u)
	}
	c.mu.Unlock()
	s := statusOf(st)
	if st.State == tb.StateClosed {
		return // the users are being stopped too
	}
	c.nc.Status(s)
	for _, u := range users {
		u.Status(s)
	}
	if st.Err != nil && st.State != tb.StateConnected {
		c.nc.Logger().Warn("thingsboard connection", "state", st.State.String(), "err", st.Err)
	}
}

func statusOf(st tb.Status) engine.Status {
	var ce *tb.ConnectError
	var de *tb.DisconnectError
	switch {
	case st.State == tb.StateConnected && st.LastDeadLetter != nil && st.DeadLetters > 0:
		// Messages the server will never take (payload or topic invalid).
		return engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("connected, %d dead-lettered: %v", st.DeadLetters, st.LastDeadLetter)}
	case st.State == tb.StateConnected:
		return engine.StatusConnected
	case errors.Is(st.Err, tb.ErrNotGateway):
		return engine.StatusError(st.Err)
	case errors.As(st.Err, &de):
		return engine.Status{Fill: "red", Shape: "ring", Text: fmt.Sprintf("offline (%d queued): %v", st.Queued, de)}
	case errors.As(st.Err, &ce) && ce.Permanent():
		return engine.StatusError(st.Err)
	case st.State == tb.StateOffline:
		return engine.Status{Fill: "red", Shape: "ring", Text: fmt.Sprintf("offline (%d queued)", st.Queued)}
	case st.State == tb.StateClosed:
		return engine.Status{Fill: "grey", Shape: "ring", Text: "closed"}
	}
	return engine.StatusConnecting
}

// --- server-side RPC multiplexing -----------------------------------------------

// addRPC registers a node that takes server-side RPCs; it returns the
// function that unregisters it.
func (c *Connection) addRPC(l *rpcListener) (remove func()) {
	c.mu.Lock()
	c.rpcSeq++
	l.seq = c.rpcSeq
	c.rpcs[l.seq] = l
	if c.rpcAdded != nil {
		close(c.rpcAdded)
	}
	c.rpcAdded = make(chan struct{})
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.rpcs, l.seq)
		c.mu.Unlock()
	}
}

// resolveLocked follows the server's renames of a sub-device. c.mu is held.
func (c *Connection) resolveLocked(device string) string {
	if c.gw == nil {
		return device
	}
	return c.gw.Resolve(device)
}

// pickRPCLocked chooses the node for a request: the most specific listener
// (a node for this very device before one for every device, a method filter
// before none, a tb-rpc-in before a gw-device), the oldest first among
// equals. c.mu is held.
func (c *Connection) pickRPCLocked(req tb.RPCRequest) *rpcListener {
	score := func(l *rpcListener) int {
		s := 0
		if l.device != "" {
			s += 4
		}
		if l.method != "" {
			s += 2
		}
		if !l.fallback {
			s++
		}
		return s
	}
	var best *rpcListener
	bestScore := 0
	for _, l := range c.rpcs {
		if (l.device != "" && c.resolveLocked(l.device) != req.Device) || (l.method != "" && l.method != req.Method) {
			continue
		}
		if s := score(l); best == nil || s > bestScore || (s == bestScore && l.seq < best.seq) {
			best, bestScore = l, s
		}
	}
	return best
}

// rpcStartGrace is how long a request no node takes waits for one to start.
const rpcStartGrace = 2 * time.Second

// waitRPC returns the node for a request. The server delivers queued
// requests as soon as the connection subscribes, which can be before the
// flow's RPC nodes have started: it gives them rpcStartGrace before it
// returns nil (nobody takes the call).
func (c *Connection) waitRPC(ctx context.Context, req tb.RPCRequest) *rpcListener {
	var grace *time.Timer
	for {
		c.mu.Lock()
		l := c.pickRPCLocked(req)
		if c.rpcAdded == nil {
			c.rpcAdded = make(chan struct{})
		}
		added := c.rpcAdded
		c.mu.Unlock()
		if l != nil {
			return l
		}
		if grace == nil {
			grace = time.NewTimer(rpcStartGrace)
			defer grace.Stop()
		}
		select {
		case <-added:
		case <-grace.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// dispatchRPC is the connection's one RPC handler: it hands the request to
// the node that takes it, which replies later through tb-rpc-out.
func (c *Connection) dispatchRPC(ctx context.Context, req tb.RPCRequest) (any, error) {
	if err := c.serviceMethod(req); err != nil {
		return nil, err
	}
	l := c.waitRPC(ctx, req)
	if l == nil {
		who := "the device"
		if req.Device != "" {
			who = "device " + strconv.Quote(req.Device)
		}
		return nil, fmt.Errorf("no node of the flow takes rpc %q for %s", req.Method, who)
	}
	if err := l.fn(ctx, req); err != nil {
		return nil, err
	}
	return tb.ReplyLater, nil
}

// reply answers a request delivered by dispatchRPC.
func (c *Connection) reply(req tb.RPCRequest, res any) error {
	dev, err := c.Device()
	if err != nil {
		return err
	}
	if req.Device != "" {
		gw, err := c.Gateway()
		if err != nil {
			return err
		}
		return gw.ReplyDeviceRPC(req, res)
	}
	return dev.ReplyRPC(req, res)
}
