package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/internal/msgfield"
)

func brokerField() engine.Field {
	return engine.Field{Name: "broker", Label: "Broker", Kind: engine.KindConfigRef, Ref: "mqtt-broker", Required: true,
		Help: "The `mqtt-broker` to use; nodes naming the same broker share one MQTT session."}
}

var (
	showTopic   = func(f string) map[string][]any { return map[string][]any{f: {sourceTopic}} }
	showPayload = func(f string) map[string][]any { return map[string][]any{f: {sourcePayload}} }
	showConst   = func(f string) map[string][]any { return map[string][]any{f: {sourceConstant}} }
)

func init() {
	engine.Register(engine.Type{
		Name: "mqtt-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "mqtt in", Color: color, Icon: "mqtt",
		OutputLabels: []string{"messages"},
		Summary:      "Subscribes to an MQTT topic filter and emits each message, with the device it is from in msg.device.",
		Help: `Subscribes to **topic** (MQTT wildcards: ` + "`+`" + ` for one level, ` + "`#`" + ` for the rest) on the **broker** and sends
one message per MQTT message received:

- ` + "`msg.payload`" + `: the payload decoded by **format** — ` + "`auto`" + ` reads JSON when it parses, else a number, else
  text; ` + "`json`" + `, ` + "`text`" + ` and ` + "`number`" + ` insist on one. A JSON object stays an object (ready for
  ` + "`tb-telemetry-out`" + `); a number, text or boolean becomes ` + "`{key: value}`" + ` with **key**, or the topic's last level when
  **key** is empty (` + "`shellies/plug-1/relay/0/power`" + ` → ` + "`{\"power\": 12.5}`" + `).
- ` + "`msg.topic`" + `: the MQTT topic; ` + "`msg.ts`" + `: when it arrived (Unix ms); ` + "`msg.mqtt`" + `: ` + "`{qos, retain}`" + `.
- ` + "`msg.device`" + ` and ` + "`msg.deviceType`" + `: the device name and profile, like the ThingsBoard IoT Gateway's MQTT
  connector (` + "`deviceNameExpressionSource`" + `): a **constant**, a **topic** level (1 is the first, -1 the last:
  ` + "`sensors/+/data`" + ` with level 2 gives the device of ` + "`sensors/boiler-3/data`" + `) or a **payload** field (a dotted path
  such as ` + "`serialNumber`" + ` or ` + "`meta.name`" + `). With **removeFields** the fields used are taken out of the payload so they
  do not become telemetry. One ` + "`mqtt-in`" + ` so feeds any number of devices: wire it to a ` + "`gw-device`" + ` whose device is
  empty (it connects each new ` + "`msg.device`" + ` with its own **deviceType**; split by ` + "`msg.deviceType`" + ` with a ` + "`switch`" + `
  to several ` + "`gw-device`" + ` nodes when devices need different profiles) and on to ` + "`tb-telemetry-out`" + `.

A payload that does not decode, or lacks the device, is an error for ` + "`catch`" + ` (with ` + "`msg.topic`" + ` and the raw
payload as text) and is not sent on. Payloads over **maxBytes** are refused the same way.

Messages wait for the flow: when it is slower than the broker, reading from the broker pauses (no
message is dropped). The subscription is made again after every reconnect.

Status: the broker session's state — ` + "`connecting`" + `, ` + "`connected`" + `, ` + "`disconnected: …`" + `, ` + "`error: …`" + `.`,
		Fields: []engine.Field{
			brokerField(),
			{Name: "topic", Label: "Topic filter", Kind: engine.KindString, Required: true, Help: "The topic filter to subscribe to; `+` matches one level, `#` the rest.", Example: "sensors/+/data"},
			{Name: "qos", Label: "QoS", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(2), Help: "Highest QoS the broker may deliver with: 0, 1 or 2."},
			{Name: "format", Label: "Payload format", Kind: engine.KindEnum, Default: formatAuto, Enum: []string{formatAuto, formatJSON, formatText, formatNumber}, Help: "`auto`: JSON, else a number, else text. `json`, `text`, `number`: that or an error."},
			{Name: "key", Label: "Value key", Kind: engine.KindString, Default: "", Help: "Key under which a number, text or boolean payload goes into the payload object; empty uses the topic's last level.", Example: "temperature"},
			{Name: "deviceSource", Label: "Device name from", Kind: engine.KindEnum, Default: sourceNone, Enum: []string{sourceNone, sourceConstant, sourceTopic, sourcePayload}, Help: "Where msg.device comes from: nowhere (`none`), a constant, a topic level or a payload field."},
			{Name: "device", Label: "Device name", Kind: engine.KindString, Default: "", Help: "The device name every message is for.", Example: "Boiler 3", ShowIf: showConst("deviceSource")},
			{Name: "deviceLevel", Label: "Device name topic level", Kind: engine.KindInt, Default: 2, Min: engine.Float(-32), Max: engine.Float(32), Help: "Topic level holding the device name: 1 is the first level, -1 the last.", ShowIf: showTopic("deviceSource")},
			{Name: "deviceField", Label: "Device name field", Kind: engine.KindString, Default: "", Help: "Payload field holding the device name; a dotted path reaches into nested objects.", Example: "serialNumber", ShowIf: showPayload("deviceSource")},
			{Name: "typeSource", Label: "Device profile from", Kind: engine.KindEnum, Default: sourceConstant, Enum: []string{sourceConstant, sourceTopic, sourcePayload}, Help: "Where msg.deviceType (the ThingsBoard device profile) comes from.", ShowIf: map[string][]any{"deviceSource": {sourceConstant, sourceTopic, sourcePayload}}},
			{Name: "deviceType", Label: "Device profile", Kind: engine.KindString, Default: "default", Help: "The device profile of every message's device.", ShowIf: map[string][]any{"typeSource": {sourceConstant}, "deviceSource": {sourceConstant, sourceTopic, sourcePayload}}},
			{Name: "typeLevel", Label: "Device profile topic level", Kind: engine.KindInt, Default: 1, Min: engine.Float(-32), Max: engine.Float(32), Help: "Topic level holding the device profile: 1 is the first level, -1 the last.", ShowIf: map[string][]any{"typeSource": {sourceTopic}, "deviceSource": {sourceConstant, sourceTopic, sourcePayload}}},
			{Name: "typeField", Label: "Device profile field", Kind: engine.KindString, Default: "", Help: "Payload field holding the device profile (dotted path).", Example: "model", ShowIf: map[string][]any{"typeSource": {sourcePayload}, "deviceSource": {sourceConstant, sourceTopic, sourcePayload}}},
			{Name: "removeFields", Label: "Remove name fields", Kind: engine.KindBool, Default: true, Help: "Take the payload fields the device name and profile came from out of the payload.", ShowIf: map[string][]any{"deviceSource": {sourcePayload}}},
			{Name: "maxBytes", Label: "Largest payload", Kind: engine.KindInt, Default: 256 << 10, Min: engine.Float(1), Max: engine.Float(256 << 20), Help: "Payloads larger than this many bytes are refused (an error for catch).", Advanced: true},
		},
		New: engine.Construct(newIn),
	})
}

