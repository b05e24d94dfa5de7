package modbustest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
)

// Python is Debian's own interpreter, the one python3-pymodbus installs
// into.
const Python = "/usr/bin/python3"

// Tables are one unit's four tables, from address 0.
type Tables struct {
	Coils    []bool   `json:"coils"`
	Discrete []bool   `json:"discrete"`
	Holding  []uint16 `json:"holding"`
	Input    []uint16 `json:"input"`
}

// Spec describes a pymodbus server.
type Spec struct {
	// Transport is tcp (default), udp, rtu, ascii (serial, on a socat
	// pty pair), rtuovertcp, rtuoverudp or asciiovertcp.
	Transport string `json:"transport"`
	// Units are the units that answer; any other unit id never answers.
	Units map[uint8]Tables `json:"-"`
	// MaxRegisters, when set, makes the device refuse reads of more
	// registers (or bits) with "illegal data address", as many meters do.
	MaxRegisters int `json:"maxRegisters"`
	// Builder, when set, is Python code run with `units` (unit id → a dict
	// of the four lists) and pymodbus's BinaryPayloadBuilder and Endian in
	// scope before the server starts; it may fill the tables.
	Builder string `json:"builder"`
}

// Server is a running pymodbus server.
type Server struct {
	t    testing.TB
	spec Spec
	dir  string
	// Addr is host:port for the socket transports; Device the serial
	// device the client opens for rtu and ascii.
	Addr   string
	Device string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *strings.Builder
	port int
	pty  *exec.Cmd
}

const serverPy = `
import json, sys, logging, asyncio
logging.basicConfig(level=logging.ERROR)
from pymodbus.server import StartTcpServer, StartUdpServer, StartSerialServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
from pymodbus.transaction import ModbusRtuFramer, ModbusAsciiFramer
from pymodbus.payload import BinaryPayloadBuilder
from pymodbus.constants import Endian
spec = json.load(open(sys.argv[1]))
units = {int(k): v for k, v in spec["units"].items()}
for u in units.values():
    for k in ("coils", "discrete", "holding", "input"):
        if u.get(k) is None: u[k] = []
exec(spec.get("builder") or "")
cap = spec.get("maxRegisters") or 0
class Block(ModbusSequentialDataBlock):
    def validate(self, address, count=1):
        if cap and count > cap:
            return False
        return super().validate(address, count)
def pad(xs, zero):
    return list(xs) + [zero] * (1000 - len(xs)) if len(xs) < 1000 else list(xs)
def unit(t):
    return ModbusSlaveContext(
        co=Block(0, pad(t.get("coils") or [], False)),
        di=Block(0, pad(t.get("discrete") or [], False)),
        hr=Block(0, pad(t.get("holding") or [], 0)),
        ir=Block(0, pad(t.get("input") or [], 0)),
        zero_mode=True)
ctx = ModbusServerContext(slaves={k: unit(v) for k, v in units.items()}, single=False)
tr = spec.get("transport") or "tcp"
addr = ("127.0.0.1", int(sys.argv[2]))
print("ready", flush=True)
if tr == "tcp":
    StartTcpServer(context=ctx, address=addr, ignore_missing_slaves=True)
elif tr == "rtuovertcp":
    StartTcpServer(context=ctx, address=addr, framer=ModbusRtuFramer, ignore_missing_slaves=True)
elif tr == "asciiovertcp":
    StartTcpServer(context=ctx, address=addr, framer=ModbusAsciiFramer, ignore_missing_slaves=True)
elif tr == "udp":
    StartUdpServer(context=ctx, address=addr, ignore_missing_slaves=True)
elif tr == "rtuoverudp":
    StartUdpServer(context=ctx, address=addr, framer=ModbusRtuFramer, ignore_missing_slaves=True)
elif tr in ("rtu", "ascii"):
    StartSerialServer(context=ctx, port=sys.argv[3], framer=ModbusRtuFramer if tr == "rtu" else ModbusAsciiFramer,
                      baudrate=19200, ignore_missing_slaves=True)
`

