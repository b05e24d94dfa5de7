package tb

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config describes one device's connection. The zero values of optional
// fields are replaced by the defaults documented on each field.
type Config struct {
	// Host and Port of the ThingsBoard MQTT transport. Port defaults to
	// 1883, or 8883 when TLS is set.
	Host string
	Port int

	// Credentials: either an access token, or MQTT basic credentials
	// (ClientID, Username, Password; any of them may be empty as ThingsBoard
	// allows), or an X.509 client certificate in TLS. With an access token,
	// ClientID is still sent when set (ThingsBoard ignores it).
	AccessToken string
	ClientID    string
	Username    string
	Password    string

	// Protocol is the MQTT version: ProtocolMQTT5 ("5", the default) or
	// ProtocolMQTT311 ("3.1.1"). Only MQTT 5 carries the server's reason
	// codes (quota exceeded, payload invalid, session taken over).
	Protocol string

	// TLS, when non-nil, connects with TLS 1.2 or newer.
	TLS *TLSConfig

	// QoS for telemetry, attributes and requests: 0 or 1 (default 1).
	// ThingsBoard does not implement QoS 2. Set QoS0 to use QoS 0, since the
	// zero value means the default.
	QoS  byte
	QoS0 bool

	// ServerTimestamps leaves telemetry records that carry no timestamp
	// for the server to stamp on arrival. By default the client stamps
	// them when they are accepted (strictly increasing per device): a
	// record sent from the outbox after an outage keeps the time it was
	// measured, and two records of one key never share a millisecond
	// (ThingsBoard would keep only the last).
	ServerTimestamps bool

	// MaxStringValueLength, when set, is the server's
	// transport.json.max_string_value_length (0, no limit, by default on
	// ThingsBoard): telemetry or attributes holding a longer string value
	// fail at once with ErrInvalidPayload instead of being refused by the
	// server (MQTT 3.1.1: the connection closed on them).
	MaxStringValueLength int

	// TelemetryTopic and AttributesTopic replace v1/devices/me/telemetry
	// and v1/devices/me/attributes for a device profile with custom MQTT
	// topic filters (ThingsBoard then treats the default topics as
	// unknown and drops their data).
	TelemetryTopic  string
	AttributesTopic string

	// Outbox holds QoS 1 telemetry and attributes until the server
	// acknowledged them.
	Outbox OutboxConfig

	// KeepAlive between pings (default 30 s; ThingsBoard expires a session
	// after 10 minutes without traffic).
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt (default 10 s).
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to the connection (default 10 s).
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection
	// attempts (defaults 500 ms and 30 s); each wait is jittered.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// TakeoverBackoff is the wait before reconnecting after the server
	// said another connection took this device's session over (MQTT 5
	// DISCONNECT 0x8E), so that two processes on one token do not evict
	// each other in a loop (default 1 min; jittered).
	TakeoverBackoff time.Duration

	// RequestTimeout applies to attribute requests, OTA chunk requests
	// and claims whose context has no deadline (default 30 s).
	RequestTimeout time.Duration
	// CallTimeout applies to client-side RPCs whose context has no
	// deadline (default 60 s, ThingsBoard's client_side_rpc.timeout).
	CallTimeout time.Duration
	// RPCHandlerTimeout bounds one server-side RPC handler call; its context
	// ends then (default 30 s).
	RPCHandlerTimeout time.Duration
	// SlowHandler is how long a handler may run before it is reported as
	// slow (default 5 s).
	SlowHandler time.Duration

	// MaxInflight bounds the QoS 1 messages sent and not yet acknowledged
	// (default 100, lowered to the server's maxInflightMessages).
	MaxInflight int
	// SkipSessionLimits turns off asking the server for getSessionLimits
	// after each connect (default false: the answer is honoured). Set it
	// for brokers that are not ThingsBoard and have nobody to answer.
	SkipSessionLimits bool

	// Logger receives the client's logs (default: discarded).
	Logger *slog.Logger
	// OnStatus, when set, is called (from a goroutine of the client, never
	// concurrently) on every change of connection status.
	OnStatus func(Status)
	// OnError, when set, receives problems the client recovered from: a
	// handler that panicked, a malformed message from the server.
	OnError func(error)
}

