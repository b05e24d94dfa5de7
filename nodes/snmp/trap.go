package snmp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/engine"
)

// Well-known OIDs of v2c notifications.
const (
	oidSysUpTime   = ".1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID = ".1.3.6.1.6.3.1.1.4.1.0"
)

func init() {
	engine.Register(engine.Type{
		Name: "snmp-trap-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "snmp trap in", Color: color, Icon: "snmp",
		Summary: "Receives SNMP v1, v2c and v3 traps and informs on a UDP port and emits each as a message.",
		Help: `Listens on **host**:**port** (UDP) for SNMP traps and informs (informs are acknowledged) and
sends one message per notification:

- ` + "`msg.payload`" + `: an object of the notification's variables: key → value, with the keys of **oids** for the
  variables they name (a row's OID also matches the variables under it, which get **key**.*suffix*) and, with
  **unmapped**, the others under their dotted OID. Values convert like ` + "`snmp-in`" + `'s with type ` + "`auto`" + `.
- ` + "`msg.topic`" + `: the notification's OID (v2c: ` + "`snmpTrapOID.0`" + `; v1: *enterprise*.0.*specific*, or the standard
  trap's OID for generic traps 0–5);
- ` + "`msg.trap`" + `: ` + "`{version, source, community, oid, uptime}`" + `, for v1 also ` + "`{enterprise, agentAddress, generic, specific}`" + `,
  for v3 ` + "`{user, securityLevel, engineID, contextEngineID}`" + ` instead of the community (engine IDs in hex);
- ` + "`msg.device`" + `: **device**, or with **deviceFrom** ` + "`source`" + ` the sender's IP address, so one ` + "`gw-device`" + `
  without a name files every sender's traps under its own device.

**version** ` + "`v1/v2c`" + `: v1 and v2c notifications; with **community** set, ones with another community are dropped
(and counted in the status).

**version** ` + "`v3`" + `: only v3 notifications from the user **username**, at least at **securityLevel**: ` + "`authNoPriv`" + ` checks
each one's signature (**authProtocol**, **authPassword**), ` + "`authPriv`" + ` also decrypts it (**privProtocol**,
**privPassword**). A trap is signed by its sender's engine, whatever its engine ID (the sender's ` + "`-e`" + `), unless
**senderEngineID** names the one to accept. A sender of informs first discovers this receiver's own engine ID
(**engineID**). Notifications that fail authentication or decryption are dropped, counted in the status and reported to
` + "`catch`" + ` (without their contents); ones from another user, with less protection, or in v1/v2c are dropped and counted.

Status: ` + "`listening`" + ` (green) with the number of traps received and dropped, or the error (red) when the port cannot be opened.`,
		Fields: append([]engine.Field{
			{Name: "host", Kind: engine.KindString, Label: "Listen address", Default: "0.0.0.0", Help: "The local address to listen on; 0.0.0.0 is every interface."},
			{Name: "port", Kind: engine.KindInt, Label: "Port", Default: 162, Min: engine.Float(1), Max: engine.Float(65535), Help: "UDP port to listen on; 162 is the standard (and needs privileges on most systems)."},
			{Name: "version", Kind: engine.KindEnum, Label: "Version", Default: "v1/v2c", Enum: []string{"v1/v2c", "v3"}, Help: "Which notifications to accept: v1 and v2c ones (checked by community), or v3 ones (checked by user, signature and encryption)."},
			{Name: "community", Kind: engine.KindSecret, Label: "Community", Default: "", Help: "Accept only notifications with this community; empty accepts any.", ShowIf: map[string][]any{"version": {"v1/v2c"}}},
		}, append(trapV3Fields(), []engine.Field{
			{Name: "oids", Kind: engine.KindTable, Label: "OIDs", Default: []any{}, Help: "Names for variables of the notifications: one row per OID (or subtree).",
				Fields: []engine.Field{
					{Name: "key", Kind: engine.KindString, Label: "Key", Required: true, Help: "Name of the value in the payload.", Example: "upsAlarmId"},
					{Name: "oid", Kind: engine.KindString, Label: "OID", Required: true, Help: "Numeric OID of the variable, or of a subtree.", Example: "1.3.6.1.2.1.33.1.6.2.1.2"},
				}},
			{Name: "unmapped", Kind: engine.KindBool, Label: "Keep unmapped", Default: true, Help: "Put variables that no row names into the payload under their dotted OID."},
			{Name: "deviceFrom", Kind: engine.KindEnum, Label: "Device from", Default: "fixed", Enum: []string{"fixed", "source"}, Help: "msg.device: the fixed **device**, or the sender's IP address."},
			{Name: "device", Kind: engine.KindString, Label: "Device", Default: "", Help: "msg.device of the messages sent; empty leaves it unset.", ShowIf: map[string][]any{"deviceFrom": {"fixed"}}, Example: "UPS 1"},
		}...)...),
		OutputLabels: []string{"traps"},
		New:          engine.Construct(newTrapIn),
	})
}

