package snmp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/engine"
)

// The fields of snmp-trap-in for SNMP v3.
func trapV3Fields() []engine.Field {
	v3 := map[string][]any{"version": {"v3"}}
	auth := map[string][]any{"version": {"v3"}, "securityLevel": {"authNoPriv", "authPriv"}}
	priv := map[string][]any{"version": {"v3"}, "securityLevel": {"authPriv"}}
	return []engine.Field{
		{Name: "username", Kind: engine.KindString, Label: "User", Default: "", Help: "v3: the user name the senders use.", ShowIf: v3, Example: "trapuser"},
		{Name: "securityLevel", Kind: engine.KindEnum, Label: "Security level", Default: "authPriv", Enum: []string{"noAuthNoPriv", "authNoPriv", "authPriv"}, Help: "v3: the least protection a notification must have: none, authentication, or authentication and encryption. Weaker ones are dropped.", ShowIf: v3},
		{Name: "authProtocol", Kind: engine.KindEnum, Label: "Authentication protocol", Default: "SHA", Enum: []string{"MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"}, Help: "v3: the hash the senders sign notifications with.", ShowIf: auth},
		{Name: "authPassword", Kind: engine.KindSecret, Label: "Authentication password", Default: "", Help: "v3: the user's authentication passphrase (at least 8 characters).", ShowIf: auth},
		{Name: "privProtocol", Kind: engine.KindEnum, Label: "Privacy protocol", Default: "AES", Enum: trapPrivProtocols, Help: "v3: the cipher the senders encrypt notifications with (AES192 and AES256 with net-snmp's key extension).", ShowIf: priv},
		{Name: "privPassword", Kind: engine.KindSecret, Label: "Privacy password", Default: "", Help: "v3: the user's privacy passphrase (at least 8 characters).", ShowIf: priv},
		{Name: "senderEngineID", Kind: engine.KindString, Label: "Sender engine ID", Default: "", Help: "v3: accept traps only from the sender with this engine ID (hex, the sender's `-e`); empty accepts any sender whose traps authenticate.", ShowIf: v3, Advanced: true, Example: "8000000001020304"},
		{Name: "engineID", Kind: engine.KindString, Label: "Own engine ID", Default: "", Help: "v3: this receiver's engine ID (hex), which senders of informs discover and sign with; empty derives a fixed one from the node's id.", ShowIf: v3, Advanced: true, Example: "80001f8880aabbccdd"},
	}
}

// validate checks the v3 credentials and engine IDs.
func (c *trapConfig) validateV3() []error {
	var errs []error
	if c.Username == "" {
		errs = append(errs, &engine.FieldError{Field: "username", Message: "SNMP v3 needs a user name"})
	}
	if _, ok := levels[c.SecurityLevel]; !ok {
		errs = append(errs, &engine.FieldError{Field: "securityLevel", Message: fmt.Sprintf("%q is not a security level", c.SecurityLevel)})
	}
	if c.SecurityLevel != "noAuthNoPriv" {
		if _, ok := authProtocols[c.AuthProtocol]; !ok {
			errs = append(errs, &engine.FieldError{Field: "authProtocol", Message: fmt.Sprintf("%q is not an authentication protocol", c.AuthProtocol)})
		}
		if len(c.AuthPassword) < 8 {
			errs = append(errs, &engine.FieldError{Field: "authPassword", Message: "the authentication password needs at least 8 characters"})
		}
	}
	if c.SecurityLevel == "authPriv" {
		if !slices.Contains(trapPrivProtocols, c.PrivProtocol) {
			errs = append(errs, &engine.FieldError{Field: "privProtocol", Message: fmt.Sprintf("%q is not a privacy protocol", c.PrivProtocol)})
		}
		if len(c.PrivPassword) < 8 {
			errs = append(errs, &engine.FieldError{Field: "privPassword", Message: "the privacy password needs at least 8 characters"})
		}
	}
	for _, f := range []struct{ name, val string }{{"senderEngineID", c.SenderEngineID}, {"engineID", c.EngineID}} {
		if f.val == "" {
			continue
		}
		if _, err := parseEngineID(f.val); err != nil {
			errs = append(errs, &engine.FieldError{Field: f.name, Message: err.Error()})
		}
	}
	return errs
}

// trapPrivProtocols are the ciphers of notifications. Not the Cisco
// variants (AES192C, AES256C): gosnmp keeps their keys for every engine ID
// it sees, and any sender picks the engine ID of a trap.
var trapPrivProtocols = []string{"DES", "AES", "AES192", "AES256"}

