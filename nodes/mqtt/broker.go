package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/engine"
)

const (
	category = "mqtt"
	color    = "#d8bfd8"
)

func init() {
	engine.Register(engine.Type{
		Name: "mqtt-broker", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "MQTT broker", Color: color, Icon: "mqtt",
		Summary: "One MQTT client session to a broker (mosquitto, EMQX, a LoRaWAN network server…), shared by mqtt-in and mqtt-out nodes.",
		Help: `A client session to an MQTT broker that field devices publish to — Tasmota, Shelly, zigbee2mqtt,
LoRaWAN network servers and most IoT bridges speak MQTT. Every ` + "`mqtt-in`" + ` and ` + "`mqtt-out`" + ` node naming this
broker shares one session; a deploy that does not change these settings keeps it open.

MQTT 3.1.1, plain or TLS 1.2+ (**caFile**, client certificate **certFile**/**keyFile**), anonymous or with
**username**/**password** (the password is a secret: write ` + "`${MQTT_PASSWORD}`" + ` or enter it in the editor).

The session connects in the background: until the broker answers, the nodes using it show
` + "`connecting`" + ` or ` + "`error: …`" + ` with the broker's reason (refused credentials, connection refused) and the attempt
is repeated after a pause that doubles from 1 s up to **reconnectMax**. A lost session shows
` + "`disconnected: …`" + ` and reconnects the same way; every subscription is made again after each reconnect.
Publishes wait while the session is down and are retried by the engine.`,
		Fields: []engine.Field{
			{Name: "host", Identity: true, Label: "Host", Kind: engine.KindString, Default: "127.0.0.1", Help: "Host name or IP address of the broker.", Example: "broker.example.com"},
			{Name: "port", Identity: true, Label: "Port", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(65535), Help: "TCP port; 0 means 1883, or 8883 with TLS."},
			{Name: "clientId", Label: "Client id", Kind: engine.KindString, Default: "", Help: "MQTT client id; empty picks a random `tbflow-…` id. Two clients with the same id push each other off the broker."},
			{Name: "username", Label: "User name", Kind: engine.KindString, Default: "", Help: "User name for the broker; empty connects anonymously."},
			{Name: "password", Label: "Password", Kind: engine.KindSecret, Help: "Password for the broker (a secret).", Example: "${MQTT_PASSWORD}"},
			{Name: "keepalive", Label: "Keep-alive", Kind: engine.KindDuration, Default: "30s", Min: engine.Float(1), Max: engine.Float(65535), Help: "MQTT keep-alive: a silent link is declared dead after about 1.5 times this."},
			{Name: "cleanSession", Label: "Clean session", Kind: engine.KindBool, Default: true, Help: "Start every session afresh; off asks the broker to keep the subscriptions and the QoS 1/2 messages that arrive while tbflow is away (needs a fixed client id)."},
			{Name: "tls", Identity: true, Label: "TLS", Kind: engine.KindBool, Default: false, Help: "Connect with TLS 1.2 or newer."},
			{Name: "caFile", Identity: true, Label: "CA file", Kind: engine.KindString, Default: "", Help: "PEM file of the CAs to trust; empty uses the system's.", ShowIf: map[string][]any{"tls": {true}}},
			{Name: "certFile", Label: "Client certificate", Kind: engine.KindString, Default: "", Help: "PEM client certificate, when the broker authenticates clients by certificate.", ShowIf: map[string][]any{"tls": {true}}},
			{Name: "keyFile", Label: "Client key", Kind: engine.KindString, Default: "", Help: "PEM private key of the client certificate.", ShowIf: map[string][]any{"tls": {true}}},
			{Name: "serverName", Identity: true, Label: "Server name", Kind: engine.KindString, Default: "", Help: "Name to check in the broker's certificate (default: host).", Advanced: true, ShowIf: map[string][]any{"tls": {true}}},
			{Name: "insecure", Identity: true, Label: "Skip verification", Kind: engine.KindBool, Default: false, Help: "Do not verify the broker's certificate. Only for lab set-ups.", Advanced: true, ShowIf: map[string][]any{"tls": {true}}},
			{Name: "connectTimeout", Label: "Connect timeout", Kind: engine.KindDuration, Default: "10s", Min: engine.Float(0.1), Help: "How long one connection attempt may take.", Advanced: true},
			{Name: "reconnectMax", Label: "Longest reconnect pause", Kind: engine.KindDuration, Default: "30s", Min: engine.Float(1), Help: "Longest pause between connection attempts; the pause doubles from 1 s up to it.", Advanced: true},
			{Name: "publishTimeout", Label: "Publish timeout", Kind: engine.KindDuration, Default: "10s", Min: engine.Float(0.1), Help: "How long mqtt-out waits for the broker to acknowledge a QoS 1 or 2 publish.", Advanced: true},
		},
		New: engine.Construct(newBroker),
	})
}

