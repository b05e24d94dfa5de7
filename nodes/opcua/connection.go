package opcua

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
)

const (
	category = "opcua"
	color    = "#8fb6d8"
)

// Security policies by their short names.
var policies = map[string]string{
	"None":                  ua.SecurityPolicyURINone,
	"Basic128Rsa15":         ua.SecurityPolicyURIBasic128Rsa15,
	"Basic256":              ua.SecurityPolicyURIBasic256,
	"Basic256Sha256":        ua.SecurityPolicyURIBasic256Sha256,
	"Aes128_Sha256_RsaOaep": ua.SecurityPolicyURIAes128Sha256RsaOaep,
	"Aes256_Sha256_RsaPss":  ua.SecurityPolicyURIAes256Sha256RsaPss,
}

var modes = map[string]ua.MessageSecurityMode{
	"None":           ua.MessageSecurityModeNone,
	"Sign":           ua.MessageSecurityModeSign,
	"SignAndEncrypt": ua.MessageSecurityModeSignAndEncrypt,
}

func init() {
	engine.Register(engine.Type{
		Name: "opcua-connection", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "OPC UA connection", Color: color, Icon: "opcua",
		Summary: "A session with one OPC UA server, shared by opcua-in and opcua-write nodes.",
		Help: `One client session with the OPC UA server at **endpoint**, shared by every ` + "`opcua-in`" + ` and ` + "`opcua-write`" + `
node that uses it. The session opens with the first node that needs it.

- **Security**: **securityPolicy** and **securityMode** pick one of the endpoints the server offers
  (` + "`None`" + `, or e.g. ` + "`Basic256Sha256`" + ` with ` + "`Sign`" + ` / ` + "`SignAndEncrypt`" + `). A secure channel needs a client
  application certificate: **certFile** and **keyFile** (PEM or DER; the certificate's URI is the application
  URI), or, when both are empty, a self-signed one made at start. Servers usually have to be told to trust it.
- **Server trust**: with a secure channel, the server's certificate must be the one in **serverCertFile**, or
  **trustAnyServer** must be set explicitly.
- **Authentication**: ` + "`anonymous`" + `, ` + "`username`" + ` (**username** and **password**) or ` + "`certificate`" + ` (the user
  certificate **userCertFile** and its key **userKeyFile**).

When the server goes away, every node using the connection shows the error, and the engine opens the
session again with a growing pause (the nodes then subscribe again). The connection's own node shows no status.`,
		Fields: []engine.Field{
			{Name: "endpoint", Identity: true, Kind: engine.KindString, Label: "Endpoint", Required: true, Example: "opc.tcp://127.0.0.1:4840", Help: "The server's endpoint URL, `opc.tcp://host:port[/path]`."},
			{Name: "securityPolicy", Kind: engine.KindEnum, Label: "Security policy", Default: "None", Enum: []string{"None", "Basic128Rsa15", "Basic256", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"}, Help: "The message security policy; `None` sends everything in the clear."},
			{Name: "securityMode", Kind: engine.KindEnum, Label: "Security mode", Default: "None", Enum: []string{"None", "Sign", "SignAndEncrypt"}, Help: "`Sign` signs every message, `SignAndEncrypt` also encrypts it; `None` goes with the policy `None` only."},
			{Name: "certFile", Kind: engine.KindString, Label: "Client certificate", Default: "", Help: "Client application certificate file (PEM or DER) for a secure channel; empty with an empty key makes a self-signed one at start.", ShowIf: map[string][]any{"securityMode": {"Sign", "SignAndEncrypt"}}},
			{Name: "keyFile", Kind: engine.KindString, Label: "Client key", Default: "", Help: "The RSA private key of the client certificate (PEM).", ShowIf: map[string][]any{"securityMode": {"Sign", "SignAndEncrypt"}}},
			{Name: "serverCertFile", Identity: true, Kind: engine.KindString, Label: "Trusted server certificate", Default: "", Help: "The server certificate (PEM or DER) the server must present on a secure channel.", ShowIf: map[string][]any{"securityMode": {"Sign", "SignAndEncrypt"}}},
			{Name: "trustAnyServer", Kind: engine.KindBool, Label: "Trust any server certificate", Default: false, Help: "Accept whatever certificate the server presents on a secure channel (no protection against an impostor).", ShowIf: map[string][]any{"securityMode": {"Sign", "SignAndEncrypt"}}},
			{Name: "auth", Kind: engine.KindEnum, Label: "Authentication", Default: "anonymous", Enum: []string{"anonymous", "username", "certificate"}, Help: "How the session identifies its user."},
			{Name: "username", Kind: engine.KindString, Label: "User name", Default: "", Help: "User name for `username` authentication.", ShowIf: map[string][]any{"auth": {"username"}}},
			{Name: "password", Kind: engine.KindSecret, Label: "Password", Default: "", Help: "Password for `username` authentication.", ShowIf: map[string][]any{"auth": {"username"}}},
			{Name: "userCertFile", Kind: engine.KindString, Label: "User certificate", Default: "", Help: "User certificate file (PEM or DER) for `certificate` authentication.", ShowIf: map[string][]any{"auth": {"certificate"}}},
			{Name: "userKeyFile", Kind: engine.KindString, Label: "User key", Default: "", Help: "The RSA private key (PEM) of the user certificate.", ShowIf: map[string][]any{"auth": {"certificate"}}},
			{Name: "timeout", Kind: engine.KindDuration, Label: "Timeout", Default: "10s", Min: engine.Float(0.01), Help: "How long to wait for the connection and for each request."},
			{Name: "sessionTimeout", Kind: engine.KindDuration, Label: "Session timeout", Default: "1m", Min: engine.Float(1), Help: "How long the server keeps the session after the link breaks.", Advanced: true},
		},
		New: engine.Construct(newConnection),
	})
}

type connectionConfig struct {
	Endpoint       string          `json:"endpoint"`
	SecurityPolicy string          `json:"securityPolicy"`
	SecurityMode   string          `json:"securityMode"`
	CertFile       string          `json:"certFile"`
	KeyFile        string          `json:"keyFile"`
	ServerCertFile string          `json:"serverCertFile"`
	TrustAnyServer bool            `json:"trustAnyServer"`
	Auth           string          `json:"auth"`
	Username       string          `json:"username"`
	Password       string          `json:"password"`
	UserCertFile   string          `json:"userCertFile"`
	UserKeyFile    string          `json:"userKeyFile"`
	Timeout        engine.Duration `json:"timeout"`
	SessionTimeout engine.Duration `json:"sessionTimeout"`
}

func (c *connectionConfig) secure() bool { return c.SecurityMode != "None" }

// Validate checks what the spec cannot express.
func (c *connectionConfig) Validate() error {
	var errs []error
	fe := func(field, msg string) { errs = append(errs, &engine.FieldError{Field: field, Message: msg}) }
	if !strings.HasPrefix(c.Endpoint, "opc.tcp://") || len(c.Endpoint) == len("opc.tcp://") {
		fe("endpoint", fmt.Sprintf("%q is not an OPC UA endpoint: use opc.tcp://host:port", c.Endpoint))
	}
	if (c.SecurityPolicy == "None") != (c.SecurityMode == "None") {
		fe("securityMode", fmt.Sprintf("security mode %s does not go with the policy %s: None goes with None only", c.SecurityMode, c.SecurityPolicy))
	}
	if c.secure() {
		if (c.CertFile == "") != (c.KeyFile == "") {
			fe("keyFile", "a client certificate needs its key and a key its certificate")
		}
		if c.ServerCertFile == "" && !c.TrustAnyServer {
			fe("serverCertFile", "a secure channel needs the server's certificate to trust, or trustAnyServer set")
		}
	}
	switch c.Auth {
	case "username":
		if c.Username == "" {
			fe("username", "username authentication needs a user name")
		}
	case "certificate":
		if c.UserCertFile == "" {
			fe("userCertFile", "certificate authentication needs a user certificate")
		}
		if c.UserKeyFile == "" {
			fe("userKeyFile", "certificate authentication needs the user certificate's key")
		}
	}
	return errors.Join(errs...)
}

// Connection is a running opcua-connection: a client session opened on
// demand and dropped when the link breaks.
type Connection struct {
	nc   *engine.NodeContext
	conf *connectionConfig

	dialMu sync.Mutex // one dial at a time
	mu     sync.Mutex
	cli    *opcua.Client
	lost   chan struct{} // closed when cli's link is gone
	closed bool
}

func newConnection(nc *engine.NodeContext, c *connectionConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Connection{nc: nc, conf: c}, nil
}

// Start does nothing: the session opens with the first node that needs
// it, so that an absent server does not hold up the flow.
func (c *Connection) Start(context.Context) error {
	c.mu.Lock()
	c.closed = false
	c.mu.Unlock()
	return nil
}

// Stop closes the session.
func (c *Connection) Stop(ctx context.Context) error {
	c.mu.Lock()
	cli := c.cli
	c.closed = true
	c.dropLocked(cli)
	c.mu.Unlock()
	if cli != nil {
		_ = cli.Close(ctx)
	}
	return nil
}

// Endpoint returns the server's endpoint URL, for status texts and logs.
func (c *Connection) Endpoint() string { return c.conf.Endpoint }

// Timeout is the request timeout.
func (c *Connection) Timeout() time.Duration { return c.conf.Timeout.D() }

// Client returns the open session's client and a channel closed when its
// link breaks, opening the session first when there is none. Errors wrap
// engine.ErrNotConnected.
func (c *Connection) Client(ctx context.Context) (*opcua.Client, <-chan struct{}, error) {
	if cli, lost := c.current(); cli != nil {
		return cli, lost, nil
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if cli, lost := c.current(); cli != nil {
		return cli, lost, nil
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, fmt.Errorf("opcua %s: connection stopped: %w", c.conf.Endpoint, engine.ErrNotConnected)
	}
	ctx, cancel := context.WithTimeout(ctx, c.conf.Timeout.D())
	defer cancel()
	states := make(chan opcua.ConnState, 16)
	cli, err := dial(ctx, c.conf, states)
	if err != nil {
		return nil, nil, fmt.Errorf("opcua %s: %w: %w", c.conf.Endpoint, engine.ErrNotConnected, err)
	}
	lost := make(chan struct{})
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = cli.Close(context.Background())
		return nil, nil, fmt.Errorf("opcua %s: connection stopped: %w", c.conf.Endpoint, engine.ErrNotConnected)
	}
	c.cli, c.lost = cli, lost
	c.mu.Unlock()
	go c.watch(cli, states)
	c.nc.Logger().Info("opcua session open", "endpoint", c.conf.Endpoint)
	return cli, lost, nil
}

func (c *Connection) current() (*opcua.Client, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cli, c.lost
}

// watch drops the client when its link breaks. The library does not
// reconnect on its own (the engine's back-off does); its last state is
// Closed.
func (c *Connection) watch(cli *opcua.Client, states <-chan opcua.ConnState) {
	for s := range states {
		if s == opcua.Disconnected || s == opcua.Closed {
			c.Drop(cli)
		}
		if s == opcua.Closed {
			return
		}
	}
}

// Drop forgets cli (when it is the current client) and closes it, so that
// the next Client call opens a new session. Nodes call it after an error
// that shows the link is gone.
func (c *Connection) Drop(cli *opcua.Client) {
	c.mu.Lock()
	mine := cli != nil && c.cli == cli
	c.dropLocked(cli)
	c.mu.Unlock()
	if mine {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = cli.Close(ctx)
		}()
		c.nc.Logger().Warn("opcua session lost", "endpoint", c.conf.Endpoint)
	}
}

func (c *Connection) dropLocked(cli *opcua.Client) {
	if cli == nil || c.cli != cli {
		return
	}
	close(c.lost)
	c.cli, c.lost = nil, nil
}

// dial opens a session as conf says.
func dial(ctx context.Context, conf *connectionConfig, states chan opcua.ConnState) (*opcua.Client, error) {
	opts := []opcua.Option{
		opcua.AutoReconnect(false),
		opcua.StateChangedCh(states),
		opcua.RequestTimeout(conf.Timeout.D()),
		opcua.DialTimeout(conf.Timeout.D()),
		opcua.SessionTimeout(conf.SessionTimeout.D()),
		opcua.ApplicationName("tbflow"),
	}
	var auth ua.UserTokenType
	switch conf.Auth {
	case "username":
		auth = ua.UserTokenTypeUserName
		opts = append(opts, opcua.AuthUsername(conf.Username, conf.Password))
	case "certificate":
		auth = ua.UserTokenTypeCertificate
		cert, key, err := loadKeyPair(conf.UserCertFile, conf.UserKeyFile)
		if err != nil {
			return nil, fmt.Errorf("user certificate: %w", err)
		}
		opts = append(opts, opcua.AuthCertificate(cert), opcua.AuthPrivateKey(key))
	default:
		auth = ua.UserTokenTypeAnonymous
		opts = append(opts, opcua.AuthAnonymous())
	}
	if conf.secure() {
		var cert []byte
		var key *rsa.PrivateKey
		var err error
		if conf.CertFile != "" {
			cert, key, err = loadKeyPair(conf.CertFile, conf.KeyFile)
		} else {
			cert, key, err = selfSigned("urn:tbflow:client")
		}
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		opts = append(opts, opcua.Certificate(cert), opcua.PrivateKey(key))
	} else if conf.Auth == "certificate" {
		// The user token is signed with the application key too.
		cert, key, err := selfSigned("urn:tbflow:client")
		if err != nil {
			return nil, err
		}
		opts = append(opts, opcua.Certificate(cert), opcua.PrivateKey(key))
	}
	eps, err := opcua.GetEndpoints(ctx, conf.Endpoint, opcua.DialTimeout(conf.Timeout.D()), opcua.RequestTimeout(conf.Timeout.D()))
	if err != nil {
		return nil, fmt.Errorf("getting endpoints: %w", err)
	}
	ep, err := opcua.SelectEndpoint(eps, policies[conf.SecurityPolicy], modes[conf.SecurityMode])
	if err != nil || ep == nil {
		return nil, fmt.Errorf("the server offers no endpoint with policy %s and mode %s", conf.SecurityPolicy, conf.SecurityMode)
	}
	if conf.secure() && !conf.TrustAnyServer {
		want, err := loadCert(conf.ServerCertFile)
		if err != nil {
			return nil, fmt.Errorf("serverCertFile: %w", err)
		}
		if !bytes.Equal(want, firstCert(ep.ServerCertificate)) {
			return nil, errors.New("the server's certificate is not the trusted one in serverCertFile")
		}
	}
	opts = append(opts, opcua.SecurityFromEndpoint(ep, auth))
	cli, err := opcua.NewClient(conf.Endpoint, opts...)
	if err != nil {
		return nil, err
	}
	if err := cli.Connect(ctx); err != nil {
		_ = cli.Close(context.Background())
		return nil, err
	}
	return cli, nil
}

// firstCert returns the first DER certificate of a chain.
func firstCert(chain []byte) []byte {
	if cs, err := x509.ParseCertificates(chain); err == nil && len(cs) > 0 {
		return cs[0].Raw
	}
	return chain
}

// loadCert reads a PEM or DER certificate and returns its DER bytes.
func loadCert(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func loadKeyPair(certFile, keyFile string) ([]byte, *rsa.PrivateKey, error) {
	cert, err := loadCert(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})
	pair, err := tls.X509KeyPair(certPEM, kb)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: OPC UA needs an RSA key", keyFile)
	}
	return cert, key, nil
}

var _ engine.Node = (*Connection)(nil)
