// Package snmptest starts Debian's snmpd (package snmpd) with its own
// configuration on a free loopback port, and sends traps with snmptrap
// (package snmp), for the SNMP connector's tests and benchmarks.
package snmptest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/tbflow/tbflow/internal/peers"
)

// Credentials of the agent.
const (
	Community    = "public"
	AuthUser     = "authuser" // v3 authNoPriv, SHA
	PrivUser     = "privuser" // v3 authPriv, SHA and AES
	AuthPassword = "authpass123"
	PrivPassword = "privpass123"
)

// Item is a variable the agent serves and the value tbflow reads from it
// (as JSON; empty when it changes).
type Item struct {
	Key, OID, JSON string
	// V2 marks a type v1 cannot carry (Counter64).
	V2 bool
}

// Items are the agent's variables of every SNMP type.
var Items = []Item{
	{Key: "integer", OID: "1.3.6.1.4.1.99999.1.1.0", JSON: `-42`},
	{Key: "gauge", OID: "1.3.6.1.4.1.99999.1.2.0", JSON: `4000000000`},
	{Key: "counter", OID: "1.3.6.1.4.1.99999.1.3.0", JSON: `123456`},
	{Key: "ticks", OID: "1.3.6.1.4.1.99999.1.5.0", JSON: `360000`},
	{Key: "text", OID: "1.3.6.1.4.1.99999.1.6.0", JSON: `"hello snmp"`},
	{Key: "oid", OID: "1.3.6.1.4.1.99999.1.7.0", JSON: `"1.3.6.1.4.1.99999"`},
	{Key: "ip", OID: "1.3.6.1.2.1.4.20.1.1.127.0.0.1", JSON: `"127.0.0.1"`},
	{Key: "location", OID: "1.3.6.1.2.1.1.6.0", JSON: `"Test Lab"`},
	{Key: "hc", OID: "1.3.6.1.2.1.31.1.1.1.6.1", V2: true}, // ifHCInOctets of lo: Counter64
	{Key: "uptime", OID: "1.3.6.1.2.1.1.3.0"},              // sysUpTime: changes
}

// Rows returns the items as rows of an snmp-in table (get), leaving out
// the v2-only ones for v1.
func Rows(v1 bool) []any {
	var rows []any
	for _, it := range Items {
		if v1 && it.V2 {
			continue
		}
		rows = append(rows, map[string]any{"key": it.Key, "oid": it.OID, "method": "get", "type": "auto"})
	}
	return rows
}

// Agent is a running snmpd. Stop and Start restart it on the same port.
type Agent struct {
	t    testing.TB
	bin  string
	conf string
	dir  string
	Port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts snmpd on a free loopback UDP port with a community, two v3
// users and the variables of Items. It is stopped when the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin := peers.Find(t, "snmpd", "snmpd", "/usr/sbin")
	dir := t.TempDir()
	port := freeUDPPort(t)
	conf := filepath.Join(dir, "snmpd.conf")
	body := fmt.Sprintf(`agentAddress udp:127.0.0.1:%d
rocommunity %s 127.0.0.1
createUser %s SHA "%s"
createUser %s SHA "%s" AES "%s"
rouser %s auth
rouser %s priv
sysLocation Test Lab
sysContact ops@example.com
override .1.3.6.1.4.1.99999.1.1.0 integer -42
override .1.3.6.1.4.1.99999.1.2.0 unsigned 4000000000
override .1.3.6.1.4.1.99999.1.3.0 counter 123456
override .1.3.6.1.4.1.99999.1.5.0 timeticks 360000
override .1.3.6.1.4.1.99999.1.6.0 octet_str "hello snmp"
override .1.3.6.1.4.1.99999.1.7.0 object_id .1.3.6.1.4.1.99999
`, port, Community, AuthUser, AuthPassword, PrivUser, AuthPassword, PrivPassword, AuthUser, PrivUser)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, bin: bin, conf: conf, dir: dir, Port: port}
	a.Start()
	t.Cleanup(a.Stop)
	return a
}

// Start starts the agent (again) and waits until it answers.
func (a *Agent) Start() {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return
	}
	logf := filepath.Join(a.dir, "snmpd.log")
	cmd := exec.Command(a.bin, "-f", "-C", "-c", a.conf, "-Lf", logf, "-p", filepath.Join(a.dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(a.dir, "persist"), "MIBS=", "MIBDIRS="+a.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("starting snmpd: %v", err)
	}
	a.cmd = cmd
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(a.Port), Community: Community, Version: gosnmp.Version2c, Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := g.Connect(); err == nil {
			_, err = g.Get([]string{".1.3.6.1.2.1.1.3.0"})
			g.Conn.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logf)
	a.t.Fatalf("snmpd did not answer on 127.0.0.1:%d:\n%s%s", a.Port, out.String(), log)
}

// Stop kills the agent (by its PID) and waits for it to exit.
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.cmd = nil
}

// Trap runs Debian's snmptrap with args (after the version and
// community options), e.g. the v2c form
//
//	Trap(t, "v2c", "127.0.0.1:1162", "", "1.3.6.1.4.1.99999.0.1", "1.3.6.1.4.1.99999.2.1", "i", "5")
func Trap(t testing.TB, version, community string, args ...string) {
	t.Helper()
	bin := peers.Find(t, "snmptrap", "snmp")
	v := "2c"
	if version == "v1" {
		v = "1"
	}
	cmd := exec.Command(bin, append([]string{"-v", v, "-c", community}, args...)...)
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS="+os.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snmptrap %v: %v\n%s", args, err, out)
	}
}

// TrapV3 sends an SNMP v3 trap with snmptrap, or with inform an inform
// with snmpinform (which waits for the acknowledgement and fails without
// one). args are snmptrap's from the security options (-u, -l, -a, -A,
// -x, -X, -e) on. The error carries the program's output.
func TrapV3(t testing.TB, inform bool, args ...string) error {
	t.Helper()
	bin := peers.Find(t, "snmptrap", "snmp")
	if inform {
		bin = peers.Find(t, "snmpinform", "snmp")
	}
	cmd := exec.Command(bin, append([]string{"-v", "3"}, args...)...)
	// A home of its own: net-snmp keeps engine boots and users there.
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS="+os.TempDir(), "SNMP_PERSISTENT_DIR="+t.TempDir(), "SNMPCONFPATH="+t.TempDir(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(bin), err, out)
	}
	return nil
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort(t testing.TB) int { return freeUDPPort(t) }

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Addr returns 127.0.0.1:port.
func (a *Agent) Addr() string { return "127.0.0.1:" + strconv.Itoa(a.Port) }
