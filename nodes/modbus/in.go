package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-in", Category: category, Inputs: 0, Outputs: 2, OutputLabels: []string{"telemetry", "attributes"},
		Label: "modbus in", Color: color, Icon: "modbus",
		Summary: "Polls a Modbus unit's register map and emits the decoded values: telemetry rows by the first output, attribute rows by the second.",
		Help: `Every **period**, reads the **registers** of **unit** over the **connection** and sends:
- by the first output the rows whose **Send as** is ` + "`telemetry`" + `, by the second the ` + "`attribute`" + ` rows — ready for
  ` + "`tb-telemetry-out`" + ` and ` + "`tb-attr-out`" + `;
- ` + "`msg.payload`" + `: an object with one property per row, decoded (type, byte/word order), scaled in exact decimal
  arithmetic and labelled — e.g. ` + "`{\"voltage\": 230.1, \"current\": 4.2, \"relay\": true, \"state\": \"running\"}`" + `;
- ` + "`msg.topic`" + `: **topic**; ` + "`msg.ts`" + `: the poll time in Unix milliseconds;
- ` + "`msg.modbus`" + `: ` + "`{unit, requests, latencyMs}`" + ` and, when some rows failed (a Modbus exception for their request),
  ` + "`errors`" + `: an object of row key → message. Those keys are missing from the payload.
Neighbouring rows are read together (see the connection's **maxGap** and **maxRegisters**; **maxRegisters** here
lowers it for this device), so a map of 100 adjacent registers costs one request per poll. When the unit does not
answer or the link is down, the node shows the error, reports it once to ` + "`catch`" + ` nodes, sends nothing, and the
connection retries with a growing pause while other units on the same link go on.
Each row's **report** says when its value is sent: every poll, on change (a number beyond its **deadband**), every
**reportPeriod**, or on change and at least every period. Rows left at ` + "`default`" + ` follow **reportByException**: only values
that changed since the last message, and every **fullReport** the whole set again. A message is sent only when it
carries a value (or row errors).
Status: ` + "`connecting`" + `, ` + "`polling`" + ` (green) or the error (red).`,
		Fields: []engine.Field{
			{Name: "connection", Label: "Connection", Kind: engine.KindConfigRef, Ref: "modbus-connection", Required: true, Help: "The Modbus link to use."},
			{Name: "unit", Label: "Unit id", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(255),
				Help: "Unit id (slave address) of the device; 1–247 on a serial bus, often 1 or 255 for TCP devices."},
			{Name: "period", Label: "Poll period", Kind: engine.KindDuration, Default: "1s", Min: engine.Float(0.001), Help: "How often to poll."},
			registersField("The register map: one row per value.", []any{
				map[string]any{"key": "value", "function": "holding", "address": 0.0, "type": "uint16"},
			}, true),
			{Name: "topic", Label: "Topic", Kind: engine.KindString, Default: "", Help: "msg.topic of the messages sent."},
			{Name: "reportByException", Label: "Report by exception", Kind: engine.KindBool, Default: false,
				Help: "Rows whose report is default send only the values that changed since the last message."},
			{Name: "fullReport", Label: "Full report every", Kind: engine.KindDuration, Default: "1m",
				Help: "With report by exception: send every value again at this interval; 0 never does.", ShowIf: map[string][]any{"reportByException": {true}}},
			{Name: "maxRegisters", Label: "Max registers per request", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(125), Advanced: true,
				Help: "Lowers the connection's request size for this device; 0 keeps the connection's."},
			{Name: "maxBits", Label: "Max coils per request", Kind: engine.KindInt, Default: 0, Min: engine.Float(0), Max: engine.Float(2000), Advanced: true,
				Help: "Lowers the connection's coil request size for this device; 0 keeps the connection's."},
		},
		New: engine.Construct(newIn),
	})
}

type inConfig struct {
	Connection        string          `json:"connection"`
	Unit              int             `json:"unit"`
	Period            engine.Duration `json:"period"`
	Registers         []polledRow     `json:"registers"`
	Topic             string          `json:"topic"`
	ReportByException bool            `json:"reportByException"`
	FullReport        engine.Duration `json:"fullReport"`
	MaxRegisters      int             `json:"maxRegisters"`
	MaxBits           int             `json:"maxBits"`
}

// Validate checks the register map cell by cell.
func (c *inConfig) Validate() error {
	_, _, err := toRegisters(c.Registers, rowDefaults{})
	return err
}

type inNode struct {
	nc    *engine.NodeContext
	conn  *Connection
	conf  *inConfig
	regs  []modbus.Register
	metas map[string]rowMeta

	results chan modbus.Result

	mu     sync.Mutex
	remove func()
	failed bool

	rep reporter // used only by Run
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	regs, metas, err := toRegisters(c.Registers, conn.conf.defaults())
	if err != nil {
		return nil, err
	}
	n := &inNode{nc: nc, conn: conn, conf: c, regs: regs, metas: map[string]rowMeta{}, results: make(chan modbus.Result, 16)}
	for i, r := range regs {
		n.metas[r.Key] = metas[i]
	}
	n.rep = reporter{metas: n.metas, byException: c.ReportByException, full: c.FullReport.D()}
	return n, nil
}

