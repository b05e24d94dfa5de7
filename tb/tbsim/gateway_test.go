package tbsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// newGatewayServer starts a server with gateway "gw" (token GW) and a plain
// device "dev" (token DEV).
func newGatewayServer(t *testing.T) *Server {
	t.Helper()
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "gw", Token: "GW", Gateway: true})
	mustAdd(t, s, Device{Name: "dev", Token: "DEV"})
	return s
}

func dialGateway(t *testing.T, s *Server, v byte) *rawClient {
	t.Helper()
	c := dialRaw(t, s.MQTTAddr(), v)
	c.connectOK("GW")
	return c
}

// publishCollect publishes at QoS 1 and returns the PUBACK code and the
// PUBLISH packets that arrived before it (QoS 1 ones acknowledged).
func (c *rawClient) publishCollect(topic, payload string) (byte, []packets.Packet) {
	c.t.Helper()
	id := c.publish(topic, 1, payload)
	var got []packets.Packet
	for {
		pk := c.mustRead()
		switch pk.FixedHeader.Type {
		case packets.Puback:
			if pk.PacketID != id {
				c.t.Fatalf("puback id %d, want %d", pk.PacketID, id)
			}
			return pk.ReasonCode, got
		case packets.Publish:
			if pk.FixedHeader.Qos == 1 {
				c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
			}
			got = append(got, pk)
		default:
			c.t.Fatalf("unexpected packet %d before puback", pk.FixedHeader.Type)
		}
	}
}

// publishOK publishes at QoS 1 and requires a success PUBACK with nothing
// before it.
func (c *rawClient) publishOK(topic, payload string) {
	c.t.Helper()
	code, pubs := c.publishCollect(topic, payload)
	if code != 0 || len(pubs) != 0 {
		c.t.Fatalf("publish %s %s: puback %#x, publishes %v", topic, payload, code, pubs)
	}
}

// jsonEqual compares JSON documents ignoring key order and spacing.
func jsonEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: invalid json %s: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad want %s: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

func TestGatewayConnectTelemetryAttributes(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		c := dialGateway(t, s, v)
		c.publishOK(topicGwConnect, `{"device":"Dev A","type":"thermostat"}`)
		c.publishOK(topicGwConnect, `{"device":"Dev A","type":"other"}`) // no-op
		c.publishOK(topicGwConnect, `{"device":"Dev B"}`)
		if got := s.SubDevices("gw"); fmt.Sprint(got) != "[Dev A Dev B]" {
			t.Fatalf("SubDevices = %v", got)
		}
		if !s.Connected("Dev A") || !s.Connected("Dev B") {
			t.Fatal("sub-devices not connected")
		}
		if err := s.WaitConnected(ctxT(t), "Dev A"); err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, d := range s.Devices() {
			types[d.Name] = d.Type + "/" + d.LastGateway
		}
		if types["Dev A"] != "thermostat/gw" || types["Dev B"] != "default/gw" {
			t.Fatalf("types %v", types)
		}
		// Telemetry: both element forms, metadata stripped, non-array
		// entries skipped, implicit connect of Dev C.
		c.publishOK(topicGwTelemetry, `{
			"Dev A":[{"ts":1483228800000,"values":{"temperature":42}},{"humidity":"80","metadata":{"connector":"c","receivedTs":1,"publishedTs":2}}],
			"Dev B":{"ignored":1},
			"Dev C":[{"x":1.5}]}`)
		if h := s.History("Dev A", "temperature"); len(h) != 1 || h[0].Ts != 1483228800000 || h[0].Value != int64(42) {
			t.Fatalf("temperature %+v", h)
		}
		l := s.Latest("Dev A")
		if l["humidity"].Value != int64(80) {
			t.Fatalf("latest %+v", l)
		}
		if _, ok := l["metadata"]; ok {
			t.Fatal("metadata stored as telemetry")
		}
		if len(s.Latest("Dev B")) != 0 {
			t.Fatalf("Dev B got telemetry %+v", s.Latest("Dev B"))
		}
		if s.Latest("Dev C")["x"].Value != 1.5 || !s.Connected("Dev C") {
			t.Fatalf("Dev C %+v connected=%v", s.Latest("Dev C"), s.Connected("Dev C"))
		}
		// Client attributes; non-object entries skipped; implicit connect.
		c.publishOK(topicGwAttributes, `{"Dev A":{"fw":"v1.0","n":7},"Dev D":{"serial":"SN"},"Dev E":5}`)
		if a := s.ClientAttributes("Dev A"); a["fw"] != "v1.0" || a["n"] != int64(7) {
			t.Fatalf("client attributes %+v", a)
		}
		if a := s.ClientAttributes("Dev D"); a["serial"] != "SN" {
			t.Fatalf("Dev D attributes %+v", a)
		}
		if s.ClientAttributes("Dev E") != nil {
			t.Fatal("Dev E created from a skipped entry")
		}
		if got := s.SubDevices("gw"); fmt.Sprint(got) != "[Dev A Dev B Dev C Dev D]" {
			t.Fatalf("SubDevices = %v", got)
		}
		// Claims.
		c.publishOK(topicGwClaim, `{"Dev A":{"secretKey":"s1","durationMs":60000},"Dev F":{}}`)
		if cl := s.Claims("Dev A"); len(cl) != 1 || cl[0].SecretKey != "s1" || cl[0].DurationMs != 60000 {
			t.Fatalf("claims %+v", cl)
		}
		if cl := s.Claims("Dev F"); len(cl) != 1 || cl[0].DurationMs != defaultClaimDurationMs {
			t.Fatalf("Dev F claims %+v", cl)
		}
		// Disconnect: success even for unknown devices.
		c.publishOK(topicGwDisconnect, `{"device":"Dev B"}`)
		c.publishOK(topicGwDisconnect, `{"device":"nobody"}`)
		if s.Connected("Dev B") {
			t.Fatal("Dev B still connected")
		}
		// The gateway's own device API keeps working.
		c.publishOK(topicTelemetry, `{"own":1}`)
		if s.Latest("gw")["own"].Value != int64(1) {
			t.Fatal("gateway telemetry missing")
		}
	})
}

