package core

import (
	"context"
	"time"

	"github.com/tbflow/tbflow/engine"
)

func init() {
	engine.Register(engine.Type{
		Name: "delay", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "delay", OutputLabels: []string{"delayed"}, Color: "#e6e0f8", Icon: "timer",
		Summary: "Delays each message by a fixed time.",
		Help: `Sends every message on **delay** after it arrived, keeping their order. Messages are delayed
independently: a 1 s delay does not limit throughput. At most **maxQueued** messages wait inside the
node; when that many are waiting the node stops taking input and its sources slow down
(backpressure) instead of memory growing. Messages still waiting when the node is stopped or
redeployed are dropped.`,
		Fields: []engine.Field{
			{Name: "delay", Kind: engine.KindDuration, Label: "Delay", Default: "1s", Help: "How long to hold each message."},
			{Name: "maxQueued", Kind: engine.KindInt, Label: "Most messages queued", Default: 1000, Min: engine.Float(1), Max: engine.Float(1_000_000), Help: "Messages that may wait inside the node.", Advanced: true},
		},
		New: engine.Construct(newDelay),
	})
	engine.Register(engine.Type{
		Name: "rate-limit", Category: engine.CategoryFunction, Inputs: 1, Outputs: 1,
		Label: "rate-limit", OutputLabels: []string{"passed"}, Color: "#e6e0f8", Icon: "timer",
		Summary: "Lets at most N messages through per interval.",
		Help: `Passes at most **rate** messages per **per** interval (a token bucket that allows bursts of
**rate**). Excess messages wait (the default: the node slows its sources down, nothing is lost) or,
with **drop** on, are discarded and counted in the node's status.`,
		Fields: []engine.Field{
			{Name: "rate", Kind: engine.KindInt, Label: "Messages per interval", Default: 1, Min: engine.Float(1), Help: "Messages allowed per interval."},
			{Name: "per", Kind: engine.KindDuration, Label: "Interval", Default: "1s", Help: "The interval."},
			{Name: "drop", Kind: engine.KindBool, Label: "Drop excess messages", Default: false, Help: "Drop excess messages instead of waiting."},
		},
		New: engine.Construct(newRateLimit),
	})
}

type delayConfig struct {
	Delay     engine.Duration `json:"delay"`
	MaxQueued int             `json:"maxQueued"`
}

type delayed struct {
	due time.Time
	m   *engine.Msg
}

type delayNode struct {
	nc      *engine.NodeContext
	delay   time.Duration
	pending chan delayed
}

func newDelay(nc *engine.NodeContext, c *delayConfig) (engine.Node, error) {
	return &delayNode{nc: nc, delay: c.Delay.D(), pending: make(chan delayed, max(c.MaxQueued, 1))}, nil
}

func (n *delayNode) Start(context.Context) error { return nil }
func (n *delayNode) Stop(context.Context) error  { return nil }

func (n *delayNode) Handle(ctx context.Context, m *engine.Msg) error {
	select {
	case n.pending <- delayed{due: time.Now().Add(n.delay), m: m}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *delayNode) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-n.pending:
			if !sleep(ctx, time.Until(d.due)) {
				return nil
			}
			if err := n.nc.Send(ctx, d.m); err != nil {
				return nil
			}
		}
	}
}

type rateLimitConfig struct {
	Rate int             `json:"rate"`
	Per  engine.Duration `json:"per"`
	Drop bool            `json:"drop"`
}

type rateLimitNode struct {
	nc      *engine.NodeContext
	conf    *rateLimitConfig
	every   time.Duration // one token per every
	tokens  float64
	last    time.Time
	dropped int
}

func newRateLimit(nc *engine.NodeContext, c *rateLimitConfig) (engine.Node, error) {
	per := c.Per.D()
	if per <= 0 {
		per = time.Second
	}
	rate := max(c.Rate, 1)
	return &rateLimitNode{nc: nc, conf: c, every: per / time.Duration(rate), tokens: float64(rate)}, nil
}

func (n *rateLimitNode) Start(context.Context) error { return nil }
func (n *rateLimitNode) Stop(context.Context) error  { return nil }

func (n *rateLimitNode) refill(now time.Time) {
	if !n.last.IsZero() && n.every > 0 {
		n.tokens = min(float64(n.conf.Rate), n.tokens+float64(now.Sub(n.last))/float64(n.every))
	}
	n.last = now
}

func (n *rateLimitNode) Handle(ctx context.Context, m *engine.Msg) error {
	n.refill(time.Now())
	if n.tokens < 1 {
		if n.conf.Drop {
			n.dropped++
			if n.dropped == 1 || n.dropped%100 == 0 {
				n.nc.Status(engine.Status{Fill: "yellow", Shape: "ring", Text: "dropped " + itoa(n.dropped)})
			}
			return nil
		}
		wait := time.Duration((1 - n.tokens) * float64(n.every))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		n.refill(time.Now())
	}
	n.tokens--
	return n.nc.Send(ctx, m)
}

func itoa(i int) string {
	b := [20]byte{}
	p := len(b)
	if i == 0 {
		return "0"
	}
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	return string(b[p:])
}

var (
	_ engine.Handler = (*delayNode)(nil)
	_ engine.Runner  = (*delayNode)(nil)
	_ engine.Handler = (*rateLimitNode)(nil)
)
