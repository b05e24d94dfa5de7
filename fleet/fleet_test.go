package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
	_ "github.com/tbflow/tbflow/nodes/core"
	_ "github.com/tbflow/tbflow/nodes/thingsboard"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// failStart is a node whose Start always fails.
type failStart struct{}

func (failStart) Start(context.Context) error {
	return errors.New("the pump controller does not answer")
}
func (failStart) Stop(context.Context) error { return nil }

func init() {
	engine.Register(engine.Type{Name: "fleet-test-fail-start", Category: "test", Label: "fails to start", Help: "Test node.",
		New: engine.Construct(func(*engine.NodeContext, *struct{}) (engine.Node, error) { return failStart{}, nil })})
}

type env map[string]string

func (e env) lookup(name string) (string, bool) { v, ok := e[name]; return v, ok }

func wait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func latest(s *tbsim.Server, dev, key string) string {
	v, ok := s.Latest(dev)[key]
	if !ok {
		return ""
	}
	return fmt.Sprint(v.Value)
}

const pkgFlow = `[
  {"id": "t", "type": "tab", "label": "site"},
  {"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %d, "manage": true, "statsInterval": "1s"},
  {"id": "tick", "type": "inject", "z": "t", "interval": "100ms", "once": true, "wires": [["reading"]]},
  {"id": "reading", "type": "transform", "z": "t", "expression": "{\"reading\": %d}", "wires": [["out"]]},
  {"id": "out", "type": "tb-telemetry-out", "z": "t", "connection": "mgmt", "wires": []}%s
]`

type rig struct {
	tbs  *tbsim.Server
	port int
	path string
	m    *fleet.Manager
	e    *engine.Engine
	logs *fleet.LogBuffer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbs.Close() })
	if err := tbs.AddDevice(tbsim.Device{Name: "box", Type: "box", Token: "box-token-1"}); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	dir := t.TempDir()
	path := filepath.Join(dir, "flow.json")
	boot := fmt.Sprintf(`[{"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %d, "manage": true, "statsInterval": "1s", "accessToken": "${BOX_TOKEN}"}]`, port)
	if err := os.WriteFile(path, []byte(boot), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := env{"BOX_TOKEN": "box-token-1", "OTHER_TOKEN": "someone-else", "API_KEY": "k-123456"}
	logs := fleet.NewLogBuffer(100)
	lv := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: lv}))
	e := engine.New(engine.Options{Logger: log, LookupEnv: vars.lookup, StopTimeout: 2 * time.Second})
	m := fleet.New(fleet.Options{Path: path, Engine: e, Logger: log, Level: lv, Logs: logs, LookupEnv: vars.lookup, StartCheck: 700 * time.Millisecond})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Stop()
		e.Stop(context.Background())
	})
	return &rig{tbs: tbs, port: port, path: path, m: m, e: e, logs: logs}
}

func (r *rig) pkg(value int, extra string) []byte {
	return []byte(fmt.Sprintf(pkgFlow, r.port, value, extra))
}

func (r *rig) assign(t *testing.T, version string, data []byte) {
	t.Helper()
	if err := r.tbs.AssignOTA("box", "sw", tbsim.OTAPackage{Title: "site", Version: version, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) call(t *testing.T, method string, params any) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := r.tbs.RPC(ctx, "box", method, params, false)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %s", method, raw)
	}
	return out
}

