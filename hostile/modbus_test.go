package hostile

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/modbus"
)

// A reply builder gets the request's transaction id and unit and returns
// the bytes to send back; nil sends nothing.
type replyFn func(tid uint16, unit byte) []byte

func mbap(tid, proto, length uint16, unit byte, pdu ...byte) []byte {
	b := make([]byte, 7, 7+len(pdu))
	binary.BigEndian.PutUint16(b[0:], tid)
	binary.BigEndian.PutUint16(b[2:], proto)
	binary.BigEndian.PutUint16(b[4:], length)
	b[6] = unit
	return append(b, pdu...)
}

func modbusCorpus() map[string]replyFn {
	return map[string]replyFn{
		"valid reply":          func(t uint16, u byte) []byte { return mbap(t, 0, 5, u, 3, 2, 0x12, 0x34) },
		"wrong transaction id": func(t uint16, u byte) []byte { return mbap(t+7, 0, 5, u, 3, 2, 0, 1) },
		"wrong protocol id":    func(t uint16, u byte) []byte { return mbap(t, 9, 5, u, 3, 2, 0, 1) },
		"length 0":             func(t uint16, u byte) []byte { return mbap(t, 0, 0, u) },
		"length 65535":         func(t uint16, u byte) []byte { return mbap(t, 0, 65535, u, 3, 2, 0, 1) },
		"header only":          func(t uint16, u byte) []byte { return mbap(t, 0, 5, u) },
		"exception 0xff":       func(t uint16, u byte) []byte { return mbap(t, 0, 3, u, 0x83, 0xff) },
		"illegal data address": func(t uint16, u byte) []byte { return mbap(t, 0, 3, u, 0x83, 2) },
		"other function":       func(t uint16, u byte) []byte { return mbap(t, 0, 5, u, 4, 2, 0, 1) },
		"byte count too large": func(t uint16, u byte) []byte { return mbap(t, 0, 5, u, 3, 200, 0, 1) },
		"odd byte count":       func(t uint16, u byte) []byte { return mbap(t, 0, 4, u, 3, 1, 0) },
		"zero byte count":      func(t uint16, u byte) []byte { return mbap(t, 0, 3, u, 3, 0) },
		"other unit":           func(t uint16, u byte) []byte { return mbap(t, 0, 5, u+1, 3, 2, 0, 1) },
		"253 bytes of data": func(t uint16, u byte) []byte {
			return mbap(t, 0, 256, u, append([]byte{3, 253}, make([]byte, 253)...)...)
		},
		"garbage":           func(uint16, byte) []byte { return []byte("HTTP/1.1 400 Bad Request\r\n\r\n") },
		"extra bytes after": func(t uint16, u byte) []byte { return append(mbap(t, 0, 5, u, 3, 2, 0, 1), 0xde, 0xad) },
		"silence":           func(uint16, byte) []byte { return nil },
		"close at once":     func(uint16, byte) []byte { return []byte{} },
		"two replies": func(t uint16, u byte) []byte {
			return append(mbap(t, 0, 5, u, 3, 2, 0, 1), mbap(t, 0, 5, u, 3, 2, 0, 2)...)
		},
		"length beyond the pdu": func(t uint16, u byte) []byte { return mbap(t, 0, 300, u, 3, 2, 0, 1) },
	}
}

// fakeUnit is a Modbus TCP server answering every request with reply.
type fakeUnit struct {
	ln    net.Listener
	reply replyFn
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newFakeUnit(t *testing.T, reply replyFn) *fakeUnit {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUnit{ln: ln, reply: reply}
	f.wg.Go(f.accept)
	return f
}

func (f *fakeUnit) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Go(func() { f.serve(c) })
	}
}

func (f *fakeUnit) serve(c net.Conn) {
	defer c.Close()
	for {
		hdr := make([]byte, 7)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[4:]))
		if n < 1 || n > 260 {
			return
		}
		if _, err := io.ReadFull(c, make([]byte, n-1)); err != nil {
			return
		}
		out := f.reply(binary.BigEndian.Uint16(hdr), hdr[6])
		if out != nil && len(out) == 0 {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func (f *fakeUnit) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func runModbus(t *testing.T, tl *Tally) {
	for name, reply := range modbusCorpus() {
		f := newFakeUnit(t, reply)
		bus, err := modbus.NewBus(modbus.Config{URL: "tcp://" + f.ln.Addr().String(), Timeout: 300 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		results := make(chan modbus.Result, 100)
		var o Outcome
		var detail string
		done, pan := within(15*time.Second, func() {
			if err := bus.Start(); err != nil {
				o, detail = Crashed, err.Error()
				return
			}
			_, err := bus.AddPoller(modbus.PollConfig{Unit: 1, Period: 50 * time.Millisecond, Registers: []modbus.Register{{Key: "a", Function: modbus.Holding, Address: 0}}},
				func(r modbus.Result) {
					select {
					case results <- r:
					default:
					}
				})
			if err != nil {
				o, detail = Crashed, err.Error()
				return
			}
			// Three polls: the bus must keep polling after a bad reply.
			for i := range 3 {
				select {
				case r := <-results:
					switch {
					case r.Err != nil || len(r.Errors) > 0:
						if o < Clear {
							o = Clear
						}
					case r.Values["a"] != nil:
					default:
						o, detail = Crashed, fmt.Sprintf("a result with neither values nor errors: %+v", r)
						return
					}
				case <-time.After(5 * time.Second):
					o, detail = Hung, fmt.Sprintf("no poll result %d in 5s", i+1)
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := bus.Close(ctx); err != nil {
				o, detail = Hung, err.Error()
			}
		})
		switch {
		case pan != nil:
			tl.Add("modbus-replies", name, Crashed, fmt.Sprint(pan))
		case !done:
			tl.Add("modbus-replies", name, Hung, "no end in 15s")
		default:
			tl.Add("modbus-replies", name, o, detail)
		}
		f.close()
	}
}
