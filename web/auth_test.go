package web_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/web"
)

func hashFor(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

type sessionBody struct {
	Auth          bool   `json:"auth"`
	Authenticated bool   `json:"authenticated"`
	User          string `json:"user"`
}

func TestAuthOffByDefault(t *testing.T) {
	s := newAPIServer(t, false)
	_, _, b := s.do("GET", "/api/session", "")
	if got := decode[sessionBody](t, b); got.Auth || !got.Authenticated {
		t.Fatalf("session without auth: %s", b)
	}
	if code, _, _ := s.do("GET", "/api/flows", ""); code != 200 {
		t.Fatalf("flows without auth: %d", code)
	}
	if code, _, _ := s.do("POST", "/api/login", `{"token":"x"}`); code != 204 {
		t.Fatalf("login without auth: %d", code)
	}
}

func TestAuthToken(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{Token: "t0ken"}))
	for _, path := range []string{"/api/flows", "/api/nodes", "/api/status", "/metrics"} {
		code, _, b := s.do("GET", path, "")
		if code != 401 || (path != "/metrics" && decode[struct{ Error apiErr }](t, b).Error.Code != "unauthorized") {
			t.Errorf("GET %s without a credential: %d %s", path, code, b)
		}
		if code, _, _ := s.do("GET", path, "", "Authorization", "Bearer wrong"); code != 401 {
			t.Errorf("GET %s with a wrong token: %d", path, code)
		}
		if code, _, b := s.do("GET", path, "", "Authorization", "Bearer t0ken"); code != 200 {
			t.Errorf("GET %s with the token: %d %s", path, code, b)
		}
	}
	if code, _, _ := s.do("POST", "/api/inject/x", ""); code != 401 {
		t.Errorf("inject without a credential: %d", code)
	}
	// Open: health, session, the editor page.
	for _, path := range []string{"/healthz", "/api/session", "/"} {
		if code, _, _ := s.do("GET", path, ""); code != 200 {
			t.Errorf("GET %s: %d, want it open", path, code)
		}
	}
	_, _, b := s.do("GET", "/api/session", "")
	if got := decode[sessionBody](t, b); !got.Auth || got.Authenticated {
		t.Fatalf("session without credential: %s", b)
	}

	// The WebSocket upgrade needs a credential too.
	if _, resp, err := s.dialWS(nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("upgrade without a credential: %v %v", resp, err)
	}
	c, _, err := s.dialWS(http.Header{"Authorization": {"Bearer t0ken"}})
	if err != nil {
		t.Fatalf("upgrade with the token: %v", err)
	}
	c.ok("ping", nil, nil)

	// Token login gives a session cookie.
	if code, _, _ := s.do("POST", "/api/login", `{"token":"nope"}`); code != 401 {
		t.Fatalf("login with a wrong token: %d", code)
	}
	code, hdr, _ := s.do("POST", "/api/login", `{"token":"t0ken"}`)
	if code != 204 || !strings.Contains(hdr.Get("Set-Cookie"), web.SessionCookie+"=") {
		t.Fatalf("token login: %d %v", code, hdr)
	}
}

func sessionCookie(t *testing.T, hdr http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == web.SessionCookie {
			return c
		}
	}
	t.Fatalf("no session cookie in %v", hdr)
	return nil
}