// TestPackageRolloutAndRollback: a package deploys and is kept as the flow
// file; one whose node fails to start is rolled back and reported FAILED
// with the node's error; the box keeps running the good flow.
func TestPackageRolloutAndRollback(t *testing.T) {
	r := newRig(t)
	wait(t, "health telemetry", func() (bool, string) { return latest(r.tbs, "box", "uptimeS") != "", "" })

	r.assign(t, "1", r.pkg(7, ""))
	wait(t, "UPDATED", func() (bool, string) {
		return latest(r.tbs, "box", "sw_state") == "UPDATED" && latest(r.tbs, "box", "reading") == "7", latest(r.tbs, "box", "sw_state")
	})
	if v := r.tbs.ClientAttributes("box")["current_sw_version"]; fmt.Sprint(v) != "1" {
		t.Fatalf("current_sw_version %v", v)
	}
	saved, err := os.ReadFile(r.path)
	if err != nil || !strings.Contains(string(saved), `"reading\": 7`) || strings.Contains(string(saved), "box-token-1") {
		t.Fatalf("flow file: %s %v", saved, err)
	}

	r.assign(t, "2", r.pkg(8, `,
  {"id": "pump", "type": "fleet-test-fail-start", "z": "t"}`))
	wait(t, "FAILED", func() (bool, string) {
		return latest(r.tbs, "box", "sw_state") == "FAILED", latest(r.tbs, "box", "sw_state")
	})
	swErr := latest(r.tbs, "box", "sw_error")
	if !strings.Contains(swErr, "did not start") || !strings.Contains(swErr, "the pump controller does not answer") {
		t.Fatalf("sw_error %q", swErr)
	}
	n := len(r.tbs.History("box", "reading"))
	wait(t, "the previous flow running", func() (bool, string) {
		return len(r.tbs.History("box", "reading")) > n+2 && latest(r.tbs, "box", "reading") == "7", latest(r.tbs, "box", "reading")
	})
	if _, ok := r.e.Node("pump"); ok {
		t.Fatal("the failed node still runs")
	}
	if now, _ := os.ReadFile(r.path); string(now) != string(saved) {
		t.Fatalf("flow file changed by a failed package:\n%s", now)
	}
	if r.call(t, "tbflow.ping", nil)["flowVersion"] != "1" {
		t.Fatal("ping does not report version 1")
	}
}

// TestPackageChecks: what a package may not do, checked before deploy.
func TestPackageChecks(t *testing.T) {
	r := newRig(t)
	wait(t, "attached", func() (bool, string) { return latest(r.tbs, "box", "uptimeS") != "", "" })
	mgmt := func(extra string) string {
		return fmt.Sprintf(`[{"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %d, "manage": true%s}`, r.port, extra)
	}
	for _, c := range []struct {
		name, flow, want string
	}{
		{"ok", mgmt("") + "]", ""},
		{"credentials from env, same value", mgmt(`, "accessToken": "${BOX_TOKEN}"`) + "]", ""},
		{"literal secret", mgmt(`, "accessToken": "box-token-1"`) + "]", "must not carry secrets"},
		{"other credentials", mgmt(`, "accessToken": "${OTHER_TOKEN}"`) + "]", "changes the management connection's accessToken"},
		{"other server", `[{"id": "mgmt", "type": "tb-connection", "host": "tb.example.com", "manage": true}]`, "changes the management connection's host"},
		{"no management connection", `[{"id": "c", "type": "tb-connection", "host": "127.0.0.1"}]`, "no tb-connection with manage on"},
		{"two management connections", mgmt("") + `, {"id": "m2", "type": "tb-connection", "host": "127.0.0.1", "manage": true, "accessToken": "${BOX_TOKEN}"}]`, "already manages this box"},
		{"env not set", mgmt("") + `, {"id": "c2", "type": "tb-connection", "host": "127.0.0.1", "accessToken": "${NOT_SET}"}]`, "environment variable NOT_SET is not set"},
		{"not in credentials file", mgmt("") + `, {"id": "c3", "type": "tb-connection", "host": "127.0.0.1", "accessToken": "__SECRET__"}]`, "not in the box's credentials file"},
		{"syntax", `[{"id": "mgmt",`, "line"},
	} {
		ps := r.m.Validate([]byte(c.flow))
		got := fmt.Sprint(ps)
		if c.want == "" {
			if ps.HasErrors() {
				t.Errorf("%s: %s", c.name, got)
			}
			continue
		}
		if !ps.HasErrors() || !strings.Contains(got, c.want) {
			t.Errorf("%s: want %q, got %s", c.name, c.want, got)
		}
	}
	// The same through the tbflow.validate RPC.
	res := r.call(t, "tbflow.validate", json.RawMessage(mgmt(`, "accessToken": "literal-token"`)+"]"))
	if res["valid"] != false || !strings.Contains(fmt.Sprint(res["problems"]), "must not carry secrets") {
		t.Fatalf("tbflow.validate: %v", res)
	}
	if res := r.call(t, "tbflow.validate", map[string]any{"flow": json.RawMessage(mgmt("") + "]")}); res["valid"] != true {
		t.Fatalf("tbflow.validate of a good flow: %v", res)
	}
}

