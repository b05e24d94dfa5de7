package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

func TestWSCommands(t *testing.T) {
	s := newAPIServer(t, false)
	c := s.mustDialWS()

	var types struct {
		Types []struct {
			Type       string `json:"type"`
			ConfigNode bool   `json:"configNode"`
			Fields     []any  `json:"fields"`
		} `json:"types"`
	}
	c.ok("types", nil, &types)
	if len(types.Types) < 10 {
		t.Fatalf("types: %d", len(types.Types))
	}

	var fl flowsBody
	c.ok("flows", nil, &fl)
	if len(fl.Flows) != 0 || fl.Rev != s.eng.Rev() {
		t.Fatalf("flows of an empty engine: %+v", fl)
	}
	c.ok("ping", nil, nil)

	var dep struct{ Rev string }
	c.ok("deploy", map[string]any{"flows": rawFlow(basicFlow), "rev": fl.Rev, "mode": "full"}, &dep)
	if dep.Rev == "" || dep.Rev != s.eng.Rev() {
		t.Fatalf("deploy rev %q, engine %q", dep.Rev, s.eng.Rev())
	}

	// A stale revision is a conflict.
	f := c.call("deploy", map[string]any{"flows": rawFlow(basicFlow), "rev": fl.Rev})
	if f.Error == nil || f.Error.Code != "conflict" {
		t.Fatalf("stale deploy: %s", f.raw)
	}
	// An invalid flow lists every problem.
	f = c.call("deploy", map[string]any{"flows": rawFlow(invalidFlow), "rev": dep.Rev})
	if f.Error == nil || f.Error.Code != "invalid" || len(f.Error.Problems) < 3 {
		t.Fatalf("invalid deploy: %s", f.raw)
	}
	for _, p := range f.Error.Problems {
		if p.NodeID == "" || p.Severity != engine.SeverityError || p.Message == "" {
			t.Errorf("problem without id, severity or message: %+v", p)
		}
	}
	f = c.call("deploy", map[string]any{"flows": rawFlow(basicFlow), "mode": "later"})
	if f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("bad mode: %s", f.raw)
	}

	var val struct{ Problems []engine.Problem }
	c.ok("validate", map[string]any{"flows": rawFlow(invalidFlow)}, &val)
	if len(val.Problems) < 3 {
		t.Fatalf("validate: %+v", val)
	}
	c.ok("validate", map[string]any{"flows": rawFlow(basicFlow)}, &val)
	if val.Problems == nil || len(val.Problems) != 0 {
		t.Fatalf("validate a valid flow: %+v", val)
	}

	var st struct{ Statuses map[string]engine.Status }
	c.ok("statuses", nil, &st)
	if st.Statuses["lamp"].Text != "on" {
		t.Fatalf("statuses: %+v", st)
	}

	c.ok("subscribe", map[string]any{"topics": []string{"debug"}}, nil)
	c.ok("inject", map[string]any{"id": "inj"}, nil)
	ev := c.event("debug")
	var dd struct {
		Property  string `json:"property"`
		Value     any    `json:"value"`
		Truncated bool   `json:"truncated"`
	}
	json.Unmarshal(ev.Event.Data, &dd)
	if ev.Event.Node == nil || ev.Event.Node.ID != "dbg" || ev.Event.Node.Type != "debug" || dd.Property != "payload" || dd.Value != "hello" || dd.Truncated {
		t.Fatalf("debug event: %s", ev.raw)
	}
	if ev.Event.Time.IsZero() {
		t.Fatal("event without time")
	}

	var counters struct {
		Counters map[string]engine.NodeCounters
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.eng.WaitIdle(ctx)
	c.ok("counters", nil, &counters)
	if counters.Counters["dbg"].In != 1 || counters.Counters["dbg"].QueueCap == 0 {
		t.Fatalf("counters: %+v", counters)
	}

	f = c.call("inject", map[string]any{"id": "ghost"})
	if f.Error == nil || f.Error.Code != "not_found" {
		t.Fatalf("inject of an unknown node: %s", f.raw)
	}
	f = c.call("inject", map[string]any{"node": "inj"})
	if f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("inject with wrong args: %s", f.raw)
	}
	f = c.call("launch", nil)
	if f.Error == nil || f.Error.Code != "unknown_command" {
		t.Fatalf("unknown command: %s", f.raw)
	}
	f = c.call("subscribe", map[string]any{"topics": []string{"status/#/x"}})
	if f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("bad pattern: %s", f.raw)
	}

	// After unsubscribing no debug event is delivered; statuses still are.
	c.ok("subscribe", map[string]any{"topics": []string{"status/lamp"}}, nil)
	c.event("status/lamp") // the snapshot
	c.ok("unsubscribe", map[string]any{"topics": []string{"debug"}}, nil)
	c.ok("inject", map[string]any{"id": "inj"}, nil)
	sawDebug := false
	c.until(func(f frame) bool {
		return f.Event != nil && f.Event.Topic == "status/lamp" && strings.Contains(string(f.Event.Data), "hello")
	}, func(f frame) { sawDebug = sawDebug || (f.Event != nil && f.Event.Topic == "debug") })
	s.eng.WaitIdle(ctx)
	pingID := c.start("ping", nil)
	c.until(func(f frame) bool { return string(f.ID) == pingID }, func(f frame) {
		sawDebug = sawDebug || (f.Event != nil && f.Event.Topic == "debug")
	})
	if sawDebug {
		t.Fatal("a debug event arrived after unsubscribing")
	}

	// Deploy events carry the new revision.
	c.ok("subscribe", map[string]any{"topics": []string{"deploy"}}, nil)
	c.ok("deploy", map[string]any{"flows": rawFlow(strings.Replace(basicFlow, "hello", "bye", 1))}, &dep)
	ev = c.event("deploy")
	var dd2 engine.DeployData
	json.Unmarshal(ev.Event.Data, &dd2)
	if dd2.Rev != dep.Rev || dd2.Mode != engine.DeployModified {
		t.Fatalf("deploy event: %s (rev %s)", ev.raw, dep.Rev)
	}
}

