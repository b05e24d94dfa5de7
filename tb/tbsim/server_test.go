package tbsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustAdd(t *testing.T, s *Server, d Device) {
	t.Helper()
	if err := s.AddDevice(d); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
}

// both runs f for MQTT 3.1.1 (4) and MQTT 5.
func both(t *testing.T, f func(t *testing.T, v byte)) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("mqtt%d", map[byte]int{4: 3, 5: 5}[v]), func(t *testing.T) { f(t, v) })
	}
}

func TestConnackCodes(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "tok", Token: "T1"})
	mustAdd(t, s, Device{Name: "cid", ClientID: "only-client"})
	mustAdd(t, s, Device{Name: "up", Username: "user1", Password: "pw1"})
	mustAdd(t, s, Device{Name: "cup", ClientID: "c2", Username: "user2", Password: "pw2"})
	mustAdd(t, s, Device{Name: "uonly", Username: "user3"})
	cases := []struct {
		name   string
		o      connectOpts
		v5, v3 byte
	}{
		{"token any password", connectOpts{clientID: "x", username: "T1", password: "whatever"}, 0, 0},
		{"token no client id", connectOpts{username: "T1", clean: true}, 0, 0},
		{"client id only", connectOpts{clientID: "only-client"}, 0, 0},
		{"client id only ignores password", connectOpts{clientID: "only-client", username: "", password: "", noUsername: true}, 0, 0},
		{"username password", connectOpts{clientID: "any", username: "user1", password: "pw1"}, 0, 0},
		{"client username password", connectOpts{clientID: "c2", username: "user2", password: "pw2"}, 0, 0},
		{"username only credential", connectOpts{clientID: "z", username: "user3"}, 0, 0},
		{"wrong token", connectOpts{clientID: "x", username: "nope"}, codeBadUserPassword, 5},
		{"wrong password", connectOpts{clientID: "x", username: "user1", password: "bad"}, codeBadUserPassword, 5},
		{"missing password", connectOpts{clientID: "x", username: "user1"}, codeBadUserPassword, 5},
		{"client wrong password", connectOpts{clientID: "c2", username: "user2", password: "bad"}, codeBadUserPassword, 5},
		{"client mismatch", connectOpts{clientID: "other", username: "user2", password: "pw2"}, codeBadUserPassword, 5},
		{"unknown client id", connectOpts{clientID: "stranger"}, codeClientIDInvalid, 2},
		{"nothing", connectOpts{clean: true}, codeNotAuthorized, 5},
	}
	for _, tc := range cases {
		both(t, func(t *testing.T, v byte) {
			t.Run(tc.name, func(t *testing.T) {
				c := dialRaw(t, s.MQTTAddr(), v)
				ack := c.connect(tc.o)
				want := tc.v5
				if v < 5 {
					want = tc.v3
				}
				if ack.ReasonCode != want {
					t.Fatalf("connack %#x, want %#x", ack.ReasonCode, want)
				}
				if len(ack.Properties.User) > 0 || ack.Properties.ReceiveMaximum != 0 || ack.Properties.AssignedClientID != "" {
					t.Fatalf("connack has properties: %+v", ack.Properties)
				}
				if want == 0 {
					c.disconnect()
					return
				}
				code := c.expectClosed()
				if v == 5 && code != int(want) {
					t.Fatalf("disconnect code %d, want %d", code, want)
				}
				if v < 5 && code != -1 {
					t.Fatalf("mqtt 3 got a disconnect packet")
				}
			})
		})
	}
	st := s.Stats()
	if st.ConnectFailures == 0 || st.Connects == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSessionPresentIsNotClean(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		ack := c.connect(connectOpts{clientID: "p", username: "T", clean: false})
		if ack.ReasonCode != 0 || !ack.SessionPresent {
			t.Fatalf("connack %+v, want accepted with session present", ack)
		}
		c.disconnect()
	})
}