// TestServiceRPCs: stats, logs (bounded, redacted), log level, flow without
// secrets, restart, unknown methods.
func TestServiceRPCs(t *testing.T) {
	r := newRig(t)
	wait(t, "attached", func() (bool, string) { return latest(r.tbs, "box", "uptimeS") != "", "" })
	st := r.call(t, "tbflow.stats", nil)
	for _, k := range []string{"uptimeS", "nodesRunning", "nodesInError", "connections", "outboxQueued", "outboxBytes", "outboxOldestAgeS",
		"deadLetters", "reconnects", "recordsSent", "modbusPollErrors", "cpuPercent", "rssBytes", "tbflowVersion"} {
		if _, ok := st[k]; !ok {
			t.Errorf("tbflow.stats lacks %s: %v", k, st)
		}
	}
	conns, _ := st["connections"].(map[string]any)
	if c, _ := conns["mgmt"].(map[string]any); c["state"] != "connected" {
		t.Fatalf("connections: %v", st["connections"])
	}
	if st["rssBytes"].(float64) <= 0 {
		t.Fatalf("rssBytes %v", st["rssBytes"])
	}

	if r.call(t, "tbflow.logLevel", map[string]any{"level": "debug"})["level"] != "debug" {
		t.Fatal("logLevel")
	}
	if r.call(t, "tbflow.logLevel", "warn")["level"] != "warn" {
		t.Fatal("logLevel as a string")
	}
	r.call(t, "tbflow.logLevel", "info")
	slog.New(slog.NewTextHandler(r.logs, nil)).Info("a line with the token box-token-1 and the key k-123456 in it")
	logs := r.call(t, "tbflow.logs", map[string]any{"lines": 3})
	lines, _ := logs["lines"].([]any)
	if len(lines) != 3 {
		t.Fatalf("tbflow.logs lines=3: %v", logs)
	}
	last := fmt.Sprint(lines[len(lines)-1])
	if !strings.Contains(last, "a line with the token ***") || strings.Contains(last, "box-token-1") {
		t.Fatalf("last log line not redacted: %q", last)
	}

	flow := r.call(t, "tbflow.flow", nil)
	if b, _ := json.Marshal(flow); strings.Contains(string(b), "box-token-1") || !strings.Contains(string(b), `"mgmt"`) {
		t.Fatalf("tbflow.flow: %s", b)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := r.tbs.RPC(ctx, "box", "tbflow.nope", nil, false)
	if err != nil || !strings.Contains(string(raw), `"error"`) || !strings.Contains(string(raw), "tbflow.nope") {
		t.Fatalf("unknown method: %s %v", raw, err)
	}

	// A reconnect is counted.
	r.tbs.Kick("box")
	wait(t, "a reconnect in the health telemetry", func() (bool, string) {
		return latest(r.tbs, "box", "reconnects") == "1", latest(r.tbs, "box", "reconnects")
	})

	sub := r.e.Subscribe(engine.TopicDeploy, 4)
	defer sub.Close()
	if r.call(t, "tbflow.restart", nil)["restarting"] != true {
		t.Fatal("restart")
	}
	select {
	case ev := <-sub.C:
		if d := ev.Data.(*engine.DeployData); d.Mode != engine.DeployFull {
			t.Fatalf("restart deployed %v", d.Mode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no redeploy after tbflow.restart")
	}
	wait(t, "answering after the restart", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		raw, err := r.tbs.RPC(ctx, "box", "tbflow.ping", nil, false)
		return err == nil && strings.Contains(string(raw), `"pong":true`), fmt.Sprint(string(raw), err)
	})
}

// TestLogBuffer: bounded lines and line length, partial writes, the newest
// lines last.
func TestLogBuffer(t *testing.T) {
	b := fleet.NewLogBuffer(3)
	b.Write([]byte("one\ntw"))
	b.Write([]byte("o\nthree\nfour\n"))
	b.Write([]byte(strings.Repeat("x", 10000) + "\n"))
	got := b.Last(10, nil)
	if len(got) != 3 || got[0] != "three" || got[1] != "four" || len(got[2]) != 2048 {
		t.Fatalf("lines: %q", got)
	}
	if got := b.Last(1, func(s string) string { return strings.ReplaceAll(s, "x", "") }); len(got) != 1 || got[0] != "" {
		t.Fatalf("last 1 redacted: %q", got)
	}
}
