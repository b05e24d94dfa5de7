package opcua_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/internal/testcerts"
	uaopcua "github.com/tbflow/tbflow/nodes/opcua"
	"github.com/tbflow/tbflow/nodes/opcua/opcuatest"
)

func connection(endpoint string, extra map[string]any) map[string]any {
	c := map[string]any{"id": "conn", "type": "opcua-connection", "endpoint": endpoint, "timeout": "3s"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestConformance(t *testing.T) {
	dead := "opc.tcp://127.0.0.1:" + itoa(peers.FreePort(t))
	t.Run("opcua-connection", func(t *testing.T) {
		enginetest.Conformance(t, "opcua-connection", enginetest.ConformanceOptions{Settings: map[string]any{"endpoint": dead}})
	})
	for _, typ := range []string{"opcua-in", "opcua-write"} {
		t.Run(typ, func(t *testing.T) {
			in := engine.NewMsg(1.0)
			in.Topic = "value"
			enginetest.Conformance(t, typ, enginetest.ConformanceOptions{
				Settings: map[string]any{"connection": "conn"},
				Extra:    []map[string]any{connection(dead, nil)},
				Input:    in,
			})
		})
	}
}

// TestValidation: bad settings are refused with the field named.
func TestValidation(t *testing.T) {
	cases := []struct {
		conn, node map[string]any
		field, msg string
	}{
		{conn: map[string]any{"endpoint": "http://x"}, field: "endpoint", msg: "not an OPC UA endpoint"},
		{conn: map[string]any{"securityPolicy": "Basic256Sha256"}, field: "securityMode", msg: "does not go with"},
		{conn: map[string]any{"securityPolicy": "Basic256Sha256", "securityMode": "Sign"}, field: "serverCertFile", msg: "trustAnyServer"},
		{conn: map[string]any{"auth": "username"}, field: "username", msg: "needs a user name"},
		{conn: map[string]any{"auth": "certificate"}, field: "userCertFile", msg: "user certificate"},
		{node: map[string]any{"items": []any{map[string]any{"key": "a", "nodeId": "ns=x;s=1"}}}, field: "items[0].nodeId", msg: "not a node id"},
		{node: map[string]any{"items": []any{map[string]any{"key": "a", "nodeId": "i=1"}, map[string]any{"key": "a", "nodeId": "i=2"}}}, field: "items[1].key", msg: "already used"},
		{node: map[string]any{"mode": "sometimes"}, field: "mode", msg: ""},
		{node: map[string]any{"deadband": "percent", "deadbandValue": 150.0}, field: "deadbandValue", msg: "at most 100"},
	}
	for _, c := range cases {
		conn := connection("opc.tcp://127.0.0.1:4840", c.conn)
		node := map[string]any{"id": "in", "type": "opcua-in", "z": "tab", "connection": "conn", "wires": []any{}}
		for k, v := range c.node {
			node[k] = v
		}
		data, _ := json.Marshal([]any{map[string]any{"id": "tab", "type": "tab"}, conn, node})
		f, err := engine.ParseFlow(data)
		if err != nil {
			t.Fatal(err)
		}
		ps := engine.DefaultRegistry().Validate(f, nil)
		found := false
		for _, p := range ps {
			found = found || (p.Field == c.field && strings.Contains(p.Message, c.msg))
		}
		if !found {
			t.Errorf("%v %v: want a problem on %s (%q), got %v", c.conn, c.node, c.field, c.msg, ps)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// checkValues compares a payload with every fixed item of the server.
func checkValues(t *testing.T, payload map[string]any) {
	t.Helper()
	for _, it := range opcuatest.Items {
		got, _ := json.Marshal(payload[it.Key])
		if string(got) != it.JSON {
			t.Errorf("%s (%s) = %s, want %s", it.Key, it.NodeID, got, it.JSON)
		}
	}
}

// TestInEveryType reads every scalar type and the arrays, by subscription
// and by polling, from the node-opcua server.
func TestInEveryType(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{Tick: 50 * time.Millisecond})
	for _, mode := range []string{"subscribe", "poll"} {
		t.Run(mode, func(t *testing.T) {
			h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
				"connection": "conn", "mode": mode, "items": opcuatest.Rows(), "interval": "100ms", "samplingInterval": "50ms",
				"topic": "plc", "device": "PLC 1",
			}, connection(srv.Endpoint, nil))
			msgs := h.WaitOut(0, 1)
			first := msgs[0]
			payload, _ := first.Payload.(map[string]any)
			checkValues(t, payload)
			if first.Topic != "plc" {
				t.Errorf("topic %q", first.Topic)
			}
			if d, _ := first.Get("device"); d != "PLC 1" {
				t.Errorf("device %v", d)
			}
			if ts, _ := first.Get("ts"); ts.(int64) < time.Now().Add(-time.Minute).UnixMilli() {
				t.Errorf("ts %v", ts)
			}
			// The counter changes: later messages carry new counts.
			c0, _ := payload["counter"].(int64)
			deadline := time.Now().Add(10 * time.Second)
			for {
				var last int64
				for _, m := range h.Out(0) {
					if c, ok := m.Payload.(map[string]any)["counter"].(int64); ok {
						last = c
					}
				}
				if last > c0+2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the counter did not move past %d", c0)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want := "connected"
			if mode == "poll" {
				want = "polling"
			}
			if st := h.Statuses("node"); len(st) == 0 || st[len(st)-1].Text != want {
				t.Errorf("statuses %v, want last %q", st, want)
			}
			if mode == "subscribe" {
				// Only changes after the first message: the counter alone.
				later := h.Out(0)[len(h.Out(0))-1].Payload.(map[string]any)
				if len(later) != 1 {
					t.Errorf("a later update holds %v, want only the counter", later)
				}
			}
		})
	}
}

// TestReconnect: the server goes away and comes back; the node shows the
// error, then subscribes again and values flow.
func TestReconnect(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{Tick: 50 * time.Millisecond})
	h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
		"connection": "conn", "items": []any{map[string]any{"key": "counter", "nodeId": "ns=2;s=Counter"}},
		"interval": "50ms", "samplingInterval": "50ms", "keepAlive": "500ms",
	}, connection(srv.Endpoint, map[string]any{"timeout": "1s"}))
	h.WaitOut(0, 2)
	srv.Stop()
	waitStatus(t, h, func(s engine.Status) bool { return s.Fill == "red" && strings.HasPrefix(s.Text, "error: ") })
	srv.Start()
	n := len(h.Out(0))
	waitStatus(t, h, func(s engine.Status) bool { return s.Text == "connected" })
	h.WaitOut(0, n+2)
	if len(h.Errors()) == 0 {
		t.Error("the outage reached no catch node")
	}
}