func TestSubscribeGrants(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		reject := byte(0x80)
		if v == 5 {
			reject = 0x8F
		}
		codes := c.subscribe(2, "v1/devices/me/attributes", "v1/devices/me/rpc/request/#", "v2/fw/response/+",
			"v1/devices/me/rpc/request/+", "v2/fw/response/+/chunk/+", "#", "v2/a/p")
		want := []byte{1, reject, reject, 1, 1, reject, reject}
		if string(codes) != string(want) {
			t.Fatalf("suback %v, want %v", codes, want)
		}
		codes = c.subscribe(0, "v1/devices/me/attributes/response/+")
		if string(codes) != "\x00" {
			t.Fatalf("suback %v", codes)
		}
		// still connected
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("unexpected %v", got)
		}
		c.disconnect()
	})
}

func TestTelemetryAndErrorMatrix(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		before := len(s.History("d", "temp"))
		if code := c.publishAck("v1/devices/me/telemetry", `{"temp":21.5,"n":null}`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		if code := c.publishAck("v1/devices/me/telemetry", fmt.Sprintf(`[{"temp":1},{"ts":%d,"values":{"temp":"42"}}]`, 1000+int(v))); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		if code := c.publishAck("v2/t", `{"temp":2}`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		if code := c.publishAck("v1/devices/me/telemetry", `{}`); code != 0 {
			t.Fatalf("{} puback %#x", code)
		}
		// Values of one key stamped by the server in the same millisecond
		// overwrite each other (also those of the previous run), so 1 to 4
		// are new; the last one is latest.
		h := s.History("d", "temp")
		if n := len(h) - before; n < 1 || n > 4 {
			t.Fatalf("history %v", h)
		}
		if h[0].Ts != 1004 || h[0].Value != int64(42) {
			t.Fatalf("oldest %+v", h[0])
		}
		if i := slices.IndexFunc(h, func(x TsValue) bool { return x.Ts == 1000+int64(v) }); i < 0 || h[i].Value != int64(42) {
			t.Fatalf("no value at %d: %v", 1000+int(v), h)
		}
		if l := s.Latest("d")["temp"]; l.Value != int64(2) {
			t.Fatalf("latest %+v", l)
		}
		if _, ok := s.Latest("d")["n"]; ok {
			t.Fatalf("null stored")
		}
		// [] is never acknowledged
		c.publish("v1/devices/me/telemetry", 1, `[]`)
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("[] answered: %+v", got)
		}
		// unknown topic: PUBACK (0x90 on v5), stays connected
		code := c.publishAck("v1/devices/me/unknown", `{}`)
		if want := map[byte]byte{4: 0, 5: 0x90}[v]; code != want {
			t.Fatalf("unknown topic puback %#x, want %#x", code, want)
		}
		// protobuf topics are not emulated: unknown topic
		if code := c.publishAck("v2/t/p", `x`); code != map[byte]byte{4: 0, 5: 0x90}[v] {
			t.Fatalf("v2/t/p puback %#x", code)
		}
		// gateway topic from a non-gateway device: no PUBACK
		c.publish("v1/gateway/telemetry", 1, `{}`)
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("gateway topic answered: %+v", got)
		}
		// malformed payload: v5 PUBACK 0x99, v3 close
		if v == 5 {
			if code := c.publishAck("v1/devices/me/telemetry", `{bad`); code != 0x99 {
				t.Fatalf("malformed puback %#x", code)
			}
			for _, p := range []string{`42`, `[1]`, `{"ts":1,"values":5}`, ``, `null`} {
				if code := c.publishAck("v1/devices/me/telemetry", p); code != 0x99 {
					t.Fatalf("payload %q puback %#x", p, code)
				}
			}
			// malformed QoS 0 on v5: DISCONNECT 0x99
			c.publish("v1/devices/me/telemetry", 0, `{bad`)
			if code := c.expectClosed(); code != 0x99 {
				t.Fatalf("qos0 malformed disconnect %d", code)
			}
		} else {
			c.publish("v1/devices/me/telemetry", 1, `{bad`)
			if code := c.expectClosed(); code != -1 {
				t.Fatalf("v3 got disconnect %d", code)
			}
		}
	})
}

