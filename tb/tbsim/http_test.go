package tbsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestHTTPAPI(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	u := s.HTTPURL()
	if !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Fatalf("url %q", u)
	}
	check := func(method, path, body string, wantCode int, wantBody string) string {
		t.Helper()
		code, got := do(t, method, u+path, body)
		if code != wantCode || (wantBody != "" && got != wantBody) {
			t.Fatalf("%s %s: %d %s, want %d %s", method, path, code, got, wantCode, wantBody)
		}
		return got
	}
	check("GET", "/healthz", "", 200, `{"status":"ok"}`)
	check("GET", "/api/devices", "", 200, `[]`)
	check("POST", "/api/devices", `{"name":"d","token":"T"}`, 201, `{"name":"d","type":"default","token":"T"}`)
	check("POST", "/api/devices", `{"name":"d","token":"T2"}`, 409, "")
	check("POST", "/api/devices", `{"name":"e","token":"T"}`, 409, "")
	check("POST", "/api/devices", `{"name":"f","bogus":1}`, 400, "")
	check("POST", "/api/devices", `{"name":"gw","gateway":true,"username":"u","password":"p"}`, 201, "")
	check("POST", "/api/devices", strings.Repeat("x", 2<<20), 413, "")
	check("GET", "/api/devices/nope/telemetry", "", 404, `{"error":"device \"nope\": unknown device"}`)
	check("GET", "/api/devices/nope/claims", "", 404, "")

	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	c.subscribe(1, "v1/devices/me/attributes", "v1/devices/me/rpc/request/+")
	c.publishAck("v1/devices/me/telemetry", `[{"ts":1,"values":{"t":1}},{"ts":2,"values":{"t":2.5}}]`)
	c.publishAck("v1/devices/me/attributes", `{"fw":"1.0"}`)
	c.publishAck("v1/devices/me/claim", `{"secretKey":"k"}`)

	check("GET", "/api/devices", "", 200, `[{"name":"d","type":"default","token":"T","connected":true},{"name":"gw","type":"default","gateway":true,"username":"u","password":"p","connected":false}]`)
	check("GET", "/api/devices/d/telemetry", "", 200, `{"t":{"ts":2,"value":2.5}}`)
	check("GET", "/api/devices/d/telemetry?key=t", "", 200, `[{"ts":1,"value":1},{"ts":2,"value":2.5}]`)
	check("GET", "/api/devices/d/telemetry?key=none", "", 200, `[]`)
	check("GET", "/api/devices/d/attributes?scope=client", "", 200, `{"fw":1}`)
	check("GET", "/api/devices/d/attributes?scope=bad", "", 400, "")

	check("POST", "/api/devices/d/attributes/shared", `{"target":"21.5","on":true}`, 200, `{"on":true,"target":21.5}`)
	if pub := c.expectPublish("v1/devices/me/attributes"); string(pub.Payload) != `{"on":true,"target":21.5}` {
		t.Fatalf("push %s", pub.Payload)
	}
	check("POST", "/api/devices/d/attributes/shared", `[1]`, 400, "")
	check("POST", "/api/devices/zz/attributes/shared", `{"a":1}`, 404, "")
	check("GET", "/api/devices/d/attributes?scope=shared", "", 200, `{"on":true,"target":21.5}`)
	check("DELETE", "/api/devices/d/attributes/shared?keys=on", "", 204, "")
	if pub := c.expectPublish("v1/devices/me/attributes"); string(pub.Payload) != `{"deleted":["on"]}` {
		t.Fatalf("delete push %s", pub.Payload)
	}
	check("DELETE", "/api/devices/d/attributes/shared", "", 400, "")

	// two-way RPC answered by the device
	type httpResult struct {
		code int
		body string
	}
	res := make(chan httpResult, 1)
	go func() {
		code, body := do(t, "POST", u+"/api/devices/d/rpc", `{"method":"get","params":{"a":1},"timeoutMs":10000}`)
		res <- httpResult{code, body}
	}()
	pub := c.expectPublish("v1/devices/me/rpc/request/0")
	if string(pub.Payload) != `{"method":"get","params":{"a":1}}` {
		t.Fatalf("rpc %s", pub.Payload)
	}
	c.publishAck("v1/devices/me/rpc/response/0", `{"v":42}`)
	if r := <-res; r.code != 200 || r.body != `{"v":42}` {
		t.Fatalf("rpc result %+v", r)
	}
	check("POST", "/api/devices/d/rpc", `{"method":"fire","oneWay":true}`, 200, `{"status":"sent"}`)
	c.expectPublish("v1/devices/me/rpc/request/1")
	// timeout after delivery → 504
	go func() {
		code, body := do(t, "POST", u+"/api/devices/d/rpc", `{"method":"slow","timeoutMs":1}`)
		res <- httpResult{code, body}
	}()
	if r := <-res; r.code != 504 || !strings.Contains(r.body, `"error"`) {
		t.Fatalf("timeout result %+v", r)
	}
	check("POST", "/api/devices/zz/rpc", `{"method":"x"}`, 404, "")
	check("POST", "/api/devices/d/rpc", `{}`, 400, "")

	// OTA
	body := check("PUT", "/api/devices/d/ota/fw?title=t&version=2&algorithm=MD5", "firmware", 200, "")
	var attrs map[string]any
	if err := json.Unmarshal([]byte(body), &attrs); err != nil || attrs["fw_checksum"] != "74b5b5e9570efc5c0553bb327cd41940" || attrs["fw_size"] != 8.0 {
		t.Fatalf("ota attrs %s", body)
	}
	// drain: the pending "slow" RPC stays queued; the ota push arrives
	for {
		pk := c.expect(packets.Publish)
		if pk.TopicName == "v1/devices/me/attributes" {
			break
		}
	}
	check("PUT", "/api/devices/d/ota/xx?title=t&version=2", "x", 400, "")
	check("PUT", "/api/devices/zz/ota/fw?title=t&version=2", "x", 404, "")
	check("DELETE", "/api/devices/d/ota/fw", "", 204, "")

	check("GET", "/api/devices/d/claims", "", 200, "")
	got := check("GET", "/api/devices/d/claims", "", 200, "")
	if !strings.Contains(got, `"secretKey":"k","durationMs":86400000`) {
		t.Fatalf("claims %s", got)
	}
	check("POST", "/api/provision-profiles", `{"key":"k","secret":"s","strategy":"check-pre-provisioned"}`, 201, "")
	check("POST", "/api/provision-profiles", `{"key":"k"}`, 400, "")
	check("POST", "/api/provision-profiles", `{"key":"k","secret":"s","strategy":"nope"}`, 400, "")
}