type brokerConfig struct {
	Host           string          `json:"host"`
	Port           int             `json:"port"`
	ClientID       string          `json:"clientId"`
	Username       string          `json:"username"`
	Password       string          `json:"password"`
	Keepalive      engine.Duration `json:"keepalive"`
	CleanSession   bool            `json:"cleanSession"`
	TLS            bool            `json:"tls"`
	CAFile         string          `json:"caFile"`
	CertFile       string          `json:"certFile"`
	KeyFile        string          `json:"keyFile"`
	ServerName     string          `json:"serverName"`
	Insecure       bool            `json:"insecure"`
	ConnectTimeout engine.Duration `json:"connectTimeout"`
	ReconnectMax   engine.Duration `json:"reconnectMax"`
	PublishTimeout engine.Duration `json:"publishTimeout"`
}

// Validate checks what the spec cannot express.
func (c *brokerConfig) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, &engine.FieldError{Field: "host", Message: "the broker's host name or address is needed"})
	}
	if c.TLS && (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, &engine.FieldError{Field: "keyFile", Message: "certFile and keyFile go together"})
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, &engine.FieldError{Field: "username", Message: "a password needs a user name"})
	}
	if !c.CleanSession && c.ClientID == "" {
		errs = append(errs, &engine.FieldError{Field: "clientId", Message: "a persistent session (cleanSession off) needs a fixed client id"})
	}
	if len(c.ClientID) > 65535 {
		errs = append(errs, &engine.FieldError{Field: "clientId", Message: "longer than MQTT allows"})
	}
	return errors.Join(errs...)
}