func TestRuntimeErrorsClose(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	cases := []struct{ topic, payload string }{
		{"v1/devices/me/rpc/request/1", `{"params":{}}`},  // missing method
		{"v1/devices/me/rpc/request/x", `{"method":"m"}`}, // non-numeric client RPC id
		{"v2/fw/request/1/chunk/0", `abc`},                // non-numeric chunk size
		{"v1/devices/me/telemetry", `{"ts":true,"values":{}}`},
	}
	for _, tc := range cases {
		both(t, func(t *testing.T, v byte) {
			c := dialRaw(t, s.MQTTAddr(), v)
			c.connectOK("T")
			c.publish(tc.topic, 1, tc.payload)
			code := c.expectClosed()
			want := map[byte]int{4: -1, 5: 0x8B}[v]
			if code != want {
				t.Fatalf("%s %s: close code %d, want %d", tc.topic, tc.payload, code, want)
			}
		})
	}
}

func TestAttributeRequests(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	if err := s.SetShared("d", map[string]any{"s1": 1.5, "s2": "x", "s3": int64(7)}); err != nil {
		t.Fatal(err)
	}
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		if code := c.publishAck("v1/devices/me/attributes", `{"c1":true,"c2":"5","c3":{"a":[1,2]}}`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		cases := []struct{ topic, payload, respTopic, want string }{
			{"v1/devices/me/attributes/request/1", `{}`, "v1/devices/me/attributes/response/1",
				`{"client":{"c1":true,"c2":5,"c3":{"a":[1,2]}},"shared":{"s1":1.5,"s2":"x","s3":7}}`},
			{"v1/devices/me/attributes/request/2", `{"clientKeys":"c1,zz"}`, "v1/devices/me/attributes/response/2", `{"client":{"c1":true}}`},
			{"v1/devices/me/attributes/request/3", `{"sharedKeys":"s1, s2"}`, "v1/devices/me/attributes/response/3", `{"shared":{"s1":1.5}}`},
			{"v1/devices/me/attributes/request/4", `{"sharedKeys":["s2"]}`, "v1/devices/me/attributes/response/4", `{"shared":{"s2":"x"}}`},
			{"v1/devices/me/attributes/request/5", `{"clientKeys":"c2","sharedKeys":"s3"}`, "v1/devices/me/attributes/response/5", `{"client":{"c2":5},"shared":{"s3":7}}`},
			{"v1/devices/me/attributes/request/6", `{"sharedKeys":"nope"}`, "v1/devices/me/attributes/response/6", `{}`},
			{"v2/a/req/7", `{"sharedKeys":"s3"}`, "v2/a/res/7", `{"shared":{"s3":7}}`},
			{"v2/a/req/j/8", `{"sharedKeys":"s3"}`, "v2/a/res/j/8", `{"shared":{"s3":7}}`},
		}
		for _, tc := range cases {
			id := c.publish(tc.topic, 1, tc.payload)
			pub := c.expectPublish(tc.respTopic)
			if string(pub.Payload) != tc.want {
				t.Fatalf("%s: got %s, want %s", tc.topic, pub.Payload, tc.want)
			}
			if pub.FixedHeader.Qos != 1 || pub.FixedHeader.Retain || pub.FixedHeader.Dup {
				t.Fatalf("response header %+v", pub.FixedHeader)
			}
			ack := c.expect(packets.Puback)
			if ack.PacketID != id {
				t.Fatalf("ack id")
			}
		}
		// a granted QoS 0 response subscription lowers the response QoS
		c.subscribe(0, "v1/devices/me/attributes/response/+")
		c.publish("v1/devices/me/attributes/request/9", 1, `{"sharedKeys":"s3"}`)
		if pub := c.expectPublish("v1/devices/me/attributes/response/9"); pub.FixedHeader.Qos != 0 {
			t.Fatalf("qos %d", pub.FixedHeader.Qos)
		}
		c.expect(packets.Puback)
		// a longer array and a non-object are format errors
		if v == 5 {
			for _, p := range []string{`{"sharedKeys":["a","b"]}`, `[]`, `{"clientKeys":{}}`} {
				if code := c.publishAck("v1/devices/me/attributes/request/10", p); code != 0x99 {
					t.Fatalf("%s: puback %#x", p, code)
				}
			}
			if code := c.publishAck("v1/devices/me/attributes/request/abc", `{}`); code != 0x99 {
				t.Fatalf("non-numeric id puback %#x", code)
			}
		}
		c.disconnect()
	})
	if got := s.ClientAttributes("d"); got["c2"] != int64(5) || string(got["c3"].(json.RawMessage)) != `{"a":[1,2]}` {
		t.Fatalf("client attributes %v", got)
	}
}