// TLSConfig selects TLS and its files. Paths are PEM files.
type TLSConfig struct {
	CAFile   string // trusted CAs; empty = the system pool
	CertFile string // client certificate for X.509 authentication
	KeyFile  string
	// ServerName overrides the name checked in the server certificate
	// (default: Host).
	ServerName string
	// InsecureSkipVerify disables server certificate verification. Only for
	// tests and lab set-ups: it must be asked for explicitly.
	InsecureSkipVerify bool
	// Config, when set, is used as the base instead of an empty tls.Config.
	Config *tls.Config
}

// DefaultOutboxMaxBytes is the outbox's default bound: 32 MiB, which keeps
// a 1M-record burst against an unreachable server under 100 MB of RSS.
const DefaultOutboxMaxBytes = 32 << 20

// outboxEntryOverhead is charged per outbox entry besides its topic and
// payload: the outbox's index slot, the Ack with its channel and its map
// entry, measured at about 250 bytes (TestOutboxChargesWhatEntriesHold).
const outboxEntryOverhead = 256

// OutboxConfig configures the durable outbox of QoS 1 publishes.
type OutboxConfig struct {
	// Path of the outbox file. Empty keeps the outbox in memory: messages
	// survive reconnects but not a restart of the process.
	Path string
	// MaxBytes bounds the memory the stored messages hold (default
	// DefaultOutboxMaxBytes): each message is charged its topic and payload
	// plus what the client keeps for it (about 256 bytes), so a burst of
	// small messages cannot hold several times the bound. The Go heap may
	// grow to about twice what is live (GOGC); set GOMEMLIMIT, or use
	// tbflow, which sets a soft limit from its connections' bounds, to keep
	// the process near the bound. A file outbox also keeps its messages in
	// memory.
	MaxBytes int64
	// Full says what a publish does when the outbox is full: OutboxBlock
	// (default) waits for room until its context ends and then fails with
	// ErrOutboxFull; OutboxReject fails at once; OutboxDropOldest evicts the
	// oldest messages (their Acks fail with ErrDropped).
	Full OutboxFullPolicy
	// NoSync skips fsync after each write: the outbox still survives a crash
	// of the process, but not a power loss. Default false.
	NoSync bool
}

// OutboxFullPolicy is what a publish does when the outbox is full.
type OutboxFullPolicy int

// Outbox policies; see OutboxConfig.Full.
const (
	OutboxBlock OutboxFullPolicy = iota
	OutboxReject
	OutboxDropOldest
)

