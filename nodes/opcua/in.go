package opcua

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "opcua-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "opcua in", Color: color, Icon: "opcua",
		Summary: "Reads OPC UA variables, by subscription or by polling, and emits their values as one object per update.",
		Help: `Watches the variables in **items** on the server of the **connection** and sends their values:

- ` + "`msg.payload`" + `: an object of key → value, e.g. ` + "`{\"temperature\": 81.5, \"running\": true}`" + `, ready for
  ` + "`tb-telemetry-out`" + ` (through a ` + "`gw-device`" + ` for a gateway);
- ` + "`msg.ts`" + `: the newest source timestamp of the values (Unix milliseconds), or the time received;
- ` + "`msg.topic`" + `: **topic**; ` + "`msg.device`" + `: **device** when set, so one ` + "`gw-device`" + ` without a device name routes
  several sources;
- ` + "`msg.opcua`" + `: ` + "`{mode}`" + ` and, when some items have a bad status, ` + "`errors`" + `: key → status. Those keys are missing
  from the payload.

**mode** ` + "`subscribe`" + `: one subscription publishing every **interval**, with a monitored item per row that the
server samples every **samplingInterval**, keeping up to **queueSize** values between publishes (every one is
sent, oldest first, in separate messages). With a **deadband** (absolute, or percent of the variable's EURange),
numeric values that change less are not reported. The first message holds every value; after that only what
changed. **mode** ` + "`poll`" + `: every **interval** all items are read in one request and sent, for servers without
subscriptions.

Types: Boolean → boolean; integers → numbers (a UInt64 beyond 2^63 as decimal text); Float, Double → numbers
(NaN and infinities as text); String → text; DateTime → RFC 3339 text (UTC); ByteString → base64 text; Guid,
NodeId, QualifiedName and LocalizedText → text; arrays → JSON arrays; structures → JSON objects.

When the server goes away the node shows the error, reports it to ` + "`catch`" + ` nodes and subscribes again once the
connection is back (the engine retries with a growing pause). The link is checked every **keepAlive**.

Status: ` + "`connecting`" + `, ` + "`connected`" + ` (subscribed) or ` + "`polling`" + ` (green), or the error (red).`,
		Fields: []engine.Field{
			{Name: "connection", Kind: engine.KindConfigRef, Label: "Connection", Ref: "opcua-connection", Required: true, Help: "The OPC UA server to read from."},
			{Name: "mode", Kind: engine.KindEnum, Label: "Mode", Default: "subscribe", Enum: []string{"subscribe", "poll"}, Help: "`subscribe`: the server reports changes; `poll`: read every item every interval."},
			itemsField("The variables to read: one row per value."),
			{Name: "interval", Kind: engine.KindDuration, Label: "Interval", Default: "1s", Min: engine.Float(0.001), Help: "Publishing interval of the subscription, or the poll period."},
			{Name: "samplingInterval", Kind: engine.KindDuration, Label: "Sampling interval", Default: "1s", Min: engine.Float(0), Help: "How often the server samples each item; 0 is as fast as the server can.", ShowIf: map[string][]any{"mode": {"subscribe"}}},
			{Name: "queueSize", Kind: engine.KindInt, Label: "Queue size", Default: 1, Min: engine.Float(1), Max: engine.Float(10000), Help: "Values the server keeps per item between two publishes; 1 keeps only the latest.", ShowIf: map[string][]any{"mode": {"subscribe"}}},
			{Name: "deadband", Kind: engine.KindEnum, Label: "Deadband", Default: "none", Enum: []string{"none", "absolute", "percent"}, Help: "Ignore numeric changes smaller than deadbandValue: in the value's units (absolute) or in percent of its EURange (percent).", ShowIf: map[string][]any{"mode": {"subscribe"}}},
			{Name: "deadbandValue", Kind: engine.KindNumber, Label: "Deadband value", Default: 0.0, Min: engine.Float(0), Help: "The smallest change reported.", ShowIf: map[string][]any{"mode": {"subscribe"}, "deadband": {"absolute", "percent"}}},
			{Name: "keepAlive", Kind: engine.KindDuration, Label: "Link check", Default: "5s", Min: engine.Float(0.1), Help: "How often to check that the server still answers.", Advanced: true},
			{Name: "topic", Kind: engine.KindString, Label: "Topic", Default: "", Help: "msg.topic of the messages sent."},
			{Name: "device", Kind: engine.KindString, Label: "Device", Default: "", Help: "msg.device of the messages sent (a ThingsBoard device behind a gateway); empty leaves it unset.", Example: "Boiler 1"},
		},
		OutputLabels: []string{"values"},
		New:          engine.Construct(newIn),
	})
}

