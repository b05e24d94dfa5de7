package hostile

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// MQTT 3.1.1 packet builders, by hand: the point is to send what a
// library would refuse to.

func varint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func mstr(s string) []byte {
	b := make([]byte, 2, 2+len(s))
	binary.BigEndian.PutUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(header byte, body ...[]byte) []byte {
	p := bytes.Join(body, nil)
	return append(append([]byte{header}, varint(len(p))...), p...)
}

func connect(proto string, level byte, clientID, user string) []byte {
	flags := byte(0x02) // clean session
	payload := mstr(clientID)
	if user != "" {
		flags |= 0x80
		payload = append(payload, mstr(user)...)
	}
	return packet(0x10, mstr(proto), []byte{level, flags, 0, 60}, payload)
}

func publish(qos byte, topic string, payload []byte) []byte {
	var id []byte
	if qos > 0 {
		id = []byte{0, 1}
	}
	return packet(0x30|qos<<1, mstr(topic), id, payload)
}

func subscribe(filter string, qos byte) []byte {
	return packet(0x82, []byte{0, 1}, mstr(filter), []byte{qos})
}

const simToken = "HOSTILE_DEVICE_TOKEN"

func mqttCorpus() [][2][]byte {
	ok := connect("MQTT", 4, "c", simToken)
	var c [][2][]byte
	add := func(name string, parts ...[]byte) {
		c = append(c, [2][]byte{[]byte(name), bytes.Join(parts, nil)})
	}
	add("random bytes", []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37})
	add("invalid remaining length", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f})
	add("remaining length of 200 MB", []byte{0x10}, varint(200<<20), []byte("MQTT"))
	add("truncated CONNECT", connect("MQTT", 4, "c", simToken)[:8])
	add("wrong protocol name", connect("MQTX", 4, "c", simToken))
	add("protocol level 3 with MQTT", connect("MQTT", 3, "c", simToken))
	add("protocol level 9", connect("MQTT", 9, "c", simToken))
	add("wrong token", connect("MQTT", 4, "c", "nope"))
	add("empty token", connect("MQTT", 4, "c", ""))
	add("64 KB client id", connect("MQTT", 4, strings.Repeat("c", 65000), simToken))
	add("PUBLISH before CONNECT", publish(1, "v1/devices/me/telemetry", []byte(`{"a":1}`)))
	add("SUBSCRIBE before CONNECT", subscribe("#", 1))
	add("two CONNECTs", ok, ok)
	add("PUBLISH with QoS 3", ok, []byte{0x36}, varint(8), mstr("ab"), []byte{0, 1, 'x', 'y'})
	add("PUBLISH to a wildcard topic", ok, publish(1, "v1/devices/me/+", []byte(`{}`)))
	add("PUBLISH to $SYS", ok, publish(1, "$SYS/x", []byte(`{}`)))
	add("PUBLISH with an empty topic", ok, publish(0, "", []byte(`{}`)))
	add("PUBLISH with invalid UTF-8 topic", ok, publish(0, "v1/\xff\xfe", []byte(`{}`)))
	add("telemetry not JSON", ok, publish(1, "v1/devices/me/telemetry", []byte("not json")))
	add("telemetry nested 30000 deep", ok, publish(1, "v1/devices/me/telemetry", []byte(nestedJSON(30000))))
	add("telemetry of 10000 keys", ok, publish(1, "v1/devices/me/telemetry", []byte(manyKeys(10000))))
	add("telemetry over the payload limit", ok, publish(1, "v1/devices/me/telemetry", bytes.Repeat([]byte("x"), 70000)))
	add("attributes as an array", ok, publish(1, "v1/devices/me/attributes", []byte(`[1,2,3]`)))
	add("attribute request with a huge id", ok, publish(1, "v1/devices/me/attributes/request/99999999999999999999", []byte(`{"clientKeys":"a"}`)))
	add("RPC response to nothing", ok, publish(1, "v1/devices/me/rpc/response/abc", []byte("garbage")))
	add("client RPC not JSON", ok, publish(1, "v1/devices/me/rpc/request/1", []byte("{")))
	add("gateway connect as a device", ok, publish(1, "v1/gateway/connect", []byte(`{"device":"`+strings.Repeat("d", 10000)+`"}`)))
	add("SUBSCRIBE to #/#", ok, subscribe("#/#", 1))
	add("SUBSCRIBE to an empty filter", ok, subscribe("", 1))
	add("SUBSCRIBE with QoS 3", ok, subscribe("v1/devices/me/attributes", 3))
	add("1000 PINGREQs", ok, bytes.Repeat([]byte{0xc0, 0x00}, 1000))
	add("data after DISCONNECT", ok, []byte{0xe0, 0x00}, publish(1, "v1/devices/me/telemetry", []byte(`{"a":1}`)))
	add("reserved packet type 15", ok, []byte{0xf0, 0x00})
	return c
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String() + "}"
}

func runMQTT(t *testing.T, tl *Tally) {
	sim, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	sim.AddDevice(tbsim.Device{Name: "probe", Token: "PROBE_TOKEN"})
	sim.AddDevice(tbsim.Device{Name: "hostile", Token: simToken})
	for _, in := range mqttCorpus() {
		name := string(in[0])
		var o Outcome
		var detail string
		done, p := within(15*time.Second, func() { o, detail = sendMQTT(sim.MQTTAddr(), in[1]) })
		switch {
		case p != nil:
			tl.Add("mqtt-to-tbsim", name, Crashed, fmt.Sprint(p))
			continue
		case !done:
			tl.Add("mqtt-to-tbsim", name, Hung, "no end in 15s")
			continue
		}
		// tbsim must still serve a well-behaved device.
		if err := probeDevice(sim.MQTTAddr()); err != nil {
			o, detail = Crashed, "a device cannot work afterwards: "+err.Error()
		}
		tl.Add("mqtt-to-tbsim", name, o, detail)
	}
}

// sendMQTT writes raw bytes and reads what comes back for a second: a
// refusal (CONNACK with a code, or the connection closed) is a clear
// error, anything else accepted.
func sendMQTT(addr string, data []byte) (Outcome, string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Crashed, "dial: " + err.Error()
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(data); err != nil {
		return Clear, "" // the server already closed on us
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	got, err := io.ReadAll(c)
	if len(got) >= 4 && got[0] == 0x20 && got[3] != 0 {
		return Clear, "" // CONNACK refusing
	}
	if err == nil {
		return Clear, "" // closed by the server
	}
	return Accepted, ""
}

// probeDevice connects a real client, sends telemetry and disconnects.
func probeDevice(addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := tb.Connect(ctx, tb.Config{Host: host, Port: p, AccessToken: "PROBE_TOKEN"})
	if err != nil {
		return err
	}
	defer d.Close(ctx)
	return d.SendTelemetry(ctx, map[string]any{"ok": 1})
}