func TestWSStatusSnapshotOnSubscribe(t *testing.T) {
	s := newAPIServer(t, false)
	s.deploy(basicFlow)
	c := s.mustDialWS()
	id := c.start("subscribe", map[string]any{"topics": []string{"status/#", "error"}})
	// The reply comes first, then one event per node with a status.
	f := c.next()
	if string(f.ID) != id || f.Error != nil {
		t.Fatalf("first frame after subscribe: %s", f.raw)
	}
	f = c.next()
	if f.Event == nil || f.Event.Topic != "status/lamp" || f.Event.Node == nil || f.Event.Node.Type != "test-lamp" {
		t.Fatalf("snapshot event: %s", f.raw)
	}
	var st engine.Status
	json.Unmarshal(f.Event.Data, &st)
	if st != (engine.Status{Fill: "green", Shape: "dot", Text: "on"}) {
		t.Fatalf("snapshot status %+v", st)
	}
	// Live changes follow.
	c.ok("inject", map[string]any{"id": "inj"}, nil)
	c.until(func(f frame) bool {
		return f.Event != nil && f.Event.Topic == "status/lamp" && strings.Contains(string(f.Event.Data), `"text":"hello"`)
	}, nil)
}

func TestWSEventMatchingTwoPatternsSentOnce(t *testing.T) {
	s := newAPIServer(t, false)
	rev := s.deploy(basicFlow)
	c := s.mustDialWS()
	c.ok("subscribe", map[string]any{"topics": []string{"debug", "#"}}, nil)
	c.ok("inject", map[string]any{"id": "inj"}, nil)
	c.event("debug")
	// The deploy event matches only "#". That subscription forwards its
	// events in order, so a second copy of the debug event would come
	// before it.
	c.ok("deploy", map[string]any{"flows": rawFlow(basicFlow), "rev": rev, "mode": "full"}, nil)
	copies := 0
	c.until(func(f frame) bool { return f.Event != nil && f.Event.Topic == "deploy" }, func(f frame) {
		if f.Event != nil && f.Event.Topic == "debug" {
			copies++
		}
	})
	if copies != 0 {
		t.Fatalf("the debug event came %d more times", copies)
	}
}

