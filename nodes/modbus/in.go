package modbus

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/modbus"
)

func init() {
	engine.Register(engine.Type{
		Name: "modbus-in", Category: category, Inputs: 0, Outputs: 1,
		Label: "modbus in", Color: color, Icon: "modbus",
		Summary: "Polls a Modbus unit's register map and emits the decoded values as one object per poll.",
		Help: `Every **period**, reads the **registers** of **unit** over the **connection** and sends one message:

- ` + "`msg.payload`" + `: an object with one property per row of the map, decoded (type, byte/word order), scaled
  and labelled — e.g. ` + "`{\"voltage\": 230.1, \"current\": 4.2, \"relay\": true, \"state\": \"running\"}`" + ` — ready for
  ` + "`tb-telemetry-out`" + `;
- ` + "`msg.topic`" + `: **topic**; ` + "`msg.ts`" + `: the poll time in Unix milliseconds;
- ` + "`msg.modbus`" + `: ` + "`{unit, requests, latencyMs}`" + ` and, when some rows failed (a Modbus exception for their request),
  ` + "`errors`" + `: an object of row key → message. Those keys are missing from the payload.

Neighbouring rows are read together (see the connection's **maxGap**), so a map of 100 adjacent registers
costs one request per poll. When the unit does not answer, the node shows the error, reports it once to
` + "`catch`" + ` nodes, sends nothing, and the connection retries the unit with a growing pause while other units
on the same link go on.

With **reportByException** only values that changed since the last message are sent (no message at all
when nothing changed), and every **fullReport** the whole object again.

Status: ` + "`connecting`" + `, ` + "`polling`" + ` (green) or the error (red).`,
		Fields: []engine.Field{
			{Name: "connection", Kind: engine.KindConfigRef, Ref: "modbus-connection", Required: true, Help: "The Modbus link to use."},
			{Name: "unit", Kind: engine.KindInt, Default: 1, Min: engine.Float(0), Max: engine.Float(255), Help: "Unit id (slave address) of the device; 1–247 on a serial bus, often 1 or 255 for TCP devices."},
			{Name: "period", Kind: engine.KindDuration, Default: "1s", Min: engine.Float(0.001), Help: "How often to poll."},
			registersField("The register map: one row per value.", []any{
				map[string]any{"key": "value", "function": "holding", "address": 0.0, "type": "uint16"},
			}),
			{Name: "topic", Kind: engine.KindString, Default: "", Help: "msg.topic of the messages sent."},
			{Name: "reportByException", Kind: engine.KindBool, Default: false, Help: "Send only the values that changed since the last message."},
			{Name: "fullReport", Kind: engine.KindDuration, Default: "1m", Help: "With reportByException: send every value again at this interval; 0 never does."},
		},
		New: engine.Construct(newIn),
	})
}

type inConfig struct {
	Connection        string          `json:"connection"`
	Unit              int             `json:"unit"`
	Period            engine.Duration `json:"period"`
	Registers         []registerRow   `json:"registers"`
	Topic             string          `json:"topic"`
	ReportByException bool            `json:"reportByException"`
	FullReport        engine.Duration `json:"fullReport"`
}

// Validate checks the register map cell by cell.
func (c *inConfig) Validate() error {
	_, err := toRegisters(c.Registers)
	return err
}

type inNode struct {
	nc   *engine.NodeContext
	conn *Connection
	conf *inConfig
	regs []modbus.Register

	results chan modbus.Result

	mu     sync.Mutex
	remove func()
	status string
	failed bool

	// report-by-exception state, used only by Run
	last     map[string]any
	lastFull time.Time
}

func newIn(nc *engine.NodeContext, c *inConfig) (engine.Node, error) {
	regs, err := toRegisters(c.Registers)
	if err != nil {
		return nil, err
	}
	conn, err := engine.ConfigNodeAs[*Connection](nc, c.Connection)
	if err != nil {
		return nil, err
	}
	return &inNode{nc: nc, conn: conn, conf: c, regs: regs, results: make(chan modbus.Result, 16)}, nil
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
	remove, err := bus.AddPoller(modbus.PollConfig{Unit: uint8(n.conf.Unit), Period: n.conf.Period.D(), Registers: n.regs}, n.deliver)
	if err != nil {
		return err
	}
	n.remove = remove
	n.setStatus(engine.StatusConnecting)
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

func (n *inNode) setStatus(s engine.Status) {
	if s.Text == n.status {
		return
	}
	n.status = s.Text
	n.nc.Status(s)
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
		n.setStatus(engine.StatusError(r.Err))
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
		n.setStatus(engine.Status{Fill: "yellow", Shape: "dot", Text: fmt.Sprintf("polling, %d of %d values failing", len(r.Errors), len(n.regs))})
	} else {
		n.setStatus(engine.Status{Fill: "green", Shape: "dot", Text: "polling"})
	}
	n.mu.Unlock()

	payload := r.Values
	if n.conf.ReportByException {
		full := n.last == nil || (n.conf.FullReport > 0 && r.Time.Sub(n.lastFull) >= n.conf.FullReport.D())
		if full {
			n.lastFull = r.Time
		} else {
			changed := map[string]any{}
			for k, v := range r.Values {
				if old, ok := n.last[k]; !ok || !reflect.DeepEqual(old, v) {
					changed[k] = v
				}
			}
			payload = changed
		}
		if n.last == nil {
			n.last = map[string]any{}
		}
		maps.Copy(n.last, r.Values)
		if len(payload) == 0 && len(r.Errors) == 0 {
			return nil
		}
	}
	m := engine.NewMsg(payload)
	m.Topic = n.conf.Topic
	m.Set("ts", r.Time.UnixMilli())
	info := map[string]any{"unit": int64(r.Unit), "requests": int64(r.Requests), "latencyMs": float64(r.Latency.Microseconds()) / 1000}
	if len(r.Errors) > 0 {
		errs := map[string]any{}
		for k, e := range r.Errors {
			errs[k] = e.Error()
		}
		info["errors"] = errs
	}
	m.Set("modbus", info)
	return n.nc.Send(ctx, m)
}

var (
	_ engine.Runner = (*inNode)(nil)
)
