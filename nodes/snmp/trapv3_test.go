package snmp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/engine/enginetest"
	"github.com/tbflow/tbflow/nodes/snmp/snmptest"
)

const (
	trapUser     = "trapuser"
	trapAuthPass = "trapauth123"
	trapPrivPass = "trappriv123"
	senderEngine = "8000000001020304"
)

// notification is the variables of the test notifications: an OID of
// the table and an unmapped one.
func notification(uptime, oid string, alarm int) []string {
	return []string{uptime, oid, "1.3.6.1.4.1.99999.2.1", "i", fmt.Sprint(alarm), "1.3.6.1.4.1.99999.3.2", "s", "on battery"}
}

func trapV3Node(t *testing.T, extra map[string]any) (*enginetest.NodeHarness, string) {
	t.Helper()
	port := snmptest.FreeUDPPort(t)
	node := map[string]any{
		"host": "127.0.0.1", "port": float64(port), "version": "v3", "username": trapUser,
		"authPassword": trapAuthPass, "privPassword": trapPrivPass,
		"oids": []any{map[string]any{"key": "alarm", "oid": "1.3.6.1.4.1.99999.2.1"}}, "unmapped": true,
	}
	for k, v := range extra {
		node[k] = v
	}
	h := enginetest.RunNode(t, enginetest.Options{}, "snmp-trap-in", node)
	waitStatus(t, h, func(s engine.Status) bool { return s.Text == "listening" })
	return h, fmt.Sprintf("127.0.0.1:%d", port)
}

func checkV3(t *testing.T, m *engine.Msg, topic, level string, alarm int64) {
	t.Helper()
	if m.Topic != topic {
		t.Errorf("topic %q, want %q", m.Topic, topic)
	}
	p := m.Payload.(map[string]any)
	if p["alarm"] != alarm || p["1.3.6.1.4.1.99999.3.2"] != "on battery" {
		t.Errorf("payload %v", p)
	}
	info, _ := m.Get("trap")
	tr := info.(map[string]any)
	if tr["version"] != "v3" || tr["user"] != trapUser || tr["securityLevel"] != level || tr["source"] != "127.0.0.1" {
		t.Errorf("trap %v", tr)
	}
	if _, ok := tr["community"]; ok {
		t.Errorf("a v3 trap with a community: %v", tr)
	}
}