func TestWSBadFrames(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.MaxFrame = 4096 })
	c := s.mustDialWS()

	c.sendRaw([]byte("this is not json"))
	f := c.reply("null")
	if f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("bad JSON: %s", f.raw)
	}
	c.ok("ping", nil, nil)

	c.sendRaw([]byte(`{"cmd":"ping"}`))
	if f := c.reply("null"); f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("no id: %s", f.raw)
	}
	c.sendRaw([]byte(`{"id":"abc"}`))
	if f := c.reply(`"abc"`); f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("no cmd: %s", f.raw)
	}
	c.sendRaw([]byte(`{"id":41,"cmd":"ping","args":5}`))
	if f := c.reply("41"); f.Error == nil || f.Error.Code != "bad_request" {
		t.Fatalf("args not an object: %s", f.raw)
	}

	// A frame over the limit is discarded; the connection stays up.
	big := `{"id":99,"cmd":"validate","args":{"flows":[{"id":"x","type":"tab","label":"` + strings.Repeat("a", 20000) + `"}]}}`
	c.sendRaw([]byte(big))
	f = c.reply("null")
	if f.Error == nil || f.Error.Code != "too_large" {
		t.Fatalf("large frame: %s", f.raw)
	}
	var val struct{ Problems []engine.Problem }
	c.ok("validate", map[string]any{"flows": rawFlow(basicFlow)}, &val)
	if len(val.Problems) != 0 {
		t.Fatalf("validate after a large frame: %+v", val)
	}
}

func TestWSDebugValueTruncated(t *testing.T) {
	s := newAPIServer(t, false)
	// A payload whose JSON is over 64 KiB, of two-byte runes so the cut
	// could fall inside one.
	payload := strings.Repeat("é", 40000)
	flow := strings.Replace(basicFlow, `"payload":"hello"`, `"payload":"`+payload+`"`, 1)
	s.deploy(flow)
	c := s.mustDialWS()
	c.ok("subscribe", map[string]any{"topics": []string{"debug"}}, nil)
	c.ok("inject", map[string]any{"id": "inj"}, nil)
	ev := c.event("debug")
	var dd struct {
		Value     any  `json:"value"`
		Truncated bool `json:"truncated"`
	}
	json.Unmarshal(ev.Event.Data, &dd)
	v, ok := dd.Value.(string)
	if !dd.Truncated || !ok || len(v) > web.MaxDebugValue || len(v) < web.MaxDebugValue-4 || !utf8.ValidString(v) || !strings.HasPrefix(v, `"éé`) {
		t.Fatalf("truncated debug value: truncated=%v, %d bytes, prefix %.10q", dd.Truncated, len(v), v)
	}
}