func waitStatus(t *testing.T, h *enginetest.NodeHarness, ok func(engine.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := h.Statuses("node")
		if len(st) > 0 && ok(st[len(st)-1]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWriteEveryType writes values of every type, converted to each
// variable's data type, and reads them back with a plain client.
func TestWriteEveryType(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{})
	h := enginetest.RunNode(t, enginetest.Options{}, "opcua-write", map[string]any{
		"connection": "conn", "items": opcuatest.Rows(),
	}, connection(srv.Endpoint, nil))
	writes := map[string]any{
		"boolean": "off", "sbyte": -100.0, "byte": 7.0, "int16": 30000.0, "uint16": 1.0, "int32": -5.0, "uint32": 4000000000.0,
		"int64": -9000000000.0, "uint64": "18446744073709551615", "float": 2.25, "double": -0.5, "string": "bye",
		"datetime": "2025-06-07T08:09:10Z", "bytestring": "AAEC", "guid": "00000000-0000-0000-0000-000000000001",
		"text": "off", "bools": []any{false}, "ints": []any{7.0, 8.0}, "doubles": []any{0.25}, "strings": []any{"x", "y", "z"},
	}
	want := map[string]string{
		"boolean": `false`, "sbyte": `-100`, "byte": `7`, "int16": `30000`, "uint16": `1`, "int32": `-5`, "uint32": `4000000000`,
		"int64": `-9000000000`, "uint64": `"18446744073709551615"`, "float": `2.25`, "double": `-0.5`, "string": `"bye"`,
		"datetime": `"2025-06-07T08:09:10Z"`, "bytestring": `"AAEC"`, "guid": `"00000000-0000-0000-0000-000000000001"`,
		"text": `"off"`, "bools": `[false]`, "ints": `[7,8]`, "doubles": `[0.25]`, "strings": `["x","y","z"]`,
	}
	// As an attribute update: one object, every key.
	h.Send(engine.NewMsg(writes))
	out := h.WaitOut(0, 1)[0].Payload.(map[string]any)
	if out["ok"] != true || len(out["written"].(map[string]any)) != len(writes) {
		t.Fatalf("reply %v; errors %v", out, h.Errors())
	}
	// As an RPC: the method names the item.
	rpc := engine.NewMsg(12.0)
	rpc.Topic = "int16"
	rpc.Set("rpc", map[string]any{"id": 1.0})
	h.Send(rpc)
	if m := h.WaitOut(0, 2)[1]; m.Payload.(map[string]any)["ok"] != true {
		t.Fatalf("rpc reply %v", m.Payload)
	}
	want["int16"] = `12`

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := opcua.NewClient(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer cli.Close(context.Background())
	for _, it := range opcuatest.Items {
		id, err := ua.ParseExpandedNodeID(it.NodeID, cli.Namespaces())
		if err != nil {
			t.Fatal(err)
		}
		v, err := cli.Node(id.NodeID).Value(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(uaopcua.ToJSON(v.Value()))
		if string(got) != want[it.Key] {
			t.Errorf("%s after the write = %s, want %s", it.Key, got, want[it.Key])
		}
	}

	// Bad values are errors for catch nodes, naming the item and type.
	for _, bad := range []struct {
		key string
		v   any
		msg string
	}{
		{"int16", 40000.0, "out of range"},
		{"boolean", "maybe", "not a Boolean"},
		{"nope", 1.0, `no item has the key "nope"`},
	} {
		m := engine.NewMsg(bad.v)
		m.Topic = bad.key
		n := len(h.Errors())
		h.Send(m)
		h.WaitIdle()
		errs := h.Errors()
		if len(errs) != n+1 || !strings.Contains(errs[n].Message, bad.msg) {
			t.Errorf("writing %v to %s: errors %v, want %q", bad.v, bad.key, errs, bad.msg)
		}
	}
}

// TestSecureChannel signs and encrypts with Basic256Sha256, logs in with
// a user name, and trusts only the pinned server certificate.
func TestSecureChannel(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{User: "operator", Password: "s3cret"})
	items := []any{map[string]any{"key": "int32", "nodeId": "ns=2;s=Int32"}}
	secure := map[string]any{"securityPolicy": "Basic256Sha256", "securityMode": "SignAndEncrypt",
		"serverCertFile": srv.ServerCertFile(), "auth": "username", "username": "operator", "password": "s3cret"}
	h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
		"connection": "conn", "mode": "poll", "items": items, "interval": "100ms",
	}, connection(srv.Endpoint, secure))
	if v := h.WaitOut(0, 1)[0].Payload.(map[string]any)["int32"]; v != int64(-123456) {
		t.Fatalf("int32 = %v", v)
	}

	for name, c := range map[string]struct {
		extra map[string]any
		want  string
	}{
		"wrong password":    {map[string]any{"password": "nope"}, "BadUserAccessDenied"},
		"sign only, no pin": {map[string]any{"securityMode": "Sign", "serverCertFile": "", "trustAnyServer": true, "password": "nope"}, "BadUserAccessDenied"},
		"other certificate": {map[string]any{"serverCertFile": testcerts.NewCA(t, t.TempDir(), "other").File}, "not the trusted one"},
	} {
		t.Run(name, func(t *testing.T) {
			conf := map[string]any{}
			for k, v := range secure {
				conf[k] = v
			}
			for k, v := range c.extra {
				conf[k] = v
			}
			h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
				"connection": "conn", "mode": "poll", "items": items, "interval": "100ms",
			}, connection(srv.Endpoint, conf))
			waitStatus(t, h, func(s engine.Status) bool { return s.Fill == "red" && strings.Contains(s.Text, c.want) })
			if n := len(h.Out(0)); n != 0 {
				t.Errorf("%d messages through a refused session", n)
			}
		})
	}
}

