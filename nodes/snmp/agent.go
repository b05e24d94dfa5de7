package snmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/engine"
)

const (
	category = "snmp"
	color    = "#c7b3e5"
)

var (
	authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
		"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
	}
	privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
		"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192, "AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
	}
)

func init() {
	v3 := map[string][]any{"version": {"v3"}}
	engine.Register(engine.Type{
		Name: "snmp-agent", Category: engine.CategoryConfig, ConfigNode: true,
		Label: "SNMP agent", Color: color, Icon: "snmp",
		Summary: "One SNMP agent (a UPS, PDU, switch…): address, version and credentials, shared by snmp-in nodes.",
		Help: `The SNMP agent at **host**:**port** (UDP) and how to talk to it. Every ` + "`snmp-in`" + ` node that uses it shares
its socket; requests go out one at a time.

- **version** ` + "`v1`" + ` or ` + "`v2c`" + `: the **community** string is the password (` + "`public`" + ` on many devices).
- **version** ` + "`v3`" + `: the user **username** with **securityLevel** ` + "`noAuthNoPriv`" + `, ` + "`authNoPriv`" + ` (messages signed with
  **authProtocol** and **authPassword**) or ` + "`authPriv`" + ` (also encrypted with **privProtocol** and **privPassword**).

A request that gets no answer within **timeout** is sent again **retries** times. After an error the socket is
opened afresh (and a v3 agent's engine discovered again) with the next request.`,
		Fields: []engine.Field{
			{Name: "host", Identity: true, Kind: engine.KindString, Label: "Host", Default: "127.0.0.1", Help: "Host name or IP address of the agent."},
			{Name: "port", Identity: true, Kind: engine.KindInt, Label: "Port", Default: 161, Min: engine.Float(1), Max: engine.Float(65535), Help: "UDP port of the agent; 161 is the standard."},
			{Name: "version", Kind: engine.KindEnum, Label: "Version", Default: "v2c", Enum: []string{"v1", "v2c", "v3"}, Help: "SNMP version: v1, v2c (64-bit counters, bulk requests) or v3 (users, authentication, encryption)."},
			{Name: "community", Kind: engine.KindSecret, Label: "Community", Default: "public", Help: "The community string (v1, v2c).", ShowIf: map[string][]any{"version": {"v1", "v2c"}}},
			{Name: "username", Kind: engine.KindString, Label: "User", Default: "", Help: "The v3 user name.", ShowIf: v3},
			{Name: "securityLevel", Kind: engine.KindEnum, Label: "Security level", Default: "authPriv", Enum: []string{"noAuthNoPriv", "authNoPriv", "authPriv"}, Help: "v3: no authentication, authentication only, or authentication and encryption.", ShowIf: v3},
			{Name: "authProtocol", Kind: engine.KindEnum, Label: "Authentication protocol", Default: "SHA", Enum: []string{"MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"}, Help: "v3: the hash that signs messages.", ShowIf: map[string][]any{"version": {"v3"}, "securityLevel": {"authNoPriv", "authPriv"}}},
			{Name: "authPassword", Kind: engine.KindSecret, Label: "Authentication password", Default: "", Help: "v3: the user's authentication passphrase (at least 8 characters).", ShowIf: map[string][]any{"version": {"v3"}, "securityLevel": {"authNoPriv", "authPriv"}}},
			{Name: "privProtocol", Kind: engine.KindEnum, Label: "Privacy protocol", Default: "AES", Enum: []string{"DES", "AES", "AES192", "AES256", "AES192C", "AES256C"}, Help: "v3: the cipher that encrypts messages (AES192C/AES256C: the Cisco variant).", ShowIf: map[string][]any{"version": {"v3"}, "securityLevel": {"authPriv"}}},
			{Name: "privPassword", Kind: engine.KindSecret, Label: "Privacy password", Default: "", Help: "v3: the user's privacy passphrase (at least 8 characters).", ShowIf: map[string][]any{"version": {"v3"}, "securityLevel": {"authPriv"}}},
			{Name: "contextName", Kind: engine.KindString, Label: "Context", Default: "", Help: "v3: the context name, for agents that serve several.", ShowIf: v3, Advanced: true},
			{Name: "timeout", Kind: engine.KindDuration, Label: "Timeout", Default: "2s", Min: engine.Float(0.01), Help: "How long to wait for each answer."},
			{Name: "retries", Kind: engine.KindInt, Label: "Retries", Default: 1, Min: engine.Float(0), Max: engine.Float(10), Help: "How often to send a request again that got no answer."},
			{Name: "maxRepetitions", Kind: engine.KindInt, Label: "Bulk size", Default: 25, Min: engine.Float(1), Max: engine.Float(200), Help: "Variables asked for per GETBULK request of a BULKWALK.", Advanced: true},
		},
		New: engine.Construct(newAgent),
	})
}