func TestQoS2AndUnsubscribe(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	// QoS 2 is answered with a PUBACK, as ThingsBoard does
	id := c.publish("v1/devices/me/telemetry", 2, `{"q":2}`)
	if ack := c.expect(packets.Puback); ack.PacketID != id {
		t.Fatalf("ack %+v", ack)
	}
	c.subscribe(1, "v1/devices/me/attributes")
	c.nextID++
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: c.nextID,
		Filters: packets.Subscriptions{{Filter: "v1/devices/me/attributes"}, {Filter: "v2/a"}}})
	ack := c.expect(packets.Unsuback)
	if string(ack.ReasonCodes) != "\x00\x11" {
		t.Fatalf("unsuback %v", ack.ReasonCodes)
	}
	_ = s.SetShared("d", map[string]any{"x": 1})
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("pushed after unsubscribe: %+v", got)
	}
}

func TestPauseKeepsPendingRPC(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if code := c.expectClosed(); code != 0x8B {
		t.Fatalf("pause close %d", code)
	}
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { _, err := s.RPC(ctx, "d", "m", nil, true); res <- err }()
	if err := s.waitFor(ctx, func() (bool, error) { return len(s.devices["d"].pending) == 1, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	c = dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	c.subscribe(1, "v1/devices/me/rpc/request/+")
	c.expectPublish("v1/devices/me/rpc/request/0")
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

func TestPubAckControls(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	s.SetDropPubAcks(true)
	c.publish("v1/devices/me/telemetry", 1, `{"a":1}`)
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("acked while dropping: %+v", got)
	}
	if h := s.History("d", "a"); len(h) != 1 {
		t.Fatalf("not processed: %v", h)
	}
	s.SetDropPubAcks(false)
	s.SetPubAckDelay(time.Millisecond)
	if code := c.publishAck("v1/devices/me/telemetry", `{"a":2}`); code != 0 {
		t.Fatal(code)
	}
	s.SetPubAckDelay(0)
	st := s.Stats()
	if st.PublishesByTopic["v1/devices/me/telemetry"] != 2 || st.PubAcks != 1 || st.Connects != 1 {
		t.Fatalf("stats %+v", st)
	}
}
