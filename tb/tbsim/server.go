package tbsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults of Options and of ThingsBoard's transport (§1.8).
const (
	DefaultClientRPCTimeout    = 60 * time.Second
	DefaultProvisionCloseAfter = 60 * time.Second
	DefaultMaxPayloadSize      = 65536
	// maxInflightMessages is transport.mqtt.msg_queue_size_per_device_limit,
	// reported by getSessionLimits.
	maxInflightMessages = 100
	// historyLimit bounds the stored history of one telemetry key.
	historyLimit = 10000
	// defaultClaimDurationMs is security.claim.duration.
	defaultClaimDurationMs = 86_400_000
	// inactivityKeepalive makes mochi drop a connection after 600 s without
	// any inbound packet (mochi waits 1.5 × keepalive), which is
	// transport.sessions.inactivity_timeout; the client's own keep-alive is
	// not enforced, as in ThingsBoard.
	inactivityKeepalive = 400
	// hardPacketLimit is where mochi stops reading a packet at all; packets
	// between MaxPayloadSize and this are rejected the ThingsBoard way.
	hardPacketLimit = 16 << 20
)

// Errors returned by the Go API; HTTP maps them to status codes.
var (
	ErrUnknownDevice      = errors.New("unknown device")
	ErrDuplicate          = errors.New("duplicate device name or credentials")
	ErrNoActiveConnection = errors.New("no active connection")
	ErrRPCTimeout         = errors.New("timeout")
	ErrClosed             = errors.New("server closed")
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// MQTTAddr is the plain MQTT listen address; default "127.0.0.1:0".
	MQTTAddr string
	// HTTPAddr is the HTTP API listen address; "" means no HTTP API,
	// "127.0.0.1:0" a free port.
	HTTPAddr string
	// TLS, if set, adds an MQTTS listener on TLSAddr (default
	// "127.0.0.1:0"). Client certificates are requested but optional;
	// when ClientAuth is left at NoClientCert, a presented chain is only
	// checked to be self-consistent, as ThingsBoard does.
	TLS     *tls.Config
	TLSAddr string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ClientRPC answers device-initiated RPCs other than getSessionLimits.
	// nil replies {"error":"timeout"} after ClientRPCTimeout, like a
	// ThingsBoard whose rule chain does not reply.
	ClientRPC func(ctx context.Context, device, method string, params json.RawMessage) (json.RawMessage, error)
	// ClientRPCTimeout bounds ClientRPC; default 60 s.
	ClientRPCTimeout time.Duration
	// ProvisionCloseAfter is how long a provisioning session stays open
	// after a successful response; default 60 s.
	ProvisionCloseAfter time.Duration
	// MaxPayloadSize is the largest accepted MQTT remaining length and OTA
	// chunk size; default 65536.
	MaxPayloadSize int
}