type agentConfig struct {
	Host           string          `json:"host"`
	Port           int             `json:"port"`
	Version        string          `json:"version"`
	Community      string          `json:"community"`
	Username       string          `json:"username"`
	SecurityLevel  string          `json:"securityLevel"`
	AuthProtocol   string          `json:"authProtocol"`
	AuthPassword   string          `json:"authPassword"`
	PrivProtocol   string          `json:"privProtocol"`
	PrivPassword   string          `json:"privPassword"`
	ContextName    string          `json:"contextName"`
	Timeout        engine.Duration `json:"timeout"`
	Retries        int             `json:"retries"`
	MaxRepetitions int             `json:"maxRepetitions"`
}

// Validate checks the v3 credentials.
func (c *agentConfig) Validate() error {
	if c.Host == "" {
		return &engine.FieldError{Field: "host", Message: "the agent's host is needed"}
	}
	if c.Version != "v3" {
		return nil
	}
	var errs []error
	if c.Username == "" {
		errs = append(errs, &engine.FieldError{Field: "username", Message: "SNMP v3 needs a user name"})
	}
	if c.SecurityLevel != "noAuthNoPriv" && len(c.AuthPassword) < 8 {
		errs = append(errs, &engine.FieldError{Field: "authPassword", Message: "the authentication password needs at least 8 characters"})
	}
	if c.SecurityLevel == "authPriv" && len(c.PrivPassword) < 8 {
		errs = append(errs, &engine.FieldError{Field: "privPassword", Message: "the privacy password needs at least 8 characters"})
	}
	return errors.Join(errs...)
}

// Agent is a running snmp-agent: a client made on demand, dropped after
// an error.
type Agent struct {
	nc   *engine.NodeContext
	conf *agentConfig

	mu  sync.Mutex // one request at a time
	cli *gosnmp.GoSNMP
}

func newAgent(nc *engine.NodeContext, c *agentConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Agent{nc: nc, conf: c}, nil
}

// Start does nothing: the socket opens with the first request.
func (a *Agent) Start(context.Context) error { return nil }

// Stop closes the socket.
func (a *Agent) Stop(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropLocked()
	return nil
}

// Addr is the agent's host:port, for status texts and logs.
func (a *Agent) Addr() string { return net.JoinHostPort(a.conf.Host, strconv.Itoa(a.conf.Port)) }

// Version is the configured SNMP version.
func (a *Agent) Version() string { return a.conf.Version }

func (a *Agent) dropLocked() {
	if a.cli != nil {
		_ = a.cli.Close()
		a.cli = nil
	}
}

// client returns the GoSNMP client, opening its socket when needed.
func (a *Agent) clientLocked(ctx context.Context) (*gosnmp.GoSNMP, error) {
	if a.cli != nil {
		a.cli.Context = ctx
		return a.cli, nil
	}
	c := a.conf
	g := &gosnmp.GoSNMP{
		Target: c.Host, Port: uint16(c.Port), Transport: "udp", Community: c.Community,
		Timeout: c.Timeout.D(), Retries: c.Retries, MaxOids: gosnmp.MaxOids, MaxRepetitions: uint32(c.MaxRepetitions),
		Context: ctx,
	}
	switch c.Version {
	case "v1":
		g.Version = gosnmp.Version1
	case "v3":
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		g.ContextName = c.ContextName
		usm := &gosnmp.UsmSecurityParameters{UserName: c.Username}
		switch c.SecurityLevel {
		case "noAuthNoPriv":
			g.MsgFlags = gosnmp.NoAuthNoPriv
		case "authNoPriv":
			g.MsgFlags = gosnmp.AuthNoPriv
			usm.AuthenticationProtocol, usm.AuthenticationPassphrase = authProtocols[c.AuthProtocol], c.AuthPassword
		default:
			g.MsgFlags = gosnmp.AuthPriv
			usm.AuthenticationProtocol, usm.AuthenticationPassphrase = authProtocols[c.AuthProtocol], c.AuthPassword
			usm.PrivacyProtocol, usm.PrivacyPassphrase = privProtocols[c.PrivProtocol], c.PrivPassword
		}
		g.SecurityParameters = usm
	default:
		g.Version = gosnmp.Version2c
	}
	if err := g.Connect(); err != nil {
		return nil, err
	}
	a.cli = g
	return g, nil
}

// Do runs fn with the agent's client, one call at a time. An error drops
// the client, so that the next call starts afresh.
func (a *Agent) Do(ctx context.Context, fn func(*gosnmp.GoSNMP) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	g, err := a.clientLocked(ctx)
	if err != nil {
		return fmt.Errorf("snmp %s: %w", a.Addr(), err)
	}
	start := time.Now()
	err = fn(g)
	if err != nil {
		a.dropLocked()
		if ctx.Err() == nil {
			a.nc.Logger().Debug("snmp request failed", "agent", a.Addr(), "err", err, "after", time.Since(start))
		}
	}
	return err
}

var _ engine.Node = (*Agent)(nil)