func TestSharedAttributePushes(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		// not subscribed: nothing pushed
		if err := s.SetShared("d", map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("pushed without subscription: %+v", got)
		}
		c.subscribe(1, "v1/devices/me/attributes")
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("replayed on subscribe: %+v", got)
		}
		if err := s.SetShared("d", map[string]any{"target": 21.0, "mode": "eco"}); err != nil {
			t.Fatal(err)
		}
		pub := c.expectPublish("v1/devices/me/attributes")
		if string(pub.Payload) != `{"mode":"eco","target":21.0}` {
			t.Fatalf("push %s", pub.Payload)
		}
		if err := s.DeleteShared("d", "mode", "a"); err != nil {
			t.Fatal(err)
		}
		pub = c.expectPublish("v1/devices/me/attributes")
		if string(pub.Payload) != `{"deleted":["mode","a"]}` {
			t.Fatalf("delete push %s", pub.Payload)
		}
		// v2 subscription moves updates to v2/a
		c.subscribe(1, "v2/a")
		_ = s.SetShared("d", map[string]any{"k": true})
		c.expectPublish("v2/a")
		c.disconnect()
	})
	if err := s.SetShared("nope", map[string]any{"a": 1}); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("err %v", err)
	}
}

func TestServerRPC(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	ctx := ctxT(t)

	// queued while offline, delivered on subscription
	type result struct {
		reply json.RawMessage
		err   error
	}
	first := make(chan result, 1)
	go func() {
		r, err := s.RPC(ctx, "d", "setValve", map[string]any{"open": true}, false)
		first <- result{r, err}
	}()
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	// wait until the call is pending (the id is taken synchronously)
	if err := s.waitFor(ctx, func() (bool, error) { return len(s.devices["d"].pending) == 1, nil }); err != nil {
		t.Fatal(err)
	}
	codes := c.subscribe(1, "v1/devices/me/rpc/request/+")
	if codes[0] != 1 {
		t.Fatalf("suback %v", codes)
	}
	pub := c.expectPublish("v1/devices/me/rpc/request/0")
	if string(pub.Payload) != `{"method":"setValve","params":{"open":true}}` {
		t.Fatalf("rpc payload %s", pub.Payload)
	}
	// re-subscription re-sends the pending request (BURST)
	c.subscribe(1, "v1/devices/me/rpc/request/+")
	c.expectPublish("v1/devices/me/rpc/request/0")
	if code := c.publishAck("v1/devices/me/rpc/response/0", `{"ok":1}`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	r := <-first
	if r.err != nil || string(r.reply) != `{"ok":1}` {
		t.Fatalf("rpc result %s %v", r.reply, r.err)
	}
	// reply to an unknown id is acknowledged
	if code := c.publishAck("v1/devices/me/rpc/response/77", `x`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	// one-way: returns once sent, id 1
	if _, err := s.RPC(ctx, "d", "reboot", nil, true); err != nil {
		t.Fatal(err)
	}
	pub = c.expectPublish("v1/devices/me/rpc/request/1")
	if string(pub.Payload) != `{"method":"reboot","params":null}` {
		t.Fatalf("payload %s", pub.Payload)
	}
	// not re-sent on re-subscription once sent
	c.subscribe(1, "v1/devices/me/rpc/request/+")
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("one-way re-sent: %+v", got)
	}
	// two-way timeout after delivery
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.RPC(tctx, "d", "slow", 1, false); done <- err }()
	c.expectPublish("v1/devices/me/rpc/request/2")
	cancel()
	if err := <-done; !errors.Is(err, ErrRPCTimeout) {
		t.Fatalf("err %v", err)
	}
	c.disconnect()
	if err := s.waitFor(ctx, func() (bool, error) { return s.devices["d"].direct == nil, nil }); err != nil {
		t.Fatal(err)
	}
	// never delivered: no active connection
	nctx, ncancel := context.WithCancel(ctx)
	ncancel()
	if _, err := s.RPC(nctx, "d", "x", nil, false); !errors.Is(err, ErrNoActiveConnection) {
		t.Fatalf("err %v", err)
	}
	if _, err := s.RPC(ctx, "zz", "x", nil, false); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("err %v", err)
	}
}

