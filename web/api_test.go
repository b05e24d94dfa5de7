package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

type flowsBody struct {
	Flows []map[string]any `json:"flows"`
	Rev   string           `json:"rev"`
}

func TestRESTFlowsAndRevisions(t *testing.T) {
	s := newAPIServer(t, false)
	code, hdr, b := s.do("GET", "/api/flows", "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/flows: %d %s %s", code, hdr.Get("Content-Type"), b)
	}
	empty := decode[flowsBody](t, b)
	if empty.Flows == nil || len(empty.Flows) != 0 || empty.Rev == "" {
		t.Fatalf("empty engine: got %s", b)
	}

	body, _ := json.Marshal(map[string]any{"flows": rawFlow(basicFlow), "rev": empty.Rev})
	code, _, b = s.do("POST", "/api/flows", string(body))
	if code != 200 {
		t.Fatalf("POST /api/flows: %d %s", code, b)
	}
	rev1 := decode[map[string]string](t, b)["rev"]
	if rev1 == "" || rev1 == empty.Rev {
		t.Fatalf("deploy gave rev %q (before %q)", rev1, empty.Rev)
	}
	if _, err := os.Stat(s.store.Path); err != nil {
		t.Fatalf("the deploy did not save the flow file: %v", err)
	}

	_, _, b = s.do("GET", "/api/flows", "")
	got := decode[flowsBody](t, b)
	if got.Rev != rev1 || len(got.Flows) != 4 || got.Flows[1]["id"] != "inj" || got.Flows[1]["payload"] != "hello" {
		t.Fatalf("GET after deploy: %s", b)
	}

	// A deploy based on the old revision is a conflict and changes nothing.
	code, _, b = s.do("POST", "/api/flows", string(body))
	if code != http.StatusConflict {
		t.Fatalf("stale rev: %d %s", code, b)
	}
	if e := decode[struct{ Error apiErr }](t, b).Error; e.Code != "conflict" || e.Message == "" {
		t.Fatalf("stale rev error: %s", b)
	}
	if s.eng.Rev() != rev1 {
		t.Fatal("a refused deploy changed the revision")
	}

	// A bare array skips the revision check; the mode comes from the query
	// or from Node-RED's header.
	changed := strings.Replace(basicFlow, `"hello"`, `"again"`, 1)
	for _, tc := range []struct {
		path, header string
	}{
		{"/api/flows?mode=full", ""},
		{"/api/flows", "full"},
		{"/api/flows", ""},
	} {
		changed = strings.Replace(changed, `"x":100`, `"x":101`, 1)
		code, _, b = s.do("POST", tc.path, changed, "Node-RED-Deployment-Type", tc.header)
		if code != 200 {
			t.Fatalf("POST %s (%q): %d %s", tc.path, tc.header, code, b)
		}
	}
	code, _, b = s.do("POST", "/api/flows?mode=sometimes", basicFlow)
	if code != 400 || decode[struct{ Error apiErr }](t, b).Error.Code != "bad_request" {
		t.Fatalf("bad mode: %d %s", code, b)
	}
	code, _, b = s.do("POST", "/api/flows", `{"rev":"x"}`)
	if code != 400 || decode[struct{ Error apiErr }](t, b).Error.Code != "bad_request" {
		t.Fatalf("no flows: %d %s", code, b)
	}
}

func TestRESTInvalidFlowListsEveryProblem(t *testing.T) {
	s := newAPIServer(t, false)
	rev := s.eng.Rev()
	code, _, b := s.do("POST", "/api/flows", invalidFlow)
	if code != 400 {
		t.Fatalf("invalid flow: %d %s", code, b)
	}
	e := decode[struct{ Error apiErr }](t, b).Error
	if e.Code != "invalid" {
		t.Fatalf("code %q, want invalid: %s", e.Code, b)
	}
	want := map[string]bool{"a/interval": false, "a/wires": false, "c/type": false}
	for _, p := range e.Problems {
		key := p.NodeID + "/" + p.Field
		if _, ok := want[key]; ok {
			want[key] = true
		}
		if p.Severity != engine.SeverityError || p.Message == "" {
			t.Errorf("problem %+v", p)
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no problem for %s in %s", k, b)
		}
	}
	if s.eng.Rev() != rev {
		t.Fatal("an invalid deploy changed the revision")
	}

	// A body that is not JSON reports where it breaks.
	code, _, b = s.do("POST", "/api/flows", "[\n {\"id\":\"a\",,}\n]")
	e = decode[struct{ Error apiErr }](t, b).Error
	if code != 400 || e.Code != "invalid" || len(e.Problems) != 1 || e.Problems[0].Line != 2 || e.Problems[0].Column != 12 {
		t.Fatalf("syntax error: %d %s", code, b)
	}
}

