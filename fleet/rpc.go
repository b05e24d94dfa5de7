package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tbflow/tbflow/tb"
)

// Service RPC methods of the managing device.
const (
	MethodPing     = "tbflow.ping"
	MethodStats    = "tbflow.stats"
	MethodRestart  = "tbflow.restart"
	MethodLogLevel = "tbflow.logLevel"
	MethodLogs     = "tbflow.logs"
	MethodFlow     = "tbflow.flow"
	MethodValidate = "tbflow.validate"
)

// defaultLogLines is what tbflow.logs returns without "lines".
const defaultLogLines = 100

func (m *Manager) registerRPCs(dev *tb.Device) {
	for method, fn := range map[string]tb.RPCHandler{
		MethodPing:     m.rpcPing,
		MethodStats:    m.rpcStats,
		MethodRestart:  m.rpcRestart,
		MethodLogLevel: m.rpcLogLevel,
		MethodLogs:     m.rpcLogs,
		MethodFlow:     m.rpcFlow,
		MethodValidate: m.rpcValidate,
	} {
		dev.HandleRPC(method, fn)
	}
}

func (m *Manager) rpcPing(context.Context, tb.RPCRequest) (any, error) {
	_, st := m.current()
	return map[string]any{"pong": true, "version": m.opts.Version, "uptimeS": int64(time.Since(m.started).Seconds()),
		"flowTitle": st.Title, "flowVersion": st.Version, "time": time.Now().UnixMilli()}, nil
}

func (m *Manager) rpcStats(context.Context, tb.RPCRequest) (any, error) {
	return m.Stats(), nil
}

func (m *Manager) rpcRestart(context.Context, tb.RPCRequest) (any, error) {
	go func() {
		time.Sleep(300 * time.Millisecond) // let the reply go out first
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.restart(ctx); err != nil {
			m.log.Error("restarting the flow", "err", err)
		}
	}()
	return map[string]any{"restarting": true}, nil
}

func (m *Manager) rpcLogLevel(_ context.Context, req tb.RPCRequest) (any, error) {
	if m.opts.Level == nil {
		return nil, fmt.Errorf("the log level cannot be changed in this process")
	}
	var p struct {
		Level string `json:"level"`
	}
	if err := json.Unmarshal(req.Params, &p); err != nil {
		var s string
		if json.Unmarshal(req.Params, &s) != nil {
			return nil, fmt.Errorf(`params: want {"level": "debug|info|warn|error"}`)
		}
		p.Level = s
	}
	if p.Level != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(p.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", p.Level)
		}
		m.opts.Level.Set(lv)
		m.log.Info("log level changed", "level", lv.String())
	}
	return map[string]any{"level": strings.ToLower(m.opts.Level.Level().String())}, nil
}

func (m *Manager) rpcLogs(_ context.Context, req tb.RPCRequest) (any, error) {
	if m.opts.Logs == nil {
		return nil, fmt.Errorf("this process keeps no log lines")
	}
	var p struct {
		Lines int `json:"lines"`
	}
	_ = json.Unmarshal(req.Params, &p)
	n := p.Lines
	if n <= 0 {
		n = defaultLogLines
	}
	lines := m.opts.Logs.Last(min(n, DefaultLogLines), m.red.redact)
	return map[string]any{"lines": lines}, nil
}

func (m *Manager) rpcFlow(context.Context, tb.RPCRequest) (any, error) {
	f, rev := m.e.Flows() // secrets replaced by the placeholder
	_, st := m.current()
	return map[string]any{"title": st.Title, "version": st.Version, "rev": rev, "flow": f}, nil
}

func (m *Manager) rpcValidate(_ context.Context, req tb.RPCRequest) (any, error) {
	data := []byte(req.Params)
	var wrapped struct {
		Flow json.RawMessage `json:"flow"`
	}
	if json.Unmarshal(data, &wrapped) == nil && len(wrapped.Flow) > 0 {
		data = wrapped.Flow
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		data = []byte(s) // the flow as a JSON string
	}
	ps := m.Validate(data)
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, map[string]any{"id": p.NodeID, "type": p.NodeType, "field": p.Field,
			"severity": string(p.Severity), "message": p.Message, "text": p.String()})
	}
	return map[string]any{"valid": !ps.HasErrors(), "problems": out}, nil
}