func TestPahoV3(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	got := make(chan paho.Message, 10)
	o := paho.NewClientOptions().AddBroker("tcp://" + s.MQTTAddr()).SetUsername("T").SetClientID("paho").
		SetAutoReconnect(false).SetKeepAlive(30 * time.Second).SetWriteTimeout(safety)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m })
	cl := paho.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(safety) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(0)
	if tok := cl.Subscribe("v1/devices/me/attributes", 1, nil); !tok.WaitTimeout(safety) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := cl.Publish("v1/devices/me/telemetry", 1, false, `{"x":1}`); !tok.WaitTimeout(safety) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if err := s.WaitTelemetry(ctxT(t), "d", "x", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetShared("d", map[string]any{"y": 2}); err != nil {
		t.Fatal(err)
	}
	m := <-got
	if m.Topic() != "v1/devices/me/attributes" || string(m.Payload()) != `{"y":2}` {
		t.Fatalf("got %s %s", m.Topic(), m.Payload())
	}
	// a second device subscribed to the same topic name gets nothing of d's
	// traffic: nothing is routed between clients
	if !s.Connected("d") {
		t.Fatal("not connected")
	}
}

func TestPauseResume(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	addr := s.MQTTAddr()
	c := dialRaw(t, addr, 4)
	c.connectOK("T")
	if code := c.publishAck("v1/devices/me/telemetry", `{"ts":1,"values":{"a":1}}`); code != 0 {
		t.Fatal(code)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	if err := s.waitFor(ctxT(t), func() (bool, error) { return s.devices["d"].direct == nil, nil }); err != nil {
		t.Fatal(err)
	}
	// While paused the port stays bound: a new connection is accepted and
	// closed at once, before any CONNACK.
	p := dialRaw(t, addr, 4)
	if code := p.expectClosed(); code != -1 {
		t.Fatalf("paused server sent DISCONNECT %#x", code)
	}
	if s.Connected("d") {
		t.Fatal("connected while paused")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if s.MQTTAddr() != addr {
		t.Fatalf("address changed %s → %s", addr, s.MQTTAddr())
	}
	c2 := dialRaw(t, addr, 4)
	c2.connectOK("T")
	if code := c2.publishAck("v1/devices/me/telemetry", `{"a":2}`); code != 0 {
		t.Fatal(code)
	}
	if h := s.History("d", "a"); len(h) != 2 {
		t.Fatalf("history %v", h)
	}
	if !strings.HasPrefix(s.MQTTAddr(), "127.0.0.1:") {
		t.Fatal(s.MQTTAddr())
	}
}
