package faults

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// publishPacket builds an MQTT 3.1.1 PUBLISH (QoS 1) with a remaining length
// of two bytes or more when the payload is large.
func publishPacket(topic string, id uint16, payload []byte) []byte {
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	body = append(body, byte(id>>8), byte(id))
	body = append(body, payload...)
	out := []byte{PacketPublish<<4 | 1<<1}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func TestPacketReaderSplitsAnyChunking(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300) // two-byte remaining length
	stream := append(publishPacket("a/b", 7, []byte(`{"seq":1}`)), publishPacket("c", 9, big)...)
	stream = append(stream, PacketPuback<<4, 2, 0, 7)
	for _, chunk := range []int{1, 2, 3, 5, len(stream)} {
		var r packetReader
		var got []WireEvent
		for i := 0; i < len(stream); i += chunk {
			end := min(i+chunk, len(stream))
			r.feed(stream[i:end], func(h byte, body []byte) { got = append(got, decode(h, body, false)) })
		}
		if len(got) != 3 {
			t.Fatalf("chunk %d: %d packets, want 3", chunk, len(got))
		}
		if got[0].Type != PacketPublish || got[0].Topic != "a/b" || got[0].PacketID != 7 || got[0].QoS != 1 || string(got[0].Payload) != `{"seq":1}` {
			t.Errorf("chunk %d: first packet %+v", chunk, got[0])
		}
		if got[1].Topic != "c" || got[1].PacketID != 9 || !bytes.Equal(got[1].Payload, big) {
			t.Errorf("chunk %d: second packet topic %q id %d payload %d bytes", chunk, got[1].Topic, got[1].PacketID, len(got[1].Payload))
		}
		if got[2].Type != PacketPuback || got[2].PacketID != 7 {
			t.Errorf("chunk %d: third packet %+v", chunk, got[2])
		}
	}
	var r packetReader
	n := 0
	r.feed([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, func(byte, []byte) { n++ })
	if !r.broken || n != 0 {
		t.Errorf("a five-byte remaining length must stop parsing: broken=%v packets=%d", r.broken, n)
	}
}

// echoServer answers every byte it reads with the same byte and counts them.
type echoServer struct {
	ln net.Listener
	mu sync.Mutex
	n  int
}

func newEchoServer(t *testing.T) *echoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						e.mu.Lock()
						e.n += n
						e.mu.Unlock()
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return e
}

func (e *echoServer) received() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func TestProxyForwardsStallsAndObserves(t *testing.T) {
	echo := newEchoServer(t)
	p, err := NewProxy(echo.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var events []WireEvent
	p.Observe(func(ev WireEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	p.SetGeneration(3)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pk := publishPacket("v1/devices/me/telemetry", 42, []byte(`{"seq":5}`))
	if _, err := c.Write(pk); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(pk))
	if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, pk) {
		t.Fatalf("echo through the proxy: %v %x", err, back)
	}
	// The echo comes back as a PUBLISH too: one event each way.
	eventually(t, 10*time.Second, "both packets observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 2
	})
	mu.Lock()
	for _, ev := range events {
		if ev.Link != 1 || ev.Gen != 3 || ev.Type != PacketPublish || ev.PacketID != 42 || string(ev.Payload) != `{"seq":5}` {
			t.Errorf("event %+v", ev)
		}
	}
	if events[0].Dir != ToServer || events[1].Dir != ToClient {
		t.Errorf("directions %v then %v", events[0].Dir, events[1].Dir)
	}
	mu.Unlock()

	// Stalled: bytes written are not forwarded and nothing comes back,
	// and the connection stays open.
	before := echo.received()
	p.Hold()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during a stall: %d bytes, %v", n, err)
	}
	if got := echo.received(); got != before {
		t.Fatalf("%d bytes reached the server during the stall", got-before)
	}
	// A connection made during the stall is accepted and held too.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	p.Release()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after the stall: %q %v", got, err)
	}
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	got2 := make([]byte, 6)
	if _, err := io.ReadFull(c2, got2); err != nil || string(got2) != "second" {
		t.Fatalf("connection made during the stall: %q %v", got2, err)
	}

	// Stall(d) resumes by itself.
	<-p.Stall(50 * time.Millisecond)
	if _, err := c.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got[:1]); err != nil || got[0] != 'z' {
		t.Fatalf("after Stall(d): %q %v", got[:1], err)
	}

	// Refusing: new connections are closed at once.
	p.Refuse(true)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c3.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("refused connection: read error %v, want it closed", err)
	}
	if p.Connections() != 3 {
		t.Errorf("Connections() = %d, want 3", p.Connections())
	}
}
