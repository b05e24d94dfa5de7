package modbus

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// ServerConfig configures a Server: tbflow as a Modbus device (slave).
type ServerConfig struct {
	// URL is where to serve: tcp://host:port, tcp+tls://host:port, or
	// rtu:///dev/ttyS0 (a serial line).
	URL string
	// Serial line settings (rtu), as in Config.
	Speed    uint
	DataBits uint
	Parity   string
	StopBits uint
	// TLS (tcp+tls): the server's key pair and the CAs that authenticate
	// clients.
	TLSServerCert *tls.Certificate
	TLSClientCAs  *x509.CertPool
	// Unit is the unit id answered; 0 answers every unit id on TCP (on a
	// serial line 0 means 1: a device needs an address there).
	Unit uint8
	// Registers map the served values: what Set writes and what a client's
	// write is reported as. Addresses no entry covers answer "illegal data
	// address".
	Registers []Register
	// MaxClients bounds concurrent TCP clients (default 10); Timeout closes
	// idle ones (default 5 minutes).
	MaxClients uint
	Timeout    time.Duration
	// OnWrite is called after a client wrote coils or holding registers,
	// with the decoded values of the entries the write touched. It must not
	// block.
	OnWrite func(values map[string]any)
}

// Server serves a register map to Modbus clients (a SCADA, say) and holds
// the values the flow sets.
type Server struct {
	cfg   ServerConfig
	regs  map[string]*Register
	order []*Register

	mu    sync.Mutex
	bits  map[Function]map[uint16]bool
	words map[Function]map[uint16]uint16

	tcp *mb.ModbusServer
	rtu *rtuServer
}

