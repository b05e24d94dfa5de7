package core

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "inject", Category: engine.CategoryCommon, Inputs: 0, Outputs: 1,
		Label: "inject", OutputLabels: []string{"message"}, Color: "#a6bbcf", Icon: "inject",
		Summary: "Sends a message on a schedule, once at start, or when its button is pressed.",
		Help: `Sends a message with the configured **payload** and **topic**:

- every **interval** (e.g. ` + "`5s`" + `), or
- on a cron-like **schedule** (five fields: minute hour day-of-month month day-of-week, e.g.
  ` + "`*/5 * * * *`" + ` every five minutes, ` + "`0 8 * * 1-5`" + ` at 08:00 on weekdays; or ` + "`@hourly`" + `, ` + "`@daily`" + `), and/or
- **once** shortly after the flow starts (after **onceDelay**), and
- whenever the button in the editor is pressed (` + "`POST /api/inject/{id}`" + `).

The payload is built fresh for every message from **payloadType**: ` + "`timestamp`" + ` (milliseconds since
1970), ` + "`json`" + ` (the payload text parsed as JSON), ` + "`number`" + `, ` + "`string`" + ` or ` + "`boolean`" + `.
Messages also carry ` + "`ts`" + `, the time they were sent in Unix milliseconds.`,
		Fields: []engine.Field{
			{Name: "payloadType", Kind: engine.KindEnum, Label: "Payload type", Default: "timestamp", Enum: []string{"timestamp", "json", "number", "string", "boolean"},
				Help: "How to build the payload."},
			{Name: "payload", Kind: engine.KindString, Label: "Payload", ShowIf: map[string][]any{"payloadType": {"json", "number", "string", "boolean"}}, Default: "", Help: "The payload text for json, number, string and boolean payloads.", Example: `{"temperature": 21.5}`},
			{Name: "topic", Kind: engine.KindString, Label: "Topic", Default: "", Help: "The message topic."},
			{Name: "interval", Kind: engine.KindDuration, Label: "Repeat every", Default: "0s", Help: "Send repeatedly at this interval; 0 turns it off."},
			{Name: "schedule", Kind: engine.KindString, Label: "Cron schedule", Default: "", Help: "Send on this cron schedule (5 fields, local time); empty turns it off.", Example: "*/5 * * * *"},
			{Name: "once", Kind: engine.KindBool, Label: "Send once at start", Default: false, Help: "Send once after the flow starts."},
			{Name: "onceDelay", Kind: engine.KindDuration, Label: "Delay before the first message", Default: "100ms", Help: "Wait this long after start before the first message.", Advanced: true},
		},
		New: engine.Construct(newInject),
	})
}

type injectConfig struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Topic       string          `json:"topic"`
	Interval    engine.Duration `json:"interval"`
	Schedule    string          `json:"schedule"`
	Once        bool            `json:"once"`
	OnceDelay   engine.Duration `json:"onceDelay"`
}

// Validate checks the payload literal and the schedule.
func (c *injectConfig) Validate() error {
	var errs []error
	if _, err := c.literal(); err != nil {
		errs = append(errs, &engine.FieldError{Field: "payload", Message: err.Error()})
	}
	if c.Schedule != "" {
		if _, err := parseCron(c.Schedule); err != nil {
			errs = append(errs, &engine.FieldError{Field: "schedule", Message: err.Error()})
		}
		if c.Interval > 0 {
			errs = append(errs, &engine.FieldError{Field: "schedule", Message: "set either interval or schedule, not both"})
		}
	}
	return errors.Join(errs...)
}

// literal parses the payload text once.
func (c *injectConfig) literal() (any, error) {
	switch c.PayloadType {
	case "json":
		if c.Payload == "" {
			return nil, nil
		}
		var v any
		if err := json.Unmarshal([]byte(c.Payload), &v); err != nil {
			return nil, errors.New("payload is not valid JSON: " + err.Error())
		}
		return v, nil
	case "number":
		f, err := strconv.ParseFloat(c.Payload, 64)
		if err != nil {
			return nil, errors.New("payload " + strconv.Quote(c.Payload) + " is not a number")
		}
		return f, nil
	case "boolean":
		b, err := strconv.ParseBool(c.Payload)
		if err != nil {
			return nil, errors.New("payload " + strconv.Quote(c.Payload) + " is not true or false")
		}
		return b, nil
	}
	return c.Payload, nil
}

type injectNode struct {
	nc      *engine.NodeContext
	conf    *injectConfig
	literal any
	cron    *cronSpec
}

func newInject(nc *engine.NodeContext, c *injectConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lit, _ := c.literal()
	n := &injectNode{nc: nc, conf: c, literal: lit}
	if c.Schedule != "" {
		n.cron, _ = parseCron(c.Schedule)
	}
	return n, nil
}

func (n *injectNode) Start(context.Context) error { return nil }
func (n *injectNode) Stop(context.Context) error  { return nil }

func (n *injectNode) message() *engine.Msg {
	now := time.Now()
	var payload any
	if n.conf.PayloadType == "timestamp" {
		payload = now.UnixMilli()
	} else {
		payload = engine.CloneValue(n.literal)
	}
	m := engine.NewMsg(payload)
	m.Topic = n.conf.Topic
	m.Set("ts", now.UnixMilli())
	return m
}

// Inject sends the message now.
func (n *injectNode) Inject(ctx context.Context) error {
	return n.nc.Send(ctx, n.message())
}

// Run sends on the configured schedule until ctx ends.
func (n *injectNode) Run(ctx context.Context) error {
	if n.conf.Once {
		if !sleep(ctx, n.conf.OnceDelay.D()) {
			return nil
		}
		if err := n.Inject(ctx); err != nil {
			return nil
		}
	}
	switch {
	case n.conf.Interval > 0:
		t := time.NewTicker(n.conf.Interval.D())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := n.Inject(ctx); err != nil {
					return nil
				}
			}
		}
	case n.cron != nil:
		for {
			next := n.cron.next(time.Now())
			if next.IsZero() {
				<-ctx.Done()
				return nil
			}
			if !sleep(ctx, time.Until(next)) {
				return nil
			}
			if err := n.Inject(ctx); err != nil {
				return nil
			}
		}
	}
	<-ctx.Done()
	return nil
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var (
	_ engine.Runner   = (*injectNode)(nil)
	_ engine.Injector = (*injectNode)(nil)
)