func TestGatewayAttributeRequests(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		c := dialGateway(t, s, v)
		c.publishOK(topicGwAttributes, `{"Dev A":{"c1":1,"c2":"two"}}`)
		if err := s.SetShared("Dev A", map[string]any{"s1": true, "s2": 2.5}); err != nil {
			t.Fatal(err)
		}
		// The implicitly connected sub-device gets the update.
		jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev A","data":{"s1":true,"s2":2.5}}`)
		cases := []struct{ req, resp string }{
			{`{"id":1,"device":"Dev A","client":true,"key":"c1"}`, `{"id":1,"device":"Dev A","value":1}`},
			{`{"id":2,"device":"Dev A","client":true,"keys":["c2"]}`, `{"id":2,"device":"Dev A","value":"two"}`},
			{`{"id":3,"device":"Dev A","client":true,"keys":["c1","c2","nope"]}`, `{"id":3,"device":"Dev A","values":{"c1":1,"c2":"two"}}`},
			{`{"id":4,"device":"Dev A","client":false,"keys":["s1","nope"]}`, `{"id":4,"device":"Dev A","values":{"s1":true}}`},
			{`{"id":5,"device":"Dev A","client":false,"key":"nope"}`, `{"id":5,"device":"Dev A"}`},
			{`{"id":6,"device":"Dev A","client":false,"keys":["x","y"]}`, `{"id":6,"device":"Dev A"}`},
			{`{"id":7,"device":"Dev A","client":true,"key":"c1","keys":["c1","c2"]}`, `{"id":7,"device":"Dev A","value":1}`},
			{`{"id":8,"device":"Dev A","client":false,"key":"c1"}`, `{"id":8,"device":"Dev A"}`},
			{`{"id":9,"device":"Dev A","client":false,"keys":["s2","s2"]}`, `{"id":9,"device":"Dev A","value":2.5}`},
			// An empty "keys": every client and shared attribute.
			{`{"id":11,"device":"Dev A","client":true,"keys":[]}`, `{"id":11,"device":"Dev A","values":{"c1":1,"c2":"two","s1":true,"s2":2.5}}`},
			// Implicit connect of an unknown device: created, nothing found.
			{`{"id":10,"device":"Dev New","client":true,"key":"c1"}`, `{"id":10,"device":"Dev New"}`},
		}
		for _, tc := range cases {
			code, pubs := c.publishCollect(topicGwAttrReq, tc.req)
			if code != 0 || len(pubs) != 1 || pubs[0].TopicName != topicGwAttrResp {
				t.Fatalf("%s: puback %#x, publishes %v", tc.req, code, pubs)
			}
			jsonEqual(t, tc.req, pubs[0].Payload, tc.resp)
		}
		if !s.Connected("Dev New") {
			t.Fatal("attribute request did not connect Dev New")
		}
	})
}

