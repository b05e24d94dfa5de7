package snmp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "snmp-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "snmp in", Color: color, Icon: "snmp",
		Summary: "Polls an SNMP agent's OIDs with GET, WALK or BULKWALK and emits the values as one object per poll.",
		Help: `Every **period**, reads the **oids** from the **agent** and sends one message:

- ` + "`msg.payload`" + `: an object of key → value, e.g. ` + "`{\"upsBatteryCharge\": 100, \"upsOutputLoad\": 23, \"sysName\": \"ups-1\"}`" + `,
  ready for ` + "`tb-telemetry-out`" + ` (through a ` + "`gw-device`" + ` for a gateway);
- ` + "`msg.ts`" + `: the poll time in Unix milliseconds; ` + "`msg.topic`" + `: **topic**; ` + "`msg.device`" + `: **device** when set;
- ` + "`msg.snmp`" + `: ` + "`{agent, latencyMs}`" + ` and, when some rows failed (no such object, a walk refused), ` + "`errors`" + `:
  key → message. Those keys are missing from the payload.

**method** per row: ` + "`get`" + ` reads one variable (all get rows go in one request); ` + "`walk`" + ` (GETNEXT) and ` + "`bulkwalk`" + `
(GETBULK, v2c and v3 only) read a whole subtree, such as a column of ` + "`ifTable`" + `: each variable under the row's OID
becomes the key **key**.*suffix*, e.g. ` + "`ifInOctets.1`" + `, ` + "`ifInOctets.2`" + `.

**type** per row: ` + "`auto`" + ` makes INTEGER, Counter32, Gauge32, TimeTicks and Counter64 numbers (a Counter64 beyond 2^63
decimal text), OCTET STRING text (hex such as ` + "`00:1a:2b`" + ` when it is not printable), OBJECT IDENTIFIER and
IpAddress dotted text; ` + "`number`" + ` parses text as a number, ` + "`string`" + ` and ` + "`hex`" + ` force text, ` + "`bool`" + ` is true for a
non-zero number or ` + "`true`" + `/` + "`on`" + `/` + "`up`" + `.

When the agent does not answer, the node shows the error, reports it to ` + "`catch`" + ` nodes, sends nothing, and polls
again after a growing pause until it answers.

Status: ` + "`polling`" + ` (green), ` + "`polling, N of M values failing`" + ` (yellow) or the error (red).`,
		Fields: []engine.Field{
			{Name: "agent", Kind: engine.KindConfigRef, Label: "Agent", Ref: "snmp-agent", Required: true, Help: "The SNMP agent to poll."},
			{Name: "period", Kind: engine.KindDuration, Label: "Period", Default: "10s", Min: engine.Float(0.001), Help: "How often to poll."},
			{Name: "oids", Kind: engine.KindTable, Label: "OIDs", Min: engine.Float(1), Help: "The variables to read: one row per OID or subtree.",
				Default: []any{map[string]any{"key": "uptime", "oid": "1.3.6.1.2.1.1.3.0", "method": "get", "type": "auto"}},
				Fields: []engine.Field{
					{Name: "key", Kind: engine.KindString, Label: "Key", Required: true, Help: "Name of the value in the payload (the prefix of a walk's keys).", Example: "uptime"},
					{Name: "oid", Kind: engine.KindString, Label: "OID", Required: true, Help: "Numeric OID: of the variable for get (e.g. `1.3.6.1.2.1.1.3.0`), of the subtree for a walk (e.g. `1.3.6.1.2.1.2.2.1.10`).", Example: "1.3.6.1.2.1.1.3.0"},
					{Name: "method", Kind: engine.KindEnum, Label: "Method", Default: "get", Enum: []string{"get", "walk", "bulkwalk"}, Help: "get one variable, or walk a subtree (bulkwalk: fewer requests, v2c and v3)."},
					{Name: "type", Kind: engine.KindEnum, Label: "Type", Default: "auto", Enum: valueTypes, Help: "How to convert the value: auto by its SNMP type, or number, string, hex, bool."},
				}},
			{Name: "topic", Kind: engine.KindString, Label: "Topic", Default: "", Help: "msg.topic of the messages sent."},
			{Name: "device", Kind: engine.KindString, Label: "Device", Default: "", Help: "msg.device of the messages sent (a ThingsBoard device behind a gateway); empty leaves it unset.", Example: "UPS 1"},
		},
		OutputLabels: []string{"values"},
		New:          engine.Construct(newIn),
	})
}

