package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/internal/peers"
	_ "github.com/tbflow/tbflow/nodes/http"
)

// curl runs Debian's curl and returns the HTTP status and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	bin := peers.Find(t, "curl", "curl")
	out, err := exec.Command(bin, append([]string{"-s", "-S", "--max-time", "20", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return code, s[:max(i, 0)]
}

func waitStatus(t *testing.T, h *enginetest.Harness, id, text string, from int) {
	t.Helper()
	deadline := time.Now().Add(enginetest.WaitLimit)
	for time.Now().Before(deadline) {
		ss := h.Statuses(id)
		for _, s := range ss[min(from, len(ss)):] {
			if strings.HasPrefix(s.Text, text) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s never showed %q; statuses: %v", id, text, h.Statuses(id))
}

func TestConformance(t *testing.T) {
	t.Run("http-in", func(t *testing.T) {
		enginetest.Conformance(t, "http-in", enginetest.ConformanceOptions{Settings: map[string]any{"listen": "127.0.0.1:0", "secret": "s"}})
	})
	t.Run("http-request", func(t *testing.T) {
		enginetest.Conformance(t, "http-request", enginetest.ConformanceOptions{
			Settings: map[string]any{"url": "http://127.0.0.1:" + strconv.Itoa(peers.FreePort(t)) + "/x", "timeout": "200ms"}})
	})
}

func TestValidation(t *testing.T) {
	for _, c := range []struct {
		node        map[string]any
		field, what string
	}{
		{map[string]any{"type": "http-in", "listen": "nohost", "secret": "s"}, "listen", "is not host:port"},
		{map[string]any{"type": "http-in", "listen": "0.0.0.0:8081", "auth": "none"}, "auth", "needs token or basic"},
		{map[string]any{"type": "http-in"}, "secret", "a token or password is needed"},
		{map[string]any{"type": "http-in", "auth": "basic", "secret": "s"}, "username", "a user name is needed"},
		{map[string]any{"type": "http-in", "path": "telemetry", "secret": "s"}, "path", "must start with /"},
		{map[string]any{"type": "http-in", "path": "/a/{device", "secret": "s"}, "path", ""},
		{map[string]any{"type": "http-in", "path": "/a", "secret": "s", "deviceSource": "path"}, "deviceParam", `has no {device}`},
		{map[string]any{"type": "http-in", "secret": "s", "deviceSource": "payload"}, "deviceField", "a payload field"},
		{map[string]any{"type": "http-in", "secret": "s", "maxBytes": 0.0}, "maxBytes", ""},
		{map[string]any{"type": "http-request"}, "url", ""},
		{map[string]any{"type": "http-request", "url": "ftp://x/y"}, "url", "not an http:// or https:// URL"},
		{map[string]any{"type": "http-request", "url": "http://x/{{device"}, "url", "without a closing"},
		{map[string]any{"type": "http-request", "url": "http://x/{{device}}", "interval": "5s"}, "url", "a polled URL cannot take"},
		{map[string]any{"type": "http-request", "url": "http://x/", "headers": []any{map[string]any{"name": "Bad Name", "value": "v"}}}, "headers[0].name", "is not a header name"},
		{map[string]any{"type": "http-request", "url": "http://x/", "headers": []any{map[string]any{"name": "X-A", "value": "a\nb"}}}, "headers[0].value", "line break"},
		{map[string]any{"type": "http-request", "url": "http://x/", "timeout": "0s"}, "timeout", ""},
	} {
		node := map[string]any{"id": "n", "z": "tab", "wires": []any{}}
		for k, v := range c.node {
			node[k] = v
		}
		data, _ := json.Marshal([]any{map[string]any{"id": "tab", "type": "tab", "label": "t"}, node})
		f, err := engine.ParseFlow(data)
		if err != nil {
			t.Fatal(err)
		}
		ps := engine.DefaultRegistry().Validate(f, func(string) (string, bool) { return "", false })
		found := false
		for _, p := range ps {
			found = found || (p.Field == c.field && strings.Contains(p.Message, c.what))
		}
		if !found {
			t.Errorf("%v: no problem on %q containing %q; got %v", c.node, c.field, c.what, ps)
		}
	}
}

// TestInWithCurl: curl posts every JSON value type to http-in; the device
// comes from the path and the profile from the query; wrong credentials,
// oversized and malformed bodies and wrong methods are refused.
func TestInWithCurl(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(peers.FreePort(t))
	h := enginetest.RunNode(t, enginetest.Options{}, "http-in", map[string]any{
		"listen": addr, "path": "/api/v1/{device}/telemetry", "secret": "s3cret", "maxBytes": 1000.0,
		"deviceSource": "path", "typeSource": "query", "typeParam": "type",
	})
	waitStatus(t, h.Harness, "node", "listening on "+addr, 0)
	url := "http://" + addr + "/api/v1/boiler-3/telemetry?type=boiler"
	code, body := curl(t, "-H", "Authorization: Bearer s3cret", "-d", `{"t":21.5,"n":42,"on":true,"mode":"eco","nested":{"a":[1,2]},"none":null}`, url)
	if code != 200 || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("post: %d %s", code, body)
	}
	out := h.WaitOut(0, 1)
	want := map[string]any{"t": 21.5, "n": int64(42), "on": true, "mode": "eco", "nested": map[string]any{"a": []any{int64(1), int64(2)}}, "none": nil}
	if !reflect.DeepEqual(out[0].Payload, want) {
		t.Errorf("payload %v", out[0].Payload)
	}
	if d, _ := out[0].Get("device"); d != "boiler-3" {
		t.Errorf("device %v", d)
	}
	if d, _ := out[0].Get("deviceType"); d != "boiler" {
		t.Errorf("deviceType %v", d)
	}
	info, _ := out[0].Get("http")
	if m := info.(map[string]any); m["method"] != "POST" || m["path"] != "/api/v1/boiler-3/telemetry" || m["query"].(map[string]any)["type"] != "boiler" {
		t.Errorf("msg.http %v", info)
	}
	if s, _ := json.Marshal(out[0]); strings.Contains(string(s), "s3cret") {
		t.Errorf("the message carries the token: %s", s)
	}

	for _, c := range []struct {
		args []string
		code int
		body string
	}{
		{[]string{"-d", `{"t":1}`, url}, 401, "unauthorized"},
		{[]string{"-H", "Authorization: Bearer wrong", "-d", `{"t":1}`, url}, 401, "unauthorized"},
		{[]string{"-H", "Authorization: Bearer s3cret", "-d", `{"t":` + strings.Repeat("1", 2000) + `}`, url}, 413, "body over 1000 bytes"},
		{[]string{"-H", "Authorization: Bearer s3cret", "-d", `temperature=21`, url}, 400, "body is not JSON"},
		{[]string{"-H", "Authorization: Bearer s3cret", "-d", `21`, url}, 400, "a JSON object or an array"},
		{[]string{"-H", "Authorization: Bearer s3cret", "-d", `{"t":1}`, "http://" + addr + "/api/v1/boiler-3/telemetry"}, 400, `no query parameter`},
		{[]string{"-H", "Authorization: Bearer s3cret", url}, 405, ""},
		{[]string{"-H", "Authorization: Bearer s3cret", "-d", "{}", "http://" + addr + "/other"}, 404, ""},
	} {
		code, body := curl(t, c.args...)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("curl %v: %d %s, want %d %q", c.args, code, body, c.code, c.body)
		}
	}
	errs := h.WaitEvents(engine.TopicError, 3)
	if m := errs[0].Data.(*engine.ErrorData); !strings.Contains(m.Message, "body is not JSON") || m.Msg.Payload != "temperature=21" {
		t.Errorf("error %v %v", m.Message, m.Msg)
	}
	if len(h.Out(0)) != 1 {
		t.Errorf("refused posts went on: %d messages", len(h.Out(0)))
	}
}

// TestInBasicAndPayloadDevice: basic authentication, the device named by a
// payload field (taken out), and two http-in nodes on one listener.
func TestInBasicAndPayloadDevice(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(peers.FreePort(t))
	h := enginetest.New(t, enginetest.Options{})
	flow := fmt.Sprintf(`[{"id":"tab","type":"tab","label":"t"},
	 {"id":"a","type":"http-in","z":"tab","listen":%q,"path":"/a","auth":"basic","username":"dev","secret":"pw","deviceSource":"payload","deviceField":"id","wires":[["cap"]]},
	 {"id":"b","type":"http-in","z":"tab","listen":%q,"path":"/b","auth":"none","deviceSource":"query","deviceParam":"device","wires":[["cap"]]},
	 %s]`, addr, addr, capture(h, "cap"))
	h.Deploy([]byte(flow), engine.DeployFull)
	if code, body := curl(t, "-u", "dev:pw", "-d", `{"id":"SN-7","humidity":41}`, "http://"+addr+"/a"); code != 200 {
		t.Fatalf("basic: %d %s", code, body)
	}
	if code, _ := curl(t, "-u", "dev:nope", "-d", `{"id":"SN-7"}`, "http://"+addr+"/a"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code, body := curl(t, "-d", `[{"ts":1700000000000,"values":{"v":1}}]`, "http://"+addr+"/b?device=M%201"); code != 200 {
		t.Fatalf("query device: %d %s", code, body)
	}
	out := h.WaitOutputs("cap", 2)
	if d, _ := out[0].Get("device"); d != "SN-7" || !reflect.DeepEqual(out[0].Payload, map[string]any{"humidity": int64(41)}) {
		t.Errorf("first %v %v", d, out[0].Payload)
	}
	if d, _ := out[1].Get("device"); d != "M 1" {
		t.Errorf("second device %v", d)
	}
}

func capture(h *enginetest.Harness, id string) string {
	c := h.Capture(id)
	c["z"] = "tab"
	b, _ := json.Marshal(c)
	return string(b)
}

// restartable is a plain HTTP server on a fixed port that can go away and
// come back.
type restartable struct {
	addr    string
	handler nethttp.Handler
	mu      sync.Mutex
	srv     *nethttp.Server
}

func (r *restartable) start(t *testing.T) {
	t.Helper()
	if err := r.listen(); err != nil {
		t.Fatal(err)
	}
}

func (r *restartable) listen() error {
	var ln net.Listener
	var err error
	for range 100 { // the port may linger for a moment after close
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.srv = &nethttp.Server{Handler: r.handler}
	srv := r.srv
	r.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

func (r *restartable) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// TestRequestPollsAndSurvivesOutage: http-request polls a plain HTTP
// server (with the secret header), every JSON type arrives; the server goes
// down and comes back, which the status shows and catch is told once.
func TestRequestPollsAndSurvivesOutage(t *testing.T) {
	var n atomic.Int64
	srv := &restartable{addr: "127.0.0.1:" + strconv.Itoa(peers.FreePort(t)), handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Header.Get("X-Api-Key") != "k3y" || r.Header.Get("Accept") != "application/json" || r.Header.Get("X-Site") != "north" {
			w.WriteHeader(403)
			return
		}
		fmt.Fprintf(w, `{"temperature":21.5,"count":%d,"raining":false,"sky":"clear","wind":{"speed":3.2}}`, n.Add(1))
	})}
	srv.start(t)
	t.Cleanup(srv.stop)
	h := enginetest.RunNode(t, enginetest.Options{}, "http-request", map[string]any{
		"url": "http://" + srv.addr + "/api/weather", "interval": "50ms", "backoffMax": "200ms", "format": "json",
		"headers": []any{map[string]any{"name": "X-Site", "value": "north"}}, "authHeader": "X-Api-Key", "authValue": "k3y",
		"device": "Weather Station", "deviceType": "weather",
	})
	out := h.WaitOut(0, 2)
	p := out[0].Payload.(map[string]any)
	if p["temperature"] != 21.5 || p["raining"] != false || p["sky"] != "clear" || p["wind"].(map[string]any)["speed"] != 3.2 || p["count"] != int64(1) {
		t.Errorf("payload %v", p)
	}
	if d, _ := out[0].Get("device"); d != "Weather Station" {
		t.Errorf("device %v", d)
	}
	if c, _ := out[0].Get("statusCode"); c != int64(200) {
		t.Errorf("statusCode %v", c)
	}
	waitStatus(t, h.Harness, "node", "polling", 0)

	mark := len(h.Statuses("node"))
	srv.stop()
	waitStatus(t, h.Harness, "node", "error: server unreachable: GET http://"+srv.addr+"/api/weather: dial tcp", mark)
	time.Sleep(500 * time.Millisecond) // several failed polls
	before := len(h.Out(0))
	srv.start(t)
	waitStatus(t, h.Harness, "node", "polling", mark+1)
	h.WaitOut(0, before+1)
	errs := h.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "connection refused") {
		t.Errorf("errors reported: %d %v", len(errs), errs)
	}
}

// TestRequestPerMessage: per message, the URL takes values from the
// message, the payload is the body, a failure goes to catch and an
// unreachable server makes the message wait until it is back.
func TestRequestPerMessage(t *testing.T) {
	srv := &restartable{addr: "127.0.0.1:" + strconv.Itoa(peers.FreePort(t)), handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/fail"):
			w.WriteHeader(500)
			io.WriteString(w, "relay stuck")
		case strings.HasSuffix(r.URL.Path, "/big"):
			io.WriteString(w, `"`+strings.Repeat("x", 5000)+`"`)
		default:
			fmt.Fprintf(w, `{"path":%q,"got":%q}`, r.URL.EscapedPath(), b)
		}
	})}
	srv.start(t)
	t.Cleanup(srv.stop)
	h := enginetest.RunNode(t, enginetest.Options{}, "http-request", map[string]any{
		"url": "http://" + srv.addr + "/devices/{{device}}/{{method}}", "method": "POST", "maxBytes": 1000.0, "timeout": "2s",
	})
	m := engine.NewMsg(map[string]any{"on": true})
	m.Set("device", "plug 1")
	m.Set("method", "relay")
	m.Set("rpc", map[string]any{"id": 3.0})
	h.Send(m)
	out := h.WaitOut(0, 1)
	if !reflect.DeepEqual(out[0].Payload, map[string]any{"path": "/devices/plug%201/relay", "got": `{"on":true}`}) {
		t.Errorf("payload %v", out[0].Payload)
	}
	if r, _ := out[0].Get("rpc"); r == nil {
		t.Error("msg.rpc was dropped")
	}
	for _, c := range []struct{ method, want string }{{"fail", "HTTP 500 relay stuck"}, {"big", "answer over 1000 bytes"}} {
		m := engine.NewMsg(1.0)
		m.Set("device", "d")
		m.Set("method", c.method)
		h.Send(m)
	}
	errs := h.WaitEvents(engine.TopicError, 2)
	if !strings.Contains(errs[0].Data.(*engine.ErrorData).Message, "HTTP 500 relay stuck") || !strings.Contains(errs[1].Data.(*engine.ErrorData).Message, "answer over 1000 bytes") {
		t.Errorf("errors %v / %v", errs[0].Data, errs[1].Data)
	}

	srv.stop()
	m = engine.NewMsg("later")
	m.Set("device", "d")
	m.Set("method", "m")
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		restarted <- srv.listen()
	}()
	h.Send(m)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	out = h.WaitOut(0, 2)
	if !reflect.DeepEqual(out[1].Payload, map[string]any{"path": "/devices/d/m", "got": "later"}) {
		t.Errorf("after the outage %v", out[1].Payload)
	}
}

