package modbus

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goburrow/serial"
	mb "github.com/simonvetter/modbus"
)

// asciiClient speaks Modbus ASCII framing (":" + hex of unit, PDU and LRC
// + CR LF), which github.com/simonvetter/modbus does not, over a serial
// line (ascii://) or a TCP socket (asciiovertcp://). It serves the same
// requests as the library's client and returns the library's errors, so
// the bus treats both alike.
type asciiClient struct {
	cfg     Config
	addr    string
	serial  bool
	unit    uint8
	port    io.ReadWriteCloser
	conn    net.Conn
	r       *bufio.Reader
	dr      *deadlineReader
	timeout time.Duration
}

// maxASCIIFrame bounds a frame: 1 + 2×(1 + 253 + 1) + 2 characters.
const maxASCIIFrame = 513

func newASCIIClient(cfg *Config) (client, error) {
	scheme, addr, _ := strings.Cut(cfg.URL, "://")
	return &asciiClient{cfg: *cfg, addr: addr, serial: scheme == "ascii", timeout: cfg.Timeout, unit: 1}, nil
}

func (c *asciiClient) Open() error {
	if c.serial {
		parity := "N"
		switch c.cfg.Parity {
		case "even":
			parity = "E"
		case "odd":
			parity = "O"
		}
		speed, bits, stop := int(c.cfg.Speed), int(c.cfg.DataBits), int(c.cfg.StopBits)
		if speed == 0 {
			speed = 19200
		}
		if bits == 0 {
			bits = 7 // the ASCII mode's usual character
		}
		if stop == 0 {
			stop = 1
			if parity == "N" {
				stop = 2
			}
		}
		p, err := serial.Open(&serial.Config{Address: c.addr, BaudRate: speed, DataBits: bits, Parity: parity, StopBits: stop, Timeout: 10 * time.Millisecond})
		if err != nil {
			return err
		}
		c.port = p
		c.dr = &deadlineReader{p: p}
		c.r = bufio.NewReader(c.dr)
		return nil
	}
	conn, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	c.conn, c.port = conn, conn
	c.r = bufio.NewReader(conn)
	return nil
}

// deadlineReader turns the serial port's short read timeouts into one
// request timeout.
type deadlineReader struct {
	p        io.Reader
	deadline time.Time
}

func (d *deadlineReader) Read(b []byte) (int, error) {
	for {
		if time.Now().After(d.deadline) {
			return 0, mb.ErrRequestTimedOut
		}
		n, err := d.p.Read(b)
		if errors.Is(err, serial.ErrTimeout) {
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (c *asciiClient) Close() error {
	if c.port == nil {
		return nil
	}
	err := c.port.Close()
	c.port, c.conn, c.dr = nil, nil, nil
	return err
}

func (c *asciiClient) SetUnitId(id uint8) error { c.unit = id; return nil }

func lrc(b []byte) byte {
	var s byte
	for _, x := range b {
		s += x
	}
	return -s
}

// do sends one request PDU and returns the answer's payload (after the
// function code).
func (c *asciiClient) do(fc byte, payload []byte) ([]byte, error) {
	if c.port == nil {
		return nil, errors.New("ascii link is closed")
	}
	frame := append([]byte{c.unit, fc}, payload...)
	frame = append(frame, lrc(frame))
	out := ":" + strings.ToUpper(hex.EncodeToString(frame)) + "\r\n"
	deadline := time.Now().Add(c.timeout)
	if c.conn != nil {
		_ = c.conn.SetDeadline(deadline)
	} else {
		c.dr.deadline = deadline
		c.r.Reset(c.dr) // a stale partial frame goes
	}
	if _, err := io.WriteString(c.port, out); err != nil {
		return nil, err
	}
	for {
		line, err := c.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, mb.ErrRequestTimedOut
			}
			return nil, err
		}
		b, err := hex.DecodeString(line)
		if err != nil || len(b) < 3 {
			return nil, mb.ErrProtocolError
		}
		if lrc(b[:len(b)-1]) != b[len(b)-1] {
			return nil, mb.ErrBadCRC
		}
		b = b[:len(b)-1]
		if b[0] != c.unit {
			if c.unit == 0 {
				continue
			}
			return nil, mb.ErrBadUnitId
		}
		switch b[1] {
		case fc:
			return b[2:], nil
		case fc | 0x80:
			if len(b) < 3 {
				return nil, mb.ErrProtocolError
			}
			return nil, exceptionError(b[2])
		}
		return nil, mb.ErrProtocolError
	}
}

// readFrame reads up to the next CR LF after a ':' and returns the hex
// between them, never more than maxASCIIFrame characters.
func (c *asciiClient) readFrame() (string, error) {
	var sb strings.Builder
	started := false
	for {
		ch, err := c.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case ch == ':':
			started = true
			sb.Reset()
		case !started:
		case ch == '\r':
		case ch == '\n':
			return sb.String(), nil
		default:
			if sb.Len() >= maxASCIIFrame {
				return "", mb.ErrProtocolError
			}
			sb.WriteByte(ch)
		}
	}
}