// maxWalk bounds the variables one walk row reads.
var maxWalk = 10000

var errWalkTooLong = errors.New("walk too long")

type oidRow struct {
	Key    string `json:"key"`
	OID    string `json:"oid"`
	Method string `json:"method"`
	Type   string `json:"type"`
}

type inConfig struct {
	Agent  string          `json:"agent"`
	Period engine.Duration `json:"period"`
	OIDs   []oidRow        `json:"oids"`
	Topic  string          `json:"topic"`
	Device string          `json:"device"`
}

// Validate checks the OID table cell by cell.
func (c *inConfig) Validate() error {
	var errs []error
	seen := map[string]int{}
	for i, r := range c.OIDs {
		field := func(col string) string { return fmt.Sprintf("oids[%d].%s", i, col) }
		if r.Key == "" {
			errs = append(errs, &engine.FieldError{Field: field("key"), Message: "a key is needed"})
		} else if j, dup := seen[r.Key]; dup {
			errs = append(errs, &engine.FieldError{Field: field("key"), Message: fmt.Sprintf("the key %q is already used by row %d", r.Key, j)})
		} else {
			seen[r.Key] = i
		}
		if _, err := normOID(r.OID); err != nil {
			errs = append(errs, &engine.FieldError{Field: field("oid"), Message: err.Error()})
		}
	}
	return errors.Join(errs...)
}

type inNode struct {
	nc    *engine.NodeContext
	agent *Agent
	conf  *inConfig
	oids  []string // normalised, by row
	gets  []int    // rows read by GET
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	agent, err := engine.ConfigNodeAs[*Agent](nc, c.Agent)
	if err != nil {
		return nil, err
	}
	n := &inNode{nc: nc, agent: agent, conf: c}
	for i, r := range c.OIDs {
		if r.Method == "bulkwalk" && agent.Version() == "v1" {
			return nil, &engine.FieldError{Field: fmt.Sprintf("oids[%d].method", i), Message: "bulkwalk needs SNMP v2c or v3; the agent speaks v1: use walk"}
		}
		oid, _ := normOID(r.OID)
		n.oids = append(n.oids, oid)
		if r.Method == "get" || r.Method == "" {
			n.gets = append(n.gets, i)
		}
	}
	return n, nil
}

func (n *inNode) Start(context.Context) error { return nil }
func (n *inNode) Stop(context.Context) error  { return nil }

// Run polls every period until ctx ends. A poll the agent does not answer
// ends Run with the error; the engine calls it again after a growing
// pause.
func (n *inNode) Run(ctx context.Context) error {
	t := time.NewTicker(n.conf.Period.D())
	defer t.Stop()
	for {
		vals, errs, latency, err := n.poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			n.nc.ShowStatus(engine.StatusError(err))
			return fmt.Errorf("snmp-in %s: %w", n.agent.Addr(), err)
		}
		if len(errs) > 0 {
			n.nc.ShowStatus(engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("polling, %d of %d values failing", len(errs), len(n.conf.OIDs))})
		} else {
			n.nc.ShowStatus(engine.Status{Fill: "green", Shape: "dot", Text: "polling"})
		}
		if err := n.send(ctx, vals, errs, latency); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (n *inNode) send(ctx context.Context, vals, errs map[string]any, latency time.Duration) error {
	m := engine.NewMsg(vals)
	m.Topic = n.conf.Topic
	m.Set("ts", time.Now().UnixMilli())
	if n.conf.Device != "" {
		m.Set("device", n.conf.Device)
	}
	info := map[string]any{"agent": n.agent.Addr(), "latencyMs": float64(latency.Microseconds()) / 1000}
	if len(errs) > 0 {
		info["errors"] = errs
	}
	m.Set("snmp", info)
	return n.nc.Send(ctx, m)
}

