package tbsim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSessionOpenOverTheLimit(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{})
		mustAdd(t, s, Device{Name: "d", Token: "T"})
		s.SetRateLimits("d", RateLimits{Messages: "2:3600"})
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T") // open: 1
		c.disconnect()   // close: 2
		// The session end (and its close message) is counted with
		// Disconnects, under the same lock.
		err := s.waitFor(ctxT(t), func() (bool, error) { return s.stats.Disconnects >= 1, nil })
		if err != nil {
			t.Fatal(err)
		}
		c = dialRaw(t, s.MQTTAddr(), v)
		ack := c.connect(connectOpts{clientID: "x", username: "T", clean: true})
		if want := map[byte]byte{4: 3, 5: 0x9F}[v]; ack.ReasonCode != want {
			t.Fatalf("connack %#x, want %#x", ack.ReasonCode, want)
		}
		if code := c.expectClosed(); code != map[byte]int{4: -1, 5: 0x96}[v] {
			t.Fatalf("disconnect %d", code)
		}
	})
}

func TestSubscriptionOverTheLimitIsLost(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{})
		mustAdd(t, s, Device{Name: "d", Token: "T"})
		s.SetRateLimits("d", RateLimits{Messages: "2:3600"})
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")                                                        // 1
		if codes := c.subscribe(1, "v1/devices/me/attributes"); codes[0] != 1 { // 2
			t.Fatalf("suback %v", codes)
		}
		// Granted, but ThingsBoard never registers it.
		if codes := c.subscribe(1, "v1/devices/me/rpc/request/+"); codes[0] != 1 {
			t.Fatalf("suback %v", codes)
		}
		if err := s.SetShared("d", map[string]any{"k": 1}); err != nil {
			t.Fatal(err)
		}
		c.expectPublish("v1/devices/me/attributes")
		// An RPC is written before RPC returns, so the ping proves it was
		// not sent.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, _ = s.RPC(ctx, "d", "m", nil, true)
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("rpc delivered through a lost subscription: %v", got)
		}
		drops := s.Dropped("d")
		if len(drops) != 1 || drops[0].Reason != DropSubscriptionRateLimit || drops[0].Topic != "v1/devices/me/rpc/request/+" {
			t.Fatalf("drops %+v", drops)
		}
	})
}

// TestGatewayBucketIsShared: the gateway limits are one bucket for all
// sub-devices together, not an allowance per sub-device.
func TestGatewayBucketIsShared(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		s.SetGatewayRateLimits("gw", RateLimits{TelemetryMessages: "3:3600"})
		c := dialGateway(t, s, v)
		for _, d := range []string{"A", "B", "C"} {
			c.publishOK(topicGwTelemetry, fmt.Sprintf(`{%q:[{"t":1}]}`, d))
		}
		code, pubs := c.publishCollect(topicGwTelemetry, `{"A":[{"t":2}]}`)
		if want := map[byte]byte{4: 0, 5: codeQuotaExceeded}[v]; code != want || len(pubs) != 0 {
			t.Fatalf("puback %#x (want %#x), publishes before it %v", code, want, pubs)
		}
		// Closed with nothing after the PUBACK: the notice ThingsBoard
		// attempts goes to a closed channel.
		if code := c.expectClosed(); code != -1 {
			t.Fatalf("disconnect %d", code)
		}
		if h := s.History("A", "t"); len(h) != 1 {
			t.Fatalf("A history %+v", h)
		}
		drops := s.Dropped("A")
		if len(drops) != 1 || drops[0].Reason != DropGatewayRateLimit || drops[0].Gateway != "gw" ||
			drops[0].PubAck != map[byte]int{4: 0, 5: codeQuotaExceeded}[v] {
			t.Fatalf("drops %+v", drops)
		}
		// The bucket belongs to the gateway and outlives the session.
		c = dialGateway(t, s, v)
		c.publish(topicGwTelemetry, 1, `{"B":[{"t":2}]}`)
		c.expect(packets.Puback)
		c.expectClosed()
	})
}