func TestGatewayUpdatesAndRPC(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		c := dialGateway(t, s, v)
		// No gateway subscriptions at all: updates and RPCs still arrive.
		c.publishOK(topicGwConnect, `{"device":"Dev A"}`)
		c.publishOK(topicGwTelemetry, `{"Dev B":[{"t":1}]}`) // implicit connect
		if err := s.SetShared("Dev A", map[string]any{"target": 21}); err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev A","data":{"target":21}}`)
		if err := s.DeleteShared("Dev B", "a", "b"); err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, "delete", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev B","data":{"deleted":["a","b"]}}`)

		// Per-device RPC ids from 0, replies completed by {device,id,data}.
		type result struct {
			reply json.RawMessage
			err   error
		}
		call := func(dev, method string) chan result {
			ch := make(chan result, 1)
			go func() {
				r, err := s.RPC(ctxT(t), dev, method, map[string]any{"p": dev}, false)
				ch <- result{r, err}
			}()
			return ch
		}
		a0 := call("Dev A", "m0")
		jsonEqual(t, "rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev A","data":{"id":0,"method":"m0","params":{"p":"Dev A"}}}`)
		a1 := call("Dev A", "m1")
		jsonEqual(t, "rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev A","data":{"id":1,"method":"m1","params":{"p":"Dev A"}}}`)
		b0 := call("Dev B", "m0")
		jsonEqual(t, "rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev B","data":{"id":0,"method":"m0","params":{"p":"Dev B"}}}`)
		c.publishOK(topicGwRPC, `{"device":"Dev A","id":1,"data":{"ok":1}}`)
		c.publishOK(topicGwRPC, `{"device":"Dev B","id":0,"data":"done"}`)
		c.publishOK(topicGwRPC, `{"device":"Dev A","id":0,"data":[1, 2]}`)
		c.publishOK(topicGwRPC, `{"device":"Dev A","id":99,"data":null}`) // unknown id: acked
		for _, tc := range []struct {
			ch   chan result
			want string
		}{{a0, `[1,2]`}, {a1, `{"ok":1}`}, {b0, `"done"`}} {
			r := <-tc.ch
			if r.err != nil || string(r.reply) != tc.want {
				t.Fatalf("rpc reply %s, %v; want %s", r.reply, r.err, tc.want)
			}
		}

		// A one-way RPC through the HTTP-less API.
		if _, err := s.RPC(ctxT(t), "Dev B", "oneway", nil, true); err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, "one-way", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev B","data":{"id":1,"method":"oneway","params":null}}`)

		// Disconnect stops delivery: the update for Dev A is not sent, the
		// RPC is queued and delivered after an explicit connect.
		c.publishOK(topicGwDisconnect, `{"device":"Dev A"}`)
		if err := s.SetShared("Dev A", map[string]any{"lost": 1}); err != nil {
			t.Fatal(err)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("delivered after disconnect: %v", got)
		}
		a2 := call("Dev A", "queued")
		if err := s.waitFor(ctxT(t), func() (bool, error) { return len(s.devices["Dev A"].pending) == 1, nil }); err != nil {
			t.Fatal(err)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("rpc delivered to a disconnected sub-device: %v", got)
		}
		code, pubs := c.publishCollect(topicGwConnect, `{"device":"Dev A"}`)
		if code != 0 || len(pubs) != 0 {
			t.Fatalf("connect: %#x %v", code, pubs)
		}
		jsonEqual(t, "queued rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev A","data":{"id":2,"method":"queued","params":{"p":"Dev A"}}}`)
		c.publishOK(topicGwRPC, `{"device":"Dev A","id":2,"data":{"late":true}}`)
		if r := <-a2; r.err != nil || string(r.reply) != `{"late":true}` {
			t.Fatalf("queued rpc %s %v", r.reply, r.err)
		}
	})
}

func TestGatewayRPCQueuedBeforeFirstConnect(t *testing.T) {
	s := newGatewayServer(t)
	mustAdd(t, s, Device{Name: "Dev Q"})
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		r, err := s.RPC(ctx, "Dev Q", "hello", nil, false)
		if err == nil && string(r) != `"hi"` {
			err = fmt.Errorf("reply %s", r)
		}
		done <- err
	}()
	if err := s.waitFor(ctxT(t), func() (bool, error) { return len(s.devices["Dev Q"].pending) == 1, nil }); err != nil {
		t.Fatal(err)
	}
	c := dialGateway(t, s, 5)
	// Implicit connect through telemetry: PUBACK, then the pending RPC.
	c.publishOK(topicGwTelemetry, `{"Dev Q":[{"v":1}]}`)
	jsonEqual(t, "rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev Q","data":{"id":0,"method":"hello","params":null}}`)
	c.publishOK(topicGwRPC, `{"device":"Dev Q","id":0,"data":"hi"}`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGatewayReconnectNeedsDeviceConnect(t *testing.T) {
	s := newGatewayServer(t)
	c := dialGateway(t, s, 5)
	c.publishOK(topicGwConnect, `{"device":"Dev A"}`)
	c.disconnect()
	if err := s.waitFor(ctxT(t), func() (bool, error) { return !connectedLocked(s.devices["gw"]), nil }); err != nil {
		t.Fatal(err)
	}
	if s.Connected("Dev A") || s.SubDevices("gw") != nil {
		t.Fatal("sub-device survived the gateway connection")
	}
	c = dialGateway(t, s, 5)
	if err := s.SetShared("Dev A", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("update before the device was connected again: %v", got)
	}
	c.publishOK(topicGwAttributes, `{"Dev A":{"y":2}}`)
	if err := s.SetShared("Dev A", map[string]any{"x": 2}); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev A","data":{"x":2}}`)
}

func TestGatewayErrors(t *testing.T) {
	s := newGatewayServer(t)
	wrongShape := []struct{ topic, payload string }{
		{topicGwConnect, `[]`},
		{topicGwConnect, `{"type":"t"}`},
		{topicGwConnect, `{"device":""}`},
		{topicGwConnect, `{"device":{}}`},
		{topicGwDisconnect, `"Dev A"`},
		{topicGwDisconnect, `{}`},
		{topicGwTelemetry, `[{"Dev A":[{"a":1}]}]`},
		{topicGwTelemetry, `{"Dev A":{"a":1}}`},
		{topicGwTelemetry, `{}`},
		{topicGwAttributes, `{"Dev A":[{"a":1}]}`},
		{topicGwAttributes, `42`},
		{topicGwClaim, `{"Dev A":"secret"}`},
		{topicGwAttrReq, `{"device":"Dev A","client":true,"key":"k"}`},
		{topicGwAttrReq, `{"id":1,"client":true,"key":"k"}`},
		{topicGwAttrReq, `{"id":1,"device":"Dev A","key":"k"}`},
		{topicGwAttrReq, `{"id":1,"device":"Dev A","client":true}`},
		{topicGwAttrReq, `{"id":"x","device":"Dev A","client":true,"key":"k"}`},
		{topicGwAttrReq, `{"id":1,"device":"Dev A","client":["k1"],"shared":["k2"]}`}, // the documented form
		{topicGwAttrReq, `{"id":1,"device":"Dev A","client":true,"keys":"k"}`},
		{topicGwRPC, `{"id":1,"data":{}}`},
		{topicGwRPC, `{"device":"Dev A","data":{}}`},
		{topicGwRPC, `{"device":"Dev A","id":1}`},
	}
	for _, tc := range wrongShape {
		both(t, func(t *testing.T, v byte) {
			c := dialGateway(t, s, v)
			code, pubs := c.publishCollect(tc.topic, tc.payload)
			want := byte(0)
			if v == 5 {
				want = codeImplementationError
			}
			if code != want || len(pubs) != 0 {
				t.Fatalf("%s %s: puback %#x %v, want %#x", tc.topic, tc.payload, code, pubs, want)
			}
			if got := c.expectClosed(); got != -1 {
				t.Fatalf("%s %s: DISCONNECT %#x before the close", tc.topic, tc.payload, got)
			}
		})
	}
	// Invalid JSON and per-device conversion errors: MQTT 5 PUBACK 0x99 and
	// the connection stays; MQTT 3.1.1 closed without PUBACK.
	conversion := []struct{ topic, payload string }{
		{topicGwConnect, `{"device":`},
		{topicGwTelemetry, `not json`},
		{topicGwTelemetry, `{"Dev A":[1]}`},
		{topicGwTelemetry, `{"Dev A":[{"ts":1,"values":5}]}`},
		{topicGwTelemetry, `{"Dev A":[{"ok":1}],"Dev B":["x"]}`},
		{topicGwAttributes, `{"Dev A":{"a":1e999999999}}`},
		{topicGwClaim, `{"Dev A":{"durationMs":"x"}}`},
		{topicGwAttrReq, ``},
	}
	for _, tc := range conversion {
		both(t, func(t *testing.T, v byte) {
			c := dialGateway(t, s, v)
			id := c.publish(tc.topic, 1, tc.payload)
			if v == 4 {
				c.expectClosed()
				return
			}
			ack := c.expect(packets.Puback)
			if ack.PacketID != id || ack.ReasonCode != codePayloadFormatInvalid {
				t.Fatalf("%s %s: puback %#x", tc.topic, tc.payload, ack.ReasonCode)
			}
			c.publishOK(topicGwConnect, `{"device":"still-up"}`)
		})
	}
	if s.Latest("Dev A")["ok"].Value != int64(1) {
		t.Fatal("valid device of a mixed telemetry message not stored")
	}
	// Unknown gateway topic: 0x90 (v5) / plain PUBACK, stays connected.
	both(t, func(t *testing.T, v byte) {
		c := dialGateway(t, s, v)
		want := byte(0)
		if v == 5 {
			want = codeTopicNameInvalid
		}
		if code := c.publishAck("v1/gateway/metrics", `{}`); code != want {
			t.Fatalf("unknown gateway topic: %#x", code)
		}
		c.publishOK(topicGwConnect, `{"device":"still-up"}`)
	})
	// A device that is not a gateway gets no PUBACK at all.
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("DEV")
		c.publish(topicGwConnect, 1, `{"device":"x"}`)
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("non-gateway got %v", got)
		}
	})
	// Gateway filters are accepted.
	c := dialGateway(t, s, 5)
	if codes := c.subscribe(1, topicGwAttributes, topicGwRPC, topicGwAttrResp, "v1/gateway/connect"); fmt.Sprint(codes) != fmt.Sprint([]byte{1, 1, 1, codeTopicFilterInvalid}) {
		t.Fatalf("suback %v", codes)
	}
}