// poll reads every row once. A transport error (no answer) fails the
// whole poll; a variable without a value fails its row.
func (n *inNode) poll(ctx context.Context) (vals, errs map[string]any, latency time.Duration, err error) {
	vals, errs = map[string]any{}, map[string]any{}
	start := time.Now()
	err = n.agent.Do(ctx, func(g *gosnmp.GoSNMP) error {
		if len(n.gets) > 0 {
			if err := n.get(g, vals, errs); err != nil {
				return err
			}
		}
		for i, r := range n.conf.OIDs {
			if r.Method != "walk" && r.Method != "bulkwalk" {
				continue
			}
			var pdus []gosnmp.SnmpPDU
			collect := func(p gosnmp.SnmpPDU) error {
				if len(pdus) >= maxWalk {
					return errWalkTooLong
				}
				pdus = append(pdus, p)
				return nil
			}
			var err error
			if r.Method == "bulkwalk" {
				err = g.BulkWalk(n.oids[i], collect)
			} else {
				err = g.Walk(n.oids[i], collect)
			}
			if errors.Is(err, errWalkTooLong) {
				errs[r.Key] = fmt.Sprintf("more than %d variables under %s: only the first %d are sent; narrow the OID", maxWalk, n.oids[i], maxWalk)
			} else if err != nil {
				return fmt.Errorf("walking %s (%s): %w", r.Key, n.oids[i], err)
			}
			if len(pdus) == 0 {
				errs[r.Key] = "nothing under " + n.oids[i]
			}
			for _, p := range pdus {
				key := r.Key + strings.TrimPrefix(p.Name, n.oids[i])
				if v, err := convert(p, r.Type); err != nil {
					errs[key] = err.Error()
				} else {
					vals[key] = v
				}
			}
		}
		return nil
	})
	return vals, errs, time.Since(start), err
}

// get reads the get rows, in as few requests as the agent takes.
func (n *inNode) get(g *gosnmp.GoSNMP, vals, errs map[string]any) error {
	for from := 0; from < len(n.gets); from += g.MaxOids {
		rows := n.gets[from:min(from+g.MaxOids, len(n.gets))]
		oids := make([]string, len(rows))
		for j, i := range rows {
			oids[j] = n.oids[i]
		}
		res, err := g.Get(oids)
		if err != nil {
			return err
		}
		if res.Error != gosnmp.NoError {
			// v1 fails the whole request for one missing variable: ask
			// for each alone to tell which.
			if len(rows) > 1 && res.Error == gosnmp.NoSuchName {
				for _, i := range rows {
					one, err := g.Get([]string{n.oids[i]})
					if err != nil {
						return err
					}
					n.take(i, one, vals, errs)
				}
				continue
			}
			for _, i := range rows {
				errs[n.conf.OIDs[i].Key] = fmt.Sprintf("the agent answered %s", res.Error)
			}
			continue
		}
		for j, i := range rows {
			if j < len(res.Variables) {
				n.store(i, res.Variables[j], vals, errs)
			}
		}
	}
	return nil
}

func (n *inNode) take(i int, res *gosnmp.SnmpPacket, vals, errs map[string]any) {
	if res.Error != gosnmp.NoError || len(res.Variables) == 0 {
		errs[n.conf.OIDs[i].Key] = fmt.Sprintf("the agent answered %s", res.Error)
		return
	}
	n.store(i, res.Variables[0], vals, errs)
}

func (n *inNode) store(i int, p gosnmp.SnmpPDU, vals, errs map[string]any) {
	key := n.conf.OIDs[i].Key
	v, err := convert(p, n.conf.OIDs[i].Type)
	if err != nil {
		errs[key] = err.Error()
		return
	}
	vals[key] = v
}

var _ engine.Runner = (*inNode)(nil)