func exceptionError(code byte) error {
	switch code {
	case 1:
		return mb.ErrIllegalFunction
	case 2:
		return mb.ErrIllegalDataAddress
	case 3:
		return mb.ErrIllegalDataValue
	case 4:
		return mb.ErrServerDeviceFailure
	case 5:
		return mb.ErrAcknowledge
	case 6:
		return mb.ErrServerDeviceBusy
	case 8:
		return mb.ErrMemoryParityError
	case 10:
		return mb.ErrGWPathUnavailable
	case 11:
		return mb.ErrGWTargetFailedToRespond
	}
	return fmt.Errorf("%w: exception %d", mb.ErrProtocolError, code)
}

func u16(a, b uint16) []byte {
	out := make([]byte, 4)
	binary.BigEndian.PutUint16(out, a)
	binary.BigEndian.PutUint16(out[2:], b)
	return out
}

func (c *asciiClient) readBits(fc byte, addr, n uint16) ([]bool, error) {
	p, err := c.do(fc, u16(addr, n))
	if err != nil {
		return nil, err
	}
	if len(p) < 1 || int(p[0]) != (int(n)+7)/8 || len(p) != 1+int(p[0]) {
		return nil, mb.ErrProtocolError
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = p[1+i/8]&(1<<(i%8)) != 0
	}
	return out, nil
}

func (c *asciiClient) ReadCoils(addr, n uint16) ([]bool, error) { return c.readBits(1, addr, n) }
func (c *asciiClient) ReadDiscreteInputs(addr, n uint16) ([]bool, error) {
	return c.readBits(2, addr, n)
}

func (c *asciiClient) ReadRegisters(addr, n uint16, t mb.RegType) ([]uint16, error) {
	fc := byte(3)
	if t == mb.INPUT_REGISTER {
		fc = 4
	}
	p, err := c.do(fc, u16(addr, n))
	if err != nil {
		return nil, err
	}
	if len(p) < 1 || int(p[0]) != 2*int(n) || len(p) != 1+2*int(n) {
		return nil, mb.ErrProtocolError
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(p[1+2*i:])
	}
	return out, nil
}

func (c *asciiClient) ReadRegister(addr uint16, t mb.RegType) (uint16, error) {
	w, err := c.ReadRegisters(addr, 1, t)
	if err != nil {
		return 0, err
	}
	return w[0], nil
}

func (c *asciiClient) WriteCoil(addr uint16, v bool) error {
	val := uint16(0)
	if v {
		val = 0xFF00
	}
	_, err := c.do(5, u16(addr, val))
	return err
}

func (c *asciiClient) WriteCoils(addr uint16, vs []bool) error {
	p := u16(addr, uint16(len(vs)))
	bs := make([]byte, (len(vs)+7)/8)
	for i, v := range vs {
		if v {
			bs[i/8] |= 1 << (i % 8)
		}
	}
	p = append(append(p, byte(len(bs))), bs...)
	_, err := c.do(15, p)
	return err
}

func (c *asciiClient) WriteRegister(addr uint16, v uint16) error {
	_, err := c.do(6, u16(addr, v))
	return err
}

func (c *asciiClient) WriteRegisters(addr uint16, vs []uint16) error {
	p := u16(addr, uint16(len(vs)))
	p = append(p, byte(2*len(vs)))
	for _, v := range vs {
		p = binary.BigEndian.AppendUint16(p, v)
	}
	_, err := c.do(16, p)
	return err
}
