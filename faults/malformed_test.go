package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tbflow/tbflow/tb"
)

// Malformed answers the endpoint gives: each is cut off in the middle.
const (
	badAttributes    = `{"client":{"a":1},"shared":`
	badSessionLimits = `{"maxPayloadSize":65536,"rateLimits":{"messages":`
	badRPCRequest    = `{"method":"setMode","params":{"mode":`
	badProvision     = `{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":`
)

// brokenTB is an MQTT endpoint (mochi-mqtt with a hook) that plays a
// ThingsBoard whose answers are malformed JSON: the first attribute
// response, every getSessionLimits answer, the first provisioning response
// and a server-side RPC request sent when the device subscribes to RPC.
// Later attribute requests and provisioning get valid answers, and a valid
// RPC follows the malformed one, so that the test can see the client still
// works. Telemetry is counted; nothing is routed between clients.
type brokenTB struct {
	mqtt.HookBase

	mu        sync.Mutex
	copies    map[int]int
	attrReqs  int
	provReqs  int
	limitReqs int
	replies   map[string]string // rpc/response/<id> → the device's reply
}

func (h *brokenTB) ID() string { return "broken-thingsboard" }

func (h *brokenTB) Provides(b byte) bool {
	return bytes.IndexByte([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribed}, b) >= 0
}

func (h *brokenTB) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *brokenTB) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func reply(cl *mqtt.Client, topic, payload string) {
	_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic, Payload: []byte(payload)})
}

// OnPublish answers requests and consumes every uplink (PUBACK, no routing).
func (h *brokenTB) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	topic := pk.TopicName
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case topic == topicTelemetry:
		if seq, ok := SeqOf(pk.Payload); ok {
			h.copies[seq]++
		}
	case strings.HasPrefix(topic, "v1/devices/me/attributes/request/"):
		h.attrReqs++
		answer := badAttributes
		if h.attrReqs > 1 {
			answer = `{"client":{"a":1}}`
		}
		reply(cl, strings.Replace(topic, "/request/", "/response/", 1), answer)
	case strings.HasPrefix(topic, "v1/devices/me/rpc/request/"):
		var req struct{ Method string }
		_ = json.Unmarshal(pk.Payload, &req)
		answer := `{"error":"timeout"}`
		if req.Method == "getSessionLimits" {
			h.limitReqs++
			answer = badSessionLimits
		}
		reply(cl, strings.Replace(topic, "/request/", "/response/", 1), answer)
	case strings.HasPrefix(topic, "v1/devices/me/rpc/response/"):
		h.replies[topic] = string(pk.Payload)
	case topic == "/provision/request":
		h.provReqs++
		answer := badProvision
		if h.provReqs > 1 {
			answer = `{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":"issued-token"}`
		}
		reply(cl, "/provision/response", answer)
	}
	return pk, packets.CodeSuccessIgnore
}

// OnSubscribed sends a malformed server-side RPC, then a valid one, to a
// device that subscribed to RPC requests.
func (h *brokenTB) OnSubscribed(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	for _, f := range pk.Filters {
		if f.Filter == "v1/devices/me/rpc/request/+" {
			reply(cl, "v1/devices/me/rpc/request/7", badRPCRequest)
			reply(cl, "v1/devices/me/rpc/request/8", `{"method":"ping","params":{}}`)
		}
	}
}

func (h *brokenTB) reply(topic string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.replies[topic]
	return r, ok
}

func (h *brokenTB) received() map[int]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int]int, len(h.copies))
	for k, v := range h.copies {
		out[k] = v
	}
	return out
}

func startBrokenTB(t *testing.T) (*brokenTB, string) {
	t.Helper()
	h := &brokenTB{copies: map[int]int{}, replies: map[string]string{}}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "mqtt", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return h, l.Address()
}

