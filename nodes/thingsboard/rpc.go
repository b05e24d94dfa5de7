package thingsboard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

func init() {
	engine.Register(engine.Type{
		Name: "tb-rpc-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "tb-rpc-in", OutputLabels: []string{"rpc request"}, Color: color, Icon: "thingsboard",
		Summary: "Emits each server-side RPC request; answer it with tb-rpc-out.",
		Help: `Emits every server-side RPC that ThingsBoard sends to the connection's device (in gateway mode:
to its devices, or to the one named in **device**) as a message:

- ` + "`msg.method`" + ` and ` + "`msg.topic`" + `: the method name;
- ` + "`msg.payload`" + `: the request's params (parsed JSON);
- ` + "`msg.rpc`" + `: the request reference ` + "`{id, method, device, connection}`" + ` that ` + "`tb-rpc-out`" + ` replies to —
  keep it on the message on the way there;
- ` + "`msg.device`" + `: in gateway mode, the device the call is for.

Wire the flow to a ` + "`tb-rpc-out`" + ` node to send the reply. A request not answered within the connection's
**rpcTimeout** expires (ThingsBoard reports a timeout to the caller).

**method** filters: only requests of that method come out of this node. Several ` + "`tb-rpc-in`" + ` nodes may
share a connection: each request goes to one node, the most specific that matches (a node for the
request's device before one for any device, a node with a method filter before one without, a
` + "`tb-rpc-in`" + ` before a ` + "`gw-device`" + ` for the same device; among equals the one started first). A request that no node takes gets an ` + "`{\"error\": …}`" + ` reply after 2 s.`,
		Fields: []engine.Field{
			connField(),
			{Name: "method", Kind: engine.KindString, Label: "Method", Default: "", Help: "Only take requests of this method; empty takes every method no more specific node takes.", Example: "setRelay"},
			deviceField("Gateway mode: only take requests for this device; empty takes requests for every device (and the gateway's own)."),
		},
		New: engine.Construct(newRPCIn),
	})
	engine.Register(engine.Type{
		Name: "tb-rpc-out", Category: category, Inputs: 1, Outputs: 0,
		Label: "tb-rpc-out", Color: color, Icon: "thingsboard",
		Summary: "Replies to the server-side RPC named by msg.rpc with msg.payload.",
		Help: `Sends ` + "`msg.payload`" + ` as the reply to the server-side RPC referenced by ` + "`msg.rpc`" + ` (set by ` + "`tb-rpc-in`" + ` or
` + "`gw-device`" + `): on ` + "`v1/devices/me/rpc/response/{id}`" + ` in device mode, as the ` + "`{device, id, data}`" + ` envelope in gateway
mode. A payload that is an error object or ` + "`msg.error`" + ` with a ` + "`message`" + ` is sent as ` + "`{\"error\": \"…\"}`" + ` when
**sendErrors** is on.

A message without ` + "`msg.rpc`" + `, or a reply to a request that is unknown, already answered or expired (after
the connection's **rpcTimeout**) is an error for ` + "`catch`" + `.`,
		Fields: []engine.Field{
			connField(),
			{Name: "sendErrors", Kind: engine.KindBool, Label: "Reply with errors", Default: true, Help: "When the message carries `msg.error` (for example from a `catch` node), reply `{\"error\": message}` instead of the payload."},
		},
		New: engine.Construct(newRPCOut),
	})
	engine.Register(engine.Type{
		Name: "tb-rpc-call", Category: category, Inputs: 1, Outputs: 2,
		Label: "tb-rpc-call", OutputLabels: []string{"response", "error"}, Color: color, Icon: "thingsboard",
		Summary: "Calls a client-side RPC on ThingsBoard and emits the response, or the error on output 2.",
		Help: `Makes a client-side RPC: the device (or in gateway mode the gateway itself) calls **method** (or
` + "`msg.method`" + ` when the node's method is empty) with ` + "`msg.payload`" + ` as params, and waits for the server's
response (at most **timeout**).

- Output 1: the message with ` + "`msg.payload`" + ` set to the response.
- Output 2: the message with ` + "`msg.error = {message}`" + `, on a timeout or an error reply (ThingsBoard answers
  ` + "`{\"error\": \"timeout\"}`" + ` when no rule chain replies).

A call is sent at most once: ThingsBoard's rule chain runs every copy it receives, so a call whose
connection drops before the answer goes to output 2 with an "outcome unknown" error (retry it in
the flow if the method is safe to run twice). Calls are made one at a time, in message order.`,
		Fields: []engine.Field{
			connField(),
			{Name: "method", Kind: engine.KindString, Label: "Method", Default: "", Help: "Method to call; empty uses `msg.method`.", Example: "getCurrentTime"},
			{Name: "timeout", Kind: engine.KindDuration, Label: "Timeout", Default: "60s", Min: engine.Float(0.001), Help: "How long to wait for the response (ThingsBoard itself answers `{\"error\": \"timeout\"}` after 60 s)."},
		},
		New: engine.Construct(newRPCCall),
	})
}