type inConfig struct {
	Connection       string          `json:"connection"`
	Mode             string          `json:"mode"`
	Items            []itemRow       `json:"items"`
	Interval         engine.Duration `json:"interval"`
	SamplingInterval engine.Duration `json:"samplingInterval"`
	QueueSize        int             `json:"queueSize"`
	Deadband         string          `json:"deadband"`
	DeadbandValue    float64         `json:"deadbandValue"`
	KeepAlive        engine.Duration `json:"keepAlive"`
	Topic            string          `json:"topic"`
	Device           string          `json:"device"`
}

// Validate checks the items table and the deadband.
func (c *inConfig) Validate() error {
	err := checkItems(c.Items)
	if c.Mode == "subscribe" && c.Deadband == "percent" && c.DeadbandValue > 100 {
		err = errors.Join(err, &engine.FieldError{Field: "deadbandValue", Message: "a percent deadband is at most 100"})
	}
	return err
}

type inNode struct {
	nc   *engine.NodeContext
	conn *Connection
	conf *inConfig

	mu     sync.Mutex
	status string
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	return &inNode{nc: nc, conn: conn, conf: c}, nil
}

func (n *inNode) Start(context.Context) error { return nil }
func (n *inNode) Stop(context.Context) error  { return nil }

func (n *inNode) setStatus(s engine.Status) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.Text == n.status {
		return
	}
	n.status = s.Text
	n.nc.Status(s)
}

// Run reads until ctx ends or the link breaks; the engine calls it again
// after a growing pause when it returns an error.
func (n *inNode) Run(ctx context.Context) error {
	err := n.run(ctx)
	if err != nil && ctx.Err() == nil {
		n.setStatus(engine.StatusError(err))
		return fmt.Errorf("opcua-in %s: %w", n.conn.Endpoint(), err)
	}
	return nil
}

func (n *inNode) run(ctx context.Context) error {
	n.mu.Lock()
	first := n.status == ""
	n.mu.Unlock()
	if first {
		// Later attempts keep showing the error until they succeed.
		n.setStatus(engine.StatusConnecting)
	}
	cli, lost, err := n.conn.Client(ctx)
	if err != nil {
		return err
	}
	ids, err := resolveItems(n.conf.Items, cli.Namespaces())
	if err != nil {
		return err
	}
	if n.conf.Mode == "poll" {
		return n.poll(ctx, cli, lost, ids)
	}
	return n.subscribe(ctx, cli, lost, ids)
}

// linkErr drops the session when err came with a broken link, and returns
// err.
func (n *inNode) linkErr(cli *opcua.Client, err error) error {
	if cli.State() != opcua.Connected || isLinkError(err) {
		n.conn.Drop(cli)
	}
	return err
}

func (n *inNode) poll(ctx context.Context, cli *opcua.Client, lost <-chan struct{}, ids []*ua.NodeID) error {
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth, NodesToRead: make([]*ua.ReadValueID, len(ids))}
	for i, id := range ids {
		req.NodesToRead[i] = &ua.ReadValueID{NodeID: id, AttributeID: ua.AttributeIDValue}
	}
	t := time.NewTicker(n.conf.Interval.D())
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
		res, err := cli.Read(rctx, req)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
			err = res.ResponseHeader.ServiceResult
		}
		if err != nil {
			return n.linkErr(cli, err)
		}
		if len(res.Results) != len(ids) {
			return fmt.Errorf("the server answered %d values for %d items", len(res.Results), len(ids))
		}
		vals := map[string]any{}
		errs := map[string]any{}
		var ts time.Time
		for i, dv := range res.Results {
			n.take(n.conf.Items[i].Key, dv, vals, errs, &ts)
		}
		n.okStatus("polling", len(errs))
		if err := n.send(ctx, vals, errs, ts); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("connection lost")
		case <-t.C:
		}
	}
}

func (n *inNode) okStatus(text string, failing int) {
	if failing > 0 {
		n.setStatus(engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("%s, %d of %d items failing", text, failing, len(n.conf.Items))})
		return
	}
	n.setStatus(engine.Status{Fill: "green", Shape: "dot", Text: text})
}

// take puts one data value into vals, or its bad status into errs.
func (n *inNode) take(key string, dv *ua.DataValue, vals, errs map[string]any, ts *time.Time) {
	if dv == nil {
		errs[key] = "no value"
		return
	}
	if dv.Status != ua.StatusOK && dv.Status&0xC0000000 != 0 { // bad or uncertain
		errs[key] = dv.Status.Error()
		return
	}
	var v any
	if dv.Value != nil {
		v = toJSON(dv.Value.Value())
	}
	vals[key] = v
	if dv.SourceTimestamp.After(*ts) {
		*ts = dv.SourceTimestamp
	}
}

func (n *inNode) send(ctx context.Context, vals, errs map[string]any, ts time.Time) error {
	if len(vals) == 0 && len(errs) == 0 {
		return nil
	}
	if ts.IsZero() || ts.After(time.Now().Add(time.Hour)) {
		ts = time.Now()
	}
	m := engine.NewMsg(vals)
	m.Topic = n.conf.Topic
	m.Set("ts", ts.UnixMilli())
	if n.conf.Device != "" {
		m.Set("device", n.conf.Device)
	}
	info := map[string]any{"mode": n.conf.Mode}
	if len(errs) > 0 {
		info["errors"] = errs
	}
	m.Set("opcua", info)
	return n.nc.Send(ctx, m)
}

