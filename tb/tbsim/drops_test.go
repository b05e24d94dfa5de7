package tbsim

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestUnknownTopicsAreAcknowledgedAndRecorded(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{HTTPAddr: "127.0.0.1:0"})
		mustAdd(t, s, Device{Name: "d", Token: "T"})
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		want := map[byte]byte{4: 0, 5: codeTopicNameInvalid}[v]
		for _, topic := range []string{"v1/devices/me/unknown", "$SYS/x", "$share/x"} {
			if code := c.publishAck(topic, `{"a":1}`); code != want {
				t.Fatalf("%s: puback %#x, want %#x", topic, code, want)
			}
		}
		c.publish("$SYS/qos0", 0, `{}`)
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("qos 0 answered: %v", got)
		}
		drops := s.Dropped("d")
		if len(drops) != 4 {
			t.Fatalf("drops %+v", drops)
		}
		if d := drops[0]; d.Topic != "$SYS/qos0" || d.PubAck != -1 || d.QoS != 0 || d.Reason != DropUnknownTopic {
			t.Fatalf("newest drop %+v", d)
		}
		if d := drops[3]; d.Topic != "v1/devices/me/unknown" || d.PubAck != int(want) || d.QoS != 1 ||
			d.Payload != `{"a":1}` || d.MQTT != v {
			t.Fatalf("oldest drop %+v", d)
		}
		// The HTTP API returns the same list, newest first.
		resp, err := http.Get(s.HTTPURL() + "/api/devices/d/dropped")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []Drop
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got) != 4 || got[0].Topic != "$SYS/qos0" {
			t.Fatalf("GET dropped: %v %+v", err, got)
		}
		if resp, err := http.Get(s.HTTPURL() + "/api/devices/nope/dropped"); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown device: %v %v", err, resp)
		}
	})
}

func TestDropsAreBounded(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	for range dropLimit + 5 {
		c.publish("x/y", 0, "z")
	}
	c.publishAck("x/last", "z")
	drops := s.Dropped("d")
	if len(drops) != dropLimit || drops[0].Topic != "x/last" {
		t.Fatalf("%d drops, newest %+v", len(drops), drops[0])
	}
}

func TestWildcardTopicNameCloses(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newServer(t, Options{})
		mustAdd(t, s, Device{Name: "d", Token: "T"})
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		c.publish("v1/devices/me/+", 1, `{}`)
		code := c.expectClosed()
		if want := map[byte]int{4: -1, 5: codeMalformedPacket}[v]; code != want {
			t.Fatalf("close code %d, want %d", code, want)
		}
	})
}

func TestNonGatewayDeviceOnGatewayTopics(t *testing.T) {
	both(t, func(t *testing.T, v byte) {
		s := newGatewayServer(t)
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("DEV")
		for _, topic := range []string{topicGwConnect, topicGwTelemetry, "v1/gateway/unknown"} {
			c.publish(topic, 1, `{"Dev A":[{"a":1}]}`)
		}
		if got := c.ping(); len(got) != 0 {
			t.Fatalf("answered: %v", got)
		}
		if s.Devices()[0].Name == "Dev A" || s.Connected("Dev A") {
			t.Fatal("sub-device created")
		}
		drops := s.Dropped("dev")
		if len(drops) != 3 || drops[0].Reason != DropNotGateway || drops[0].PubAck != -1 {
			t.Fatalf("drops %+v", drops)
		}
	})
}

func TestBadProtocolLevelGetsA311Code(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	cases := []struct {
		name  string
		level byte
	}{
		{"MQTT", 3}, {"MQTT", 2}, {"MQTT", 6}, {"MQIsdp", 4},
	}
	for _, tc := range cases {
		c := dialRaw(t, s.MQTTAddr(), tc.level)
		c.write(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connect},
			Connect: packets.ConnectParams{ProtocolName: []byte(tc.name), Clean: true, Keepalive: 60,
				ClientIdentifier: "x", UsernameFlag: true, Username: []byte("T")},
		})
		ack := c.expect(packets.Connack)
		if ack.ReasonCode != 1 {
			t.Fatalf("%s level %d: connack %#x, want 1", tc.name, tc.level, ack.ReasonCode)
		}
		if code := c.expectClosed(); code != -1 {
			t.Fatalf("%s level %d: disconnect %d", tc.name, tc.level, code)
		}
	}
}
