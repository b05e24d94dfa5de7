package tb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
	"github.com/tbflow/tbflow/internal/testcerts"
	"github.com/tbflow/tbflow/tb"
)

// TestMosquittoTLS checks the TLS options against Debian's mosquitto with a
// TLS listener that requires a client certificate signed by its CA.
func TestMosquittoTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the mosquitto peer")
	}
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	other := testcerts.NewCA(t, dir, "other-ca")
	srv := ca.Server(t, dir, "server")
	cli := ca.Client(t, dir, "device-1")
	stranger := other.Client(t, dir, "stranger")
	tlsPort := peers.FreePort(t)
	m := peers.StartMosquitto(t, peers.MosquittoConfig{Extra: fmt.Sprintf(
		"listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.2\n",
		tlsPort, ca.File, srv.CertFile, srv.KeyFile)})
	_ = m

	try := func(tlsCfg *tb.TLSConfig) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		d, err := tb.Connect(ctx, tb.Config{
			Protocol: testProtocol(),
			Host:     "127.0.0.1", Port: tlsPort, AccessToken: "tls-device", TLS: tlsCfg, SkipSessionLimits: true,
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		})
		if err != nil {
			return err
		}
		defer d.Close(context.Background())
		return d.SendTelemetry(ctx, map[string]any{"secure": true})
	}

	good := &tb.TLSConfig{CAFile: ca.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile}
	if err := try(good); err != nil {
		t.Fatalf("CA + client certificate: %v", err)
	}
	named := *good
	named.ServerName = "localhost"
	if err := try(&named); err != nil {
		t.Fatalf("server name localhost: %v", err)
	}
	for name, cfg := range map[string]*tb.TLSConfig{
		"wrong CA":                  {CAFile: other.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile},
		"server name mismatch":      {CAFile: ca.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile, ServerName: "wrong.example"},
		"no client certificate":     {CAFile: ca.File},
		"client cert of another CA": {CAFile: ca.File, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile},
	} {
		if err := try(cfg); err == nil {
			t.Errorf("%s: connected, want failure", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Skipping verification works only when asked for explicitly.
	insecure := &tb.TLSConfig{CAFile: other.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile, InsecureSkipVerify: true}
	if err := try(insecure); err != nil {
		t.Fatalf("InsecureSkipVerify: %v", err)
	}
	// Bad files are reported by NewDevice, before any network I/O.
	for name, cfg := range map[string]*tb.TLSConfig{
		"missing CA file":   {CAFile: dir + "/nope.pem"},
		"CA file not PEM":   {CAFile: cli.KeyFile + ".missing"},
		"cert without key":  {CertFile: cli.CertFile},
		"key does not load": {CertFile: cli.CertFile, KeyFile: ca.File},
	} {
		_, err := tb.NewDevice(tb.Config{Host: "127.0.0.1", AccessToken: "x", TLS: cfg})
		if err == nil || !strings.Contains(err.Error(), "tb:") {
			t.Errorf("%s: NewDevice error %v", name, err)
		}
	}
}