func TestGatewayRateLimits(t *testing.T) {
	s := newGatewayServer(t)
	s.SetRateLimits("gw", RateLimits{Messages: "1000:1"})
	s.SetGatewayRateLimits("gw", RateLimits{Messages: "2:3600", TelemetryDataPoints: "100:60,1000:3600"})
	for _, v := range []byte{4, 5} {
		c := dialGateway(t, s, v)
		c.publish(topicRPCRequest+"1", 1, `{"method":"getSessionLimits","params":{}}`)
		c.expect(packets.Puback)
		pk := c.expectPublish(topicRPCResponse + "1")
		jsonEqual(t, "session limits", pk.Payload, `{"maxPayloadSize":65536,"maxInflightMessages":100,
			"rateLimits":{"messages":"1000:1","telemetryMessages":null,"telemetryDataPoints":null},
			"gatewayRateLimits":{"messages":"2:3600","telemetryMessages":null,"telemetryDataPoints":"100:60,1000:3600"}}`)
		c.disconnect()
	}
	// Unset limits are null; a plain device has no gatewayRateLimits.
	mustAdd(t, s, Device{Name: "gw2", Token: "GW2", Gateway: true})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("GW2")
	c.publish(topicRPCRequest+"1", 1, `{"method":"getSessionLimits"}`)
	c.expect(packets.Puback)
	jsonEqual(t, "gw2 limits", c.expectPublish(topicRPCResponse+"1").Payload, `{"maxPayloadSize":65536,"maxInflightMessages":100,
		"rateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null},
		"gatewayRateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}`)

}