func (c *brokerConfig) addr() string {
	port := c.Port
	if port == 0 {
		port = 1883
		if c.TLS {
			port = 8883
		}
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

func (c *brokerConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.Insecure} //nolint:gosec // only when set explicitly
	if cfg.ServerName == "" {
		cfg.ServerName = c.Host
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, &engine.FieldError{Field: "caFile", Message: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &engine.FieldError{Field: "caFile", Message: "no PEM certificate in " + c.CAFile}
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, &engine.FieldError{Field: "certFile", Message: err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// subscription is one mqtt-in's interest in a topic filter.
type subscription struct {
	filter  string
	qos     byte
	deliver func(paho.Message)
	fail    func(error)
}

// Broker is a running mqtt-broker: one paho client that the nodes using it
// share.
type Broker struct {
	nc   *engine.NodeContext
	conf *brokerConfig

	mu        sync.Mutex
	client    paho.Client
	cancel    context.CancelFunc
	done      chan struct{}
	connected bool
	status    engine.Status
	users     map[*engine.NodeContext]struct{}
	subs      map[*subscription]struct{}
}

func newBroker(nc *engine.NodeContext, c *brokerConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Broker{nc: nc, conf: c, status: engine.StatusConnecting,
		users: map[*engine.NodeContext]struct{}{}, subs: map[*subscription]struct{}{}}, nil
}

// Addr is the broker's host:port, for status texts and logs.
func (b *Broker) Addr() string { return b.conf.addr() }

// Start creates the client and connects in the background: the nodes
// using the broker start at once and show the session's state.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	opts := paho.NewClientOptions()
	scheme := "tcp://"
	if b.conf.TLS {
		scheme = "ssl://"
		tc, err := b.conf.tlsConfig()
		if err != nil {
			return err
		}
		opts.SetTLSConfig(tc)
	}
	opts.AddBroker(scheme + b.conf.addr())
	id := b.conf.ClientID
	if id == "" {
		var r [6]byte
		_, _ = rand.Read(r[:])
		id = "tbflow-" + hex.EncodeToString(r[:])
	}
	opts.SetClientID(id)
	opts.SetUsername(b.conf.Username)
	opts.SetPassword(b.conf.Password)
	opts.SetKeepAlive(b.conf.Keepalive.D())
	opts.SetPingTimeout(min(b.conf.Keepalive.D()/2, 10*time.Second))
	opts.SetCleanSession(b.conf.CleanSession)
	opts.SetConnectTimeout(b.conf.ConnectTimeout.D())
	opts.SetWriteTimeout(b.conf.PublishTimeout.D())
	opts.SetAutoReconnect(true)
	opts.SetConnectRetry(false)
	opts.SetMaxReconnectInterval(b.conf.ReconnectMax.D())
	opts.SetOrderMatters(true)
	opts.SetResumeSubs(false)
	opts.SetOnConnectHandler(b.onConnect)
	opts.SetConnectionLostHandler(b.onLost)
	life, cancel := context.WithCancel(context.Background())
	b.client, b.cancel, b.done = paho.NewClient(opts), cancel, make(chan struct{})
	b.status = engine.StatusConnecting
	go b.connectLoop(life, b.client, b.done)
	return nil
}

// connectLoop makes the first connection, with a doubling pause between
// attempts; after it paho reconnects on its own.
func (b *Broker) connectLoop(ctx context.Context, c paho.Client, done chan struct{}) {
	defer close(done)
	pause := time.Second
	for {
		t := c.Connect()
		select {
		case <-ctx.Done():
			return
		case <-t.Done():
		}
		err := t.Error()
		if err == nil {
			return
		}
		b.setStatus(engine.StatusError(err), fmt.Errorf("connecting to %s: %w", b.conf.addr(), err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(pause*2, b.conf.ReconnectMax.D())
	}
}

func (b *Broker) onConnect(c paho.Client) {
	b.mu.Lock()
	b.connected = true
	filters := map[string]bool{}
	for s := range b.subs {
		filters[s.filter] = true
	}
	b.mu.Unlock()
	var tokens []paho.Token
	for f := range filters {
		if t := b.subscribe(c, f); t != nil {
			tokens = append(tokens, t)
		}
	}
	for _, t := range tokens { // "connected" means subscribed
		t.WaitTimeout(b.conf.ConnectTimeout.D())
	}
	b.nc.Logger().Info("mqtt broker connected", "broker", b.conf.addr())
	b.setStatus(engine.StatusConnected, nil)
}

func (b *Broker) onLost(_ paho.Client, err error) {
	b.mu.Lock()
	b.connected = false
	b.mu.Unlock()
	b.setStatus(engine.Status{Fill: "red", Shape: "ring", Text: "disconnected: " + err.Error()}, fmt.Errorf("connection to %s lost: %w", b.conf.addr(), err))
}

// subscribe sends one SUBSCRIBE for filter, at the highest QoS its
// subscriptions ask for; paho keeps one handler per filter, which fans the
// messages out. A refusal is reported to the subscriptions' nodes.
func (b *Broker) subscribe(c paho.Client, filter string) paho.Token {
	b.mu.Lock()
	var qos byte
	var owners []*subscription
	for s := range b.subs {
		if s.filter == filter {
			qos = max(qos, s.qos)
			owners = append(owners, s)
		}
	}
	b.mu.Unlock()
	if len(owners) == 0 {
		return nil
	}
	t := c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { b.fanout(filter, m) })
	go func() {
		if !t.WaitTimeout(b.conf.ConnectTimeout.D()) {
			return
		}
		err := t.Error()
		if st, ok := t.(*paho.SubscribeToken); ok && err == nil && st.Result()[filter] == 0x80 {
			err = errors.New("the broker refused it")
		}
		if err != nil {
			for _, s := range owners {
				s.fail(fmt.Errorf("subscribing to %q: %w", filter, err))
			}
		}
	}()
	return t
}

// addSub registers a subscription, made now when connected and again after
// every reconnect. It returns the function that removes it.
func (b *Broker) addSub(s *subscription) func() {
	b.mu.Lock()
	b.subs[s] = struct{}{}
	c, up := b.client, b.connected
	b.mu.Unlock()
	if c != nil && up {
		b.subscribe(c, s.filter)
	}
	return func() {
		b.mu.Lock()
		delete(b.subs, s)
		still := false
		for o := range b.subs {
			still = still || o.filter == s.filter
		}
		c, up := b.client, b.connected
		b.mu.Unlock()
		if !still && c != nil && up {
			c.Unsubscribe(s.filter)
		}
	}
}

// fanout gives one filter's message to every subscription of it.
func (b *Broker) fanout(filter string, m paho.Message) {
	b.mu.Lock()
	var targets []*subscription
	for s := range b.subs {
		if s.filter == filter {
			targets = append(targets, s)
		}
	}
	b.mu.Unlock()
	for _, s := range targets {
		s.deliver(m)
	}
}

// Stop disconnects.
func (b *Broker) Stop(ctx context.Context) error {
	b.mu.Lock()
	c, cancel, done := b.client, b.cancel, b.done
	b.client, b.cancel, b.connected = nil, nil, false
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.Disconnect(250)
	return nil
}

// Client returns the connected client, or an error wrapping
// engine.ErrNotConnected while the session is down.
func (b *Broker) Client() (paho.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil || !b.connected {
		return nil, fmt.Errorf("mqtt broker %s: %w", b.conf.addr(), engine.ErrNotConnected)
	}
	return b.client, nil
}

// attach shows the session's state on nc from now on.
func (b *Broker) attach(nc *engine.NodeContext) {
	b.mu.Lock()
	b.users[nc] = struct{}{}
	s := b.status
	b.mu.Unlock()
	nc.Status(s)
}

// currentStatus is the session's state.
func (b *Broker) currentStatus() engine.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// detach stops showing the state on nc.
func (b *Broker) detach(nc *engine.NodeContext) {
	b.mu.Lock()
	delete(b.users, nc)
	b.mu.Unlock()
}

func (b *Broker) setStatus(s engine.Status, err error) {
	b.mu.Lock()
	if b.client == nil {
		b.mu.Unlock()
		return // stopping
	}
	changed := s != b.status
	b.status = s
	users := make([]*engine.NodeContext, 0, len(b.users))
	for u := range b.users {
		users = append(users, u)
	}
	b.mu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		b.nc.Logger().Warn("mqtt broker", "broker", b.conf.addr(), "status", s.Text)
	}
	b.nc.Status(s)
	for _, u := range users {
		u.Status(s)
		if err != nil {
			u.Error(err, nil)
		}
	}
}

var _ engine.Node = (*Broker)(nil)
