package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

// twoDebugFlow: inject → debug "dbg", debug "dbg2" and test-lamp.
const twoDebugFlow = `[
 {"id":"tab1","type":"tab","label":"one"},
 {"id":"inj","type":"inject","z":"tab1","name":"press","payloadType":"string","payload":"hello","x":100,"y":100,"wires":[["dbg","dbg2","lamp"]]},
 {"id":"dbg","type":"debug","z":"tab1","name":"out","x":300,"y":100,"wires":[]},
 {"id":"dbg2","type":"debug","z":"tab1","name":"other","x":300,"y":150,"wires":[]},
 {"id":"lamp","type":"test-lamp","z":"tab1","name":"lamp","text":"on","x":300,"y":200,"wires":[]}
]`

type switchAnswer struct {
	ID     string `json:"id"`
	Active bool   `json:"active"`
	Rev    string `json:"rev"`
	Prev   string `json:"prev"`
}

// debugSources injects once, waits until the flow is idle and returns how
// many debug events each node published.
func debugSources(t *testing.T, s *apiServer) map[string]int {
	t.Helper()
	sub := s.eng.Subscribe(engine.TopicDebug, 64)
	defer sub.Close()
	if code, _, b := s.do("POST", "/api/inject/inj", ""); code != 204 {
		t.Fatalf("inject: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.eng.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for {
		select {
		case ev := <-sub.C:
			got[ev.Node.ID]++
		default:
			return got
		}
	}
}

// activeIn returns node id's "active" field in a flow (true when absent,
// the debug node's default).
func activeIn(t *testing.T, f *engine.Flow, id string) bool {
	t.Helper()
	n := f.Node(id)
	if n == nil {
		t.Fatalf("the flow has no node %q", id)
	}
	if v, ok := n.Fields["active"]; ok {
		return v == true
	}
	return true
}

func TestDebugSwitchREST(t *testing.T) {
	s := newAPIServer(t, false)
	rev0 := s.deploy(twoDebugFlow)
	events := s.eng.Subscribe("#", 64)
	defer events.Close()

	if got := debugSources(t, s); got["dbg"] != 1 || got["dbg2"] != 1 {
		t.Fatalf("before switching, debug events per node: %v", got)
	}

	code, _, b := s.do("POST", "/api/debug/dbg/disable", "")
	if code != 200 {
		t.Fatalf("disable: %d %s", code, b)
	}
	off := decode[switchAnswer](t, b)
	if off.ID != "dbg" || off.Active || off.Prev != rev0 || off.Rev == rev0 || off.Rev == "" {
		t.Fatalf("disable answered %+v (deployed rev was %s)", off, rev0)
	}
	// Switched off at once: the other debug node keeps publishing, this one
	// publishes nothing.
	if got := debugSources(t, s); got["dbg"] != 0 || got["dbg2"] != 1 {
		t.Fatalf("after disable, debug events per node: %v", got)
	}
	// The deployed flow, its revision and the flow file follow.
	f, rev := s.eng.Flows()
	if activeIn(t, f, "dbg") || !activeIn(t, f, "dbg2") || rev != off.Rev {
		t.Fatalf("deployed flow: dbg active %v, dbg2 %v, rev %s (answer %s)", activeIn(t, f, "dbg"), activeIn(t, f, "dbg2"), rev, off.Rev)
	}
	saved, err := s.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if activeIn(t, saved, "dbg") || saved.Revision() != off.Rev {
		t.Fatalf("the flow file has dbg active %v, revision %s", activeIn(t, saved, "dbg"), saved.Revision())
	}
	// A switch event, and no deploy: nothing was restarted.
	sawSwitch := false
	for len(events.C) > 0 {
		ev := <-events.C
		if ev.Topic == engine.TopicDeploy {
			t.Fatalf("switching deployed: %+v", ev.Data)
		}
		if ev.Topic == "switch/dbg" {
			d := ev.Data.(*engine.SwitchData)
			sawSwitch = !d.Active && d.Rev == off.Rev && d.Prev == rev0
		}
	}
	if !sawSwitch {
		t.Fatal("no switch/dbg event with the new state and revisions")
	}

	// The same state again changes nothing.
	code, _, b = s.do("POST", "/api/debug/dbg/disable", "")
	if again := decode[switchAnswer](t, b); code != 200 || again.Rev != off.Rev || again.Prev != off.Rev || again.Active {
		t.Fatalf("disable twice: %d %s", code, b)
	}

	// A modified-nodes deploy of the flow as read back keeps every node.
	body, _ := json.Marshal(map[string]any{"flows": f, "rev": rev})
	code, _, b = s.do("POST", "/api/flows", string(body))
	if code != 200 {
		t.Fatalf("redeploy: %d %s", code, b)
	}
	for len(events.C) > 0 {
		if ev := <-events.C; ev.Topic == engine.TopicDeploy {
			if d := ev.Data.(*engine.DeployData); len(d.Started) != 0 || len(d.Stopped) != 0 {
				t.Fatalf("redeploying the same flow restarted nodes: %+v", d)
			}
		}
	}
	if got := debugSources(t, s); got["dbg"] != 0 || got["dbg2"] != 1 {
		t.Fatalf("after redeploy, debug events per node: %v", got)
	}

	code, _, b = s.do("POST", "/api/debug/dbg/enable", "")
	if on := decode[switchAnswer](t, b); code != 200 || !on.Active {
		t.Fatalf("enable: %d %s", code, b)
	}
	if got := debugSources(t, s); got["dbg"] != 1 || got["dbg2"] != 1 {
		t.Fatalf("after enable, debug events per node: %v", got)
	}

	// Unknown node 404, a node that is not a debug node 400, an unknown
	// state 404.
	for _, tc := range []struct {
		path string
		code int
		err  string
	}{
		{"/api/debug/nope/disable", 404, "not_found"},
		{"/api/debug/lamp/disable", 400, "bad_request"},
		{"/api/debug/inj/enable", 400, "bad_request"},
		{"/api/debug/dbg/toggle", 404, "not_found"},
	} {
		code, _, b := s.do("POST", tc.path, "")
		if code != tc.code || decode[struct{ Error apiErr }](t, b).Error.Code != tc.err {
			t.Errorf("POST %s: %d %s, want %d %s", tc.path, code, b, tc.code, tc.err)
		}
	}
	if code, _, _ := s.do("GET", "/api/debug/dbg/disable", ""); code != 404 && code != 405 {
		t.Errorf("GET switches: %d", code)
	}
}

func TestDebugSwitchSurvivesRestart(t *testing.T) {
	s := newAPIServer(t, false)
	s.deploy(twoDebugFlow)
	if code, _, b := s.do("POST", "/api/debug/dbg2/disable", ""); code != 200 {
		t.Fatalf("disable: %d %s", code, b)
	}
	s.close()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(engine.Options{Registry: testRegistry(), Store: s.store, Logger: log, StopTimeout: 5 * time.Second})
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(context.Background())
	f, _ := eng.Flows()
	if activeIn(t, f, "dbg2") || !activeIn(t, f, "dbg") {
		t.Fatal("after a restart the switched-off node is on again")
	}
	sub := eng.Subscribe(engine.TopicDebug, 16)
	defer sub.Close()
	if err := eng.Inject(context.Background(), "inj"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eng.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for len(sub.C) > 0 {
		got[(<-sub.C).Node.ID]++
	}
	if got["dbg"] != 1 || got["dbg2"] != 0 {
		t.Fatalf("after a restart, debug events per node: %v", got)
	}
}

func TestDebugSwitchWS(t *testing.T) {
	s := newAPIServer(t, false)
	rev0 := s.deploy(twoDebugFlow)
	wc := s.mustDialWS()
	defer wc.close()
	wc.ok("subscribe", map[string]any{"topics": []string{"switch/#"}}, nil)

	var off switchAnswer
	wc.ok("debug-active", map[string]any{"id": "dbg", "active": false}, &off)
	if off.Active || off.Prev != rev0 || off.Rev == rev0 {
		t.Fatalf("debug-active false answered %+v", off)
	}
	ev := wc.event("switch/dbg")
	var data switchAnswer
	if err := json.Unmarshal(ev.Event.Data, &data); err != nil || data.Active || data.Rev != off.Rev || ev.Event.Node == nil || ev.Event.Node.ID != "dbg" {
		t.Fatalf("switch event %+v %s", ev.Event, ev.Event.Data)
	}
	if got := debugSources(t, s); got["dbg"] != 0 || got["dbg2"] != 1 {
		t.Fatalf("after debug-active false, debug events per node: %v", got)
	}
	var flows struct {
		Flows []map[string]any `json:"flows"`
		Rev   string           `json:"rev"`
	}
	wc.ok("flows", nil, &flows)
	for _, n := range flows.Flows {
		if n["id"] == "dbg" && n["active"] != false {
			t.Fatalf("flows shows dbg as %v", n)
		}
	}
	if flows.Rev != off.Rev {
		t.Fatalf("flows rev %s, switch answered %s", flows.Rev, off.Rev)
	}

	var on switchAnswer
	wc.ok("debug-active", map[string]any{"id": "dbg", "active": true}, &on)
	if !on.Active || on.Prev != off.Rev {
		t.Fatalf("debug-active true answered %+v", on)
	}
	if got := debugSources(t, s); got["dbg"] != 1 || got["dbg2"] != 1 {
		t.Fatalf("after debug-active true, debug events per node: %v", got)
	}

	for _, tc := range []struct {
		args map[string]any
		code string
	}{
		{map[string]any{"id": "nope", "active": false}, "not_found"},
		{map[string]any{"id": "lamp", "active": false}, "bad_request"},
		{map[string]any{"id": "dbg"}, "bad_request"},
		{map[string]any{"active": false}, "bad_request"},
		{map[string]any{"id": "dbg", "active": "no"}, "bad_request"},
	} {
		f := wc.call("debug-active", tc.args)
		if f.Error == nil || f.Error.Code != tc.code {
			t.Errorf("debug-active %v: %+v, want %s", tc.args, f.Error, tc.code)
		}
	}
}

func TestDebugSwitchAuthAndOrigin(t *testing.T) {
	const token = "s3cret-token-for-switching"
	s := newAPIServer(t, false, withAuth(web.Auth{Token: token}), func(o *web.Options) { o.AllowOrigins = []string{"https://ops.example.com"} })
	s.deploy(twoDebugFlow)
	bearer := []string{"Authorization", "Bearer " + token}
	stillOn := func(what string) {
		t.Helper()
		if f, _ := s.eng.Flows(); !activeIn(t, f, "dbg") {
			t.Fatalf("%s switched the node off", what)
		}
	}

	code, _, b := s.do("POST", "/api/debug/dbg/disable", "")
	if code != 401 || decode[struct{ Error apiErr }](t, b).Error.Code != "unauthorized" {
		t.Fatalf("without a credential: %d %s", code, b)
	}
	stillOn("a request without a credential")
	code, _, b = s.do("POST", "/api/debug/dbg/disable", "", "Authorization", "Bearer wrong")
	if code != 401 {
		t.Fatalf("with a wrong token: %d %s", code, b)
	}
	stillOn("a request with a wrong token")
	code, _, b = s.do("POST", "/api/debug/dbg/disable", "", append(bearer, "Origin", "http://evil.example")...)
	if code != 403 || decode[struct{ Error apiErr }](t, b).Error.Code != "forbidden" {
		t.Fatalf("from a foreign origin: %d %s", code, b)
	}
	stillOn("a request from a foreign origin")
	code, _, b = s.do("POST", "/api/debug/dbg/disable", "", append(bearer, "Host", "evil.example")...)
	if code != 421 {
		t.Fatalf("naming a foreign host: %d %s", code, b)
	}
	stillOn("a request naming a foreign host")
	code, _, b = s.do("POST", "/api/debug/dbg/disable", "", append(bearer, "Origin", "https://ops.example.com")...)
	if code != 200 {
		t.Fatalf("with the token from an allowed origin: %d %s", code, b)
	}
	if f, _ := s.eng.Flows(); activeIn(t, f, "dbg") {
		t.Fatal("an authorised request did not switch the node off")
	}
}
