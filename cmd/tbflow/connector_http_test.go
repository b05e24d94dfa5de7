package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
)

// apiServer is a plain HTTP server on a fixed loopback port that can go
// away and come back.
type apiServer struct {
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

func (a *apiServer) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.srv = &http.Server{Handler: a.handler, ReadHeaderTimeout: 5 * time.Second}
	srv := a.srv
	a.mu.Unlock()
	go srv.Serve(ln)
}

func (a *apiServer) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.srv.Close()
		a.srv = nil
	}
}

// curlPost posts body with Debian's curl and returns the HTTP status.
func curlPost(t *testing.T, url, body string, headers ...string) int {
	t.Helper()
	bin := peers.Find(t, "curl", "curl")
	args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "-d", body}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := exec.Command(bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return code
}

// TestRunHTTP runs flows/http-to-tb.json with `tbflow run` against tbsim,
// curl posting to http-in and a plain HTTP server as the polled REST API:
// every JSON value type arrives as telemetry of the right device; the API
// going down and coming back is shown in the status and survived.
func TestRunHTTP(t *testing.T) {
	var polls atomic.Int64
	api := &apiServer{addr: "127.0.0.1:" + strconv.Itoa(peers.FreePort(t)), handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/weather" || r.Header.Get("Accept") != "application/json" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"temperature":12.5,"wind":3,"raining":false,"sky":"clear","polls":%d}`, polls.Add(1))
	})}
	api.start(t)
	t.Cleanup(api.stop)
	tbs, tbPort := gatewaySim(t)
	listen := "127.0.0.1:" + strconv.Itoa(peers.FreePort(t))
	t.Setenv("HTTP_IN_TOKEN", "device-post-token")
	file := exampleFlow(t, "http-to-tb", map[string]map[string]any{
		"gw":           {"port": tbPort},
		"device-posts": {"listen": listen},
		"weather":      {"url": "http://" + api.addr + "/weather", "interval": "100ms", "backoffMax": "300ms"},
	})
	logs, metrics := tbflowRun(t, file)
	waitLog(t, logs, func(s string) bool { return statusLogged(s, 0, "device-posts", "listening on "+listen) }, "listening status")

	url := "http://" + listen + "/api/v1/boiler-3/telemetry"
	auth := "Authorization: Bearer device-post-token"
	if code := curlPost(t, url, `{"temperature":21.5,"count":42,"on":true,"mode":"eco"}`, auth); code != 200 {
		t.Fatalf("post: HTTP %d\n%s", code, logs.String())
	}
	if code := curlPost(t, "http://"+listen+"/api/v1/plug-1/telemetry", `[{"ts":1700000000000,"values":{"power":12.5}}]`, auth); code != 200 {
		t.Fatalf("post of a record array: HTTP %d", code)
	}
	if code := curlPost(t, url, `{"temperature":99}`); code != 401 {
		t.Errorf("post without the token: HTTP %d", code)
	}
	if code := curlPost(t, url, `temperature=99`, auth); code != 400 {
		t.Errorf("post of a form: HTTP %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range []struct {
		device, key string
		value       any
	}{
		{"boiler-3", "temperature", 21.5},
		{"boiler-3", "count", int64(42)},
		{"boiler-3", "on", true},
		{"boiler-3", "mode", "eco"},
		{"plug-1", "power", 12.5},
		{"Weather Station", "temperature", 12.5},
		{"Weather Station", "wind", int64(3)},
		{"Weather Station", "raining", false},
		{"Weather Station", "sky", "clear"},
	} {
		if err := tbs.WaitTelemetry(ctx, w.device, w.key, 1); err != nil {
			t.Fatalf("%s %s: %v\n%s", w.device, w.key, err, logs.String())
		}
		if got := tbs.Latest(w.device)[w.key].Value; got != w.value {
			t.Errorf("%s %s = %#v, want %#v", w.device, w.key, got, w.value)
		}
	}
	if got := tbs.Latest("plug-1")["power"].Ts; got != 1700000000000 {
		t.Errorf("the record's own time was not kept: %d", got)
	}
	if got := tbs.Latest("boiler-3")["temperature"].Value; got != 21.5 {
		t.Errorf("the post without a token changed the value: %v", got)
	}
	for _, d := range tbs.Devices() {
		if d.Name == "boiler-3" && d.Type != "http-device" {
			t.Errorf("boiler-3 has profile %q", d.Type)
		}
	}
	waitLog(t, logs, func(s string) bool { return strings.Contains(s, "body is not JSON") }, "the bad post reported to catch")
	if v := metric(t, metrics, "tbflow_node_messages_out_total", "device-posts"); v != 2 {
		t.Errorf("device posts sent %v messages, want 2", v)
	}
	if strings.Contains(logs.String(), "device-post-token") {
		t.Error("the token is in the log")
	}

	// The API goes down and comes back.
	mark := len(logs.String())
	api.stop()
	waitLog(t, logs, func(s string) bool { return statusLogged(s, mark, "weather", "error: server unreachable") }, "the API's error status")
	mark = len(logs.String())
	time.Sleep(500 * time.Millisecond)
	before := polls.Load()
	api.start(t)
	waitLog(t, logs, func(s string) bool { return statusLogged(s, mark, "weather", "polling") }, "polling status after the API came back")
	if err := tbs.WaitTelemetry(ctx, "Weather Station", "polls", int(before)+1); err != nil {
		t.Fatalf("no polls after the API came back: %v", err)
	}
}

// TestValidateHTTP: `tbflow validate` names the field of a bad setting.
func TestValidateHTTP(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[
	 {"id":"i","type":"http-in","listen":"0.0.0.0:8081","auth":"none","path":"/api/{device}","deviceSource":"path","deviceParam":"id","wires":[[]]},
	 {"id":"r","type":"http-request","url":"ftp://example.com/x","headers":[{"name":"Bad Header","value":"v"}],"wires":[[]]}
	]`), 0o600)
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"validate", bad}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	for _, w := range []string{
		`node "i" (http-in) auth: listening beyond loopback (0.0.0.0:8081) needs token or basic authentication`,
		`node "i" (http-in) deviceParam: the path "/api/{device}" has no {id}`,
		`node "r" (http-request) url: "ftp://example.com/x" is not an http:// or https:// URL`,
		`node "r" (http-request) headers[0].name: "Bad Header" is not a header name`,
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("validate output lacks %q:\n%s", w, out.String())
		}
	}
}
