// Package opcuatest starts the node-opcua test server (peers/opcua, npm,
// installed by scripts/peers.sh) for the OPC UA connector's tests and
// benchmarks.
package opcuatest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
)

// Options configure the server.
type Options struct {
	// User and Password, when set, are a login the server accepts besides
	// anonymous ones.
	User, Password string
	// Tick is how often ns=1;s=Counter increases (default 100ms).
	Tick time.Duration
	// Fast is the number of Doubles ns=1;s=Fast0… that change every
	// FastTick (default 10ms).
	Fast     int
	FastTick time.Duration
}

// Server is a running node-opcua server. Stop and Start restart it on the
// same port (an outage).
type Server struct {
	t        testing.TB
	node     string
	args     []string
	Port     int
	Endpoint string // opc.tcp://127.0.0.1:port
	PKI      string // the server's PKI folder

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *strings.Builder
}

// Script returns the path of peers/opcua/server.js, failing or skipping
// the test (see internal/peers) when node or node-opcua is missing.
func Script(t testing.TB) (node, script string) {
	t.Helper()
	node = peers.Find(t, "node", "nodejs")
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	script = filepath.Join(dir, "peers", "opcua", "server.js")
	if _, err := os.Stat(filepath.Join(dir, "peers", "opcua", "node_modules", "node-opcua", "package.json")); err != nil {
		msg := "peer node-opcua not installed: run scripts/peers.sh (npm ci in peers/opcua)"
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, script
}

// Start starts a server on a free loopback port and waits until it
// listens. It is stopped when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	node, script := Script(t)
	if o.Tick == 0 {
		o.Tick = 100 * time.Millisecond
	}
	if o.FastTick == 0 {
		o.FastTick = 10 * time.Millisecond
	}
	port := peers.FreePort(t)
	pki := t.TempDir()
	args := []string{script, "--port", strconv.Itoa(port), "--pki", pki,
		"--tick", strconv.FormatInt(o.Tick.Milliseconds(), 10),
		"--fast", strconv.Itoa(o.Fast), "--fast-tick", strconv.FormatInt(o.FastTick.Milliseconds(), 10)}
	if o.User != "" {
		args = append(args, "--user", o.User, "--password", o.Password)
	}
	s := &Server{t: t, node: node, args: args, Port: port, PKI: pki,
		Endpoint: fmt.Sprintf("opc.tcp://127.0.0.1:%d", port)}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server again after Stop.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	var lastErr error
	// The port may still be in TIME_WAIT right after a Stop: try a few times.
	for range 5 {
		cmd := exec.Command(s.node, s.args...)
		logs := &strings.Builder{}
		cmd.Stderr = &lockedWriter{w: logs}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting node-opcua: %w", err)
		}
		ready := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "ready ") {
					ready <- nil
					_, _ = io.Copy(io.Discard, out)
					return
				}
			}
			ready <- errors.New("exited before listening")
		}()
		select {
		case err = <-ready:
		case <-time.After(60 * time.Second):
			err = errors.New("not ready within 60 s")
		}
		if err == nil {
			s.cmd, s.logs = cmd, logs
			return nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		lastErr = fmt.Errorf("node-opcua server on port %d: %w\n%s", s.Port, err, logs.String())
		time.Sleep(500 * time.Millisecond)
	}
	return lastErr
}

// Stop kills the server process (by its PID) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// ServerCertFile returns the path of the server's own certificate (PEM),
// for a client that pins it.
func (s *Server) ServerCertFile() string {
	matches, _ := filepath.Glob(filepath.Join(s.PKI, "server", "own", "certs", "*.pem"))
	if len(matches) == 0 {
		s.t.Fatalf("no server certificate under %s", s.PKI)
	}
	return matches[0]
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