// TestTrapInV3AuthPriv receives v3 traps and informs (SHA, AES) sent by
// Debian's snmptrap and snmpinform, and drops the ones with a wrong
// password, with less protection, from another engine or in v2c.
func TestTrapInV3AuthPriv(t *testing.T) {
	h, to := trapV3Node(t, map[string]any{"securityLevel": "authPriv", "authProtocol": "SHA", "privProtocol": "AES", "senderEngineID": senderEngine})
	sec := []string{"-u", trapUser, "-l", "authPriv", "-a", "SHA", "-A", trapAuthPass, "-x", "AES", "-X", trapPrivPass}

	// A trap, signed and encrypted by the sender's engine.
	if err := snmptest.TrapV3(t, false, append(append(sec, "-e", senderEngine, to), notification("4242", "1.3.6.1.4.1.99999.0.7", 5)...)...); err != nil {
		t.Fatal(err)
	}
	m := h.WaitOut(0, 1)[0]
	checkV3(t, m, "1.3.6.1.4.1.99999.0.7", "authPriv", 5)
	info, _ := m.Get("trap")
	if tr := info.(map[string]any); tr["engineID"] != senderEngine || tr["uptime"] != int64(4242) {
		t.Errorf("trap %v", tr)
	}

	// An inform: snmpinform discovers the node's engine and waits for the
	// acknowledgement.
	if err := snmptest.TrapV3(t, true, append(append(sec, "-r", "1", "-t", "3", to), notification("17", "1.3.6.1.4.1.99999.0.8", 6)...)...); err != nil {
		t.Fatal(err)
	}
	checkV3(t, h.WaitOut(0, 2)[1], "1.3.6.1.4.1.99999.0.8", "authPriv", 6)

	// A wrong authentication password: dropped, counted, reported.
	bad := []string{"-u", trapUser, "-l", "authPriv", "-a", "SHA", "-A", "wrongpass123", "-x", "AES", "-X", trapPrivPass}
	if err := snmptest.TrapV3(t, false, append(append(bad, "-e", senderEngine, to), notification("1", "1.3.6.1.4.1.99999.0.9", 1)...)...); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "1 unreadable or failing authentication dropped")
	})
	// A wrong privacy password cannot be decrypted; the inform is not
	// acknowledged.
	badPriv := []string{"-u", trapUser, "-l", "authPriv", "-a", "SHA", "-A", trapAuthPass, "-x", "AES", "-X", "wrongpriv123"}
	if err := snmptest.TrapV3(t, true, append(append(badPriv, "-r", "0", "-t", "1", to), notification("1", "1.3.6.1.4.1.99999.0.9", 2)...)...); err == nil {
		t.Error("an inform with a wrong privacy password was acknowledged")
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "2 unreadable or failing authentication dropped")
	})
	errs := h.Errors()
	if len(errs) == 0 {
		t.Error("the rejected notifications reached no catch node")
	}
	for _, e := range errs {
		for _, secret := range []string{"wrongpass123", "wrongpriv123", trapAuthPass, trapPrivPass} {
			if strings.Contains(fmt.Sprint(e), secret) {
				t.Errorf("an error shows a password: %v", e)
			}
		}
	}

	// authNoPriv (less than the node asks for), another sender engine and
	// v2c are dropped and counted.
	noPriv := []string{"-u", trapUser, "-l", "authNoPriv", "-a", "SHA", "-A", trapAuthPass}
	if err := snmptest.TrapV3(t, false, append(append(noPriv, "-e", senderEngine, to), notification("1", "1.3.6.1.4.1.99999.0.9", 3)...)...); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "1 of another user, version or security level dropped")
	})
	if err := snmptest.TrapV3(t, false, append(append(sec, "-e", "8000000001020399", to), notification("1", "1.3.6.1.4.1.99999.0.9", 4)...)...); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "2 of another user, version or security level dropped")
	})
	snmptest.Trap(t, "v2c", "public", to, "1", "1.3.6.1.4.1.99999.0.9", "1.3.6.1.4.1.99999.2.1", "i", "1")
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "3 of another user, version or security level dropped")
	})
	if n := len(h.Out(0)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestTrapInV3AuthNoPriv receives v3 traps and informs signed with
// SHA-256 from any sender engine, and drops one with a wrong password.
func TestTrapInV3AuthNoPriv(t *testing.T) {
	h, to := trapV3Node(t, map[string]any{"securityLevel": "authNoPriv", "authProtocol": "SHA256", "engineID": "80001f888001020304"})
	sec := []string{"-u", trapUser, "-l", "authNoPriv", "-a", "SHA-256", "-A", trapAuthPass}
	if err := snmptest.TrapV3(t, false, append(append(sec, "-e", "800000000a0b0c0d", to), notification("1", "1.3.6.1.4.1.99999.0.7", 7)...)...); err != nil {
		t.Fatal(err)
	}
	m := h.WaitOut(0, 1)[0]
	checkV3(t, m, "1.3.6.1.4.1.99999.0.7", "authNoPriv", 7)
	info, _ := m.Get("trap")
	if tr := info.(map[string]any); tr["engineID"] != "800000000a0b0c0d" {
		t.Errorf("trap %v", tr)
	}
	// An inform to the node's own engine ID, given rather than discovered.
	if err := snmptest.TrapV3(t, true, append(append(sec, "-e", "80001f888001020304", "-r", "1", "-t", "3", to), notification("1", "1.3.6.1.4.1.99999.0.8", 8)...)...); err != nil {
		t.Fatal(err)
	}
	checkV3(t, h.WaitOut(0, 2)[1], "1.3.6.1.4.1.99999.0.8", "authNoPriv", 8)

	bad := []string{"-u", trapUser, "-l", "authNoPriv", "-a", "SHA-256", "-A", "wrongpass123"}
	if err := snmptest.TrapV3(t, true, append(append(bad, "-r", "0", "-t", "1", to), notification("1", "1.3.6.1.4.1.99999.0.9", 9)...)...); err == nil {
		t.Error("an inform with a wrong password was acknowledged")
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "1 unreadable or failing authentication dropped")
	})
	// Another user, even with the right password.
	other := []string{"-u", "someone", "-l", "authNoPriv", "-a", "SHA-256", "-A", trapAuthPass}
	if err := snmptest.TrapV3(t, false, append(append(other, "-e", "800000000a0b0c0d", to), notification("1", "1.3.6.1.4.1.99999.0.9", 9)...)...); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, func(s engine.Status) bool {
		return strings.Contains(s.Text, "2 unreadable or failing authentication dropped")
	})
	if n := len(h.Out(0)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestTrapInV3ToV2c: a v1/v2c node drops v3 notifications (and goes on).
func TestTrapInV3ToV2c(t *testing.T) {
	port := snmptest.FreeUDPPort(t)
	h := enginetest.RunNode(t, enginetest.Options{}, "snmp-trap-in", map[string]any{"host": "127.0.0.1", "port": float64(port)})
	waitStatus(t, h, func(s engine.Status) bool { return s.Text == "listening" })
	to := fmt.Sprintf("127.0.0.1:%d", port)
	if err := snmptest.TrapV3(t, false, append([]string{"-u", trapUser, "-l", "authPriv", "-a", "SHA", "-A", trapAuthPass, "-x", "AES", "-X", trapPrivPass, "-e", senderEngine, to},
		notification("1", "1.3.6.1.4.1.99999.0.7", 1)...)...); err != nil {
		t.Fatal(err)
	}
	snmptest.Trap(t, "v2c", "public", to, "1", "1.3.6.1.4.1.99999.0.7", "1.3.6.1.4.1.99999.2.1", "i", "2")
	m := h.WaitOut(0, 1)[0]
	if p := m.Payload.(map[string]any); p["1.3.6.1.4.1.99999.2.1"] != int64(2) {
		t.Errorf("payload %v", p)
	}
	waitStatus(t, h, func(s engine.Status) bool { return strings.Contains(s.Text, "dropped") })
	if n := len(h.Out(0)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// TestTrapInV3Protocols receives a v3 trap with each authentication and
// privacy protocol as net-snmp names them, and without security.
func TestTrapInV3Protocols(t *testing.T) {
	cases := []struct{ auth, priv, netAuth, netPriv string }{
		{"MD5", "DES", "MD5", "DES"},
		{"SHA224", "AES192", "SHA-224", "AES-192"},
		{"SHA384", "AES256", "SHA-384", "AES-256"},
		{"SHA512", "AES", "SHA-512", "AES"},
		{"", "", "", ""},
	}
	for _, c := range cases {
		name := c.auth + "-" + c.priv
		if c.auth == "" {
			name = "noAuthNoPriv"
		}
		t.Run(name, func(t *testing.T) {
			level, sec := "authPriv", []string{"-u", trapUser, "-l", "authPriv", "-a", c.netAuth, "-A", trapAuthPass, "-x", c.netPriv, "-X", trapPrivPass}
			if c.auth == "" {
				level, sec = "noAuthNoPriv", []string{"-u", trapUser, "-l", "noAuthNoPriv"}
			}
			h, to := trapV3Node(t, map[string]any{"securityLevel": level, "authProtocol": c.auth, "privProtocol": c.priv})
			if err := snmptest.TrapV3(t, false, append(append(sec, "-e", senderEngine, to), notification("1", "1.3.6.1.4.1.99999.0.7", 3)...)...); err != nil {
				t.Fatal(err)
			}
			checkV3(t, h.WaitOut(0, 1)[0], "1.3.6.1.4.1.99999.0.7", level, 3)
			if level != "noAuthNoPriv" {
				return
			}
			// Without security, the user name is all that is checked.
			if err := snmptest.TrapV3(t, false, append([]string{"-u", "someone", "-l", "noAuthNoPriv", "-e", senderEngine, to}, notification("1", "1.3.6.1.4.1.99999.0.7", 4)...)...); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, h, func(s engine.Status) bool {
				return strings.Contains(s.Text, "1 of another user, version or security level dropped")
			})
			if n := len(h.Out(0)); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
		})
	}
}
