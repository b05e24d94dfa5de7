package hostile

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all"
	"github.com/tbflow/tbflow/web"
)

// Planted secrets: no answer may contain them.
const (
	apiToken    = "hostile-api-token-5150"
	envSecret   = "hostile-env-secret-4242"
	envHash     = "$2a$10$hostilehashhostilehashhostilehashhostilehashhos"
	storedToken = "hostile-stored-device-token-7777"
	frameLimit  = 2 << 20
)

var secrets = []string{apiToken, envSecret, envHash, storedToken}

type editor struct {
	eng *engine.Engine
	srv *web.Server
	hs  *httptest.Server
}

func newEditor(t *testing.T) *editor {
	t.Helper()
	env := map[string]string{"HOSTILE_SECRET": envSecret, "TBFLOW_AUTH_PASSWORD_HASH": envHash, "PORT": "1883"}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(engine.Options{
		Logger: log, Store: &engine.FileStore{Path: filepath.Join(dir, "flows.json")}, DataDir: dir,
		LookupEnv:   func(n string) (string, bool) { v, ok := env[n]; return v, ok },
		StopTimeout: 3 * time.Second,
	})
	srv, err := web.New(web.Options{Engine: eng, Logger: log, Auth: web.Auth{Token: apiToken}, MaxFrame: frameLimit, BodyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	ed := &editor{eng: eng, srv: srv, hs: hs}
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	return ed
}

// answer is a response, or why there is none.
type answer struct {
	status int
	body   string
	err    error
}

func (ed *editor) do(method, path, body string, hdr ...string) answer {
	req, _ := http.NewRequest(method, ed.hs.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ed.hs.Client().Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), err: err}
}

// classify judges an API answer: 2xx is accepted, a 4xx or 503 with an
// error message is a clear error, anything else crashed; a planted secret
// in the body is a leak.
func classify(a answer) (Outcome, string) {
	if a.err != nil {
		return Crashed, a.err.Error()
	}
	for _, s := range secrets {
		if strings.Contains(a.body, s) {
			return Leaked, "the answer holds a planted secret: " + truncate(a.body)
		}
	}
	switch {
	case a.status >= 200 && a.status < 300:
		var v any
		if a.body != "" && json.Unmarshal([]byte(a.body), &v) != nil {
			return Crashed, "answer is not JSON: " + truncate(a.body)
		}
		return Accepted, ""
	case a.status >= 400 && a.status < 500, a.status == http.StatusServiceUnavailable:
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal([]byte(a.body), &e) != nil || e.Error.Message == "" {
			return Crashed, "error without a message: " + truncate(a.body)
		}
		return Clear, ""
	}
	return Crashed, "status " + http.StatusText(a.status) + ": " + truncate(a.body)
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// healthy reports whether the editor still answers.
func (ed *editor) healthy() bool {
	a := ed.do("GET", "/healthz", "")
	return a.err == nil && a.status == 200
}
