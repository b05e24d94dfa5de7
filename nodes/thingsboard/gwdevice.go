package thingsboard

import (
	"context"
	"fmt"
	"sync"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

func init() {
	engine.Register(engine.Type{
		Name: "gw-device", Category: category, Inputs: 1, Outputs: 3,
		Label: "gw-device", OutputLabels: []string{"through (msg.device set)", "rpc requests", "shared-attribute updates"}, Color: color, Icon: "thingsboard",
		Summary: "One field device behind a ThingsBoard gateway: stamps msg.device, emits its RPCs and shared-attribute updates.",
		Help: `Represents one field device behind a **gateway** ` + "`tb-connection`" + `. Many ` + "`gw-device`" + ` nodes share one gateway
connection (one MQTT session).

On start it connects the device (**device**, with the device profile **deviceType**; ThingsBoard creates
the device when it does not exist yet). The gateway connects it again after every reconnect.

Outputs:

1. **through**: every input message, with ` + "`msg.device`" + ` set to the device, so that a ` + "`tb-telemetry-out`" + ` or
   ` + "`tb-attr-out`" + ` on the same gateway connection sends for it. Wire ` + "`modbus-in → gw-device → tb-telemetry-out`" + `.
2. **rpc**: server-side RPCs for the device, shaped like ` + "`tb-rpc-in`" + `'s (` + "`msg.method`" + `, ` + "`msg.payload`" + ` = params,
   ` + "`msg.rpc`" + `, ` + "`msg.device`" + `); answer them with ` + "`tb-rpc-out`" + `. They go to this node rather than to a ` + "`tb-rpc-in`" + `
   without a device; a ` + "`tb-rpc-in`" + ` naming this device takes them instead.
3. **attributes**: the device's shared-attribute updates, shaped like ` + "`tb-attr-in`" + `'s (` + "`msg.payload`" + `,
   ` + "`msg.deleted`" + `, ` + "`msg.resync`" + `, ` + "`msg.device`" + `), for the keys in **keys** (all when empty); with **initial**,
   the current values at start and what changed during an outage after every reconnect.

With **device** empty the name comes from each message's ` + "`msg.device`" + ` (and the profile from ` + "`msg.deviceType`" + `
when set, as ` + "`mqtt-in`" + ` and ` + "`http-in`" + ` set it; otherwise **deviceType**); each new name is connected when its
first message passes, and its RPCs and attribute updates come out from then on.

Removing the node does not disconnect the device from the gateway session (the session keeps it
until the connection restarts), so that a redeploy does not make ThingsBoard see it go away.`,
		Fields: []engine.Field{
			connField(),
			{Name: "device", Kind: engine.KindString, Label: "Device name", Default: "", Help: "The device's name in ThingsBoard; empty takes it from `msg.device`.", Example: "Meter A"},
			{Name: "deviceType", Kind: engine.KindString, Label: "Device profile", Default: "default", Help: "The device profile ThingsBoard creates the device with; with **device** empty, a message's `msg.deviceType` wins when set."},
			{Name: "keys", Kind: engine.KindString, Label: "Shared attribute keys", Default: "", Help: "Shared attributes to emit on output 3, comma-separated; empty means all.", Example: "interval"},
			{Name: "initial", Kind: engine.KindBool, Label: "Emit current values", Default: true, Help: "Emit the current shared attributes at start and after every reconnect (needs keys)."},
		},
		New: engine.Construct(newGWDevice),
	})
}

type gwDeviceConfig struct {
	Connection string `json:"connection"`
	Device     string `json:"device"`
	DeviceType string `json:"deviceType"`
	Keys       string `json:"keys"`
	Initial    bool   `json:"initial"`
}

type gwDevice struct {
	user
	conf *gwDeviceConfig
	keys []string

	mu      sync.Mutex
	life    context.Context
	cancel  context.CancelFunc
	devices map[string]func() // connected device → undo its listeners
}

func newGWDevice(nc *engine.NodeContext, c *gwDeviceConfig) (engine.Node, error) {
	u, err := newUser(nc, c.Connection)
	if err != nil {
		return nil, err
	}
	if !u.conn.gateway() {
		return nil, &engine.FieldError{Field: "connection", Message: "gw-device needs a tb-connection in gateway mode"}
	}
	return &gwDevice{user: u, conf: c, keys: splitKeys(c.Keys), devices: map[string]func(){}}, nil
}

func (n *gwDevice) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		return nil
	}
	n.life, n.cancel = context.WithCancel(context.Background())
	if n.conf.Device != "" {
		if err := n.connectLocked(ctx, n.conf.Device, n.conf.DeviceType); err != nil {
			n.cancel()
			n.cancel = nil
			return err
		}
	}
	n.user.start()
	return nil
}

// connectLocked connects device (with profile deviceType) and starts
// passing on its RPCs and attribute updates.
func (n *gwDevice) connectLocked(ctx context.Context, device, deviceType string) error {
	if _, ok := n.devices[device]; ok {
		return nil
	}
	gw, err := n.conn.Gateway()
	if err != nil {
		return err
	}
	if _, err := gw.ConnectDevice(ctx, device, deviceType); err != nil {
		return publishErr("connecting device "+device, err)
	}
	life := n.life
	removeRPC := n.conn.addRPC(&rpcListener{device: device, fallback: true, fn: func(ctx context.Context, req tb.RPCRequest) error {
		return n.nc.SendTo(ctx, 1, rpcMsg(n.conn.nc.ID(), req))
	}})
	w := newAttrWatch(device, n.conf.Initial, func(values map[string]any, deleted []string, resync bool) {
		n.nc.SendTo(life, 2, attrMsg(device, values, deleted, resync))
	})
	unsub, err := watchShared(life, n.conn, w, n.keys)
	if err != nil {
		removeRPC()
		return err
	}
	// ThingsBoard renames and deletes devices: the gateway follows, the
	// node shows it.
	removeRenamed := gw.OnDeviceRenamed(func(oldName, newName string) {
		if oldName == device || gw.Resolve(device) == newName {
			n.nc.Status(engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("renamed in ThingsBoard: %s → %s", oldName, newName)})
		}
	})
	removeDeleted := gw.OnDeviceDeleted(func(name string) {
		if name == device || gw.Resolve(device) == name {
			n.nc.Status(engine.Status{Fill: "red", Shape: "ring", Text: fmt.Sprintf("deleted in ThingsBoard: %s (data sent for it creates it again)", name)})
		}
	})
	n.devices[device] = func() { removeRPC(); unsub(); removeRenamed(); removeDeleted() }
	return nil
}

func (n *gwDevice) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel == nil {
		return nil
	}
	for d, undo := range n.devices {
		undo()
		delete(n.devices, d)
	}
	n.cancel()
	n.cancel = nil
	n.user.stop()
	return nil
}

// Handle stamps msg.device and passes the message on.
func (n *gwDevice) Handle(ctx context.Context, msg *engine.Msg) error {
	device, err := deviceOf(n.conf.Device, msg)
	if err != nil {
		return err
	}
	deviceType := n.conf.DeviceType
	if n.conf.Device == "" {
		if t, ok := msg.Get("deviceType"); ok {
			if ts, ok := t.(string); ok && ts != "" {
				deviceType = ts
			}
		}
	}
	n.mu.Lock()
	if n.cancel != nil {
		err = n.connectLocked(ctx, device, deviceType)
	}
	n.mu.Unlock()
	if err != nil {
		return err
	}
	msg.Set("device", device)
	return n.nc.SendTo(ctx, 0, msg)
}