// TestFaultMalformedJSON connects a device to an endpoint that answers with
// malformed JSON. The device must not crash or wedge: a malformed attribute
// response and a malformed provisioning response fail the call with an
// error that says so, before the request's timeout; a malformed
// getSessionLimits answer is reported and the defaults stay; a malformed
// server-side RPC is reported and answered with an error reply. Each call
// works again with a valid answer, and numbered telemetry sent afterwards
// all arrives.
func TestFaultMalformedJSON(t *testing.T) {
	h, addr := startBrokenTB(t)
	host, port := hostPort(t, addr)
	const requestTimeout = 5 * time.Second
	var mu sync.Mutex
	var reported []string
	d, err := tb.NewDevice(tb.Config{
		Host: host, Port: port, AccessToken: "fault-token", RequestTimeout: requestTimeout,
		Outbox: tb.OutboxConfig{Path: newOutboxPath(t)}, Logger: testLogger(t),
		OnError: func(err error) {
			mu.Lock()
			reported = append(reported, err.Error())
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.HandleRPC("ping", func(context.Context, tb.RPCRequest) (any, error) { return map[string]bool{"pong": true}, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer closeDevice(d)
	wasReported := func(part string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reported {
			if strings.Contains(r, part) {
				return true
			}
		}
		return false
	}

	// getSessionLimits: reported, defaults kept.
	eventually(t, 20*time.Second, "the malformed session limits reported", func() bool { return wasReported("malformed session limits") })
	if d.SessionLimits() != nil {
		t.Errorf("malformed session limits were applied: %+v", d.SessionLimits())
	}

	// Server-side RPC: the malformed request gets an error reply, the next
	// one is served.
	eventually(t, 20*time.Second, "the device's replies to both RPCs", func() bool {
		_, a := h.reply("v1/devices/me/rpc/response/7")
		_, b := h.reply("v1/devices/me/rpc/response/8")
		return a && b
	})
	if r, _ := h.reply("v1/devices/me/rpc/response/7"); !strings.Contains(r, `"error"`) || !strings.Contains(r, "malformed") {
		t.Errorf("reply to the malformed RPC request: %s", r)
	}
	if r, _ := h.reply("v1/devices/me/rpc/response/8"); r != `{"pong":true}` {
		t.Errorf("reply to the valid RPC after the malformed one: %s", r)
	}
	if !wasReported("malformed rpc request") {
		t.Errorf("the malformed RPC request was not reported through OnError")
	}

	// Attribute request: a clear error, then a working request.
	start := time.Now()
	_, err = d.RequestAttributes(ctx, []string{"a"}, nil)
	attrMS := time.Since(start).Milliseconds()
	if err == nil || !strings.Contains(err.Error(), "malformed") || errors.Is(err, tb.ErrTimeout) {
		t.Errorf("attribute request answered with malformed JSON: err = %v, want a malformed-response error", err)
	}
	attrs, err := d.RequestAttributes(ctx, []string{"a"}, nil)
	if err != nil || attrs.Client["a"] != int64(1) { // integers come back exact (int64)
		t.Errorf("attribute request after the malformed one: %+v, %v", attrs, err)
	}

	// Provisioning: a clear error, then a working one.
	server := tb.Config{Host: host, Port: port, RequestTimeout: requestTimeout}
	start = time.Now()
	_, err = tb.Provision(ctx, server, tb.ProvisionRequest{ProvisionKey: "k", ProvisionSecret: "s"})
	provMS := time.Since(start).Milliseconds()
	if err == nil || !strings.Contains(err.Error(), "malformed") || errors.Is(err, tb.ErrTimeout) {
		t.Errorf("provisioning answered with malformed JSON: err = %v, want a malformed-response error", err)
	}
	creds, err := tb.Provision(ctx, server, tb.ProvisionRequest{ProvisionKey: "k", ProvisionSecret: "s"})
	if err != nil || creds.AccessToken != "issued-token" {
		t.Errorf("provisioning after the malformed answer: %+v, %v", creds, err)
	}

	// Telemetry keeps flowing on the same session.
	st := startStream(d, 2*time.Millisecond)
	eventually(t, 30*time.Second, "300 messages accepted", func() bool {
		_, n := st.counts()
		return n >= 300
	})
	st.stop()
	all := st.acceptedSoFar()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	ok, ackErrs, err := st.waitAcked(wctx, all)
	wcancel()
	if err != nil {
		t.Fatalf("waiting for the acknowledgements: %v", err)
	}
	tl := account(st, h.received(), nil, nil)
	record(t, Result{
		Fault: "malformed JSON answers", Sent: tl.sent, Acknowledged: tl.acknowledged,
		Delivered: tl.delivered, Duplicated: tl.duplicated, Lost: tl.lost,
		Extra: map[string]int64{"attr_error_ms": attrMS, "provision_error_ms": provMS},
		Notes: "limits: reported, defaults kept; server RPC: error reply; attributes, provisioning: malformed-response error",
	})
	tl.check(t)
	if ok != len(all) {
		t.Errorf("%d of %d accepted messages were not acknowledged: %s", len(all)-ok, len(all), strings.Join(ackErrs, "; "))
	}
}