// NewServer checks cfg; it does no I/O until Start.
func NewServer(cfg ServerConfig) (*Server, error) {
	regs := append([]Register(nil), cfg.Registers...)
	if err := CheckMap(regs); err != nil {
		return nil, err
	}
	scheme, _, ok := strings.Cut(cfg.URL, "://")
	if !ok || (scheme != "tcp" && scheme != "tcp+tls" && scheme != "rtu") {
		return nil, fmt.Errorf("modbus server url %q: want tcp://host:port, tcp+tls://host:port or rtu:///dev/tty…", cfg.URL)
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	s := &Server{cfg: cfg, regs: map[string]*Register{},
		bits:  map[Function]map[uint16]bool{Coil: {}, Discrete: {}},
		words: map[Function]map[uint16]uint16{Holding: {}, Input: {}}}
	for i := range regs {
		r := &regs[i]
		s.regs[r.Key] = r
		s.order = append(s.order, r)
		for a := int(r.Address); a < int(r.Address)+r.Count(); a++ {
			if r.Function.IsBit() {
				s.bits[r.Function][uint16(a)] = false
			} else {
				s.words[r.Function][uint16(a)] = 0
			}
		}
	}
	return s, nil
}

// Start starts serving.
func (s *Server) Start() error {
	if strings.HasPrefix(s.cfg.URL, "rtu://") {
		r, err := startRTUServer(s)
		if err != nil {
			return err
		}
		s.rtu = r
		return nil
	}
	srv, err := mb.NewServer(&mb.ServerConfiguration{URL: s.cfg.URL, Timeout: s.cfg.Timeout, MaxClients: s.cfg.MaxClients,
		TLSServerCert: s.cfg.TLSServerCert, TLSClientCAs: s.cfg.TLSClientCAs, Logger: log.New(io.Discard, "", 0)}, s)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	s.tcp = srv
	return nil
}

// Close stops serving.
func (s *Server) Close() error {
	if s.tcp != nil {
		_ = s.tcp.Stop()
		s.tcp = nil
	}
	if s.rtu != nil {
		s.rtu.close()
		s.rtu = nil
	}
	return nil
}

// Set stores v as the value of the entry key, encoded as the entry says.
func (s *Server) Set(key string, v any) error {
	r, ok := s.regs[key]
	if !ok {
		return fmt.Errorf("no register entry has the key %q", key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Function.IsBit() && r.Type == Bits:
		list, ok := v.([]any)
		if !ok || len(list) > r.Length {
			return fmt.Errorf("setting %q: want a list of at most %d bools", key, r.Length)
		}
		for i, x := range list {
			b, err := EncodeBool(r, x)
			if err != nil {
				return err
			}
			s.bits[r.Function][r.Address+uint16(i)] = b
		}
	case r.Function.IsBit():
		b, err := EncodeBool(r, v)
		if err != nil {
			return err
		}
		s.bits[r.Function][r.Address] = b
	case r.Type == Bit:
		w, err := EncodeBit(r, s.words[r.Function][r.Address], v)
		if err != nil {
			return err
		}
		s.words[r.Function][r.Address] = w
	default:
		ws, err := Encode(r, v)
		if err != nil {
			return err
		}
		for i, w := range ws {
			s.words[r.Function][r.Address+uint16(i)] = w
		}
	}
	return nil
}

// Get returns the decoded value of the entry key.
func (s *Server) Get(key string) (any, error) {
	r, ok := s.regs[key]
	if !ok {
		return nil, fmt.Errorf("no register entry has the key %q", key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.decodeLocked(r)
}

func (s *Server) decodeLocked(r *Register) (any, error) {
	if r.Function.IsBit() {
		bs := make([]bool, r.Count())
		for i := range bs {
			bs[i] = s.bits[r.Function][r.Address+uint16(i)]
		}
		if r.Count() == 1 && r.Compat == Native {
			return DecodeBit(r, bs[0]), nil
		}
		return DecodeBits(r, bs), nil
	}
	ws := make([]uint16, r.Count())
	for i := range ws {
		ws[i] = s.words[r.Function][r.Address+uint16(i)]
	}
	return Decode(r, ws)
}

func (s *Server) unitOK(id uint8) error {
	if s.cfg.Unit == 0 || id == s.cfg.Unit {
		return nil
	}
	return mb.ErrGWTargetFailedToRespond
}

// touched reports the decoded values of the entries a write to
// [addr, addr+n) of f covers.
func (s *Server) touchedLocked(f Function, addr, n uint16) map[string]any {
	out := map[string]any{}
	for _, r := range s.order {
		if r.Function != f || int(r.Address) >= int(addr)+int(n) || int(r.Address)+r.Count() <= int(addr) {
			continue
		}
		if v, err := s.decodeLocked(r); err == nil {
			out[r.Key] = v
		}
	}
	return out
}

func (s *Server) notify(vals map[string]any) {
	if s.cfg.OnWrite != nil && len(vals) > 0 {
		s.cfg.OnWrite(vals)
	}
}

func (s *Server) bitsOp(f Function, unit uint8, addr, n uint16, write bool, args []bool) ([]bool, error) {
	if err := s.unitOK(unit); err != nil {
		return nil, err
	}
	s.mu.Lock()
	tbl := s.bits[f]
	for a := uint32(addr); a < uint32(addr)+uint32(n); a++ {
		if _, ok := tbl[uint16(a)]; !ok {
			s.mu.Unlock()
			return nil, mb.ErrIllegalDataAddress
		}
	}
	if write {
		for i, b := range args {
			tbl[addr+uint16(i)] = b
		}
		vals := s.touchedLocked(f, addr, n)
		s.mu.Unlock()
		s.notify(vals)
		return nil, nil
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = tbl[addr+uint16(i)]
	}
	s.mu.Unlock()
	return out, nil
}

func (s *Server) wordsOp(f Function, unit uint8, addr, n uint16, write bool, args []uint16) ([]uint16, error) {
	if err := s.unitOK(unit); err != nil {
		return nil, err
	}
	s.mu.Lock()
	tbl := s.words[f]
	for a := uint32(addr); a < uint32(addr)+uint32(n); a++ {
		if _, ok := tbl[uint16(a)]; !ok {
			s.mu.Unlock()
			return nil, mb.ErrIllegalDataAddress
		}
	}
	if write {
		for i, w := range args {
			tbl[addr+uint16(i)] = w
		}
		vals := s.touchedLocked(f, addr, n)
		s.mu.Unlock()
		s.notify(vals)
		return nil, nil
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = tbl[addr+uint16(i)]
	}
	s.mu.Unlock()
	return out, nil
}

// HandleCoils serves FC 1, 5 and 15 (for the library's server).
func (s *Server) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	return s.bitsOp(Coil, req.UnitId, req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleDiscreteInputs serves FC 2.
func (s *Server) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	return s.bitsOp(Discrete, req.UnitId, req.Addr, req.Quantity, false, nil)
}

// HandleHoldingRegisters serves FC 3, 6 and 16.
func (s *Server) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	return s.wordsOp(Holding, req.UnitId, req.Addr, req.Quantity, req.IsWrite, req.Args)
}

// HandleInputRegisters serves FC 4.
func (s *Server) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return s.wordsOp(Input, req.UnitId, req.Addr, req.Quantity, false, nil)
}
