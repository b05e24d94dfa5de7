package hostile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// rpcCorpus is hostile server-side RPCs: method and params.
func rpcCorpus() [][2]string {
	return [][2]string{
		{"echo", `null`},
		{"echo", nestedJSON(5000)},
		{"echo", `"` + strings.Repeat("x", 60000) + `"`},
		{"echo", manyKeys(2000)},
		{"echo", `{"a":"\u0000\ud800"}`},
		{"echo", `1e308`},
		{"echo", `[` + strings.Repeat(`{},`, 5000) + `{}]`},
		{"", `{}`},
		{"+", `{}`},
		{"#", `{}`},
		{strings.Repeat("m", 10000), `{}`},
		{"eval", `{"expr":"len(repeat(repeat(\"a\", 999999), 1000000))"}`},
		{"eval", `{"expr":"all(1..100000, {all(1..100000, {true})})"}`},
		{"eval", `{"expr":"toJSON(payload)","deep":` + nestedJSON(150) + `}`},
		{"eval", `{"expr":"len(toJSON(payload))","deep":` + nestedJSON(900) + `}`},
		{"eval", `{"expr":"payload +"}`},
		{"panic", `{}`},
		{"echo", `{"params":` + nestedJSON(100000) + `}`},
	}
}

func runRPC(t *testing.T, tl *Tally) {
	old := engine.CurrentExprLimits()
	engine.SetExprLimits(engine.ExprLimits{Time: 500 * time.Millisecond})
	t.Cleanup(func() { engine.SetExprLimits(old) })
	sim, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sim.AddDevice(tbsim.Device{Name: "dev", Token: "RPC_TOKEN"})
	host, port, _ := net.SplitHostPort(sim.MQTTAddr())
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := tb.Connect(ctx, tb.Config{Host: host, Port: p, AccessToken: "RPC_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	// The device answers as a flow would: through an expression.
	d.HandleRPC("", func(ctx context.Context, req tb.RPCRequest) (any, error) {
		var params any
		if err := json.Unmarshal(req.Params, &params); err != nil {
			return nil, fmt.Errorf("params are not JSON: %w", err)
		}
		src := "toJSON(payload)"
		switch req.Method {
		case "panic":
			panic("a handler panics")
		case "eval":
			m, _ := params.(map[string]any)
			src, _ = m["expr"].(string)
		}
		e, err := engine.CompileExpr(src)
		if err != nil {
			return nil, err
		}
		return e.EvalContext(ctx, engine.NewMsg(params))
	})
	for _, in := range rpcCorpus() {
		name := in[0]
		if len(name) > 20 {
			name = name[:20] + "…"
		}
		name += " " + in[1]
		var (
			reply json.RawMessage
			rerr  error
		)
		start := time.Now()
		done, pan := within(20*time.Second, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			reply, rerr = sim.RPC(ctx, "dev", in[0], json.RawMessage(in[1]), false)
		})
		switch {
		case pan != nil:
			tl.Add("rpc-bodies", name, Crashed, fmt.Sprint(pan))
		case !done || errors.Is(rerr, tbsim.ErrRPCTimeout) || time.Since(start) > 9*time.Second:
			tl.Add("rpc-bodies", name, Hung, fmt.Sprintf("no reply (%v)", rerr))
		case rerr != nil:
			tl.Add("rpc-bodies", name, Clear, "") // refused before it was sent
		case strings.Contains(string(reply), `"error"`):
			tl.Add("rpc-bodies", name, Clear, "")
		default:
			tl.Add("rpc-bodies", name, Accepted, "")
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.SendTelemetry(ctx, map[string]any{"alive": true}); err != nil {
		tl.Add("rpc-bodies", "(device after the corpus)", Crashed, err.Error())
	}
}