func TestDropSubDevice(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		if err := s.DropSubDevice("gw", "Dev A", 128); !errors.Is(err, ErrNoActiveConnection) {
			t.Fatalf("drop without a gateway session: %v", err)
		}
		if err := s.DropSubDevice("nope", "Dev A", 128); !errors.Is(err, ErrUnknownDevice) {
			t.Fatalf("drop from an unknown gateway: %v", err)
		}
		c := dialGateway(t, s, v)
		c.publishOK(topicGwConnect, `{"device":"Dev A"}`)
		if err := s.DropSubDevice("gw", "Dev B", 128); !errors.Is(err, ErrNoActiveConnection) {
			t.Fatalf("drop of a device not connected: %v", err)
		}
		if err := s.DropSubDevice("gw", "Dev A", GatewayDisconnectRateLimit); err != nil {
			t.Fatal(err)
		}
		got := c.ping()
		if v == 5 {
			if len(got) != 1 || got[0].TopicName != topicGwDisconnect {
				t.Fatalf("notice: %v", got)
			}
			jsonEqual(t, "notice", got[0].Payload, `{"device":"Dev A","reason":150}`)
		} else if len(got) != 0 {
			t.Fatalf("mqtt 3.1.1 got %v", got)
		}
		if s.Connected("Dev A") || s.SubDevices("gw") != nil {
			t.Fatal("Dev A still connected")
		}
		if err := s.SetShared("Dev A", map[string]any{"x": 1}); err != nil {
			t.Fatal(err)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("update after drop: %v", got)
		}
	})
}