// TestBrowseAction lists the server's address space through the engine's
// action mechanism, with the settings being edited (not deployed).
func TestBrowseAction(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{})
	flow, _ := json.Marshal([]any{
		map[string]any{"id": "tab", "type": "tab"},
		connection(srv.Endpoint, nil),
		map[string]any{"id": "in", "type": "opcua-in", "z": "tab", "connection": "conn", "wires": []any{[]any{"elsewhere"}}},
		map[string]any{"id": "broken", "type": "inject", "z": "tab", "interval": "soon"}, // not taken: only the node and its config
	})
	f, err := engine.ParseFlow(flow)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer e.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	find := func(res any, name string) uaopcua.BrowseChild {
		t.Helper()
		for _, c := range res.(*uaopcua.BrowseResult).Children {
			if c.BrowseName == name {
				return c
			}
		}
		t.Fatalf("no child %q in %+v", name, res)
		return uaopcua.BrowseChild{}
	}
	res, err := e.RunAction(ctx, f, "in", "browse", nil)
	if err != nil {
		t.Fatal(err)
	}
	test := find(res, "Test")
	res, err = e.RunAction(ctx, f, "in", "browse", json.RawMessage(`{"nodeId":"`+test.NodeID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	scalars := find(res, "Scalars")
	res, err = e.RunAction(ctx, f, "in", "browse", json.RawMessage(`{"nodeId":"`+scalars.NodeID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := find(res, "UInt16"); c.NodeID != "ns=2;s=UInt16" || c.DataType != "UInt16" || c.NodeClass != "Variable" {
		t.Errorf("UInt16: %+v", c)
	}
	if _, err := e.RunAction(ctx, f, "in", "nope", nil); !errors.Is(err, engine.ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := e.RunAction(ctx, f, "in", "browse", json.RawMessage(`{"nodeId":"ns=x"}`)); err == nil || !strings.Contains(err.Error(), "not a node id") {
		t.Errorf("bad node id: %v", err)
	}
}

// TestSignAndUserCertificate: a signed channel (trusting any server
// certificate, explicitly) with a user certificate login.
func TestSignAndUserCertificate(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{})
	dir := t.TempDir()
	certFile, keyFile := uaopcua.WriteTestKeyPair(t, dir, "urn:tbflow:test-user")
	h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
		"connection": "conn", "mode": "poll", "items": []any{map[string]any{"key": "text", "nodeId": "ns=2;s=String"}}, "interval": "100ms",
	}, connection(srv.Endpoint, map[string]any{"securityPolicy": "Basic256Sha256", "securityMode": "Sign", "trustAnyServer": true,
		"auth": "certificate", "userCertFile": certFile, "userKeyFile": keyFile}))
	if v := h.WaitOut(0, 1)[0].Payload.(map[string]any)["text"]; v != "hello" {
		t.Fatalf("text = %v; statuses %v", v, h.Statuses("node"))
	}
}

// TestDeadband: with an absolute deadband wider than the counter moves in
// the test, only the first value is reported.
func TestDeadband(t *testing.T) {
	srv := opcuatest.Start(t, opcuatest.Options{Tick: 20 * time.Millisecond})
	run := func(deadband string) int {
		h := enginetest.RunNode(t, enginetest.Options{}, "opcua-in", map[string]any{
			"connection": "conn", "items": []any{map[string]any{"key": "counter", "nodeId": "ns=2;s=Counter"}},
			"interval": "50ms", "samplingInterval": "20ms", "deadband": deadband, "deadbandValue": 1000.0,
		}, connection(srv.Endpoint, nil))
		h.WaitOut(0, 1)
		time.Sleep(time.Second)
		return len(h.Out(0))
	}
	if n := run("absolute"); n != 1 {
		t.Errorf("with a deadband of 1000: %d messages, want 1", n)
	}
	if n := run("none"); n < 5 {
		t.Errorf("without a deadband: %d messages in a second, want the counter's changes", n)
	}
}