var levels = map[string]gosnmp.SnmpV3MsgFlags{"noAuthNoPriv": gosnmp.NoAuthNoPriv, "authNoPriv": gosnmp.AuthNoPriv, "authPriv": gosnmp.AuthPriv}

// parseEngineID reads an engine ID written in hex (with an optional 0x
// and ':' or ' ' between bytes): 5 to 32 octets (RFC 3411).
func parseEngineID(s string) (string, error) {
	h := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", fmt.Errorf("%q is not hexadecimal", s)
	}
	if len(b) < 5 || len(b) > 32 {
		return "", fmt.Errorf("an engine ID has 5 to 32 octets, not %d", len(b))
	}
	return string(b), nil
}

// localEngineID is the receiver's own engine ID: the configured one, or
// one derived from the node's id (RFC 3411 format 5, octets, under the
// private enterprise number 0), stable across restarts.
func (n *trapNode) localEngineID() string {
	if n.conf.EngineID != "" {
		id, _ := parseEngineID(n.conf.EngineID)
		return id
	}
	sum := sha256.Sum256([]byte("tbflow snmp-trap-in " + n.nc.ID()))
	return string(append([]byte{0x80, 0, 0, 0, 5}, sum[:12]...))
}

// v3Params are the listener's parameters for SNMP v3: the one user.
func (n *trapNode) v3Params(p *gosnmp.GoSNMP) {
	c := n.conf
	usm := &gosnmp.UsmSecurityParameters{UserName: c.Username, AuthoritativeEngineID: n.localEngineID(), Logger: p.Logger}
	if c.SecurityLevel != "noAuthNoPriv" {
		usm.AuthenticationProtocol, usm.AuthenticationPassphrase = authProtocols[c.AuthProtocol], c.AuthPassword
	}
	if c.SecurityLevel == "authPriv" {
		usm.PrivacyProtocol, usm.PrivacyPassphrase = privProtocols[c.PrivProtocol], c.PrivPassword
	}
	p.Version = gosnmp.Version3
	p.SecurityModel = gosnmp.UserSecurityModel
	p.MsgFlags = levels[c.SecurityLevel]
	p.SecurityParameters = usm
}

// acceptV3 reports why a notification that reached the node must be
// dropped with version v3 ("" when it is accepted): gosnmp has checked
// its signature and decrypted it with the user's keys, but not that it
// is v3, from the user, at least at the security level, or (traps) from
// the sender's engine.
func (n *trapNode) acceptV3(p *gosnmp.SnmpPacket) string {
	if p.Version != gosnmp.Version3 {
		return "version"
	}
	usm, ok := p.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if !ok || p.SecurityModel != gosnmp.UserSecurityModel || usm.UserName != n.conf.Username {
		return "auth"
	}
	want := levels[n.conf.SecurityLevel]
	if p.MsgFlags&gosnmp.AuthPriv&want != want {
		return "auth"
	}
	if n.conf.SenderEngineID != "" && p.PDUType == gosnmp.SNMPv2Trap {
		id, _ := parseEngineID(n.conf.SenderEngineID)
		if usm.AuthoritativeEngineID != id {
			return "engine"
		}
	}
	return ""
}

// v3Info adds a v3 notification's user, security level and engine IDs to
// msg.trap.
func v3Info(p *gosnmp.SnmpPacket, info map[string]any) {
	delete(info, "community")
	usm, ok := p.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if !ok {
		return
	}
	info["user"] = usm.UserName
	level := "noAuthNoPriv"
	switch {
	case p.MsgFlags&gosnmp.AuthPriv == gosnmp.AuthPriv:
		level = "authPriv"
	case p.MsgFlags&gosnmp.AuthNoPriv != 0:
		level = "authNoPriv"
	}
	info["securityLevel"] = level
	info["engineID"] = hex.EncodeToString([]byte(usm.AuthoritativeEngineID))
	info["contextEngineID"] = hex.EncodeToString([]byte(p.ContextEngineID))
	if p.ContextName != "" {
		info["contextName"] = p.ContextName
	}
}

// rejectLogger receives gosnmp's log lines and counts the messages the
// listener could not read: ones that fail authentication or decryption,
// come from an unknown user, or are malformed. The lines themselves are
// not kept (they carry nothing secret, but nothing useful either).
type rejectLogger struct{ rejected *atomic.Int64 }

func (l rejectLogger) Print(v ...any) { l.count(fmt.Sprint(v...)) }

func (l rejectLogger) Printf(format string, _ ...any) { l.count(format) }

func (l rejectLogger) count(s string) {
	if strings.HasPrefix(s, "TrapListener: error in UnmarshalTrap") {
		l.rejected.Add(1)
	}
}