func TestGatewayOneSessionPerDevice(t *testing.T) {
	s := newGatewayServer(t)
	mustAdd(t, s, Device{Name: "gw2", Token: "GW2", Gateway: true})
	// A sub-device connected through gw moves to gw2.
	c1 := dialGateway(t, s, 5)
	c1.publishOK(topicGwConnect, `{"device":"Dev A"}`)
	c2 := dialRaw(t, s.MQTTAddr(), 5)
	c2.connectOK("GW2")
	c2.publishOK(topicGwConnect, `{"device":"Dev A"}`)
	if s.SubDevices("gw") != nil || fmt.Sprint(s.SubDevices("gw2")) != "[Dev A]" {
		t.Fatalf("gw %v gw2 %v", s.SubDevices("gw"), s.SubDevices("gw2"))
	}
	// A gateway connecting a device that has its own session evicts it.
	d := dialRaw(t, s.MQTTAddr(), 5)
	d.connectOK("DEV")
	c1.publishOK(topicGwConnect, `{"device":"dev"}`)
	if code := d.expectClosed(); code != codeSessionTakenOver {
		t.Fatalf("direct session closed with %#x", code)
	}
	// And the device connecting directly takes it back from the gateway.
	d = dialRaw(t, s.MQTTAddr(), 5)
	d.connectOK("DEV")
	if got := s.SubDevices("gw"); got != nil {
		t.Fatalf("gw still has %v", got)
	}
	// The session counts as connected once mochi reports it established,
	// just after the CONNACK.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if err := s.WaitConnected(wctx, "dev"); err != nil {
		t.Fatalf("dev not connected: %v", err)
	}
	if err := s.SetShared("dev", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if got := c1.ping(); len(got) != 0 {
		t.Fatalf("gateway got an update of a device it lost: %v", got)
	}
}