func (n *inNode) subscribe(ctx context.Context, cli *opcua.Client, lost <-chan struct{}, ids []*ua.NodeID) error {
	notifs := make(chan *opcua.PublishNotificationData, 256)
	sctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
	sub, err := cli.Subscribe(sctx, &opcua.SubscriptionParameters{Interval: n.conf.Interval.D()}, notifs)
	cancel()
	if err != nil {
		return n.linkErr(cli, fmt.Errorf("creating the subscription: %w", err))
	}
	defer func() {
		select {
		case <-lost:
			return
		default:
		}
		cctx, cancel := context.WithTimeout(context.Background(), n.conn.Timeout())
		defer cancel()
		_ = sub.Cancel(cctx)
	}()
	reqs := make([]*ua.MonitoredItemCreateRequest, len(ids))
	for i, id := range ids {
		r := opcua.NewMonitoredItemCreateRequestWithDefaults(id, ua.AttributeIDValue, uint32(i))
		r.RequestedParameters.SamplingInterval = float64(n.conf.SamplingInterval.D()) / float64(time.Millisecond)
		r.RequestedParameters.QueueSize = uint32(n.conf.QueueSize)
		if n.conf.Deadband != "none" && n.conf.Deadband != "" {
			typ := uint32(ua.DeadbandTypeAbsolute)
			if n.conf.Deadband == "percent" {
				typ = uint32(ua.DeadbandTypePercent)
			}
			r.RequestedParameters.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{
				Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: typ, DeadbandValue: n.conf.DeadbandValue,
			})
		}
		reqs[i] = r
	}
	mctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
	res, err := sub.Monitor(mctx, ua.TimestampsToReturnBoth, reqs...)
	cancel()
	if err == nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		err = res.ResponseHeader.ServiceResult
	}
	if err != nil {
		return n.linkErr(cli, fmt.Errorf("creating monitored items: %w", err))
	}
	itemErrs := map[string]any{}
	for i, r := range res.Results {
		if i < len(n.conf.Items) && r.StatusCode != ua.StatusOK {
			itemErrs[n.conf.Items[i].Key] = r.StatusCode.Error()
		}
	}
	if len(itemErrs) == len(n.conf.Items) {
		return fmt.Errorf("no item can be monitored: %v", itemErrs)
	}
	if len(itemErrs) > 0 {
		n.nc.Error(fmt.Errorf("opcua-in: items not monitored: %v", itemErrs), nil)
	}
	n.okStatus("connected", len(itemErrs))

	probe := time.NewTicker(n.conf.KeepAlive.D())
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errors.New("connection lost")
		case <-probe.C:
			if err := n.probe(ctx, cli); err != nil {
				return n.linkErr(cli, fmt.Errorf("the server does not answer: %w", err))
			}
		case pn := <-notifs:
			if pn.Error != nil {
				return n.linkErr(cli, pn.Error)
			}
			dc, ok := pn.Value.(*ua.DataChangeNotification)
			if !ok {
				continue
			}
			if err := n.emitChanges(ctx, dc, itemErrs); err != nil {
				return nil
			}
		}
	}
}

// emitChanges sends the values of one data change notification. An item
// reported more than once (a queue) is sent in several messages, oldest
// first.
func (n *inNode) emitChanges(ctx context.Context, dc *ua.DataChangeNotification, itemErrs map[string]any) error {
	vals := map[string]any{}
	errs := map[string]any{}
	var ts time.Time
	for _, it := range dc.MonitoredItems {
		if it == nil || int(it.ClientHandle) >= len(n.conf.Items) {
			continue
		}
		key := n.conf.Items[it.ClientHandle].Key
		if _, dup := vals[key]; dup {
			if err := n.send(ctx, vals, errs, ts); err != nil {
				return err
			}
			vals, errs, ts = map[string]any{}, map[string]any{}, time.Time{}
		}
		n.take(key, it.Value, vals, errs, &ts)
	}
	n.okStatus("connected", len(itemErrs)+len(errs))
	return n.send(ctx, vals, errs, ts)
}

// probe reads the server's state, to notice a link that died silently.
func (n *inNode) probe(ctx context.Context, cli *opcua.Client) error {
	pctx, cancel := context.WithTimeout(ctx, n.conn.Timeout())
	defer cancel()
	res, err := cli.Read(pctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: ua.NewNumericNodeID(0, 2259), AttributeID: ua.AttributeIDValue}}})
	if err != nil {
		return err
	}
	if res.ResponseHeader.ServiceResult != ua.StatusOK {
		return res.ResponseHeader.ServiceResult
	}
	return nil
}

var _ engine.Runner = (*inNode)(nil)