// Start registers the poller with the connection's scheduler.
func (n *inNode) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.remove != nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	bus, err := n.conn.Bus()
	if err != nil {
		return err
	}
	remove, err := bus.AddPoller(modbus.PollConfig{Unit: uint8(n.conf.Unit), Period: n.conf.Period.D(), Registers: n.regs,
		MaxRegisters: n.conf.MaxRegisters, MaxBits: n.conf.MaxBits}, n.deliver)
	if err != nil {
		return err
	}
	n.remove = remove
	n.nc.ShowStatus(engine.StatusConnecting)
	return nil
}

// deliver runs on the bus goroutine: it never blocks. When the flow falls
// behind, the oldest waiting result is dropped.
func (n *inNode) deliver(r modbus.Result) {
	for {
		select {
		case n.results <- r:
			return
		default:
		}
		select {
		case <-n.results:
		default:
		}
	}
}

// Stop removes the poller.
func (n *inNode) Stop(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.remove != nil {
		n.remove()
		n.remove = nil
	}
	return nil
}

// Run turns poll results into messages until ctx ends.
func (n *inNode) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-n.results:
			if err := n.emit(ctx, r); err != nil {
				return nil
			}
		}
	}
}

func (n *inNode) emit(ctx context.Context, r modbus.Result) error {
	n.mu.Lock()
	if r.Err != nil {
		first := !n.failed
		n.failed = true
		n.nc.ShowStatus(engine.StatusError(r.Err))
		n.mu.Unlock()
		if first {
			n.nc.Error(fmt.Errorf("modbus-in unit %d: %w", r.Unit, r.Err), nil)
		}
		return nil
	}
	if n.failed {
		n.nc.Logger().Info("modbus unit answers again", "unit", r.Unit)
	}
	n.failed = false
	if len(r.Errors) > 0 {
		n.nc.ShowStatus(engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("polling, %d of %d values failing", len(r.Errors), len(n.regs))})
	} else {
		n.nc.ShowStatus(engine.Status{Fill: "green", Shape: "dot", Text: "polling"})
	}
	n.mu.Unlock()

	tel, attr := n.rep.pick(r.Values, r.Time)
	info := map[string]any{"unit": int64(r.Unit), "requests": int64(r.Requests), "latencyMs": float64(r.Latency.Microseconds()) / 1000}
	if len(r.Errors) > 0 {
		errs := map[string]any{}
		for k, e := range r.Errors {
			errs[k] = e.Error()
		}
		info["errors"] = errs
	}
	send := func(port int, payload map[string]any) error {
		m := engine.NewMsg(payload)
		m.Topic = n.conf.Topic
		m.Set("ts", r.Time.UnixMilli())
		m.Set("modbus", maps.Clone(info)) // each message its own
		return n.nc.SendTo(ctx, port, m)
	}
	if len(tel) > 0 || (len(r.Errors) > 0 && len(attr) == 0) || (n.rep.always && len(attr) == 0) {
		if err := send(0, tel); err != nil {
			return err
		}
	}
	if len(attr) > 0 {
		return send(1, attr)
	}
	return nil
}

// reporter decides, row by row, which values of a poll are sent.
type reporter struct {
	metas       map[string]rowMeta
	byException bool
	full        time.Duration
	always      bool // every row reports every poll: a message each poll, even an empty one

	sent     map[string]any
	sentAt   map[string]time.Time
	lastFull time.Time
}

// pick returns the telemetry and attribute values to send now.
func (rp *reporter) pick(values map[string]any, now time.Time) (tel, attr map[string]any) {
	if rp.sent == nil {
		rp.sent, rp.sentAt = map[string]any{}, map[string]time.Time{}
		rp.always = !rp.byException
		for _, m := range rp.metas {
			if m.report != "" && m.report != "poll" {
				rp.always = false
			}
		}
	}
	fullDue := rp.byException && rp.full > 0 && now.Sub(rp.lastFull) >= rp.full
	if fullDue {
		rp.lastFull = now
	}
	tel, attr = map[string]any{}, map[string]any{}
	for k, v := range values {
		m := rp.metas[k]
		mode := m.report
		if mode == "" {
			mode = "poll"
			if rp.byException {
				mode = "change"
			}
		}
		old, seen := rp.sent[k]
		changed := !seen || differs(old, v, m.deadband)
		periodDue := !seen || (m.period > 0 && now.Sub(rp.sentAt[k]) >= m.period)
		var out bool
		switch mode {
		case "poll":
			out = true
		case "change":
			out = changed || (m.report == "" && fullDue)
		case "period":
			out = periodDue
		case "change-or-period":
			out = changed || periodDue
		}
		if !out {
			continue
		}
		rp.sent[k], rp.sentAt[k] = v, now
		if m.scope == "attribute" {
			attr[k] = v
		} else {
			tel[k] = v
		}
	}
	return tel, attr
}

// differs reports a change: numbers beyond the deadband, anything else by
// value.
func differs(a, b any, deadband float64) bool {
	fa, oka := number(a)
	fb, okb := number(b)
	if oka && okb {
		d := fa - fb
		if d < 0 {
			d = -d
		}
		if deadband > 0 {
			return d > deadband
		}
		return d != 0
	}
	return fmt.Sprint(a) != fmt.Sprint(b)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

var (
	_ engine.Runner = (*inNode)(nil)
)