func TestAuthBasicLoginLogout(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{User: "admin", PasswordHash: hashFor(t, "pa55")}))
	if code, _, _ := s.do("GET", "/api/flows", "", "Authorization", basic("admin", "pa55")); code != 200 {
		t.Fatalf("basic: %d", code)
	}
	if code, _, _ := s.do("GET", "/api/flows", "", "Authorization", basic("admin", "wrong")); code != 401 {
		t.Fatalf("basic with a wrong password: %d", code)
	}
	if code, _, _ := s.do("GET", "/api/flows", "", "Authorization", basic("root", "pa55")); code != 401 {
		t.Fatalf("basic with a wrong user: %d", code)
	}
	if code, _, b := s.do("POST", "/api/login", `{"user":"admin","password":"wrong"}`); code != 401 || decode[struct{ Error apiErr }](t, b).Error.Code != "unauthorized" {
		t.Fatalf("login with a wrong password: %d %s", code, b)
	}
	if code, _, _ := s.do("POST", "/api/login", `not json`); code != 400 {
		t.Fatalf("login with a bad body: %d", code)
	}

	code, hdr, _ := s.do("POST", "/api/login", `{"user":"admin","password":"pa55"}`)
	if code != 204 {
		t.Fatalf("login: %d", code)
	}
	ck := sessionCookie(t, hdr)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/" || len(ck.Value) < 43 {
		t.Fatalf("cookie %+v", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	if code, _, _ := s.do("GET", "/api/flows", "", "Cookie", cookie); code != 200 {
		t.Fatalf("flows with the cookie: %d", code)
	}
	_, _, b := s.do("GET", "/api/session", "", "Cookie", cookie)
	if got := decode[sessionBody](t, b); !got.Auth || !got.Authenticated || got.User != "admin" {
		t.Fatalf("session: %s", b)
	}
	c, _, err := s.dialWS(http.Header{"Cookie": {cookie}})
	if err != nil {
		t.Fatalf("upgrade with the cookie: %v", err)
	}
	c.ok("flows", nil, nil)
	other, _, err := s.dialWS(http.Header{"Authorization": {basic("admin", "pa55")}})
	if err != nil {
		t.Fatalf("upgrade with basic credentials: %v", err)
	}

	if code, _, _ := s.do("POST", "/api/logout", "", "Cookie", cookie); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	// The logout ends the session's WebSocket, not the others.
	select {
	case <-c.done:
		var ce *websocket.CloseError
		if !errors.As(c.err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "logged out" {
			t.Fatalf("the session's WebSocket ended with %v, want a close frame 1008 \"logged out\"", c.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session's WebSocket stayed open after the logout")
	}
	other.ok("flows", nil, nil)
	if code, _, _ := s.do("GET", "/api/flows", "", "Cookie", cookie); code != 401 {
		t.Fatalf("flows after logout: %d", code)
	}
	if _, resp, err := s.dialWS(http.Header{"Cookie": {cookie}}); err == nil || resp.StatusCode != 401 {
		t.Fatalf("upgrade after logout: %v", err)
	}
	if code, _, _ := s.do("GET", "/api/flows", "", "Cookie", web.SessionCookie+"=forged"); code != 401 {
		t.Fatalf("forged cookie: %d", code)
	}
}

// A login session's WebSocket ends when the session expires.
func TestSessionExpiryEndsWebSocket(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{Token: "t0ken"}), func(o *web.Options) { o.SessionTTL = 300 * time.Millisecond })
	code, hdr, _ := s.do("POST", "/api/login", `{"token":"t0ken"}`)
	if code != 204 {
		t.Fatalf("login: %d", code)
	}
	ck := sessionCookie(t, hdr)
	c, _, err := s.dialWS(http.Header{"Cookie": {ck.Name + "=" + ck.Value}})
	if err != nil {
		t.Fatalf("upgrade with the cookie: %v", err)
	}
	c.ok("flows", nil, nil)
	select {
	case <-c.done:
		var ce *websocket.CloseError
		if !errors.As(c.err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "session expired" {
			t.Fatalf("the WebSocket ended with %v, want a close frame 1008 \"session expired\"", c.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the WebSocket outlived its session")
	}
}

func TestLoginRateLimit(t *testing.T) {
	s := newAPIServer(t, false, withAuth(web.Auth{User: "admin", PasswordHash: hashFor(t, "pa55")}))
	codes := []int{}
	for range 12 {
		code, _, _ := s.do("POST", "/api/login", `{"user":"admin","password":"guess"}`)
		codes = append(codes, code)
	}
	if codes[0] != 401 || codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Fatalf("codes of repeated failed logins: %v", codes)
	}
	// Even the right password waits now.
	if code, _, _ := s.do("POST", "/api/login", `{"user":"admin","password":"pa55"}`); code != http.StatusTooManyRequests {
		t.Fatalf("login while limited: %d", code)
	}
}

func TestInvalidAuthConfig(t *testing.T) {
	eng := engine.New(engine.Options{})
	for _, a := range []web.Auth{
		{User: "admin"},
		{PasswordHash: hashFor(t, "x")},
		{User: "admin", PasswordHash: "plaintext"},
	} {
		if _, err := web.New(web.Options{Engine: eng, Auth: a}); err == nil {
			t.Errorf("auth %+v accepted", a)
		}
	}
	if _, err := web.New(web.Options{Engine: eng, AllowOrigins: []string{"example.com"}}); err == nil {
		t.Error("an origin without a scheme was accepted")
	}
}

func TestOriginCheck(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.AllowOrigins = []string{"https://ops.example.com"} })
	self := s.url // http://127.0.0.1:port
	for _, tc := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"no origin", nil, 200},
		{"same origin", []string{"Origin", self}, 200},
		{"same origin, upper case", []string{"Origin", strings.ToUpper(self)}, 200},
		{"allowed origin", []string{"Origin", "https://ops.example.com"}, 200},
		{"allowed origin, default port", []string{"Origin", "https://ops.example.com:443"}, 200},
		{"foreign origin", []string{"Origin", "http://evil.example"}, 403},
		{"other port", []string{"Origin", "http://127.0.0.1:1"}, 403},
		{"other scheme", []string{"Origin", "https" + strings.TrimPrefix(self, "http")}, 403},
		{"null origin", []string{"Origin", "null"}, 403},
		{"cross-site fetch without origin", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-origin fetch", []string{"Origin", self, "Sec-Fetch-Site", "same-origin"}, 200},
	} {
		code, hdr, b := s.do("POST", "/api/validate", basicFlow, tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: POST %d, want %d (%s)", tc.name, code, tc.want, b)
		}
		if code == 403 && decode[struct{ Error apiErr }](t, b).Error.Code != "forbidden" {
			t.Errorf("%s: %s", tc.name, b)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: Access-Control-Allow-Origin sent", tc.name)
		}
		_, resp, err := s.dialWS(http.Header(headerMap(tc.hdr)))
		switch {
		case tc.want == 200 && err != nil:
			t.Errorf("%s: upgrade refused: %v", tc.name, err)
		case tc.want == 403 && (err == nil || resp == nil || resp.StatusCode != 403):
			t.Errorf("%s: upgrade not refused with 403: %v", tc.name, err)
		}
	}
	// Reading is not state-changing: a foreign page's GET gets no CORS
	// header, so its script cannot read the answer.
	code, hdr, _ := s.do("GET", "/api/flows", "", "Origin", "http://evil.example")
	if code != 200 || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign GET: %d, ACAO %q", code, hdr.Get("Access-Control-Allow-Origin"))
	}
}