// usable fails or skips the test when pymodbus is missing.
func usable(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import pymodbus.server, pymodbus.payload, serial").Run(); err != nil {
		msg := fmt.Sprintf("peer pymodbus not usable (%v): install it with apt-get install python3-pymodbus python3-serial python3-serial-asyncio (make test does this as root)", err)
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// Start starts a pymodbus server as spec says and stops it when the test
// ends.
func Start(t testing.TB, spec Spec) *Server {
	t.Helper()
	usable(t)
	if spec.Transport == "" {
		spec.Transport = "tcp"
	}
	s := &Server{t: t, spec: spec, dir: t.TempDir()}
	units := map[string]Tables{}
	for id, tb := range spec.Units {
		units[fmt.Sprint(id)] = tb
	}
	doc := map[string]any{"transport": spec.Transport, "units": units, "maxRegisters": spec.MaxRegisters,
		"builder": spec.Builder}
	data, _ := json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(s.dir, "spec.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "server.py"), []byte(serverPy), 0o600); err != nil {
		t.Fatal(err)
	}
	switch spec.Transport {
	case "rtu", "ascii":
		s.startPty()
	default:
		s.port = peers.FreePort(t)
		s.Addr = fmt.Sprintf("127.0.0.1:%d", s.port)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// startPty links two pseudo-terminals with socat: pymodbus serves one end,
// the client opens the other (Device).
func (s *Server) startPty() {
	a, b, cmd := ptyPair(s.t, s.dir)
	s.pty = cmd
	_ = a
	s.Device = b
}

// PtyPair links two pseudo-terminals with socat (a null-modem cable) and
// returns their paths; it goes when the test ends.
func PtyPair(t testing.TB) (a, b string) {
	t.Helper()
	a, b, _ = ptyPair(t, t.TempDir())
	return a, b
}

func ptyPair(t testing.TB, dir string) (a, b string, cmd *exec.Cmd) {
	t.Helper()
	socat := peers.Find(t, "socat", "socat")
	a, b = filepath.Join(dir, "server-tty"), filepath.Join(dir, "client-tty")
	cmd = exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return a, b, cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("socat made no pty pair")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Start (re)starts the server process, on the same port or pty.
func (s *Server) Start() {
	t := s.t
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	args := []string{filepath.Join(s.dir, "server.py"), filepath.Join(s.dir, "spec.json"), fmt.Sprint(s.port)}
	if s.pty != nil {
		args = append(args, filepath.Join(s.dir, "server-tty"))
	}
	cmd := exec.Command(Python, args...)
	out := &strings.Builder{}
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan struct{})
	var omu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			omu.Lock()
			out.WriteString(sc.Text() + "\n")
			omu.Unlock()
			if !once && sc.Text() == "ready" {
				once = true
				close(ready)
			}
		}
	}()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.out = cmd, done, out
	select {
	case <-ready:
	case <-done:
		omu.Lock()
		defer omu.Unlock()
		t.Fatalf("pymodbus server exited: %s", out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("pymodbus server did not start")
	}
	if s.pty != nil || strings.HasSuffix(s.spec.Transport, "udp") {
		time.Sleep(300 * time.Millisecond) // it opens the port right after "ready"
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("pymodbus server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pymodbus server did not listen on %s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server process (a device that goes away); Start brings
// it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// URL is the bus URL that reaches the server.
func (s *Server) URL() string {
	switch s.spec.Transport {
	case "rtu", "ascii":
		return s.spec.Transport + "://" + s.Device
	}
	return s.spec.Transport + "://" + s.Addr
}

// Mbpoll runs mbpoll (libmodbus) with args against the server's TCP
// address and returns its output.
func Mbpoll(t testing.TB, args ...string) string {
	t.Helper()
	bin := peers.Find(t, "mbpoll", "mbpoll")
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// MbpollTry runs mbpoll like Mbpoll but returns its output whether it
// failed or not (to see an exception it reports).
func MbpollTry(t testing.TB, args ...string) string {
	t.Helper()
	bin := peers.Find(t, "mbpoll", "mbpoll")
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return string(out)
}