// TestGatewayConnectsCount: every sub-device connect is a get-or-create
// message and a session-open message of the shared bucket; regular
// messages and telemetry are counted apart.
func TestGatewayConnectsCount(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		s.SetRateLimits("gw", RateLimits{Messages: "1000:1"}) // the gateway's own bucket
		s.SetGatewayRateLimits("gw", RateLimits{Messages: "5:3600"})
		c := dialGateway(t, s, v)
		c.publishOK(topicGwConnect, `{"device":"L"}`)                                                   // 2
		c.publishOK(topicGwTelemetry, `{"M":[{"a":1}]}`)                                                // implicit: 4; telemetry apart
		c.publishOK(topicGwAttributes, `{"L":{"b":1}}`)                                                 // data points: telemetry buckets
		c.publishOK(topicGwConnect, `{"device":"L"}`)                                                   // connected already: nothing
		code, pubs := c.publishCollect(topicGwAttrReq, `{"id":1,"device":"M","client":true,"key":"b"}`) // 5
		if code != 0 || len(pubs) != 1 {
			t.Fatalf("attribute request %#x %v", code, pubs)
		}
		code, pubs = c.publishCollect(topicGwRPC, `{"device":"L","id":0,"data":{}}`) // 6: over
		if want := map[byte]byte{4: 0, 5: codeQuotaExceeded}[v]; code != want || len(pubs) != 0 {
			t.Fatalf("puback %#x (want %#x) %v", code, want, pubs)
		}
		c.expectClosed()
	})
}

func TestGatewayConnectOverTheLimit(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		s.SetGatewayRateLimits("gw", RateLimits{Messages: "1:3600"})
		c := dialGateway(t, s, v)
		// get-or-create passes, the session open is lost: A is connected
		// but gets no updates.
		c.publishOK(topicGwConnect, `{"device":"A"}`)
		if err := s.SetShared("A", map[string]any{"k": 1}); err != nil {
			t.Fatal(err)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("update delivered: %v", got)
		}
		if d := s.Dropped("A"); len(d) != 1 || d[0].Reason != DropSubscriptionRateLimit {
			t.Fatalf("drops %+v", d)
		}
		// get-or-create over the limit: the handler throws, no PUBACK.
		c.publish(topicGwTelemetry, 1, `{"B":[{"a":1}]}`)
		if code := c.expectClosed(); code != map[byte]int{4: -1, 5: codeServerShuttingDown}[v] {
			t.Fatalf("disconnect %d", code)
		}
		if s.History("B", "a") != nil {
			t.Fatal("B stored")
		}
	})
}

func TestRateLimitsHTTP(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	mustAdd(t, s, Device{Name: "gw", Token: "GW", Gateway: true})
	mustAdd(t, s, Device{Name: "d", Token: "D"})
	put := func(path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest("PUT", s.HTTPURL()+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("PUT %s %s: %d, want %d", path, body, resp.StatusCode, want)
		}
	}
	put("/api/gateways/gw/rate-limits", `{"gateway":{"messages":"10:1"},"devices":{"telemetryMessages":"5:1,100:60"}}`, 204)
	put("/api/devices/d/rate-limits", `{"telemetryDataPoints":"7:1"}`, 204)
	put("/api/devices/d/rate-limits", `{"messages":"x"}`, 400)
	put("/api/gateways/gw/rate-limits", `{"devices":{"messages":"1:0"}}`, 400)
	put("/api/gateways/gw/rate-limits", `{"messages":"1:1","gateway":{}}`, 400)
	put("/api/devices/nope/rate-limits", `{}`, 404)
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("GW")
	c.publish(topicRPCRequest+"1", 1, `{"method":"getSessionLimits"}`)
	c.expect(packets.Puback)
	jsonEqual(t, "limits", c.expectPublish(topicRPCResponse+"1").Payload, `{"maxPayloadSize":65536,"maxInflightMessages":100,
		"rateLimits":{"messages":"10:1","telemetryMessages":null,"telemetryDataPoints":null},
		"gatewayRateLimits":{"messages":null,"telemetryMessages":"5:1,100:60","telemetryDataPoints":null}}`)
	d := dialRaw(t, s.MQTTAddr(), 5)
	d.connectOK("D")
	d.publish(topicRPCRequest+"1", 1, `{"method":"getSessionLimits"}`)
	d.expect(packets.Puback)
	jsonEqual(t, "limits", d.expectPublish(topicRPCResponse+"1").Payload, `{"maxPayloadSize":65536,"maxInflightMessages":100,
		"rateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":"7:1"}}`)
}