func headerMap(kv []string) map[string][]string {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestTLSCookieAndOrigin(t *testing.T) {
	s := newAPIServer(t, true, withAuth(web.Auth{Token: "t0ken"}))
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatal(s.url)
	}
	code, hdr, _ := s.do("POST", "/api/login", `{"token":"t0ken"}`, "Origin", s.url)
	if code != 204 {
		t.Fatalf("login over TLS: %d", code)
	}
	ck := sessionCookie(t, hdr)
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie over TLS: %+v", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	if code, _, _ := s.do("POST", "/api/validate", basicFlow, "Cookie", cookie, "Origin", s.url); code != 200 {
		t.Fatalf("same https origin: %d", code)
	}
	if code, _, _ := s.do("POST", "/api/validate", basicFlow, "Cookie", cookie, "Origin", "http"+strings.TrimPrefix(s.url, "https")); code != 403 {
		t.Fatalf("http origin to an https server: %d", code)
	}
	c, _, err := s.dialWS(http.Header{"Cookie": {cookie}, "Origin": {s.url}})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	c.ok("ping", nil, nil)
}

const secretFlow = `[
 {"id":"tab1","type":"tab","label":"one"},
 {"id":"conn","type":"tb-connection","name":"tb","host":"127.0.0.1","accessToken":"%s"},
 {"id":"conn2","type":"tb-connection","name":"basic","host":"127.0.0.1","username":"u","password":"hunter2"}
]`

