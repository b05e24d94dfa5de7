package tbsim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient is a minimal MQTT 3.1.1/5 client over a socket, built on mochi's
// packet codec, so tests see exactly what the server sends (codes, closes).
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
}

// safety bounds every blocking read so a broken server fails the test
// instead of hanging it; it is not an assertion about timing.
const safety = 10 * time.Second

type connectOpts struct {
	clientID           string
	username, password string
	noUsername         bool
	noPassword         bool
	clean              bool
}

func dialRaw(t *testing.T, addr string, version byte) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c), version: version}
}

func dialRawTLS(t *testing.T, addr string, version byte, cfg *tls.Config) *rawClient {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial tls %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c), version: version}
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	}
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(safety))
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, or an error (io.EOF when the server closed).
func (c *rawClient) read() (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(safety))
	var pk packets.Packet
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	}
	return pk, err
}

func (c *rawClient) mustRead() packets.Packet {
	c.t.Helper()
	pk, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return pk
}

// expect reads the next packet and checks its type.
func (c *rawClient) expect(typ byte) packets.Packet {
	c.t.Helper()
	pk := c.mustRead()
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("got packet type %d (%+v), want %d", pk.FixedHeader.Type, pk, typ)
	}
	return pk
}

// expectClosed reads until the server closes the connection; it returns
// the DISCONNECT reason if one was sent (-1 otherwise). Any other packet
// before the close fails the test.
func (c *rawClient) expectClosed() int {
	c.t.Helper()
	code := -1
	for {
		pk, err := c.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed")
			}
			return code
		}
		if pk.FixedHeader.Type != packets.Disconnect {
			c.t.Fatalf("got packet type %d (%s %q) before close", pk.FixedHeader.Type, pk.TopicName, pk.Payload)
		}
		code = int(pk.ReasonCode)
	}
}

func (c *rawClient) connect(o connectOpts) packets.Packet {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.clean,
			Keepalive:        60,
			ClientIdentifier: o.clientID,
		},
	}
	if c.version == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	if o.username != "" || (!o.noUsername && o.password != "") {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.username)
	}
	if o.password != "" {
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.password)
	}
	c.write(pk)
	return c.expect(packets.Connack)
}

// connectOK connects with a token and fails unless accepted.
func (c *rawClient) connectOK(token string) {
	c.t.Helper()
	ack := c.connect(connectOpts{clientID: "c-" + token, username: token, clean: true})
	if ack.ReasonCode != 0 {
		c.t.Fatalf("connack %#x", ack.ReasonCode)
	}
}

func (c *rawClient) subscribe(qos byte, filters ...string) []byte {
	c.t.Helper()
	c.nextID++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: c.nextID}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	c.write(pk)
	return c.expect(packets.Suback).ReasonCodes
}

func (c *rawClient) publish(topic string, qos byte, payload string) uint16 {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: []byte(payload)}
	if qos > 0 {
		c.nextID++
		pk.PacketID = c.nextID
	}
	c.write(pk)
	return pk.PacketID
}

// publishAck publishes at QoS 1 and returns the PUBACK reason code.
func (c *rawClient) publishAck(topic, payload string) byte {
	c.t.Helper()
	id := c.publish(topic, 1, payload)
	ack := c.expect(packets.Puback)
	if ack.PacketID != id {
		c.t.Fatalf("puback id %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCode
}

// ping sends PINGREQ and returns the packets that arrived before PINGRESP.
// The server handles a connection's packets in order, so this proves what
// was (not) sent for earlier packets without any timing.
func (c *rawClient) ping() []packets.Packet {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	var got []packets.Packet
	for {
		pk := c.mustRead()
		if pk.FixedHeader.Type == packets.Pingresp {
			return got
		}
		got = append(got, pk)
	}
}

// expectPublish reads the next packet, which must be a PUBLISH on topic; it
// acknowledges QoS 1.
func (c *rawClient) expectPublish(topic string) packets.Packet {
	c.t.Helper()
	pk := c.expect(packets.Publish)
	if pk.TopicName != topic {
		c.t.Fatalf("publish on %q (%s), want %q", pk.TopicName, pk.Payload, topic)
	}
	if pk.FixedHeader.Qos == 1 {
		c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk
}

func (c *rawClient) disconnect() {
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = c.conn.Close()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	t.Cleanup(cancel)
	return ctx
}