// A deploy waiting for a node to stop does not hold up events or other
// commands on the same connection.
func TestWSSlowDeployDoesNotBlockEvents(t *testing.T) {
	gate := make(chan struct{})
	slowMu.Lock()
	slowGate = gate
	slowMu.Unlock()
	defer func() {
		slowMu.Lock()
		slowGate = nil
		slowMu.Unlock()
	}()
	var opened bool
	defer func() {
		if !opened {
			close(gate)
		}
	}()

	s := newAPIServer(t, false)
	withSlow := strings.Replace(basicFlow, "\n]", `,
 {"id":"slow","type":"test-slow","z":"tab1","x":1,"y":1,"wires":[]}
]`, 1)
	rev := s.deploy(withSlow)
	c := s.mustDialWS()
	c.ok("subscribe", map[string]any{"topics": []string{"debug"}}, nil)

	// Removing the slow node makes the deploy wait for its Stop.
	deployID := c.start("deploy", map[string]any{"flows": rawFlow(basicFlow), "rev": rev})
	sawDeploy := false
	note := func(f frame) { sawDeploy = sawDeploy || string(f.ID) == deployID }
	pingID := c.start("ping", nil)
	c.until(func(f frame) bool { return string(f.ID) == pingID }, note)
	injectID := c.start("inject", map[string]any{"id": "inj"})
	c.until(func(f frame) bool { return string(f.ID) == injectID }, note)
	c.until(func(f frame) bool { return f.Event != nil && f.Event.Topic == "debug" }, note)
	if sawDeploy {
		t.Fatal("the deploy finished before its slow node was let go")
	}
	opened = true
	close(gate)
	f := c.reply(deployID)
	if f.Error != nil {
		t.Fatalf("deploy: %s", f.raw)
	}
}

// A connection that does not read falls behind: events are dropped for it
// and it is told how many, and it keeps working.
func TestWSDroppedEvents(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.EventQueue = 8 })
	s.deploy(basicFlow)

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"id": 1, "cmd": "subscribe", "args": map[string]any{"topics": []string{"debug"}}})
	var rep map[string]any
	if err := conn.ReadJSON(&rep); err != nil || rep["result"] == nil {
		t.Fatalf("subscribe: %v %v", rep, err)
	}

	// Far more event bytes than socket buffers hold, while not reading.
	const n = 600
	big := strings.Repeat("x", 60<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range n {
		if err := s.eng.Deliver(ctx, "dbg", engine.NewMsg(big)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.eng.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	conn.WriteJSON(map[string]any{"id": 2, "cmd": "ping"})

	var debug, dropped int
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var f struct {
			ID    json.RawMessage
			Event *struct {
				Topic string
				Data  struct{ Count int }
			}
		}
		if err := conn.ReadJSON(&f); err != nil {
			t.Fatalf("reading after %d debug events: %v", debug, err)
		}
		if string(f.ID) == "2" {
			break
		}
		switch f.Event.Topic {
		case "debug":
			debug++
		case web.TopicDropped:
			dropped += f.Event.Data.Count
		}
	}
	if dropped == 0 || debug+dropped > n || debug == n {
		t.Fatalf("%d debug events and %d dropped of %d", debug, dropped, n)
	}
	t.Logf("%d debug events delivered, %d dropped", debug, dropped)
}

// A connection that answers no ping is closed after twice the interval.
func TestWSSilentConnectionClosed(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.PingInterval = 50 * time.Millisecond })
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pings := 0
	// Count pings without answering them.
	conn.SetPingHandler(func(string) error { pings++; return nil })
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := conn.NextReader(); err != nil {
			if strings.Contains(err.Error(), "i/o timeout") {
				t.Fatalf("connection not closed by the server: %v", err)
			}
			break
		}
	}
	if pings == 0 {
		t.Fatal("the server sent no ping")
	}
}

func TestWSServerCloseEndsConnectionsWithoutLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	func() {
		s := newAPIServer(t, false)
		s.deploy(basicFlow)
		a := s.mustDialWS()
		b := s.mustDialWS()
		a.ok("subscribe", map[string]any{"topics": []string{"#"}}, nil)
		b.ok("subscribe", map[string]any{"topics": []string{"debug", "status/#"}}, nil)
		a.ok("inject", map[string]any{"id": "inj"}, nil)
		b.event("debug")
		a.close() // one browser goes away by itself

		s.srv.Close()
		for range b.frames {
		}
		if !websocket.IsCloseError(b.err, websocket.CloseGoingAway) {
			t.Fatalf("connection ended with %v, want a going-away close", b.err)
		}
		// Upgrades after Close are refused.
		if _, resp, err := s.dialWS(nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("upgrade after Close: %v %v", resp, err)
		}
		s.close()
	}()
}
