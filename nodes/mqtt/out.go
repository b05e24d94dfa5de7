package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/nodes/internal/msgfield"
)

func init() {
	engine.Register(engine.Type{
		Name: "mqtt-out", Category: category, Inputs: 1, Outputs: 1,
		Label: "mqtt out", Color: color, Icon: "mqtt",
		OutputLabels: []string{"published"},
		Summary:      "Publishes msg.payload to an MQTT topic, which may be built from the message, and passes the message on once the broker took it.",
		Help: `Publishes ` + "`msg.payload`" + ` on the **broker** — to switch a Tasmota relay from a ThingsBoard RPC, say:
` + "`gw-device (rpc) → transform → mqtt-out → tb-rpc-out`" + `.

**topic** may hold ` + "`{{…}}`" + ` references to the message: ` + "`cmnd/{{device}}/POWER`" + ` takes ` + "`msg.device`" + `,
` + "`{{payload.id}}`" + ` a payload field, ` + "`{{method}}`" + ` the RPC method of a ` + "`gw-device`" + ` or ` + "`tb-rpc-in`" + ` message. Empty
uses ` + "`msg.topic`" + `. (` + "`${NAME}`" + ` is an environment variable, as in every field.) A reference that is missing, or a topic with a wildcard, is an error for ` + "`catch`" + `.

**format**: ` + "`auto`" + ` sends text as it is and everything else as JSON; ` + "`json`" + ` always JSON (text quoted);
` + "`text`" + ` sends text, numbers and booleans as plain text (objects as JSON).

With QoS 1 or 2 the node waits for the broker's acknowledgement (up to the broker's **publishTimeout**)
before passing the message on with ` + "`msg.mqtt`" + ` = ` + "`{topic, qos, retain}`" + `. While the session is down the message
waits and is retried by the engine; nothing is dropped.

Status: the broker session's state, or the last publish error.`,
		Fields: []engine.Field{
			brokerField(),
			{Name: "topic", Label: "Topic", Kind: engine.KindString, Default: "", Help: "Topic to publish to; `{{device}}`, `{{payload.x}}` and other `{{…}}` take values from the message; empty uses msg.topic.", Example: "cmnd/{{device}}/POWER"},
			{Name: "qos", Label: "QoS", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(2), Help: "MQTT QoS: 0 (at most once), 1 (at least once) or 2 (exactly once)."},
			{Name: "retain", Label: "Retain", Kind: engine.KindBool, Default: false, Help: "Ask the broker to keep the message as the topic's last value for future subscribers."},
			{Name: "format", Label: "Payload format", Kind: engine.KindEnum, Default: formatAuto, Enum: []string{formatAuto, formatJSON, formatText}, Help: "`auto`: text as it is, the rest as JSON. `json`: always JSON. `text`: plain text for text, numbers and booleans."},
		},
		New: engine.Construct(newOut),
	})
}

type outConfig struct {
	Broker string `json:"broker"`
	Topic  string `json:"topic"`
	QoS    int    `json:"qos"`
	Retain bool   `json:"retain"`
	Format string `json:"format"`
}

// checkTopic checks a topic to publish to.
func checkTopic(s string) error {
	if s == "" {
		return errors.New("no topic: set the node's topic or msg.topic")
	}
	if strings.ContainsAny(s, "+#") {
		return fmt.Errorf("topic %q has a wildcard, which publishing does not allow", s)
	}
	if len(s) > 65535 {
		return errors.New("topic longer than MQTT allows")
	}
	return nil
}

// Validate checks the topic template.
func (c *outConfig) Validate() error {
	if _, err := msgfield.ParseTemplate(c.Topic); err != nil {
		return &engine.FieldError{Field: "topic", Message: err.Error()}
	}
	if !strings.Contains(c.Topic, "{{") && strings.ContainsAny(c.Topic, "+#") {
		return &engine.FieldError{Field: "topic", Message: "wildcards (+, #) are for subscribing, not publishing"}
	}
	return nil
}

type outNode struct {
	nc     *engine.NodeContext
	broker *Broker
	conf   *outConfig
	topic  msgfield.Template

	mu      sync.Mutex
	started bool
	failed  bool // the last publish failed: its error is the status
}

func newOut(nc *engine.NodeContext, c *outConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := engine.ConfigNodeAs[*Broker](nc, c.Broker)
	if err != nil {
		return nil, err
	}
	t, _ := msgfield.ParseTemplate(c.Topic)
	return &outNode{nc: nc, broker: b, conf: c, topic: t}, nil
}

func (n *outNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		n.started = true
		n.broker.attach(n.nc)
	}
	return nil
}

func (n *outNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		n.started = false
		n.broker.detach(n.nc)
	}
	return nil
}

// encode turns the payload into bytes by the node's format.
func (n *outNode) encode(v any) ([]byte, error) {
	switch t := v.(type) {
	case string:
		if n.conf.Format == formatJSON {
			return json.Marshal(t)
		}
		return []byte(t), nil
	case []byte:
		return t, nil
	case float64:
		if n.conf.Format == formatText {
			return []byte(strconv.FormatFloat(t, 'f', -1, 64)), nil
		}
	case bool:
		if n.conf.Format == formatText {
			return []byte(strconv.FormatBool(t)), nil
		}
	}
	return json.Marshal(v)
}

// Handle publishes the message and passes it on.
func (n *outNode) Handle(ctx context.Context, m *engine.Msg) error {
	topic := m.Topic
	if n.conf.Topic != "" {
		var err error
		if topic, err = n.topic.Expand(m, "topic", nil); err != nil {
			return fmt.Errorf("mqtt-out: %w", err)
		}
	}
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("mqtt-out: %w", err)
	}
	body, err := n.encode(m.Payload)
	if err != nil {
		return fmt.Errorf("mqtt-out: payload: %w", err)
	}
	c, err := n.broker.Client()
	if err != nil {
		return err
	}
	t := c.Publish(topic, byte(n.conf.QoS), n.conf.Retain, body)
	timeout := n.broker.conf.PublishTimeout.D()
	if !waitToken(ctx, t, timeout) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := n.broker.Client(); err != nil {
			return err // the session went down: the engine retries
		}
		return fmt.Errorf("mqtt-out %s: no acknowledgement within %s", topic, timeout)
	}
	if err := t.Error(); err != nil {
		if _, cerr := n.broker.Client(); cerr != nil {
			return cerr
		}
		n.mu.Lock()
		n.failed = true
		n.mu.Unlock()
		n.nc.Status(engine.StatusError(err))
		return fmt.Errorf("mqtt-out %s: %w", topic, err)
	}
	n.mu.Lock()
	if n.failed {
		n.failed = false
		n.nc.Status(n.broker.currentStatus())
	}
	n.mu.Unlock()
	m.Set("mqtt", map[string]any{"topic": topic, "qos": int64(n.conf.QoS), "retain": n.conf.Retain})
	return n.nc.Send(ctx, m)
}

var _ engine.Handler = (*outNode)(nil)

// waitToken waits for a paho token until ctx ends or timeout passes; it
// reports whether the token completed.
func waitToken(ctx context.Context, t paho.Token, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return true
	case <-ctx.Done():
	case <-timer.C:
	}
	return false
}