type trapRow struct {
	Key string `json:"key"`
	OID string `json:"oid"`
}

type trapConfig struct {
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Version   string `json:"version"`
	Community string `json:"community"`
	// v3
	Username       string    `json:"username"`
	SecurityLevel  string    `json:"securityLevel"`
	AuthProtocol   string    `json:"authProtocol"`
	AuthPassword   string    `json:"authPassword"`
	PrivProtocol   string    `json:"privProtocol"`
	PrivPassword   string    `json:"privPassword"`
	SenderEngineID string    `json:"senderEngineID"`
	EngineID       string    `json:"engineID"`
	OIDs           []trapRow `json:"oids"`
	Unmapped       bool      `json:"unmapped"`
	DeviceFrom     string    `json:"deviceFrom"`
	Device         string    `json:"device"`
}

// Validate checks the listen address and the OID table.
func (c *trapConfig) Validate() error {
	var errs []error
	if c.Host != "" && net.ParseIP(c.Host) == nil {
		errs = append(errs, &engine.FieldError{Field: "host", Message: fmt.Sprintf("%q is not an IP address", c.Host)})
	}
	switch c.Version {
	case "", "v1/v2c":
	case "v3":
		errs = append(errs, c.validateV3()...)
	default:
		errs = append(errs, &engine.FieldError{Field: "version", Message: fmt.Sprintf("%q is not v1/v2c or v3", c.Version)})
	}
	seen := map[string]int{}
	for i, r := range c.OIDs {
		if r.Key == "" {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("oids[%d].key", i), Message: "a key is needed"})
		} else if j, dup := seen[r.Key]; dup {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("oids[%d].key", i), Message: fmt.Sprintf("the key %q is already used by row %d", r.Key, j)})
		} else {
			seen[r.Key] = i
		}
		if _, err := normOID(r.OID); err != nil {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("oids[%d].oid", i), Message: err.Error()})
		}
	}
	return errors.Join(errs...)
}

type trapNode struct {
	nc   *engine.NodeContext
	conf *trapConfig
	oids []string

	mu       sync.Mutex
	tl       *gosnmp.TrapListener
	done     chan struct{}
	traps    chan *engine.Msg
	received int
	dropped  int          // another community
	refused  int          // v3: another user, version, level or engine
	rejected atomic.Int64 // v3: failed authentication, decryption or parsing
	reported int64
	status   string
}

func newTrapIn(nc *engine.NodeContext, c *trapConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := &trapNode{nc: nc, conf: c}
	for _, r := range c.OIDs {
		oid, _ := normOID(r.OID)
		n.oids = append(n.oids, oid)
	}
	return n, nil
}

func (n *trapNode) addr() string {
	host := n.conf.Host
	if host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, strconv.Itoa(n.conf.Port))
}

// Start opens the UDP port.
func (n *trapNode) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tl != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Fail here, with a clear error, when the port cannot be had.
	probe, err := net.ListenPacket("udp", n.addr())
	if err != nil {
		return fmt.Errorf("snmp-trap-in: listening on %s: %w", n.addr(), err)
	}
	probe.Close()
	tl := gosnmp.NewTrapListener()
	tl.Params = &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(rejectLogger{&n.rejected}), Timeout: time.Second}
	if n.conf.Version == "v3" {
		n.v3Params(tl.Params)
	}
	tl.CloseTimeout = time.Second
	traps := make(chan *engine.Msg, 256)
	tl.OnNewTrap = func(p *gosnmp.SnmpPacket, from *net.UDPAddr) { n.onTrap(p, from, traps) }
	done := make(chan struct{})
	listenErr := make(chan error, 1)
	go func() {
		defer close(done)
		listenErr <- tl.Listen(n.addr())
	}()
	select {
	case <-tl.Listening():
	case err := <-listenErr:
		return fmt.Errorf("snmp-trap-in: listening on %s: %w", n.addr(), err)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("snmp-trap-in: listening on %s: timed out", n.addr())
	}
	n.tl, n.done, n.traps = tl, done, traps
	n.setStatusLocked(engine.Status{Fill: "green", Shape: "dot", Text: "listening"})
	return nil
}

// Stop closes the port.
func (n *trapNode) Stop(context.Context) error {
	n.mu.Lock()
	tl, done := n.tl, n.done
	n.tl = nil
	n.mu.Unlock()
	if tl != nil {
		tl.Close()
		<-done
	}
	return nil
}

func (n *trapNode) setStatusLocked(s engine.Status) {
	if s.Text == n.status {
		return
	}
	n.status = s.Text
	n.nc.Status(s)
}

// Run sends the received traps on.
func (n *trapNode) Run(ctx context.Context) error {
	n.mu.Lock()
	traps := n.traps
	n.mu.Unlock()
	if traps == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-traps:
			if err := n.nc.Send(ctx, m); err != nil {
				return nil
			}
		case <-tick.C:
			n.tick()
		}
	}
}