func TestSecretsAreWriteOnly(t *testing.T) {
	s := newAPIServer(t, false)
	credPath := s.store.CredentialsPath()
	deploy := func(flow string) {
		t.Helper()
		code, _, b := s.do("POST", "/api/flows", flow)
		if code != 200 {
			t.Fatalf("deploy: %d %s", code, b)
		}
	}
	creds := func() engine.Credentials {
		t.Helper()
		b, err := os.ReadFile(credPath)
		if os.IsNotExist(err) {
			return engine.Credentials{}
		}
		if err != nil {
			t.Fatal(err)
		}
		return decode[engine.Credentials](t, b)
	}
	deploy(strings.Replace(secretFlow, "%s", "s3cr3t-t0ken", 1))

	// Neither the REST mirror nor the WebSocket sends the values.
	_, _, b := s.do("GET", "/api/flows", "")
	c := s.mustDialWS()
	wsFlows := c.call("flows", nil)
	for name, body := range map[string]string{"GET /api/flows": string(b), "ws flows": string(wsFlows.raw)} {
		if strings.Contains(body, "s3cr3t-t0ken") || strings.Contains(body, "hunter2") {
			t.Fatalf("%s leaks a secret: %s", name, body)
		}
		if strings.Count(body, engine.SecretPlaceholder) != 2 {
			t.Fatalf("%s: want two placeholders: %s", name, body)
		}
	}
	flowFile, _ := os.ReadFile(s.store.Path)
	if strings.Contains(string(flowFile), "s3cr3t-t0ken") {
		t.Fatal("the flow file holds the secret")
	}
	if got := creds()["conn"]["accessToken"]; got != "s3cr3t-t0ken" {
		t.Fatalf("credentials file: accessToken %q", got)
	}

	// The flow as the browser holds it deploys again (a new name) and
	// keeps the values.
	got := decode[flowsBody](t, b)
	got.Flows[1]["name"] = "renamed"
	body, _ := json.Marshal(got)
	deploy(string(body))
	if cr := creds(); cr["conn"]["accessToken"] != "s3cr3t-t0ken" || cr["conn2"]["password"] != "hunter2" {
		t.Fatalf("placeholder deploy lost the secrets: %v", cr)
	}
	// Validation resolves placeholders the same way.
	var val struct{ Problems []engine.Problem }
	c.ok("validate", map[string]any{"flows": got.Flows}, &val)
	if len(val.Problems) != 0 {
		t.Fatalf("validate with placeholders: %+v", val.Problems)
	}

	// A new value replaces it; an empty one clears it; an ${ENV}
	// reference replaces the literal, which leaves the credentials file.
	c.ok("deploy", map[string]any{"flows": rawFlow(strings.Replace(secretFlow, "%s", "n3w-t0ken", 1))}, nil)
	if cr := creds()["conn"]; cr["accessToken"] != "n3w-t0ken" {
		t.Fatalf("new value: %v", cr)
	}
	c.ok("deploy", map[string]any{"flows": rawFlow(strings.Replace(secretFlow, "%s", "", 1))}, nil)
	if cr := creds(); cr["conn"]["accessToken"] != "" || cr["conn2"]["password"] != "hunter2" {
		t.Fatalf("an empty value did not clear the token (or cleared the other secret): %v", cr)
	}
	c.ok("deploy", map[string]any{"flows": rawFlow(strings.Replace(strings.Replace(secretFlow, "%s", "${TB_TOKEN}", 1), "hunter2", "${TB_PASSWORD}", 1))}, nil)
	if cr := creds(); len(cr) != 0 {
		t.Fatalf("references did not replace the secrets: %v", cr)
	}
	var fl flowsBody
	c.ok("flows", nil, &fl)
	if fl.Flows[1]["accessToken"] != "${TB_TOKEN}" || fl.Flows[2]["password"] != "${TB_PASSWORD}" {
		t.Fatalf("references are not secret and are shown as they are: %v %v", fl.Flows[1], fl.Flows[2])
	}
}
