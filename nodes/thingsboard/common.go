package thingsboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

const (
	category = "thingsboard"
	color    = "#4fa3d1"
)

func connField() engine.Field {
	return engine.Field{Name: "connection", Kind: engine.KindConfigRef, Label: "Connection", Ref: "tb-connection", Required: true,
		Help: "The `tb-connection` to use; nodes naming the same connection share one MQTT session."}
}

func deviceField(help string) engine.Field {
	return engine.Field{Name: "device", Kind: engine.KindString, Label: "Device name", Default: "", Help: help, Example: "Meter A"}
}

// user is what every node using a connection does on Start and Stop: show
// the connection's state. Its Start and Stop serve the nodes that need
// nothing else.
type user struct {
	nc      *engine.NodeContext
	conn    *Connection
	started bool
}

func newUser(nc *engine.NodeContext, id string) (user, error) {
	conn, err := engine.ConfigNodeAs[*Connection](nc, id)
	if err != nil {
		return user{}, err
	}
	return user{nc: nc, conn: conn}, nil
}

func (u *user) start() {
	if !u.started {
		u.started = true
		u.conn.attach(u.nc)
	}
}

func (u *user) stop() {
	if u.started {
		u.started = false
		u.conn.detach(u.nc)
	}
}

func (u *user) Start(context.Context) error { u.start(); return nil }
func (u *user) Stop(context.Context) error  { u.stop(); return nil }

// deviceOf returns the device a message is for in gateway mode: the node's
// configured device, else msg.device.
func deviceOf(fixed string, msg *engine.Msg) (string, error) {
	if fixed != "" {
		return fixed, nil
	}
	if v, ok := msg.Get("device"); ok {
		if s, ok := v.(string); ok && s != "" {
			return s, nil
		}
		return "", fmt.Errorf("msg.device must be a device name (a non-empty string), got %s", kindOf(v))
	}
	return "", errors.New("no device: in gateway mode set the node's device or msg.device (a gw-device node sets it)")
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, float32, int, int64, int32, uint64, json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// msTime reads a Unix-milliseconds timestamp.
func msTime(v any) (time.Time, bool) {
	var f float64
	switch t := v.(type) {
	case float64:
		f = t
	case int:
		f = float64(t)
	case int64:
		f = float64(t)
	case json.Number:
		x, err := t.Float64()
		if err != nil {
			return time.Time{}, false
		}
		f = x
	default:
		return time.Time{}, false
	}
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(f)), true
}

// toJSONValue turns raw JSON into message values; integers stay exact
// (int64, uint64, or json.Number beyond 64 bits), see tb.UnmarshalExact.
func toJSONValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := tb.UnmarshalExact(raw, &v); err != nil {
		return string(raw)
	}
	return v
}

// rpcRef is what msg.rpc carries: enough to reply to the request.
func rpcRef(conn string, req tb.RPCRequest) map[string]any {
	m := map[string]any{"id": req.ID, "method": req.Method, "connection": conn}
	if req.Device != "" {
		m["device"] = req.Device
	}
	return m
}

// parseRPCRef reads msg.rpc back.
func parseRPCRef(v any) (conn string, req tb.RPCRequest, err error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", req, fmt.Errorf("msg.rpc must be the request reference a tb-rpc-in or gw-device node set, got %s", kindOf(v))
	}
	var id float64
	switch x := m["id"].(type) {
	case float64:
		id = x
	case int:
		id = float64(x)
	case int64:
		id = float64(x)
	default:
		return "", req, errors.New("msg.rpc.id is missing or not a number")
	}
	req.ID = int(id)
	req.Method, _ = m["method"].(string)
	req.Device, _ = m["device"].(string)
	conn, _ = m["connection"].(string)
	return conn, req, nil
}

// splitKeys reads a comma-separated key list.
func splitKeys(s string) []string {
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// acker is an outcome to wait for: a *tb.Ack or several.
type acker interface {
	Wait(ctx context.Context) error
}

// multiAck completes when every one of its acks did.
type multiAck struct{ acks []*tb.Ack }

// Wait returns the first failure.
func (m *multiAck) Wait(ctx context.Context) error {
	var first error
	for _, a := range m.acks {
		if err := a.Wait(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// watchAck reports a publish that the server did not take. An outbox that
// is closed keeps its messages (on disk they are sent after the next
// start), so ErrClosed is not reported; neither is the node stopping.
func watchAck(ctx context.Context, nc *engine.NodeContext, a acker, what string, msg *engine.Msg) {
	if a == nil {
		return
	}
	go func() {
		err := a.Wait(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, tb.ErrClosed) {
			return
		}
		nc.Error(fmt.Errorf("%s not delivered: %w", what, err), msg)
	}()
}

// publishErr turns a client error into what Handle returns: a QoS 0
// publish while offline waits for the connection (the engine retries),
// anything else goes to catch.
func publishErr(what string, err error) error {
	if errors.Is(err, tb.ErrNotConnected) {
		return fmt.Errorf("%s: %w", what, engine.ErrNotConnected)
	}
	return fmt.Errorf("%s: %w", what, err)
}