// Device is a registered device and its credentials. Exactly one kind of
// credentials is used: Token (ACCESS_TOKEN), ClientID/Username/Password
// (MQTT_BASIC) or CertPEM (X509_CERTIFICATE). A device added without any
// gets a generated access token.
type Device struct {
	Name string `json:"name"`
	// Type is the device profile's name (default "default").
	Type string `json:"type,omitempty"`
	// Profile is another name for Type (ThingsBoard's device profile) for
	// AddDevice; when both are given they must agree. Listed as Type.
	Profile  string `json:"profile,omitempty"`
	Gateway  bool   `json:"gateway,omitempty"`
	Token    string `json:"token,omitempty"`
	ClientID string `json:"clientId,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	CertPEM  string `json:"certPem,omitempty"`
	// LastGateway is the gateway that last connected this device as a
	// sub-device (ThingsBoard's additionalInfo.lastConnectedGateway); it is
	// set by tbsim and ignored by AddDevice.
	LastGateway string `json:"lastGateway,omitempty"`
}

// TsValue is one telemetry value. Value is bool, int64, float64, string or
// json.RawMessage, typed as ThingsBoard types it (§2.2).
type TsValue struct {
	Ts    int64 `json:"ts"`
	Value any   `json:"value"`
}

// ProvisionProfile is a device profile with provisioning enabled.
type ProvisionProfile struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
	// Type is the profile name given to devices it creates ("default" if
	// empty); check-pre-provisioned only accepts devices of this type.
	Type string `json:"type,omitempty"`
	// Strategy is "allow-create" (default) or "check-pre-provisioned".
	Strategy string `json:"strategy,omitempty"`
}

// Provisioning strategies.
const (
	StrategyAllowCreate         = "allow-create"
	StrategyCheckPreProvisioned = "check-pre-provisioned"
)

// OTAPackage is a firmware or software package assigned to a device.
type OTAPackage struct {
	Title, Version, Tag string
	Data                []byte
	// ChecksumAlgorithm is MD5, SHA256 (default), SHA384, SHA512, CRC32,
	// MURMUR3_32 or MURMUR3_128.
	ChecksumAlgorithm string
}

// Claim is a claiming request received from a device.
type Claim struct {
	SecretKey  string    `json:"secretKey"`
	DurationMs int64     `json:"durationMs"`
	At         time.Time `json:"at"`
}

// RateLimits are ThingsBoard rate-limit strings "cap:seconds,..." ("" = no
// limit, every window enforced): a device's own (SetRateLimits) or the
// bucket shared by a gateway's sub-devices (SetGatewayRateLimits).
type RateLimits struct {
	Messages            string `json:"messages,omitempty"`
	TelemetryMessages   string `json:"telemetryMessages,omitempty"`
	TelemetryDataPoints string `json:"telemetryDataPoints,omitempty"`
}

// Stats are counters for tests.
type Stats struct {
	Connects         uint64            // accepted CONNECTs
	ConnectFailures  uint64            // rejected CONNECTs
	Disconnects      uint64            // sessions ended
	Publishes        uint64            // PUBLISH packets received from clients
	PubAcks          uint64            // PUBACKs sent to clients
	PubAcksReceived  uint64            // PUBACKs received from clients
	Downlinks        uint64            // PUBLISH packets sent to clients
	Subscribes       uint64            // SUBSCRIBE packets received
	Evictions        uint64            // sessions closed by a newer session of the same device
	Kicks            uint64            // sessions closed by the server for other reasons
	PublishesByTopic map[string]uint64 // uplink PUBLISH count per topic
	DownlinksByTopic map[string]uint64 // downlink PUBLISH count per topic
}

// Server is a ThingsBoard-compatible MQTT endpoint. All methods are safe for
// concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // ends at Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	devices  map[string]*device
	creds    map[string]*credential
	profiles map[string]ProvisionProfile
	// devProfiles are the device profiles by name.
	devProfiles map[string]*DeviceProfile
	// profileOTA are the packages assigned to device profiles by name.
	profileOTA map[string]map[string]*otaAssignment
	sessions   map[*mqtt.Client]*session
	changed    chan struct{}
	broker     *mqtt.Server
	paused     bool
	gates      []*gate // the MQTT listeners, closed to clients while paused
	closed     bool
	mqttAddr   string
	tlsAddr    string
	tlsConfig  *tls.Config
	stats      Stats
	nextSess   uint64

	httpSrv *http.Server
	httpURL string

	pubAckDelay atomic.Int64
	dropPubAcks atomic.Bool
}

// New starts a server; its listeners are bound when New returns.
func New(opts Options) (*Server, error) {
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = "127.0.0.1:0"
	}
	if opts.TLS != nil && opts.TLSAddr == "" {
		opts.TLSAddr = "127.0.0.1:0"
	}
	if opts.ClientRPCTimeout <= 0 {
		opts.ClientRPCTimeout = DefaultClientRPCTimeout
	}
	if opts.ProvisionCloseAfter <= 0 {
		opts.ProvisionCloseAfter = DefaultProvisionCloseAfter
	}
	if opts.MaxPayloadSize <= 0 {
		opts.MaxPayloadSize = DefaultMaxPayloadSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:        opts,
		log:         log,
		ctx:         ctx,
		cancel:      cancel,
		devices:     map[string]*device{},
		creds:       map[string]*credential{},
		profiles:    map[string]ProvisionProfile{},
		devProfiles: map[string]*DeviceProfile{},
		profileOTA:  map[string]map[string]*otaAssignment{},
		sessions:    map[*mqtt.Client]*session{},
		changed:     make(chan struct{}),
		mqttAddr:    opts.MQTTAddr,
		tlsAddr:     opts.TLSAddr,
	}
	if opts.TLS != nil {
		s.tlsConfig = serverTLSConfig(opts.TLS)
	}
	s.stats.PublishesByTopic = map[string]uint64{}
	s.stats.DownlinksByTopic = map[string]uint64{}
	if err := s.startBroker(); err != nil {
		cancel()
		return nil, err
	}
	if opts.HTTPAddr != "" {
		if err := s.startHTTP(opts.HTTPAddr); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// serverTLSConfig requests client certificates without requiring them and,
// unless the caller chose its own policy, only checks that a presented chain
// is signed link by link (ThingsBoard's trust manager). The request lists
// as acceptable issuers the certificates of the server's own chains (or
// ClientCAs when given), as ThingsBoard's trust manager lists its key
// store: a client that offers only a certificate whose issuer is not on
// that list (a self-signed device certificate, the usual ThingsBoard X.509
// setup) sends none from Go's crypto/tls.
func serverTLSConfig(c *tls.Config) *tls.Config {
	c = c.Clone()
	if c.ClientAuth == tls.NoClientCert {
		c.ClientAuth = tls.RequestClientCert
		if c.VerifyPeerCertificate == nil {
			c.VerifyPeerCertificate = verifyChainLinks
		}
	}
	if c.ClientCAs == nil {
		c.ClientCAs = ownChainPool(c.Certificates)
	}
	return c
}

// ownChainPool is a pool of every certificate in the server's chains; nil
// when there is none to list.
func ownChainPool(certs []tls.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	n := 0
	for _, tc := range certs {
		for _, der := range tc.Certificate {
			if c, err := x509.ParseCertificate(der); err == nil {
				pool.AddCert(c)
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return pool
}

func verifyChainLinks(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, r := range rawCerts {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("parsing client certificate: %w", err)
		}
		certs = append(certs, c)
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return fmt.Errorf("client certificate chain link %d: %w", i, err)
		}
	}
	return nil
}

// startBroker creates the mochi instance with the tbsim hook and binds the
// listeners. The instance lives as long as the Server: Pause and Resume
// only close and open listeners (mochi's own Close races with connections
// being accepted at that moment, so it runs once, at Close).
func (s *Server) startBroker() error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = hardPacketLimit
	caps.TopicAliasMaximum = 0
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	b := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(levelFilter{h: s.log.Handler(), min: slog.LevelError}).With("component", "mochi"),
	})
	if err := b.AddHook(&hook{s: s}, nil); err != nil {
		return fmt.Errorf("adding broker hook: %w", err)
	}
	if err := b.Serve(); err != nil {
		_ = b.Close()
		return fmt.Errorf("starting broker: %w", err)
	}
	s.mu.Lock()
	s.broker = b
	s.mu.Unlock()
	if err := s.listen(); err != nil {
		_ = b.Close()
		return err
	}
	return nil
}

// listen binds the MQTT (and MQTTS) listeners and starts accepting.
func (s *Server) listen() error {
	s.mu.Lock()
	b, mqttAddr, tlsAddr, tlsConf := s.broker, s.mqttAddr, s.tlsAddr, s.tlsConfig
	s.mu.Unlock()
	plain, err := newGate(mqttAddr)
	if err != nil {
		return fmt.Errorf("listening for mqtt on %q: %w", mqttAddr, err)
	}
	gates := []*gate{plain}
	if err := b.AddListener(newTrackedListener("mqtt", plain)); err != nil {
		plain.Close()
		return fmt.Errorf("listening for mqtt on %q: %w", mqttAddr, err)
	}
	var secure *gate
	if tlsConf != nil {
		if secure, err = newGate(tlsAddr); err != nil {
			s.unlisten(b)
			return fmt.Errorf("listening for mqtts on %q: %w", tlsAddr, err)
		}
		gates = append(gates, secure)
		if err := b.AddListener(newTrackedListener("mqtts", tls.NewListener(secure, tlsConf))); err != nil {
			secure.Close()
			s.unlisten(b)
			return fmt.Errorf("listening for mqtts on %q: %w", tlsAddr, err)
		}
	}
	b.Listeners.Serve("mqtt", b.EstablishConnection)
	if secure != nil {
		b.Listeners.Serve("mqtts", b.EstablishConnection)
	}
	s.mu.Lock()
	s.gates = gates
	s.mqttAddr = plain.Addr().String()
	if secure != nil {
		s.tlsAddr = secure.Addr().String()
	}
	s.mu.Unlock()
	s.log.Info("mqtt listening", "addr", plain.Addr().String())
	return nil
}

// gate is a listener that keeps its port through an outage: while closed
// (Pause) it accepts connections and drops them at once, as a broker that
// is down would, so no other program can take the port before Resume.
type gate struct {
	net.Listener
	shut atomic.Bool
}

func newGate(addr string) (*gate, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &gate{Listener: ln}, nil
}

func (g *gate) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil || !g.shut.Load() {
			return c, err
		}
		c.Close()
	}
}

// listenerIDs are the ids of the MQTT and MQTTS listeners.
var listenerIDs = []string{"mqtt", "mqtts"}

// disconnectAll drops every client connection.
func (s *Server) disconnectAll(b *mqtt.Server) {
	for _, id := range listenerIDs {
		disconnectListener(b, id)
	}
}

// disconnectListener drops every client connected through listener id.
func disconnectListener(b *mqtt.Server, id string) {
	for _, cl := range b.Clients.GetByListener(id) {
		_ = b.DisconnectClient(cl, packets.ErrServerShuttingDown)
	}
}

// unlisten closes the listeners and drops every client connected through
// them.
func (s *Server) unlisten(b *mqtt.Server) {
	var closed []*trackedListener
	for _, id := range listenerIDs {
		l, ok := b.Listeners.Get(id)
		if !ok {
			continue
		}
		b.Listeners.Close(id, func(id string) { disconnectListener(b, id) })
		b.Listeners.Delete(id)
		if tl, ok := l.(*trackedListener); ok {
			closed = append(closed, tl)
		}
	}
	// Every connection was closed at the network level; wait until the
	// broker has let go of each, so nothing of it runs on afterwards.
	for _, tl := range closed {
		if !tl.wait(5 * time.Second) {
			s.log.Warn("connections still held by the broker after 5 s", "listener", tl.id)
		}
	}
}

// Close stops the listeners and every connection and waits for background
// work. State is discarded with the Server.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	b := s.broker
	s.broker = nil
	hs := s.httpSrv
	s.notifyLocked()
	s.mu.Unlock()
	s.cancel()
	var errs []error
	if b != nil {
		// Stop accepting and wait until the broker has let go of every
		// connection it accepted before it shuts down.
		s.unlisten(b)
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing broker: %w", err))
		}
	}
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing http api: %w", err))
		}
		cancel()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// Pause simulates a broker outage: every connection drops and new ones are
// closed as soon as they are accepted (the ports stay bound, so nothing
// else can take them). Devices, data and pending RPCs are kept.
func (s *Server) Pause() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.paused {
		s.mu.Unlock()
		return nil
	}
	s.paused = true
	b := s.broker
	for _, g := range s.gates {
		g.shut.Store(true)
	}
	s.mu.Unlock()
	s.disconnectAll(b)
	s.log.Info("mqtt paused")
	return nil
}

// Resume accepts connections again after Pause.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.paused {
		return nil
	}
	s.paused = false
	for _, g := range s.gates {
		g.shut.Store(false)
	}
	s.log.Info("mqtt resumed")
	return nil
}

// MQTTAddr is the plain listener's address, "127.0.0.1:port".
func (s *Server) MQTTAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mqttAddr
}

// TLSAddr is the MQTTS listener's address, "" without Options.TLS.
func (s *Server) TLSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsConfig == nil {
		return ""
	}
	return s.tlsAddr
}

// HTTPURL is the HTTP API base URL, "" without Options.HTTPAddr.
func (s *Server) HTTPURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpURL
}

// SetPubAckDelay delays every PUBACK by d (0 = none), holding the device's
// messages in flight.
func (s *Server) SetPubAckDelay(d time.Duration) { s.pubAckDelay.Store(int64(d)) }

// SetDropPubAcks makes the server process publishes but never PUBACK them.
func (s *Server) SetDropPubAcks(on bool) { s.dropPubAcks.Store(on) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.PublishesByTopic = make(map[string]uint64, len(s.stats.PublishesByTopic))
	for k, v := range s.stats.PublishesByTopic {
		st.PublishesByTopic[k] = v
	}
	st.DownlinksByTopic = make(map[string]uint64, len(s.stats.DownlinksByTopic))
	for k, v := range s.stats.DownlinksByTopic {
		st.DownlinksByTopic[k] = v
	}
	return st
}

// notifyLocked wakes every waiter; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor blocks until cond (called with s.mu held) is true or ctx ends.
func (s *Server) waitFor(ctx context.Context, cond func() (bool, error)) error {
	for {
		s.mu.Lock()
		ok, err := cond()
		ch := s.changed
		closed := s.closed
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Connected reports whether the device has an open MQTT session of its own
// or is connected as a sub-device through a gateway's session.
func (s *Server) Connected(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	return d != nil && connectedLocked(d)
}

// WaitConnected waits until the device is connected (directly or through a
// gateway). An unknown name is waited for too, since gateways create their
// sub-devices on first use.
func (s *Server) WaitConnected(ctx context.Context, name string) error {
	err := s.waitFor(ctx, func() (bool, error) {
		d := s.devices[name]
		return d != nil && connectedLocked(d), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %q to connect: %w", name, err)
	}
	return nil
}

// WaitTelemetry waits until the device's history of key has n entries (an
// unknown device is waited for, like in WaitConnected).
func (s *Server) WaitTelemetry(ctx context.Context, name, key string, n int) error {
	err := s.waitFor(ctx, func() (bool, error) {
		d := s.devices[name]
		return d != nil && len(d.history[key]) >= n, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for telemetry %q of %q: %w", key, name, err)
	}
	return nil
}

// Kick closes the device's session (MQTT 5: DISCONNECT 0x98 first).
func (s *Server) Kick(name string) {
	s.mu.Lock()
	d := s.devices[name]
	var ss *session
	if d != nil {
		ss = d.direct
	}
	if ss != nil {
		s.stats.Kicks++
	}
	s.mu.Unlock()
	if ss != nil {
		ss.close(codeAdministrativeAction)
	}
}

// Devices lists the registered devices sorted by name.
func (s *Server) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, d.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// levelFilter drops records below min (mochi is chatty at info level).
type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(n), min: f.min}
}

// listenLoopback is used by the HTTP API.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %q: %w", addr, err)
	}
	return ln, nil
}
