package opcua

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "opcua-write", Category: category, Inputs: 1, Outputs: 1,
		Label: "opcua write", Color: color, Icon: "opcua",
		Summary: "Writes msg.payload to OPC UA variables, converted to each variable's data type, and passes the message on when the server accepted it.",
		Help: `Writes to the variables in **items** on the server of the **connection**.

Which item: **key** when set; otherwise ` + "`msg.topic`" + ` — the RPC method for messages from ` + "`tb-rpc-in`" + ` or a
` + "`gw-device`" + `, so an RPC ` + "`{\"method\": \"setpoint\", \"params\": 72.5}`" + ` writes 72.5 to the item ` + "`setpoint`" + `. When neither
names an item and ` + "`msg.payload`" + ` is an object (a shared-attribute update from ` + "`tb-attr-in`" + `, say), every property
that names an item is written, all in one request.

The value is converted to the variable's data type, read from the server once per session: numbers to any
integer type (range-checked) or Float/Double, ` + "`true`" + `/` + "`false`" + ` (also ` + "`\"on\"`" + `/` + "`\"off\"`" + `, 1/0) to Boolean, text
to String or LocalizedText, RFC 3339 text or Unix milliseconds to DateTime, base64 text to ByteString, and
arrays element by element for array variables.

On success the message goes on with ` + "`msg.payload`" + ` = ` + "`{\"ok\": true, \"written\": {key: value, …}}`" + ` (other fields
such as ` + "`msg.rpc`" + ` are kept, so it can go straight to ` + "`tb-rpc-out`" + `). A value that does not convert or a status the
server refuses with (` + "`BadTypeMismatch`" + `, ` + "`BadNotWritable`" + `, …) is an error for ` + "`catch`" + ` nodes, with the message
attached. While the server is away the engine retries the message.

Status: ` + "`connected`" + ` after a write, or the error (red).`,
		Fields: []engine.Field{
			{Name: "connection", Kind: engine.KindConfigRef, Label: "Connection", Ref: "opcua-connection", Required: true, Help: "The OPC UA server to write to."},
			itemsField("The writable variables: one row per key."),
			{Name: "key", Kind: engine.KindString, Label: "Key", Default: "", Help: "Always write this item; empty takes the item named by msg.topic, or the payload's properties."},
		},
		OutputLabels: []string{"written"},
		New:          engine.Construct(newWrite),
	})
}

type writeConfig struct {
	Connection string    `json:"connection"`
	Items      []itemRow `json:"items"`
	Key        string    `json:"key"`
}

// Validate checks the items and the fixed key.
func (c *writeConfig) Validate() error {
	err := checkItems(c.Items)
	if c.Key != "" {
		found := false
		for _, r := range c.Items {
			found = found || r.Key == c.Key
		}
		if !found {
			err = errors.Join(err, &engine.FieldError{Field: "key", Message: fmt.Sprintf("no item has the key %q", c.Key)})
		}
	}
	return err
}

type writeNode struct {
	nc    *engine.NodeContext
	conn  *Connection
	conf  *writeConfig
	items map[string]string // key → node id text

	mu    sync.Mutex
	cli   *opcua.Client // the session types were read with
	types map[string]ua.TypeID
}

func newWrite(nc *engine.NodeContext, c *writeConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	n := &writeNode{nc: nc, conn: conn, conf: c, items: map[string]string{}}
	for _, r := range c.Items {
		n.items[r.Key] = r.NodeID
	}
	return n, nil
}

func (n *writeNode) Start(context.Context) error { return nil }
func (n *writeNode) Stop(context.Context) error  { return nil }