func TestRESTValidate(t *testing.T) {
	s := newAPIServer(t, false)
	code, _, b := s.do("POST", "/api/validate", basicFlow)
	if code != 200 {
		t.Fatalf("validate: %d %s", code, b)
	}
	ok := decode[struct{ Problems []engine.Problem }](t, b)
	if ok.Problems == nil || len(ok.Problems) != 0 {
		t.Fatalf("valid flow: %s", b)
	}
	body, _ := json.Marshal(map[string]any{"flows": rawFlow(invalidFlow)})
	code, _, b = s.do("POST", "/api/validate", string(body))
	bad := decode[struct{ Problems []engine.Problem }](t, b)
	if code != 200 || len(bad.Problems) < 3 {
		t.Fatalf("invalid flow: %d %s", code, b)
	}
	if s.eng.Rev() != (&engine.Flow{}).Revision() {
		t.Fatal("validate deployed something")
	}
}

func TestRESTNodesStatusCountersHealthz(t *testing.T) {
	s := newAPIServer(t, false)
	rev := s.deploy(basicFlow)

	code, _, b := s.do("GET", "/api/nodes", "")
	if code != 200 {
		t.Fatalf("nodes: %d", code)
	}
	types := decode[struct {
		Types []struct {
			Type   string
			Fields []struct{ Name, Kind string }
		}
	}](t, b).Types
	found := map[string]int{}
	for _, ty := range types {
		found[ty.Type] = len(ty.Fields)
	}
	if found["inject"] == 0 || found["tb-connection"] == 0 {
		t.Fatalf("types lack inject or tb-connection fields: %v", found)
	}
	if _, ok := found["test-lamp"]; !ok {
		t.Fatal("types lack the registry's own test-lamp")
	}

	code, _, b = s.do("GET", "/api/status", "")
	st := decode[struct{ Statuses map[string]engine.Status }](t, b).Statuses
	if code != 200 || st["lamp"] != (engine.Status{Fill: "green", Shape: "dot", Text: "on"}) {
		t.Fatalf("status: %d %s", code, b)
	}

	if code, _, b := s.do("POST", "/api/inject/inj", ""); code != 204 || len(b) != 0 {
		t.Fatalf("inject: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.eng.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, b = s.do("GET", "/api/counters", "")
	cs := decode[struct {
		Counters map[string]engine.NodeCounters
	}](t, b).Counters
	if code != 200 || cs["dbg"].In != 1 || cs["inj"].Out != 2 {
		t.Fatalf("counters: %d %s", code, b)
	}

	code, _, b = s.do("GET", "/healthz", "")
	h := decode[map[string]string](t, b)
	if code != 200 || h["status"] != "ok" || h["rev"] != rev {
		t.Fatalf("healthz: %d %s", code, b)
	}
	code, _, b = s.do("GET", "/api/nothing-here", "")
	if code != 404 || decode[struct{ Error apiErr }](t, b).Error.Code != "not_found" {
		t.Fatalf("unknown endpoint: %d %s", code, b)
	}
}

func TestRESTInject(t *testing.T) {
	s := newAPIServer(t, false)
	s.deploy(basicFlow)
	sub := s.eng.Subscribe(engine.TopicDebug, 16)
	defer sub.Close()
	if code, _, b := s.do("POST", "/api/inject/inj", ""); code != 204 {
		t.Fatalf("inject: %d %s", code, b)
	}
	select {
	case ev := <-sub.C:
		if d := ev.Data.(*engine.DebugData); d.Value != "hello" || ev.Node.ID != "dbg" {
			t.Fatalf("debug event %+v %+v", ev, d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the injected message did not reach the debug node")
	}
	code, _, b := s.do("POST", "/api/inject/nope", "")
	if code != 404 || decode[struct{ Error apiErr }](t, b).Error.Code != "not_found" {
		t.Fatalf("unknown node: %d %s", code, b)
	}
	code, _, b = s.do("POST", "/api/inject/dbg", "")
	if code != 400 || decode[struct{ Error apiErr }](t, b).Error.Code != "bad_request" {
		t.Fatalf("node without a button: %d %s", code, b)
	}
}

func TestMetrics(t *testing.T) {
	s := newAPIServer(t, false)
	s.deploy(basicFlow)
	s.do("POST", "/api/inject/inj", "")
	code, hdr, b := s.do("GET", "/metrics", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`tbflow_node_messages_out_total{node_id="inj",node_type="inject"}`,
		`tbflow_node_queue_capacity{node_id="dbg",node_type="debug"}`,
		"tbflow_events_dropped_total",
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRESTBodyLimit(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.MaxFrame = 1024 })
	code, _, b := s.do("POST", "/api/flows", `[{"id":"x","type":"tab","label":"`+strings.Repeat("a", 2000)+`"}]`)
	if code != http.StatusRequestEntityTooLarge || decode[struct{ Error apiErr }](t, b).Error.Code != "too_large" {
		t.Fatalf("large body: %d %s", code, b)
	}
}

func TestEditorFiles(t *testing.T) {
	s := newAPIServer(t, false)
	code, hdr, b := s.do("GET", "/", "")
	if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(strings.ToLower(string(b)), "<html") {
		t.Fatalf("GET /: %d %s", code, hdr.Get("Content-Type"))
	}
	if hdr.Get("Cache-Control") != "no-cache" || hdr.Get("ETag") == "" {
		t.Fatalf("GET / caching headers: %v", hdr)
	}
	wantHeaders := map[string]string{
		"Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for k, v := range wantHeaders {
		if hdr.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, hdr.Get(k), v)
		}
	}
	if code, _, _ := s.do("GET", "/", "", "If-None-Match", hdr.Get("ETag")); code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", code)
	}
	if code, _, _ := s.do("GET", "/no/such/file.js", ""); code != 404 {
		t.Fatalf("missing file: %d", code)
	}
	if code, _, _ := s.do("GET", "/../web/server.go", ""); code != 404 {
		t.Fatalf("path outside the editor: %d", code)
	}
}

func TestEditorFilesFromDirectory(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"index.html":        "<!doctype html><html></html>",
		"js/main.js":        "export const x = 1;",
		"css/editor.css":    "body{}",
		"img/logo.svg":      "<svg/>",
		"data/example.json": "{}",
		"js/nested/mod.mjs": "export {};",
		"sub/index.html":    "<html>sub</html>",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newAPIServer(t, false, func(o *web.Options) { o.StaticDir = dir })
	for path, ctype := range map[string]string{
		"/":                  "text/html; charset=utf-8",
		"/js/main.js":        "text/javascript; charset=utf-8",
		"/js/nested/mod.mjs": "text/javascript; charset=utf-8",
		"/css/editor.css":    "text/css; charset=utf-8",
		"/img/logo.svg":      "image/svg+xml",
		"/data/example.json": "application/json",
		"/sub/":              "text/html; charset=utf-8",
	} {
		code, hdr, _ := s.do("GET", path, "")
		if code != 200 || hdr.Get("Content-Type") != ctype || hdr.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d %q %q, want 200 %q no-cache", path, code, hdr.Get("Content-Type"), hdr.Get("Cache-Control"), ctype)
		}
	}
	// Files on disk are read on every request.
	os.WriteFile(filepath.Join(dir, "js/main.js"), []byte("export const x = 2;"), 0o644)
	if _, _, b := s.do("GET", "/js/main.js", ""); string(b) != "export const x = 2;" {
		t.Fatalf("changed file served as %q", b)
	}
	if code, _, _ := s.do("POST", "/js/main.js", ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST to a file: %d", code)
	}
}
