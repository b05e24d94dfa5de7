package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

func init() {
	// test-lamp's "echo" returns the lamp's text as constructed from the
	// posted settings, and the arguments.
	engine.RegisterAction("test-lamp", engine.ActionSpec{
		Name: "echo", Field: "text", Label: "Echo", Help: "Returns the text and the arguments.",
		Run: func(_ context.Context, req *engine.ActionRequest) (any, error) {
			var args any
			if len(req.Args) > 0 {
				_ = json.Unmarshal(req.Args, &args)
			}
			return map[string]any{"text": req.Node.(*lampNode).text, "args": args}, nil
		},
	})
}

const actionFlow = `{"flows": [{"id":"tab","type":"tab"},{"id":"l","type":"test-lamp","z":"tab","text":"hi","wires":[]},
  {"id":"bad","type":"inject","z":"tab","interval":"soon"}], "node": "l", "args": {"x": 1}}`

func TestNodeActions(t *testing.T) {
	s := newAPIServer(t, false)
	code, _, body := s.do("GET", "/api/nodes/test-lamp/actions", "")
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `[{"name":"echo","field":"text","label":"Echo","help":"Returns the text and the arguments."}]` {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _, body = s.do("GET", "/api/nodes/opcua-in/actions", ""); code != http.StatusOK || !strings.Contains(string(body), `"name":"browse","field":"items.nodeId"`) {
		t.Fatalf("opcua-in actions: %d %s", code, body)
	}

	// The posted settings are used (only the node and its config nodes:
	// the broken inject does not matter).
	code, _, body = s.do("POST", "/api/nodes/test-lamp/actions/echo", actionFlow)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != `{"result":{"args":{"x":1},"text":"hi"}}` {
		t.Fatalf("echo: %d %s", code, body)
	}
	for _, c := range []struct {
		path, body string
		code       int
		want       string
	}{
		{"/api/nodes/test-lamp/actions/nope", actionFlow, http.StatusNotFound, "no such action"},
		{"/api/nodes/inject/actions/echo", actionFlow, http.StatusNotFound, "no inject node l"},
		{"/api/nodes/test-lamp/actions/echo", `{"flows": [{"id":"l","type":"test-lamp","text":5}], "node": "l"}`, http.StatusBadRequest, `"code":"invalid"`},
		{"/api/nodes/test-lamp/actions/echo", `{"node": "l"}`, http.StatusBadRequest, "required"},
		{"/api/nodes/test-lamp/actions/echo", `[1`, http.StatusBadRequest, "the body must be"},
	} {
		code, _, body := s.do("POST", c.path, c.body)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("POST %s %s: %d %s, want %d %q", c.path, c.body, code, body, c.code, c.want)
		}
	}
	// Another site's page may not run actions.
	if code, _, body := s.do("POST", "/api/nodes/test-lamp/actions/echo", actionFlow, "Origin", "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("cross-origin: %d %s", code, body)
	}
}

func TestNodeActionsNeedAuth(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{Token: "secret-token"}))
	if code, _, _ := s.do("POST", "/api/nodes/test-lamp/actions/echo", actionFlow); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d", code)
	}
	if code, _, body := s.do("POST", "/api/nodes/test-lamp/actions/echo", actionFlow, "Authorization", "Bearer secret-token"); code != http.StatusOK {
		t.Errorf("with the token: %d %s", code, body)
	}
}
