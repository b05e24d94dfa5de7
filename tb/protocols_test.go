package tb_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/tb"
)

// protoEnv selects the MQTT version of a test run; empty = MQTT 5.
const protoEnv = "TBFLOW_TEST_MQTT"

// TestMain runs the whole suite under MQTT 5 (the default), then once more
// in a child process under MQTT 3.1.1: every test covers both transports.
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || os.Getenv(protoEnv) != "" || os.Getenv("TBFLOW_FAULT_CHILD") != "" || !rerun(os.Args[1:]) {
		os.Exit(code)
	}
	fmt.Println("=== the tb suite again under MQTT 3.1.1")
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), protoEnv+"="+tb.ProtocolMQTT311)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("FAIL under MQTT 3.1.1:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// rerun is false for runs that only list, fuzz or profile.
func rerun(args []string) bool {
	for _, a := range args {
		for _, f := range []string{"-test.list", "-test.fuzz", "profile", "-test.run=^$", "-test.bench"} {
			if strings.HasPrefix(a, f) || strings.Contains(a, "profile") {
				return false
			}
		}
	}
	return true
}

// testProtocol is the MQTT version of this run.
func testProtocol() string { return os.Getenv(protoEnv) }

// TestProtocolUnderTest pins that the run uses the protocol it claims.
func TestProtocolUnderTest(t *testing.T) {
	p := newSimPeer(t)
	d := connect(t, p, nil)
	want := tb.ProtocolMQTT5
	if testProtocol() != "" {
		want = testProtocol()
	}
	if got := d.Protocol(); got != want {
		t.Fatalf("connected with MQTT %s, want %s", got, want)
	}
}