type inConfig struct {
	Broker       string `json:"broker"`
	Topic        string `json:"topic"`
	QoS          int    `json:"qos"`
	Format       string `json:"format"`
	Key          string `json:"key"`
	DeviceSource string `json:"deviceSource"`
	Device       string `json:"device"`
	DeviceLevel  int    `json:"deviceLevel"`
	DeviceField  string `json:"deviceField"`
	TypeSource   string `json:"typeSource"`
	DeviceType   string `json:"deviceType"`
	TypeLevel    int    `json:"typeLevel"`
	TypeField    string `json:"typeField"`
	RemoveFields bool   `json:"removeFields"`
	MaxBytes     int    `json:"maxBytes"`
}

// checkFilter checks an MQTT topic filter.
func checkFilter(f string) error {
	if f == "" {
		return errors.New("a topic filter is needed")
	}
	if len(f) > 65535 {
		return errors.New("longer than MQTT allows")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("`#` must be the last level")
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("level %q: a wildcard must be a whole level", l)
		}
	}
	return nil
}

// Validate checks the topic filter and the device rules.
func (c *inConfig) Validate() error {
	var errs []error
	if err := checkFilter(c.Topic); err != nil {
		errs = append(errs, &engine.FieldError{Field: "topic", Message: err.Error()})
	}
	check := func(source, constField, constVal, levelField string, level int, fieldField, field string) {
		switch source {
		case sourceConstant:
			if constVal == "" {
				errs = append(errs, &engine.FieldError{Field: constField, Message: "a name is needed when it is a constant"})
			}
		case sourceTopic:
			if level == 0 {
				errs = append(errs, &engine.FieldError{Field: levelField, Message: "levels count from 1 (first) or -1 (last); 0 is none"})
			} else if !strings.Contains(c.Topic, "#") && abs(level) > len(strings.Split(c.Topic, "/")) {
				errs = append(errs, &engine.FieldError{Field: levelField, Message: fmt.Sprintf("the topic filter %q has only %d levels", c.Topic, len(strings.Split(c.Topic, "/")))})
			}
		case sourcePayload:
			if field == "" || strings.HasPrefix(field, ".") || strings.HasSuffix(field, ".") || strings.Contains(field, "..") {
				errs = append(errs, &engine.FieldError{Field: fieldField, Message: "a payload field (such as `serialNumber` or `meta.name`) is needed"})
			}
		}
	}
	check(c.DeviceSource, "device", c.Device, "deviceLevel", c.DeviceLevel, "deviceField", c.DeviceField)
	if c.DeviceSource != sourceNone {
		check(c.TypeSource, "deviceType", c.DeviceType, "typeLevel", c.TypeLevel, "typeField", c.TypeField)
	}
	return errors.Join(errs...)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

type inNode struct {
	nc     *engine.NodeContext
	broker *Broker
	conf   *inConfig
	device nameRule
	dtype  nameRule

	msgs chan paho.Message

	mu     sync.Mutex
	life   context.Context
	cancel context.CancelFunc
	remove func()
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := engine.ConfigNodeAs[*Broker](nc, c.Broker)
	if err != nil {
		return nil, err
	}
	n := &inNode{nc: nc, broker: b, conf: c, msgs: make(chan paho.Message, 256),
		device: nameRule{what: "device name", source: c.DeviceSource, value: c.Device, level: c.DeviceLevel, field: c.DeviceField},
		dtype:  nameRule{what: "device profile", source: sourceNone}}
	if c.DeviceSource != sourceNone {
		n.dtype = nameRule{what: "device profile", source: c.TypeSource, value: c.DeviceType, level: c.TypeLevel, field: c.TypeField}
	}
	return n, nil
}

// Start registers the subscription with the broker session.
func (n *inNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.remove != nil {
		return nil
	}
	n.life, n.cancel = context.WithCancel(context.Background())
	life := n.life
	n.broker.attach(n.nc)
	n.remove = n.broker.addSub(&subscription{filter: n.conf.Topic, qos: byte(n.conf.QoS),
		deliver: func(m paho.Message) {
			select {
			case n.msgs <- m: // waits while the flow is behind
			case <-life.Done():
			}
		},
		fail: func(err error) { n.nc.Status(engine.StatusError(err)); n.nc.Error(err, nil) },
	})
	return nil
}

// Stop removes the subscription.
func (n *inNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.remove == nil {
		return nil
	}
	n.remove()
	n.remove = nil
	n.cancel()
	n.broker.detach(n.nc)
	return nil
}

// Run turns MQTT messages into flow messages until ctx ends.
func (n *inNode) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-n.msgs:
			out, err := n.convert(m.Topic(), m.Payload(), time.Now())
			if err != nil {
				raw := m.Payload()
				if len(raw) > 256 {
					raw = raw[:256]
				}
				em := engine.NewMsg(strings.ToValidUTF8(string(raw), "?"))
				em.Topic = m.Topic()
				n.nc.Error(fmt.Errorf("mqtt-in %s: %w", m.Topic(), err), em)
				continue
			}
			out.Set("mqtt", map[string]any{"qos": int64(m.Qos()), "retain": m.Retained()})
			if err := n.nc.Send(ctx, out); err != nil {
				return nil
			}
		}
	}
}