// targets picks the items and values a message writes.
func (n *writeNode) targets(m *engine.Msg) ([]string, []any, error) {
	if n.conf.Key != "" {
		return []string{n.conf.Key}, []any{m.Payload}, nil
	}
	topic := m.Topic
	if topic == "" {
		if method, ok := m.Get("method"); ok {
			topic, _ = method.(string)
		}
	}
	if _, ok := n.items[topic]; ok {
		return []string{topic}, []any{m.Payload}, nil
	}
	obj, ok := m.Payload.(map[string]any)
	if !ok {
		if topic != "" {
			return nil, nil, fmt.Errorf("no item has the key %q (msg.topic)", topic)
		}
		return nil, nil, errors.New("no key: set the node's key, msg.topic, or send an object of key → value")
	}
	var keys []string
	var vals []any
	for _, r := range n.conf.Items {
		if v, ok := obj[r.Key]; ok {
			keys = append(keys, r.Key)
			vals = append(vals, v)
		}
	}
	if len(keys) == 0 {
		names := make([]string, 0, len(obj))
		for k := range obj {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, nil, fmt.Errorf("no item has any of the payload's keys %q", names)
	}
	return keys, vals, nil
}

// Handle writes the message's value(s) and passes the message on.
func (n *writeNode) Handle(ctx context.Context, m *engine.Msg) error {
	keys, vals, err := n.targets(m)
	if err != nil {
		return fmt.Errorf("opcua-write: %w", err)
	}
	cli, _, err := n.conn.Client(ctx)
	if err != nil {
		return err
	}
	ids := make([]*ua.NodeID, len(keys))
	for i, k := range keys {
		if ids[i], err = parseNodeID(n.items[k], cli.Namespaces()); err != nil {
			return fmt.Errorf("opcua-write %s: %w", k, err)
		}
	}
	types, err := n.dataTypes(ctx, cli, keys, ids)
	if err != nil {
		return n.fail(cli, err)
	}
	req := &ua.WriteRequest{NodesToWrite: make([]*ua.WriteValue, len(keys))}
	for i, k := range keys {
		v, err := fromJSON(vals[i], types[k])
		if err != nil {
			err = fmt.Errorf("opcua-write %s (%s): %w", k, types[k], err)
			n.nc.ShowStatus(engine.StatusError(err))
			return err
		}
		variant, err := ua.NewVariant(v)
		if err != nil {
			return fmt.Errorf("opcua-write %s: %w", k, err)
		}
		req.NodesToWrite[i] = &ua.WriteValue{NodeID: ids[i], AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: variant}}
	}
	wctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
	res, err := cli.Write(wctx, req)
	cancel()
	if err == nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		err = res.ResponseHeader.ServiceResult
	}
	if err != nil {
		return n.fail(cli, err)
	}
	var bad []string
	for i, s := range res.Results {
		if s != ua.StatusOK && i < len(keys) {
			bad = append(bad, fmt.Sprintf("%s: %s", keys[i], s.Error()))
		}
	}
	if len(bad) > 0 {
		err := fmt.Errorf("opcua-write: the server refused %s", strings.Join(bad, "; "))
		n.nc.ShowStatus(engine.StatusError(err))
		return err
	}
	written := map[string]any{}
	for i, k := range keys {
		written[k] = vals[i]
	}
	n.nc.ShowStatus(engine.StatusConnected)
	m.Payload = map[string]any{"ok": true, "written": written}
	return n.nc.Send(ctx, m)
}

// fail turns a request error into the node's error: a broken link drops
// the session and makes the engine retry the message.
func (n *writeNode) fail(cli *opcua.Client, err error) error {
	if cli.State() != opcua.Connected || isLinkError(err) {
		n.conn.Drop(cli)
		return fmt.Errorf("opcua-write %s: %w: %w", n.conn.Endpoint(), engine.ErrNotConnected, err)
	}
	err = fmt.Errorf("opcua-write %s: %w", n.conn.Endpoint(), err)
	n.nc.ShowStatus(engine.StatusError(err))
	return err
}

// dataTypes returns the built-in type of each item, read from the server
// once per session: the DataType attribute when it is a built-in type, or
// else the type of the current value (subtypes such as Duration or
// enumerations).
func (n *writeNode) dataTypes(ctx context.Context, cli *opcua.Client, keys []string, ids []*ua.NodeID) (map[string]ua.TypeID, error) {
	n.mu.Lock()
	if n.cli != cli {
		n.cli, n.types = cli, map[string]ua.TypeID{}
	}
	var missing []int
	for i, k := range keys {
		if _, ok := n.types[k]; !ok {
			missing = append(missing, i)
		}
	}
	n.mu.Unlock()
	if len(missing) > 0 {
		req := &ua.ReadRequest{}
		for _, i := range missing {
			req.NodesToRead = append(req.NodesToRead,
				&ua.ReadValueID{NodeID: ids[i], AttributeID: ua.AttributeIDDataType},
				&ua.ReadValueID{NodeID: ids[i], AttributeID: ua.AttributeIDValue})
		}
		rctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
		res, err := cli.Read(rctx, req)
		cancel()
		if err == nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
			err = res.ResponseHeader.ServiceResult
		}
		if err != nil {
			return nil, fmt.Errorf("reading data types: %w", err)
		}
		if len(res.Results) != 2*len(missing) {
			return nil, errors.New("reading data types: short answer")
		}
		found := map[string]ua.TypeID{}
		for j, i := range missing {
			dt, val := res.Results[2*j], res.Results[2*j+1]
			if dt.Status != ua.StatusOK {
				return nil, fmt.Errorf("%s (%s): %w", keys[i], ids[i], dt.Status)
			}
			typ := ua.TypeIDNull
			if id, ok := dt.Value.Value().(*ua.NodeID); ok && id.Namespace() == 0 && id.IntID() >= 1 && id.IntID() <= 21 {
				typ = ua.TypeID(id.IntID())
			} else if val.Status == ua.StatusOK && val.Value != nil {
				typ = val.Value.Type()
			}
			if typ == ua.TypeIDNull {
				return nil, fmt.Errorf("%s (%s): the data type %v is not one tbflow can write", keys[i], ids[i], dt.Value.Value())
			}
			found[keys[i]] = typ
		}
		n.mu.Lock()
		if n.cli == cli {
			for k, t := range found {
				n.types[k] = t
			}
		}
		n.mu.Unlock()
		return n.typesOf(keys, found), nil
	}
	return n.typesOf(keys, nil), nil
}

func (n *writeNode) typesOf(keys []string, extra map[string]ua.TypeID) map[string]ua.TypeID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]ua.TypeID{}
	for _, k := range keys {
		if t, ok := extra[k]; ok {
			out[k] = t
		} else {
			out[k] = n.types[k]
		}
	}
	return out
}

var _ engine.Handler = (*writeNode)(nil)
