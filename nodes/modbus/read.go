package modbus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-read", Category: category, Inputs: 1, Outputs: 1, OutputLabels: []string{"values"},
		Label: "modbus read", Color: color, Icon: "modbus",
		Summary: "Reads a unit's mapped registers when a message arrives (an RPC, say) and passes the message on with the decoded values.",
		Help: `Reads on demand, ahead of any waiting poll: each message reads rows of **registers** from **unit** over the
**connection** and goes on with ` + "`msg.payload`" + ` = an object of key → decoded value (other fields such as ` + "`msg.rpc`" + ` are
kept, so it can go straight to ` + "`tb-rpc-out`" + `: an RPC ` + "`{\"method\": \"voltage\"}`" + ` is answered with ` + "`{\"voltage\": 230.1}`" + `).
Which rows: **key** when set; otherwise the row named by ` + "`msg.topic`" + ` (the RPC method for messages from ` + "`tb-rpc-in`" + `); a
` + "`msg.payload`" + ` that is a list of keys (or ` + "`{\"keys\": [...]}`" + `) names several; anything else reads every row.
A unit that does not answer, or a row refused with a Modbus exception, is an error for ` + "`catch`" + ` nodes. While the link
cannot be opened the engine retries the message.
Status: ` + "`connected`" + ` after a read, or the error (red).`,
		Fields: []engine.Field{
			{Name: "connection", Label: "Connection", Kind: engine.KindConfigRef, Ref: "modbus-connection", Required: true, Help: "The Modbus link to use."},
			{Name: "unit", Label: "Unit id", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(255), Help: "Unit id (slave address) of the device."},
			registersField("The rows that can be read.", []any{
				map[string]any{"key": "value", "function": "holding", "address": 0.0, "type": "uint16"},
			}, false),
			{Name: "key", Label: "Fixed key", Kind: engine.KindString, Default: "", Help: "Always read this row; empty takes msg.topic or msg.payload as described above."},
		},
		New: engine.Construct(newRead),
	})
}

type readConfig struct {
	Connection string        `json:"connection"`
	Unit       int           `json:"unit"`
	Registers  []registerRow `json:"registers"`
	Key        string        `json:"key"`
}

// Validate checks the register map and the fixed key.
func (c *readConfig) Validate() error {
	regs, _, err := toRegisters(polledRows(c.Registers), rowDefaults{})
	if err != nil {
		return err
	}
	return checkFixedKey(regs, c.Key)
}

type readNode struct {
	linkStatus
	conf *readConfig
	regs []modbus.Register
	by   map[string]int
}

func newRead(nc *engine.NodeContext, c *readConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	regs, _, _ := toRegisters(polledRows(c.Registers), conn.conf.defaults())
	n := &readNode{linkStatus: linkStatus{nc: nc, conn: conn}, conf: c, regs: regs, by: map[string]int{}}
	for i, r := range regs {
		n.by[r.Key] = i
	}
	return n, nil
}

// rows picks the rows a message reads.
func (n *readNode) rows(m *engine.Msg) ([]modbus.Register, error) {
	pick := func(keys []string) ([]modbus.Register, error) {
		var out []modbus.Register
		var missing []string
		for _, k := range keys {
			if i, ok := n.by[k]; ok {
				out = append(out, n.regs[i])
			} else {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return nil, fmt.Errorf("no register row has the key(s) %q", missing)
		}
		return out, nil
	}
	if n.conf.Key != "" {
		return pick([]string{n.conf.Key})
	}
	if _, ok := n.by[m.Topic]; ok {
		return pick([]string{m.Topic})
	}
	var list []any
	switch p := m.Payload.(type) {
	case []any:
		list = p
	case map[string]any:
		list, _ = p["keys"].([]any)
	}
	if len(list) > 0 {
		keys := make([]string, 0, len(list))
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("a list of keys holds only strings")
			}
			keys = append(keys, s)
		}
		return pick(keys)
	}
	return n.regs, nil
}

// Handle reads the rows and passes the message on with their values.
func (n *readNode) Handle(ctx context.Context, m *engine.Msg) error {
	regs, err := n.rows(m)
	if err != nil {
		return fmt.Errorf("modbus-read: %w", err)
	}
	bus, err := n.conn.Bus()
	if err != nil {
		return err
	}
	res, err := bus.Read(ctx, uint8(n.conf.Unit), regs)
	if err != nil {
		err = linkError(err)
		if !errors.Is(err, engine.ErrNotConnected) {
			n.nc.ShowStatus(engine.StatusError(err))
		}
		return fmt.Errorf("modbus-read unit %d: %w", n.conf.Unit, err)
	}
	if len(res.Errors) > 0 {
		var msgs []string
		for _, e := range res.Errors {
			msgs = append(msgs, e.Error())
		}
		sort.Strings(msgs)
		err := fmt.Errorf("modbus-read unit %d: %s", n.conf.Unit, strings.Join(msgs, "; "))
		n.nc.ShowStatus(engine.StatusError(err))
		return err
	}
	n.nc.ShowStatus(engine.StatusConnected)
	m.Payload = res.Values
	m.Set("ts", res.Time.UnixMilli())
	return n.nc.Send(ctx, m)
}

var _ engine.Handler = (*readNode)(nil)