// convert decodes one MQTT message into a flow message.
func (n *inNode) convert(topic string, raw []byte, at time.Time) (*engine.Msg, error) {
	if len(raw) > n.conf.MaxBytes {
		return nil, fmt.Errorf("payload of %d bytes is over maxBytes (%d)", len(raw), n.conf.MaxBytes)
	}
	v, err := decodePayload(n.conf.Format, raw)
	if err != nil {
		return nil, err
	}
	device, hasDevice, err := n.device.pick(topic, v)
	if err != nil {
		return nil, err
	}
	dtype, hasType, err := n.dtype.pick(topic, v)
	if err != nil {
		return nil, err
	}
	if n.conf.RemoveFields {
		if n.device.source == sourcePayload {
			msgfield.Delete(v, n.device.field)
		}
		if n.dtype.source == sourcePayload {
			msgfield.Delete(v, n.dtype.field)
		}
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		key := n.conf.Key
		if key == "" {
			key, _ = topicLevel(topic, -1)
		}
		if key == "" {
			return nil, fmt.Errorf("no key for the value: set the node's key (the topic %q ends in an empty level)", topic)
		}
		v = map[string]any{key: v}
	}
	m := engine.NewMsg(v)
	m.Topic = topic
	m.Set("ts", at.UnixMilli())
	if hasDevice {
		m.Set("device", device)
	}
	if hasType {
		m.Set("deviceType", dtype)
	}
	return m, nil
}

var _ engine.Runner = (*inNode)(nil)
