package tbsim

import (
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, path, body string, want int) {
	t.Helper()
	resp, err := http.Post(s.HTTPURL()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("POST %s %s: %d, want %d", path, body, resp.StatusCode, want)
	}
}

func TestProfileCustomTopics(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
		post(t, s, "/api/device-profiles", `{"name":"custom","telemetryTopic":"sensors/+/telemetry","attributesTopic":"sensors/attrs"}`, 201)
		post(t, s, "/api/devices", `{"name":"d","token":"T","profile":"custom"}`, 201)
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		unknown := map[byte]byte{4: 0, 5: codeTopicNameInvalid}[v]
		// The default topics are unknown topics now: under 3.1.1 an
		// ordinary PUBACK for data that is dropped.
		if code := c.publishAck(topicTelemetry, `{"a":1}`); code != unknown {
			t.Fatalf("default telemetry topic: puback %#x", code)
		}
		if code := c.publishAck(topicAttributes, `{"c":1}`); code != unknown {
			t.Fatalf("default attributes topic: puback %#x", code)
		}
		if code := c.publishAck("sensors/x/telemetry", `{"ts":1,"values":{"a":2}}`); code != 0 {
			t.Fatalf("custom telemetry topic: puback %#x", code)
		}
		if code := c.publishAck("sensors//telemetry", `{"a":3}`); code != unknown {
			t.Fatalf("+ matched an empty level: puback %#x", code)
		}
		if code := c.publishAck("sensors/attrs", `{"c":2}`); code != 0 {
			t.Fatalf("custom attributes topic: puback %#x", code)
		}
		if code := c.publishAck("v2/t", `{"a":4}`); code != 0 {
			t.Fatalf("v2/t: puback %#x", code)
		}
		if h := s.History("d", "a"); len(h) != 2 {
			t.Fatalf("history %v", h)
		}
		if a := s.ClientAttributes("d"); a["c"] != int64(2) {
			t.Fatalf("attributes %v", a)
		}
		drops := s.Dropped("d")
		if len(drops) != 3 || drops[2].Topic != topicTelemetry || drops[2].Reason != DropUnknownTopic {
			t.Fatalf("drops %+v", drops)
		}
	})
}

func TestProfileProtobufRefusesJSON(t *testing.T) {
	s := newServer(t, Options{})
	for _, p := range []DeviceProfile{{Name: "pb", PayloadType: "protobuf"}, {Name: "pback", PayloadType: PayloadProtobuf, SendAckOnValidationException: true}} {
		if err := s.AddDeviceProfile(p); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(t, s, Device{Name: "p", Token: "P", Profile: "pb"})
	mustAdd(t, s, Device{Name: "q", Token: "Q", Type: "pback"})
	// MQTT 5: PUBACK 0x99, the session stays; …/j topics still take JSON.
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("P")
	for _, topic := range []string{topicTelemetry, topicAttributes, "v2/t", topicRPCRequest + "1"} {
		if code := c.publishAck(topic, `{"method":"getSessionLimits","a":1}`); code != codePayloadFormatInvalid {
			t.Fatalf("%s: puback %#x", topic, code)
		}
	}
	if code := c.publishAck("v2/t/j", `{"a":1}`); code != 0 {
		t.Fatalf("v2/t/j: puback %#x", code)
	}
	if h := s.History("p", "a"); len(h) != 1 {
		t.Fatalf("history %v", h)
	}
	if d := s.Dropped("p"); len(d) != 4 || d[0].Reason != DropInvalidPayload || d[0].PubAck != codePayloadFormatInvalid {
		t.Fatalf("drops %+v", d)
	}
	c.disconnect()
	// MQTT 3.1.1: closed without PUBACK, so the message comes back on
	// every reconnect.
	c = dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("P")
	c.publish(topicTelemetry, 1, `{"a":2}`)
	if code := c.expectClosed(); code != -1 {
		t.Fatalf("disconnect %d", code)
	}
	// …unless the profile acknowledges validation errors: a plain PUBACK
	// for a dropped message.
	c = dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("Q")
	if code := c.publishAck(topicTelemetry, `{"a":3}`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("after puback: %v", got)
	}
	if s.History("q", "a") != nil {
		t.Fatal("stored")
	}
	if d := s.Dropped("q"); len(d) != 1 || d[0].PubAck != 0 || d[0].Reason != DropInvalidPayload {
		t.Fatalf("drops %+v", d)
	}
}

func TestProfileSendAckOnValidationExceptionJSON(t *testing.T) {
	s := newServer(t, Options{})
	if err := s.AddDeviceProfile(DeviceProfile{Name: "lenient", SendAckOnValidationException: true}); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, Device{Name: "d", Token: "T", Type: "lenient"})
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	if code := c.publishAck(topicTelemetry, `{bad`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	if code := c.publishAck(topicTelemetry, `{"a":1}`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	if d := s.Dropped("d"); len(d) != 1 || d[0].Payload != `{bad` {
		t.Fatalf("drops %+v", d)
	}
}

func TestGatewayConnectTypeNamesTheProfile(t *testing.T) {
	s := newGatewayServer(t)
	if err := s.AddDeviceProfile(DeviceProfile{Name: "pb", PayloadType: PayloadProtobuf}); err != nil {
		t.Fatal(err)
	}
	g := dialGateway(t, s, 4)
	g.publishOK(topicGwConnect, `{"device":"S","type":"pb"}`)
	g.publishOK(topicGwTelemetry, `{"S":[{"a":1}]}`) // gateway payloads follow the gateway's profile
	var token string
	for _, d := range s.Devices() {
		if d.Name == "S" {
			if d.Type != "pb" {
				t.Fatalf("type %q", d.Type)
			}
			token = d.Token
		}
	}
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK(token)
	c.publish(topicTelemetry, 1, `{"a":2}`)
	if code := c.expectClosed(); code != -1 {
		t.Fatalf("disconnect %d", code)
	}
	if h := s.History("S", "a"); len(h) != 1 {
		t.Fatalf("history %v", h)
	}
}

func TestDeviceProfilesHTTPErrors(t *testing.T) {
	s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
	post(t, s, "/api/device-profiles", `{"name":"x","payloadType":"XML"}`, 400)
	post(t, s, "/api/device-profiles", `{"name":""}`, 400)
	post(t, s, "/api/device-profiles", `{"name":"x","telemetryTopic":"a/#/b"}`, 400)
	post(t, s, "/api/devices", `{"name":"d","type":"a","profile":"b"}`, 400)
	post(t, s, "/api/device-profiles", `{"name":"x"}`, 201)
	if p := s.DeviceProfiles(); len(p) != 1 || p[0].TelemetryTopic != topicTelemetry || p[0].PayloadType != PayloadJSON {
		t.Fatalf("profiles %+v", p)
	}
}
