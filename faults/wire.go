package faults

import (
	"encoding/binary"
	"encoding/json"
)

// MQTT control packet types the suite looks at (MQTT 3.1.1 §2.2.1).
const (
	PacketConnect = 1
	PacketConnack = 2
	PacketPublish = 3
	PacketPuback  = 4
)

// Direction says which way a packet went through the proxy.
type Direction int

// Directions of a WireEvent.
const (
	ToServer Direction = iota // from the client to the broker
	ToClient                  // from the broker to the client
)

func (d Direction) String() string {
	if d == ToServer {
		return "to-server"
	}
	return "to-client"
}

// WireEvent is one MQTT packet the proxy forwards, reported just before it
// is written to the other side.
type WireEvent struct {
	Link int       // the proxied connection, numbered from 1 in accept order
	Gen  int       // the proxy's generation when the connection was made
	Dir  Direction // which way it went
	Type byte      // control packet type (PacketPublish, PacketPuback, ...)
	// For PUBLISH: QoS, topic and payload; PacketID for QoS > 0 and PUBACK.
	QoS      byte
	PacketID uint16
	Topic    string
	Payload  []byte
}

// packetReader splits one direction of an MQTT byte stream into packets.
// A stream that stops making sense (a remaining length over four bytes) is
// no longer parsed; the bytes are still forwarded.
type packetReader struct {
	buf    []byte
	broken bool
}

// feed adds bytes and calls emit for every complete packet, with its first
// header byte and its body (valid only during the call).
func (r *packetReader) feed(b []byte, emit func(header byte, body []byte)) {
	if r.broken {
		return
	}
	r.buf = append(r.buf, b...)
	off := 0
	for {
		rest := r.buf[off:]
		if len(rest) < 2 {
			break
		}
		n, mult, i := 0, 1, 1
		complete := false
		for i < len(rest) && i <= 4 {
			c := rest[i]
			n += int(c&0x7f) * mult
			mult *= 128
			i++
			if c&0x80 == 0 {
				complete = true
				break
			}
		}
		if !complete {
			if i > 4 {
				r.broken = true
				r.buf = nil
				return
			}
			break // the length is not all there yet
		}
		if len(rest) < i+n {
			break
		}
		emit(rest[0], rest[i:i+n])
		off += i + n
	}
	// Keep only the unparsed tail, in a buffer of its own.
	r.buf = append([]byte(nil), r.buf[off:]...)
}

// connectLevel returns the protocol level of a CONNECT packet's body (4
// for MQTT 3.1.1, 5 for MQTT 5), 0 when it is not one.
func connectLevel(header byte, body []byte) byte {
	if header>>4 != PacketConnect || len(body) < 2 {
		return 0
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+n+1 {
		return 0
	}
	return body[2+n]
}

// decode turns a packet into a WireEvent (without Link, Gen and Dir). v5
// says the connection speaks MQTT 5: a PUBLISH carries properties after
// its packet id.
func decode(header byte, body []byte, v5 bool) WireEvent {
	ev := WireEvent{Type: header >> 4}
	switch ev.Type {
	case PacketPublish:
		ev.QoS = (header >> 1) & 3
		if len(body) < 2 {
			return ev
		}
		tl := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+tl {
			return ev
		}
		ev.Topic = string(body[2 : 2+tl])
		p := body[2+tl:]
		if ev.QoS > 0 {
			if len(p) < 2 {
				return ev
			}
			ev.PacketID = binary.BigEndian.Uint16(p)
			p = p[2:]
		}
		if v5 {
			n, w := binary.Uvarint(p)
			if w <= 0 || n > uint64(len(p)-w) {
				return ev
			}
			p = p[w+int(n):]
		}
		ev.Payload = append([]byte(nil), p...)
	case PacketPuback:
		if len(body) >= 2 {
			ev.PacketID = binary.BigEndian.Uint16(body)
		}
	}
	return ev
}

// SeqOf reads the sequence number of a numbered telemetry payload:
// {"seq": n}, or the {"ts", "values": {"seq": n}} record the SDK sends when
// it stamps a record with the time it was accepted (or an array holding
// one such record).
func SeqOf(payload []byte) (int, bool) {
	var v struct {
		Seq    *int
		Values *struct{ Seq *int }
	}
	if json.Unmarshal(payload, &v) != nil {
		var arr []json.RawMessage
		if json.Unmarshal(payload, &arr) != nil || len(arr) != 1 {
			return 0, false
		}
		return SeqOf(arr[0])
	}
	switch {
	case v.Seq != nil:
		return *v.Seq, true
	case v.Values != nil && v.Values.Seq != nil:
		return *v.Values.Seq, true
	}
	return 0, false
}
