package fleet_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
	"github.com/tbflow/tbflow/internal/testcerts"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// TestProvision: a connection without credentials gets an access token
// kept in the credentials file (0600); one with its own MQTT basic
// credentials or client certificate registers them; a second run
// provisions nothing.
func TestProvision(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	srv := ca.Server(t, dir, "srv", "localhost")
	pair, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{pair}}})
	if err != nil {
		t.Fatal(err)
	}
	defer tbs.Close()
	tbs.AddProvisionProfile(tbsim.ProvisionProfile{Key: "k", Secret: "s", Type: "box"})
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	client := ca.Client(t, dir, "box-c")
	_, tp, _ := net.SplitHostPort(tbs.TLSAddr())
	path := filepath.Join(dir, "flow.json")
	conn := func(id, extra string) string {
		return fmt.Sprintf(`{"id": %q, "type": "tb-connection", "host": "127.0.0.1", "provisionKey": "k", "provisionSecret": "${PSECRET}", "deviceName": %q%s}`, id, "box-"+id, extra)
	}
	flow := "[" + strings.Join([]string{
		conn("a", fmt.Sprintf(`, "port": %d`, port)),
		conn("b", fmt.Sprintf(`, "port": %d, "clientId": "cb", "username": "ub", "password": "pb"`, port)),
		conn("c", fmt.Sprintf(`, "port": %s, "tls": true, "caFile": %q, "serverName": "localhost", "certFile": %q, "keyFile": %q`, tp, ca.File, client.CertFile, client.KeyFile)),
	}, ",\n") + "]"
	if err := os.WriteFile(path, []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := env{"PSECRET": "s"}.lookup
	store := &engine.FileStore{Path: path, Registry: engine.DefaultRegistry()}
	run := func() bool {
		t.Helper()
		f, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		changed, err := fleet.Provision(context.Background(), store, f, lookup, nil)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if !run() {
		t.Fatal("nothing provisioned")
	}
	byName := map[string]tbsim.Device{}
	for _, d := range tbs.Devices() {
		byName[d.Name] = d
	}
	a, b, c := byName["box-a"], byName["box-b"], byName["box-c"]
	if a.Token == "" || a.Type != "box" || b.Username != "ub" || b.Password != "pb" || c.CertPEM == "" {
		t.Fatalf("devices: %+v", byName)
	}
	info, err := os.Stat(store.CredentialsPath())
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", info, err)
	}
	cred, _ := os.ReadFile(store.CredentialsPath())
	if !strings.Contains(string(cred), a.Token) {
		t.Fatalf("the token is not in the credentials file: %s", cred)
	}
	if saved, _ := os.ReadFile(path); strings.Contains(string(saved), a.Token) {
		t.Fatalf("the token is in the flow file: %s", saved)
	}
	if run() {
		t.Fatal("provisioned again")
	}
	if n := len(tbs.Devices()); n != len(byName) {
		t.Fatalf("%d devices after the second run, want %d", n, len(byName))
	}
}