func TestGatewayThousandSubDevices(t *testing.T) {
	const n = 1000
	s := newGatewayServer(t)
	c := dialGateway(t, s, 5)
	c.subscribe(1, topicGwAttributes, topicGwRPC)
	name := func(i int) string { return fmt.Sprintf("sub-%04d", i) }
	for i := range n {
		c.publishOK(topicGwConnect, fmt.Sprintf(`{"device":%q}`, name(i)))
	}
	if got := s.SubDevices("gw"); len(got) != n {
		t.Fatalf("%d sub-devices", len(got))
	}
	// One attribute update per device, read back in order.
	go func() {
		for i := range n {
			if err := s.SetShared(name(i), map[string]any{"i": i}); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := range n {
		jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, fmt.Sprintf(`{"device":%q,"data":{"i":%d}}`, name(i), i))
	}
	// One two-way RPC per device, answered by the gateway.
	errs := make(chan error, n)
	for i := range n {
		go func() {
			r, err := s.RPC(ctxT(t), name(i), "ping", map[string]int{"i": i}, false)
			if err == nil && string(r) != fmt.Sprintf(`{"pong":%d}`, i) {
				err = fmt.Errorf("%s: reply %s", name(i), r)
			}
			errs <- err
		}()
	}
	seen := map[string]bool{}
	var replies []string
	for range n {
		pk := c.expectPublish(topicGwRPC)
		var req struct {
			Device string
			Data   struct {
				ID     int
				Method string
				Params struct{ I int }
			}
		}
		if err := json.Unmarshal(pk.Payload, &req); err != nil {
			t.Fatal(err)
		}
		if req.Data.ID != 0 || req.Data.Method != "ping" || name(req.Data.Params.I) != req.Device || seen[req.Device] {
			t.Fatalf("rpc %s", pk.Payload)
		}
		seen[req.Device] = true
		replies = append(replies, fmt.Sprintf(`{"device":%q,"id":0,"data":{"pong":%d}}`, req.Device, req.Data.Params.I))
	}
	for _, r := range replies {
		c.publishOK(topicGwRPC, r)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestGatewayHTTPAPI(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	mustAdd(t, s, Device{Name: "gw", Token: "GW", Gateway: true})
	u := s.HTTPURL()
	check := func(method, path, body string, wantCode int, wantBody string) string {
		t.Helper()
		code, got := do(t, method, u+path, body)
		if code != wantCode || (wantBody != "" && got != wantBody) {
			t.Fatalf("%s %s: %d %s, want %d %s", method, path, code, got, wantCode, wantBody)
		}
		return got
	}
	check("GET", "/api/gateways/gw/devices", "", 200, `[]`)
	check("GET", "/api/gateways/nope/devices", "", 404, "")
	check("PUT", "/api/gateways/gw/rate-limits", `{"messages":"100:1"}`, 204, "")
	check("PUT", "/api/gateways/nope/rate-limits", `{}`, 404, "")
	check("DELETE", "/api/gateways/gw/devices/Dev%20A", "", 504, "")

	c := dialGateway(t, s, 5)
	c.publishOK(topicGwTelemetry, `{"Dev A":[{"ts":5,"values":{"t":1}}]}`)
	c.publishOK(topicGwAttributes, `{"Dev A":{"serial":"SN"}}`)
	c.publishOK(topicGwClaim, `{"Dev A":{"secretKey":"k"}}`)
	check("GET", "/api/gateways/gw/devices", "", 200, `["Dev A"]`)
	list := check("GET", "/api/devices", "", 200, "")
	if !strings.Contains(list, `"name":"Dev A","type":"default","token":`) || !strings.Contains(list, `"lastGateway":"gw","connected":true`) {
		t.Fatalf("device list %s", list)
	}
	check("GET", "/api/devices/Dev%20A/telemetry?key=t", "", 200, `[{"ts":5,"value":1}]`)
	check("GET", "/api/devices/Dev%20A/attributes?scope=client", "", 200, `{"serial":"SN"}`)
	if got := check("GET", "/api/devices/Dev%20A/claims", "", 200, ""); !strings.Contains(got, `"secretKey":"k"`) {
		t.Fatalf("claims %s", got)
	}
	check("POST", "/api/devices/Dev%20A/attributes/shared", `{"mode":"eco"}`, 200, `{"mode":"eco"}`)
	jsonEqual(t, "update", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev A","data":{"mode":"eco"}}`)
	check("DELETE", "/api/devices/Dev%20A/attributes/shared?keys=mode", "", 204, "")
	jsonEqual(t, "delete", c.expectPublish(topicGwAttributes).Payload, `{"device":"Dev A","data":{"deleted":["mode"]}}`)

	done := make(chan string, 1)
	go func() {
		_, body := do(t, "POST", u+"/api/devices/Dev%20A/rpc", `{"method":"setMode","params":{"m":1},"timeoutMs":10000}`)
		done <- body
	}()
	jsonEqual(t, "rpc", c.expectPublish(topicGwRPC).Payload, `{"device":"Dev A","data":{"id":0,"method":"setMode","params":{"m":1}}}`)
	c.publishOK(topicGwRPC, `{"device":"Dev A","id":0,"data":{"ok":true}}`)
	if got := <-done; got != `{"ok":true}` {
		t.Fatalf("rpc over http: %s", got)
	}

	check("DELETE", "/api/gateways/gw/devices/Dev%20A?reason=x", "", 400, "")
	check("DELETE", "/api/gateways/gw/devices/Dev%20A?reason=150", "", 204, "")
	jsonEqual(t, "notice", c.expectPublish(topicGwDisconnect).Payload, `{"device":"Dev A","reason":150}`)
	check("GET", "/api/gateways/gw/devices", "", 200, `[]`)
}