// TestInAddressTaken: while another program holds the address, http-in
// shows the error and the engine tries again; it listens once the address
// is free.
func TestInAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	h := enginetest.RunNode(t, enginetest.Options{}, "http-in", map[string]any{"listen": addr, "auth": "none"})
	waitStatus(t, h.Harness, "node", "error: http-in "+addr+": listen tcp "+addr+": bind: address already in use", 0)
	ln.Close()
	waitStatus(t, h.Harness, "node", "listening on "+addr, 0)
	if code, body := curl(t, "-d", `{"v":1}`, "http://"+addr+"/telemetry"); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	h.WaitOut(0, 1)
}

// TestImportNodeRED: Node-RED's http request and http in become tbflow's.
func TestImportNodeRED(t *testing.T) {
	export := `[
	 {"id":"f1","type":"tab","label":"Flow 1"},
	 {"id":"r","type":"http request","z":"f1","method":"GET","ret":"obj","paytoqs":"ignore","url":"http://api.local/v1/{{{device}}}/state","tls":"","persist":false,"proxy":"","authType":"","senderr":false,"headers":[{"keyType":"other","keyValue":"X-Site","valueType":"other","valueValue":"north"},{"keyType":"Accept","keyValue":"","valueType":"application/json","valueValue":""}],"x":100,"y":40,"wires":[[]]},
	 {"id":"i","type":"http in","z":"f1","url":"/api/:device/telemetry","method":"post","upload":false,"swaggerDoc":"","x":100,"y":100,"wires":[["r"]]},
	 {"id":"g","type":"http in","z":"f1","url":"/status","method":"get","x":100,"y":160,"wires":[[]]}
	]`
	reg := engine.DefaultRegistry()
	f, rep, err := reg.ImportNodeRED([]byte(export))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Unsupported["http in"]; len(got) != 1 || got[0] != "g" {
		t.Fatalf("unsupported = %v", rep.Unsupported)
	}
	r := f.Node("r")
	if r.Type != "http-request" || r.Fields["url"] != "http://api.local/v1/{{device}}/state" || r.Fields["format"] != "auto" ||
		!reflect.DeepEqual(r.Fields["headers"], []any{map[string]any{"name": "X-Site", "value": "north"}}) {
		t.Errorf("http request = %+v", r)
	}
	i := f.Node("i")
	if i.Type != "http-in" || i.Fields["path"] != "/api/{device}/telemetry" || i.Fields["method"] != "POST" {
		t.Errorf("http in = %+v", i)
	}
	ps := reg.Validate(f, nil)
	if len(ps.Errors()) != 1 || ps.Errors()[0].Field != "secret" {
		t.Errorf("problems of the imported flow: %v (want only the missing secret)", ps)
	}
}