// tick shows the counts in the status and reports newly rejected v3
// messages to catch.
func (n *trapNode) tick() {
	n.mu.Lock()
	defer n.mu.Unlock()
	rejected := n.rejected.Load()
	text := fmt.Sprintf("listening, %d traps", n.received)
	if n.dropped > 0 {
		text += fmt.Sprintf(", %d with another community dropped", n.dropped)
	}
	if n.refused > 0 {
		text += fmt.Sprintf(", %d of another user, version or security level dropped", n.refused)
	}
	if rejected > 0 {
		text += fmt.Sprintf(", %d unreadable or failing authentication dropped", rejected)
	}
	if n.received > 0 || n.dropped > 0 || n.refused > 0 || rejected > 0 {
		n.setStatusLocked(engine.Status{Fill: "green", Shape: "dot", Text: text})
	}
	if rejected > n.reported {
		n.nc.Error(fmt.Errorf("snmp-trap-in: %d notifications failed authentication or decryption (or were malformed) and were dropped", rejected-n.reported), nil)
		n.reported = rejected
	}
}

// onTrap runs on the listener's goroutine: it never blocks; when the flow
// falls behind, traps are dropped (and counted by the engine as errors).
func (n *trapNode) onTrap(p *gosnmp.SnmpPacket, from *net.UDPAddr, out chan<- *engine.Msg) {
	if n.conf.Version == "v3" {
		if n.acceptV3(p) != "" {
			n.mu.Lock()
			n.refused++
			n.mu.Unlock()
			return
		}
	} else if p.Version == gosnmp.Version3 {
		n.mu.Lock()
		n.refused++
		n.mu.Unlock()
		return
	} else if n.conf.Community != "" && subtle.ConstantTimeCompare([]byte(p.Community), []byte(n.conf.Community)) != 1 {
		n.mu.Lock()
		n.dropped++
		n.mu.Unlock()
		return
	}
	m := n.message(p, from)
	n.mu.Lock()
	n.received++
	n.mu.Unlock()
	select {
	case out <- m:
	default:
		n.nc.Error(errors.New("snmp-trap-in: the flow is behind; a trap was dropped"), nil)
	}
}

func (n *trapNode) message(p *gosnmp.SnmpPacket, from *net.UDPAddr) *engine.Msg {
	vals := map[string]any{}
	info := map[string]any{"source": from.IP.String(), "community": p.Community}
	var trapOID string
	switch p.Version {
	case gosnmp.Version1:
		info["version"] = "v1"
		ent := strings.TrimPrefix(p.Enterprise, ".")
		info["enterprise"], info["agentAddress"] = ent, p.AgentAddress
		info["generic"], info["specific"] = int64(p.GenericTrap), int64(p.SpecificTrap)
		info["uptime"] = int64(p.Timestamp)
		if p.GenericTrap >= 0 && p.GenericTrap < 6 {
			trapOID = fmt.Sprintf("1.3.6.1.6.3.1.1.5.%d", p.GenericTrap+1)
		} else {
			trapOID = fmt.Sprintf("%s.0.%d", ent, p.SpecificTrap)
		}
	default:
		info["version"] = "v2c"
		if p.Version == gosnmp.Version3 {
			info["version"] = "v3"
			v3Info(p, info)
		}
	}
	for _, v := range p.Variables {
		switch v.Name {
		case oidSysUpTime:
			if u, ok := auto(v).(int64); ok {
				info["uptime"] = u
			}
			continue
		case oidSnmpTrapOID:
			trapOID = fmt.Sprint(auto(v))
			continue
		}
		key := n.keyOf(v.Name)
		if key == "" {
			continue
		}
		val, err := convert(v, "auto")
		if err != nil {
			val = err.Error()
		}
		vals[key] = val
	}
	info["oid"] = trapOID
	m := engine.NewMsg(vals)
	m.Topic = trapOID
	m.Set("ts", time.Now().UnixMilli())
	m.Set("trap", info)
	switch {
	case n.conf.DeviceFrom == "source":
		m.Set("device", from.IP.String())
	case n.conf.Device != "":
		m.Set("device", n.conf.Device)
	}
	return m
}

// keyOf names a variable: the key of the row whose OID it is (or is
// under, plus the suffix), else its dotted OID when unmapped ones are
// kept, else "".
func (n *trapNode) keyOf(oid string) string {
	for i, o := range n.oids {
		if oid == o {
			return n.conf.OIDs[i].Key
		}
		if strings.HasPrefix(oid, o+".") {
			return n.conf.OIDs[i].Key + strings.TrimPrefix(oid, o)
		}
	}
	if n.conf.Unmapped {
		return strings.TrimPrefix(oid, ".")
	}
	return ""
}

var _ engine.Runner = (*trapNode)(nil)
