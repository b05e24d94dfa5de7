package modbus

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-write", Category: category, Inputs: 1, Outputs: 1, OutputLabels: []string{"written"},
		Label: "modbus write", Color: color, Icon: "modbus",
		Summary: "Writes msg.payload to a mapped coil or holding register and passes the message on when the device confirmed it.",
		Help: `Writes to **unit** over the **connection**, encoding the value with the row of **registers** it names
(type, byte/word order, scale and offset reversed, labels, bit of a register by read-modify-write).

Which row: **key** when set; otherwise ` + "`msg.topic`" + ` — which is the RPC method for messages from ` + "`tb-rpc-in`" + `, so
an RPC ` + "`{\"method\": \"relay\", \"params\": true}`" + ` writes ` + "`true`" + ` to the row ` + "`relay`" + `. When neither names a row and
` + "`msg.payload`" + ` is an object, every property of it that names a row is written (` + "`{\"relay\": true, \"powerLimit\": 3000}`" + `),
in the order of the table.

Accepted values: numbers (or numeric text), ` + "`true`" + `/` + "`false`" + ` (also ` + "`\"on\"`" + `/` + "`\"off\"`" + ` and 1/0 for coils and bits),
label names, and text for string rows. Coils and holding registers only: discrete inputs and input registers
are read-only.

On success the message goes on with ` + "`msg.payload`" + ` = ` + "`{\"ok\": true, \"written\": {key: value, …}}`" + ` (other fields such
as ` + "`msg.rpc`" + ` are kept, so it can go straight to ` + "`tb-rpc-out`" + `). A Modbus exception (illegal address, illegal value,
device failure, …), a timeout or a bad value is an error for ` + "`catch`" + ` nodes, with the message attached. While the
link cannot be opened the engine retries the message.

Status: ` + "`connected`" + ` after a write, or the error (red); while the connection's link is down, the link error.`,
		Fields: []engine.Field{
			{Name: "connection", Label: "Connection", Kind: engine.KindConfigRef, Ref: "modbus-connection", Required: true, Help: "The Modbus link to use."},
			{Name: "unit", Label: "Unit id", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(255), Help: "Unit id (slave address) of the device."},
			registersField("The writable rows: coils and holding registers.", []any{
				map[string]any{"key": "value", "function": "holding", "address": 0.0, "type": "uint16"},
			}, false),
			{Name: "key", Label: "Fixed key", Kind: engine.KindString, Default: "", Help: "Always write this row; empty takes the row named by msg.topic, or the payload's properties."},
		},
		New: engine.Construct(newWrite),
	})
}

type writeConfig struct {
	Connection string        `json:"connection"`
	Unit       int           `json:"unit"`
	Registers  []registerRow `json:"registers"`
	Key        string        `json:"key"`
}

// Validate checks the register map and the fixed key.
func (c *writeConfig) Validate() error {
	regs, _, err := toRegisters(polledRows(c.Registers), rowDefaults{})
	if err != nil {
		return err
	}
	var errs []error
	for i, r := range regs {
		if !r.Function.Writable() {
			errs = append(errs, &engine.FieldError{Field: fmt.Sprintf("registers[%d].function", i), Message: fmt.Sprintf("%s is read-only: only coil and holding rows can be written", r.Function)})
		}
	}
	if err := checkFixedKey(regs, c.Key); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type writeNode struct {
	linkStatus
	conf  *writeConfig
	regs  map[string]modbus.Register
	order []string
}

func newWrite(nc *engine.NodeContext, c *writeConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	regs, _, _ := toRegisters(polledRows(c.Registers), conn.conf.defaults())
	n := &writeNode{linkStatus: linkStatus{nc: nc, conn: conn}, conf: c, regs: map[string]modbus.Register{}}
	for _, r := range regs {
		n.regs[r.Key] = r
		n.order = append(n.order, r.Key)
	}
	return n, nil
}

// targets picks the rows and values a message writes.
func (n *writeNode) targets(m *engine.Msg) ([]string, []any, error) {
	if n.conf.Key != "" {
		return []string{n.conf.Key}, []any{m.Payload}, nil
	}
	if _, ok := n.regs[m.Topic]; ok {
		return []string{m.Topic}, []any{m.Payload}, nil
	}
	obj, ok := m.Payload.(map[string]any)
	if !ok {
		if m.Topic != "" {
			return nil, nil, fmt.Errorf("no register row has the key %q (msg.topic)", m.Topic)
		}
		return nil, nil, errors.New("no key: set the node's key, msg.topic, or send an object of key → value")
	}
	var keys []string
	var vals []any
	for _, k := range n.order {
		if v, ok := obj[k]; ok {
			keys = append(keys, k)
			vals = append(vals, v)
		}
	}
	if len(keys) == 0 {
		names := make([]string, 0, len(obj))
		for k := range obj {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, nil, fmt.Errorf("no register row has any of the payload's keys %q", names)
	}
	return keys, vals, nil
}

// Handle writes the message's value(s) and passes the message on.
func (n *writeNode) Handle(ctx context.Context, m *engine.Msg) error {
	keys, vals, err := n.targets(m)
	if err != nil {
		return fmt.Errorf("modbus-write: %w", err)
	}
	bus, err := n.conn.Bus()
	if err != nil {
		return err
	}
	written := map[string]any{}
	for i, k := range keys {
		if err := bus.Write(ctx, uint8(n.conf.Unit), n.regs[k], vals[i]); err != nil {
			err = linkError(err)
			if !errors.Is(err, engine.ErrNotConnected) {
				n.nc.ShowStatus(engine.StatusError(err))
			}
			return fmt.Errorf("modbus-write unit %d: %w", n.conf.Unit, err)
		}
		written[k] = vals[i]
	}
	n.nc.ShowStatus(engine.StatusConnected)
	m.Payload = map[string]any{"ok": true, "written": written}
	return n.nc.Send(ctx, m)
}

var _ engine.Handler = (*writeNode)(nil)