// --- tb-rpc-in ----------------------------------------------------------------------

type rpcInConfig struct {
	Connection string `json:"connection"`
	Method     string `json:"method"`
	Device     string `json:"device"`
}

type rpcIn struct {
	user
	conf   *rpcInConfig
	remove func()
}

func newRPCIn(nc *engine.NodeContext, c *rpcInConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if c.Device != "" && !u.conn.gateway() {
		return nil, &engine.FieldError{Field: "device", Message: "only for a gateway connection"}
	}
	return &rpcIn{user: u, conf: c}, nil
}

func (n *rpcIn) Start(ctx context.Context) error {
	if n.remove != nil {
		return nil
	}
	if n.conf.Device != "" {
		if err := ensureConnected(ctx, n.conn, n.conf.Device, ""); err != nil {
			return err
		}
	}
	n.user.start()
	n.remove = n.conn.addRPC(&rpcListener{
		device: n.conf.Device, method: n.conf.Method,
		fn: func(ctx context.Context, req tb.RPCRequest) error {
			return n.nc.Send(ctx, rpcMsg(n.conn.nc.ID(), req))
		},
	})
	return nil
}

func (n *rpcIn) Stop(context.Context) error {
	if n.remove != nil {
		n.remove()
		n.remove = nil
		n.user.stop()
	}
	return nil
}

// rpcMsg is the message a server-side RPC becomes.
func rpcMsg(conn string, req tb.RPCRequest) *engine.Msg {
	m := engine.NewMsg(toJSONValue(req.Params))
	m.Topic = req.Method
	m.Set("method", req.Method)
	m.Set("rpc", rpcRef(conn, req))
	if req.Device != "" {
		m.Set("device", req.Device)
	}
	return m
}

// --- tb-rpc-out ---------------------------------------------------------------------

type rpcOutConfig struct {
	Connection string `json:"connection"`
	SendErrors bool   `json:"sendErrors"`
}

type rpcOut struct {
	user
	conf *rpcOutConfig
}

func newRPCOut(nc *engine.NodeContext, c *rpcOutConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	return &rpcOut{user: u, conf: c}, nil
}

func (n *rpcOut) Handle(ctx context.Context, msg *engine.Msg) error {
	v, ok := msg.Get("rpc")
	if !ok {
		return errors.New("no msg.rpc: reply only to messages that come from tb-rpc-in or gw-device, and keep msg.rpc on the way")
	}
	conn, req, err := parseRPCRef(v)
	if err != nil {
		return err
	}
	if conn != "" && conn != n.conn.nc.ID() {
		return fmt.Errorf("msg.rpc is a request of tb-connection %q, but this node replies on %q", conn, n.conn.nc.ID())
	}
	var res any = msg.Payload
	if n.conf.SendErrors {
		if e, ok := msg.Get("error"); ok && e != nil {
			text := fmt.Sprint(e)
			if em, ok := e.(map[string]any); ok {
				if s, ok := em["message"].(string); ok {
					text = s
				}
			}
			res = errors.New(text)
		}
	}
	if err := n.conn.reply(req, res); err != nil {
		if errors.Is(err, tb.ErrUnknownRequest) {
			return fmt.Errorf("rpc reply to %q (id %d): the request is unknown, already answered or expired", req.Method, req.ID)
		}
		return fmt.Errorf("rpc reply to %q (id %d): %w", req.Method, req.ID, err)
	}
	return nil
}

// --- tb-rpc-call --------------------------------------------------------------------

type rpcCallConfig struct {
	Connection string          `json:"connection"`
	Method     string          `json:"method"`
	Timeout    engine.Duration `json:"timeout"`
}

type rpcCall struct {
	user
	conf *rpcCallConfig
}

func newRPCCall(nc *engine.NodeContext, c *rpcCallConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if c.Timeout <= 0 {
		c.Timeout = engine.Duration(60 * time.Second)
	}
	return &rpcCall{user: u, conf: c}, nil
}

func (n *rpcCall) Handle(ctx context.Context, msg *engine.Msg) error {
	method := n.conf.Method
	if method == "" {
		if v, ok := msg.Get("method"); ok {
			method, _ = v.(string)
		}
	}
	if method == "" {
		return errors.New("no method: set the node's method or msg.method")
	}
	dev, err := n.conn.Device()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, n.conf.Timeout.D())
	defer cancel()
	res, err := dev.Call(cctx, method, msg.Payload)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %s", tb.ErrTimeout, n.conf.Timeout.D())
		}
		msg.Set("error", map[string]any{"message": fmt.Sprintf("rpc call %q: %v", method, err)})
		return n.nc.SendTo(ctx, 1, msg)
	}
	msg.Payload = toJSONValue(res)
	msg.Set("method", method)
	return n.nc.SendTo(ctx, 0, msg)
}
