// Package peers starts the real third-party programs (Debian's mosquitto, …)
// that the full test suite runs against, and decides what a test does when
// one is missing: with TBFLOW_REQUIRE_PEERS=1 or CI=true it fails, otherwise
// it skips naming the package to install.
package peers

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Required reports whether a missing peer is a failure rather than a skip.
func Required() bool {
	return os.Getenv("TBFLOW_REQUIRE_PEERS") == "1" || os.Getenv("CI") == "true"
}

// Find returns the path of a peer program, looking on PATH and in the
// given extra directories. When it is missing the test fails (peers
// required) or skips, naming the Debian package.
func Find(t testing.TB, program, debianPackage string, extraDirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, d := range extraDirs {
		p := filepath.Join(d, program)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	msg := fmt.Sprintf("peer %q not found: install it with apt-get install %s (make test does this as root)", program, debianPackage)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Mosquitto is a broker process started for one test. Stop and Start
// restart it on the same port (a broker outage).
type Mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	Port int
	Addr string // 127.0.0.1:port

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// MosquittoConfig is extra configuration appended after the listener line
// (TLS files, for example). Empty means anonymous plain MQTT.
type MosquittoConfig struct {
	// Persistent keeps sessions and queued messages across a graceful
	// restart (StopGraceful then Start).
	Persistent bool
	Extra      string
}

// StartMosquitto starts Debian's mosquitto on a free loopback port with
// anonymous access. It is stopped when the test ends.
func StartMosquitto(t testing.TB, cfg MosquittoConfig) *Mosquitto {
	t.Helper()
	bin := Find(t, "mosquitto", "mosquitto", "/usr/sbin")
	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	persist := "persistence false\n"
	if cfg.Persistent {
		persist = fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\n", dir)
	}
	if os.Geteuid() == 0 {
		// Otherwise mosquitto drops to its own user, which can neither
		// read nor write the test's private directory.
		persist += "user root\n"
	}
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%smax_inflight_messages 0\nmax_queued_messages 0\n%s\n", port, persist, cfg.Extra)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{t: t, bin: bin, conf: conf, Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts the broker (again) and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	logf, err := os.CreateTemp(filepath.Dir(m.conf), "mosquitto-*.log")
	if err != nil {
		m.t.Fatal(err)
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting mosquitto: %v", err)
	}
	m.cmd, m.log = cmd, logf
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("mosquitto did not listen on %s; log:\n%s", m.Addr, readAll(logf.Name()))
}

// Stop kills the broker process this test started (by its PID) and waits
// for it to exit.
func (m *Mosquitto) Stop() { m.stop(os.Kill) }

// StopGraceful ends the broker with SIGTERM, letting it save its
// persistence file, and waits for it to exit.
func (m *Mosquitto) StopGraceful() { m.stop(syscall.SIGTERM) }

func (m *Mosquitto) stop(sig os.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	_ = m.cmd.Wait()
	m.log.Close()
	m.cmd = nil
}

func readAll(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
