package modbus

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/goburrow/serial"
	mb "github.com/simonvetter/modbus"
)

// rtuServer answers RTU requests on a serial line (the library serves TCP
// only).
type rtuServer struct {
	s      *Server
	port   serial.Port
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
}

func startRTUServer(s *Server) (*rtuServer, error) {
	_, dev, _ := strings.Cut(s.cfg.URL, "://")
	parity := "N"
	switch s.cfg.Parity {
	case "even":
		parity = "E"
	case "odd":
		parity = "O"
	}
	speed, bits, stop := int(s.cfg.Speed), int(s.cfg.DataBits), int(s.cfg.StopBits)
	if speed == 0 {
		speed = 19200
	}
	if bits == 0 {
		bits = 8
	}
	if stop == 0 {
		stop = 1
		if parity == "N" {
			stop = 2
		}
	}
	p, err := serial.Open(&serial.Config{Address: dev, BaudRate: speed, DataBits: bits, Parity: parity, StopBits: stop, Timeout: 50 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	r := &rtuServer{s: s, port: p, done: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		defer r.port.Close()
		r.serve()
	}()
	return r, nil
}

func (r *rtuServer) close() {
	r.once.Do(func() { close(r.done) })
	<-r.exited // the reader sees done within its 50 ms read timeout
}

func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func (r *rtuServer) closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// reader reads bytes from the port, skipping its short read timeouts
// until the server closes.
type rtuReader struct{ r *rtuServer }

func (x rtuReader) Read(b []byte) (int, error) {
	for {
		select {
		case <-x.r.done:
			return 0, io.EOF
		default:
		}
		n, err := x.r.port.Read(b)
		if errors.Is(err, serial.ErrTimeout) {
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// serve reads requests: the length of each follows from its function code,
// so frames are found without timing the silence between them. A frame
// with a bad CRC or for another unit is dropped (another device answers
// it, or the master retries).
func (r *rtuServer) serve() {
	in := rtuReader{r}
	buf := make([]byte, 0, 260)
	for {
		buf = buf[:0]
		head := make([]byte, 2)
		if _, err := io.ReadFull(in, head); err != nil {
			return
		}
		buf = append(buf, head...)
		fc := head[1]
		var rest int
		switch fc {
		case 1, 2, 3, 4, 5, 6:
			rest = 4 + 2
		case 15, 16:
			hdr := make([]byte, 5)
			if _, err := io.ReadFull(in, hdr); err != nil {
				return
			}
			buf = append(buf, hdr...)
			rest = int(hdr[4]) + 2
		default:
			// Unknown function: resynchronise on the line's silence.
			r.drain()
			continue
		}
		body := make([]byte, rest)
		if _, err := io.ReadFull(in, body); err != nil {
			return
		}
		buf = append(buf, body...)
		n := len(buf)
		if crc16(buf[:n-2]) != binary.LittleEndian.Uint16(buf[n-2:]) {
			r.drain()
			continue
		}
		unit := buf[0]
		want := r.s.cfg.Unit
		if want == 0 {
			want = 1
		}
		if unit != want && unit != 0 {
			continue
		}
		resp := r.s.handlePDU(unit, buf[1:n-2])
		if unit == 0 || resp == nil {
			continue // broadcasts get no answer
		}
		frame := append([]byte{unit}, resp...)
		frame = binary.LittleEndian.AppendUint16(frame, crc16(frame))
		if _, err := r.port.Write(frame); err != nil {
			return
		}
	}
}

// drain drops what is on the line until it is silent.
func (r *rtuServer) drain() {
	b := make([]byte, 256)
	for {
		n, err := r.port.Read(b)
		if n == 0 || err != nil || r.closed() {
			return
		}
	}
}

func exceptionCode(err error) byte {
	switch {
	case errors.Is(err, mb.ErrIllegalFunction):
		return 1
	case errors.Is(err, mb.ErrIllegalDataAddress):
		return 2
	case errors.Is(err, mb.ErrIllegalDataValue):
		return 3
	case errors.Is(err, mb.ErrGWTargetFailedToRespond):
		return 11
	}
	return 4
}

// handlePDU serves one request PDU and returns the response PDU.
func (s *Server) handlePDU(unit uint8, p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	fc := p[0]
	ex := func(err error) []byte { return []byte{fc | 0x80, exceptionCode(err)} }
	if len(p) < 5 {
		return ex(mb.ErrIllegalDataValue)
	}
	addr, n := binary.BigEndian.Uint16(p[1:]), binary.BigEndian.Uint16(p[3:])
	switch fc {
	case 1, 2:
		if n == 0 || n > 2000 {
			return ex(mb.ErrIllegalDataValue)
		}
		f := Coil
		if fc == 2 {
			f = Discrete
		}
		bs, err := s.bitsOp(f, unit, addr, n, false, nil)
		if err != nil {
			return ex(err)
		}
		out := make([]byte, 2+(len(bs)+7)/8)
		out[0], out[1] = fc, byte((len(bs)+7)/8)
		for i, b := range bs {
			if b {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	case 3, 4:
		if n == 0 || n > 125 {
			return ex(mb.ErrIllegalDataValue)
		}
		f := Holding
		if fc == 4 {
			f = Input
		}
		ws, err := s.wordsOp(f, unit, addr, n, false, nil)
		if err != nil {
			return ex(err)
		}
		out := []byte{fc, byte(2 * len(ws))}
		for _, w := range ws {
			out = binary.BigEndian.AppendUint16(out, w)
		}
		return out
	case 5:
		if n != 0 && n != 0xFF00 {
			return ex(mb.ErrIllegalDataValue)
		}
		if _, err := s.bitsOp(Coil, unit, addr, 1, true, []bool{n == 0xFF00}); err != nil {
			return ex(err)
		}
		return append([]byte(nil), p[:5]...)
	case 6:
		if _, err := s.wordsOp(Holding, unit, addr, 1, true, []uint16{n}); err != nil {
			return ex(err)
		}
		return append([]byte(nil), p[:5]...)
	case 15, 16:
		if len(p) < 6 || len(p) != 6+int(p[5]) || n == 0 {
			return ex(mb.ErrIllegalDataValue)
		}
		data := p[6:]
		var err error
		if fc == 15 {
			if int(p[5]) != (int(n)+7)/8 {
				return ex(mb.ErrIllegalDataValue)
			}
			bs := make([]bool, n)
			for i := range bs {
				bs[i] = data[i/8]&(1<<(i%8)) != 0
			}
			_, err = s.bitsOp(Coil, unit, addr, n, true, bs)
		} else {
			if int(p[5]) != 2*int(n) {
				return ex(mb.ErrIllegalDataValue)
			}
			ws := make([]uint16, n)
			for i := range ws {
				ws[i] = binary.BigEndian.Uint16(data[2*i:])
			}
			_, err = s.wordsOp(Holding, unit, addr, n, true, ws)
		}
		if err != nil {
			return ex(err)
		}
		return append([]byte(nil), p[:5]...)
	}
	return ex(mb.ErrIllegalFunction)
}