// ParseOutboxFullPolicy reads "block", "reject" or "drop-oldest".
func ParseOutboxFullPolicy(s string) (OutboxFullPolicy, error) {
	switch s {
	case "", "block":
		return OutboxBlock, nil
	case "reject":
		return OutboxReject, nil
	case "drop-oldest":
		return OutboxDropOldest, nil
	}
	return 0, fmt.Errorf("unknown outbox policy %q (want block, reject or drop-oldest)", s)
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Host == "" {
		return cfg, errors.New("tb: config: host is required")
	}
	if cfg.Port == 0 {
		cfg.Port = 1883
		if cfg.TLS != nil {
			cfg.Port = 8883
		}
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("tb: config: port %d out of range", cfg.Port)
	}
	switch cfg.Protocol {
	case "", "5", "v5", "5.0":
		cfg.Protocol = ProtocolMQTT5
	case "3.1.1", "3", "4", "v3.1.1":
		cfg.Protocol = ProtocolMQTT311
	default:
		return cfg, fmt.Errorf("tb: config: protocol %q not supported (want %q or %q)", cfg.Protocol, ProtocolMQTT5, ProtocolMQTT311)
	}
	switch {
	case cfg.QoS0:
		cfg.QoS = 0
	case cfg.QoS == 0:
		cfg.QoS = 1
	case cfg.QoS == 1:
	default:
		return cfg, fmt.Errorf("tb: config: qos %d not supported (ThingsBoard accepts 0 and 1)", cfg.QoS)
	}
	if cfg.AccessToken == "" && cfg.ClientID == "" && cfg.Username == "" && (cfg.TLS == nil || cfg.TLS.CertFile == "") {
		return cfg, errors.New("tb: config: no credentials: set AccessToken, MQTT basic credentials or a TLS client certificate")
	}
	if cfg.TelemetryTopic == "" {
		cfg.TelemetryTopic = topicTelemetry
	}
	if cfg.AttributesTopic == "" {
		cfg.AttributesTopic = topicAttributes
	}
	for _, t := range []string{cfg.TelemetryTopic, cfg.AttributesTopic} {
		if strings.ContainsAny(t, "+#") || strings.HasPrefix(t, "v1/gateway/") {
			return cfg, fmt.Errorf("tb: config: custom topic %q: a topic name has no wildcards and is not a gateway topic", t)
		}
	}
	if cfg.AccessToken != "" && cfg.Username != "" {
		return cfg, errors.New("tb: config: set AccessToken or Username, not both")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.KeepAlive, 30*time.Second)
	def(&cfg.ConnectTimeout, 10*time.Second)
	def(&cfg.WriteTimeout, 10*time.Second)
	def(&cfg.ReconnectMin, 500*time.Millisecond)
	def(&cfg.ReconnectMax, 30*time.Second)
	def(&cfg.TakeoverBackoff, time.Minute)
	def(&cfg.RequestTimeout, 30*time.Second)
	def(&cfg.CallTimeout, 60*time.Second)
	def(&cfg.RPCHandlerTimeout, 30*time.Second)
	def(&cfg.SlowHandler, 5*time.Second)
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 100
	}
	if cfg.Outbox.MaxBytes <= 0 {
		cfg.Outbox.MaxBytes = DefaultOutboxMaxBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func (c *Config) brokerURL() string {
	scheme := "tcp"
	if c.TLS != nil {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// tlsConfig builds the crypto/tls configuration: TLS 1.2 or newer, the CA
// file as the root pool, the client key pair for X.509 authentication.
func (t *TLSConfig) tlsConfig(host string) (*tls.Config, error) {
	var cfg *tls.Config
	if t.Config != nil {
		cfg = t.Config.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tb: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tb: CA file %q holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("tb: TLS client certificate needs both CertFile and KeyFile")
		}
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tb: loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if len(cfg.Certificates) > 0 && cfg.GetClientCertificate == nil {
		// crypto/tls offers a certificate only when its issuer is on the
		// server's CA list; ThingsBoard lists its keystore's CAs, which
		// never hold a self-signed device certificate's issuer. Offer the
		// configured chain whatever the list says, as other MQTT clients do.
		chain := cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &chain, nil
		}
	}
	cfg.ServerName = t.ServerName
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.InsecureSkipVerify = t.InsecureSkipVerify
	return cfg, nil
}

// Status is the connection state reported to Config.OnStatus.
type Status struct {
	State  State
	Queued int // messages in the outbox not yet acknowledged
	// DeadLetters is the number of messages the server will never take,
	// moved out of the outbox (see Device.DeadLetters).
	DeadLetters int
	// LastDeadLetter is the most recent dead letter of this run (a
	// *DeadLetterError), nil when none.
	LastDeadLetter error
	Err            error // the last connection error, if any
}

// State of the connection.
type State int

// Connection states.
const (
	StateConnecting State = iota
	StateConnected
	StateOffline
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateOffline:
		return "offline"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}
