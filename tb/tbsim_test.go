package tb_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/testcerts"
	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

const simDevice = "dev1"

type simPeer struct {
	s *tbsim.Server
}

func newSim(t *testing.T, opts tbsim.Options) *tbsim.Server {
	t.Helper()
	if opts.ClientRPC == nil {
		opts.ClientRPC = func(_ context.Context, _, method string, params json.RawMessage) (json.RawMessage, error) {
			switch method {
			case "echo":
				return params, nil
			case "text":
				return json.RawMessage(textReply), nil
			}
			return json.RawMessage(`{"error":"timeout"}`), nil
		}
	}
	s, err := tbsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDevice(tbsim.Device{Name: simDevice, Token: "dev1-token"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newSimPeer(t *testing.T) peer { return &simPeer{s: newSim(t, tbsim.Options{})} }

func simConfig(s *tbsim.Server, token string) tb.Config {
	host, port, _ := net.SplitHostPort(s.MQTTAddr())
	n, _ := strconv.Atoi(port)
	return tb.Config{Host: host, Port: n, AccessToken: token, Protocol: testProtocol()}
}

func (p *simPeer) config(*testing.T) tb.Config { return simConfig(p.s, "dev1-token") }

func (p *simPeer) telemetry(key string) []any {
	var out []any
	for _, v := range p.s.History(simDevice, key) {
		out = append(out, v.Value)
	}
	return out
}

func (p *simPeer) clientAttribute(key string) (any, bool) {
	v, ok := p.s.ClientAttributes(simDevice)[key]
	return v, ok
}

func (p *simPeer) setShared(t *testing.T, kv map[string]any) {
	if err := p.s.SetShared(simDevice, kv); err != nil {
		t.Fatal(err)
	}
}

func (p *simPeer) deleteShared(t *testing.T, keys ...string) {
	if err := p.s.DeleteShared(simDevice, keys...); err != nil {
		t.Fatal(err)
	}
}

func (p *simPeer) rpc(t *testing.T, method string, params any) json.RawMessage {
	r, err := p.s.RPC(ctxT(t), simDevice, method, params, false)
	if err != nil {
		t.Fatalf("rpc %s: %v", method, err)
	}
	return r
}

func (p *simPeer) claims() []string {
	var out []string
	for _, c := range p.s.Claims(simDevice) {
		out = append(out, c.SecretKey)
	}
	return out
}

func (p *simPeer) outage(t *testing.T) {
	if err := p.s.Pause(); err != nil {
		t.Fatal(err)
	}
}

func (p *simPeer) restore(t *testing.T) {
	if err := p.s.Resume(); err != nil {
		t.Fatal(err)
	}
}

// TestSimSuite runs the client suite against tbsim.
func TestSimSuite(t *testing.T) { runSuite(t, newSimPeer) }

func TestSimKillDuringOutage(t *testing.T) { runKillDuringOutage(t, newSimPeer(t)) }

func TestConnectRefused(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	if err := s.AddDevice(tbsim.Device{Name: "basic", ClientID: "cid", Username: "user", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	_, err := tb.Connect(ctx, simConfig(s, "wrong-token"))
	var ce *tb.ConnectError
	if !errors.As(err, &ce) || ce.Code != 5 || !ce.Permanent() {
		t.Fatalf("wrong token: %v, want CONNACK 5", err)
	}
	cfg := simConfig(s, "")
	cfg.ClientID, cfg.Username, cfg.Password = "cid", "user", "pw"
	d, err := tb.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("MQTT basic credentials: %v", err)
	}
	if err := d.SendTelemetry(ctx, map[string]any{"basic": 1}); err != nil {
		t.Fatal(err)
	}
	d.Close(ctx)
	cfg.Password = "nope"
	if _, err := tb.Connect(ctx, cfg); !errors.As(err, &ce) || ce.Code != 5 {
		t.Fatalf("wrong password: %v, want CONNACK 5", err)
	}
}

func TestSessionLimitsHonoured(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	s.SetRateLimits(simDevice, tbsim.RateLimits{Messages: "20:1,200:60", TelemetryDataPoints: "60:1"})
	var offline atomic.Int32
	d := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.OnStatus = func(st tb.Status) {
			if st.State == tb.StateOffline {
				offline.Add(1)
			}
		}
	})
	eventually(t, "session limits", func() bool { return d.SessionLimits() != nil })
	sl := d.SessionLimits()
	if sl.RateLimits.Messages != "20:1,200:60" || sl.MaxPayloadSize != 65536 {
		t.Fatalf("session limits %+v", sl)
	}
	// 45 messages of 2 data points: above the first second's budget, so
	// the client must pace them; the server closes a session over limit.
	ctx := ctxT(t)
	var acks []*tb.Ack
	for i := 0; i < 45; i++ {
		a, err := d.PublishTelemetry(ctx, map[string]any{"n": i, "m": i})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	waitAcks(t, ctx, acks)
	if n := offline.Load(); n != 0 {
		t.Fatalf("server disconnected the client %d times: limits not honoured", n)
	}
	if got := len(s.History(simDevice, "n")); got != 45 {
		t.Fatalf("server stored %d messages, want 45", got)
	}
	big := bytes.Repeat([]byte("x"), 70_000)
	if _, err := d.PublishTelemetry(ctx, map[string]any{"big": string(big)}); !errors.Is(err, tb.ErrPayloadTooLarge) {
		t.Fatalf("oversized publish: %v, want ErrPayloadTooLarge", err)
	}
}

func TestProvisioning(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	s.AddProvisionProfile(tbsim.ProvisionProfile{Key: "pk", Secret: "ps"})
	server := simConfig(s, "")
	ctx := ctxT(t)
	res, err := tb.Provision(ctx, server, tb.ProvisionRequest{DeviceName: "new-1", ProvisionKey: "pk", ProvisionSecret: "ps"})
	if err != nil {
		t.Fatal(err)
	}
	if res.CredentialsType != tb.CredentialsAccessToken || res.AccessToken == "" {
		t.Fatalf("result %+v", res)
	}
	d, err := tb.Connect(ctx, res.Apply(server))
	if err != nil {
		t.Fatalf("connect with provisioned token: %v", err)
	}
	if err := d.SendTelemetry(ctx, map[string]any{"hello": 1}); err != nil {
		t.Fatal(err)
	}
	d.Close(ctx)

	res, err = tb.Provision(ctx, server, tb.ProvisionRequest{DeviceName: "new-2", ProvisionKey: "pk", ProvisionSecret: "ps",
		CredentialsType: tb.CredentialsMQTTBasic, ClientID: "c2", Username: "u2", Password: "p2"})
	if err != nil || res.Username != "u2" || res.Password != "p2" || res.ClientID != "c2" {
		t.Fatalf("MQTT_BASIC: %+v %v", res, err)
	}
	d, err = tb.Connect(ctx, res.Apply(server))
	if err != nil {
		t.Fatalf("connect with provisioned basic credentials: %v", err)
	}
	d.Close(ctx)

	var pe *tb.ProvisionError
	_, err = tb.Provision(ctx, server, tb.ProvisionRequest{DeviceName: "x", ProvisionKey: "pk", ProvisionSecret: "wrong"})
	if !errors.As(err, &pe) || pe.Status != "NOT_FOUND" {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = tb.Provision(ctx, server, tb.ProvisionRequest{DeviceName: "new-1", ProvisionKey: "pk", ProvisionSecret: "ps"})
	if !errors.As(err, &pe) || pe.Status != "FAILURE" {
		t.Fatalf("existing name: %v", err)
	}
	if _, err := tb.Provision(ctx, server, tb.ProvisionRequest{}); err == nil {
		t.Fatal("provisioning without key accepted")
	}
}

func TestOTA(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	var errs []error
	var mu sync.Mutex
	d := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	})
	ctx := ctxT(t)
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	for _, alg := range tb.ChecksumAlgorithms {
		if err := s.AssignOTA(simDevice, "fw", tbsim.OTAPackage{Title: "fw", Version: alg, Data: data, ChecksumAlgorithm: alg}); err != nil {
			t.Fatal(err)
		}
		pkg, err := d.OTAPackageInfo(ctx, tb.Firmware)
		if err != nil || pkg == nil || pkg.Version != alg || pkg.Size != int64(len(data)) || pkg.ChecksumAlgorithm != alg {
			t.Fatalf("%s: package info %+v %v", alg, pkg, err)
		}
		got, err := d.DownloadOTA(ctx, pkg, 8192, nil)
		if err != nil {
			t.Fatalf("%s: download: %v", alg, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: downloaded bytes differ", alg)
		}
		bad := *pkg
		flip := "0"
		if pkg.Checksum[0] == '0' {
			flip = "1"
		}
		bad.Checksum = flip + pkg.Checksum[1:]
		if _, err := d.DownloadOTA(ctx, &bad, 0, nil); err == nil {
			t.Fatalf("%s: wrong checksum accepted", alg)
		}
	}

	// A full update reports every state, and WatchOTA starts it on assignment.
	var applied atomic.Int32
	var progressed atomic.Int64
	u := &tb.OTAUpdater{Kind: tb.Software, CurrentTitle: "app", CurrentVersion: "1.0", ChunkSize: 30_000,
		Apply: func(_ context.Context, p *tb.OTAPackage, b []byte) error {
			if p.Version != "2.0" || !bytes.Equal(b, data) {
				return errors.New("wrong package")
			}
			applied.Add(1)
			return nil
		},
		Progress: func(received, total int64) { progressed.Store(received) },
	}
	stop, err := d.WatchOTA(u)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := s.AssignOTA(simDevice, "sw", tbsim.OTAPackage{Title: "app", Version: "2.0", Data: data}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "software update applied", func() bool { return applied.Load() == 1 })
	eventually(t, "UPDATED reported", func() bool {
		h := s.History(simDevice, "sw_state")
		return len(h) > 0 && h[len(h)-1].Value == tb.OTAUpdated
	})
	var states []string
	for _, v := range s.History(simDevice, "sw_state") {
		states = append(states, v.Value.(string))
	}
	want := []string{tb.OTADownloading, tb.OTADownloaded, tb.OTAVerified, tb.OTAUpdating, tb.OTAUpdated}
	if len(states) < len(want) || !equalStrings(states[len(states)-len(want):], want) {
		t.Fatalf("sw_state history %v, want it to end with %v", states, want)
	}
	if progressed.Load() != int64(len(data)) {
		t.Fatalf("progress reached %d of %d", progressed.Load(), len(data))
	}
	// ThingsBoard casts numeric strings: "2.0" is stored as the number 2.
	if latest := s.Latest(simDevice)["current_sw_version"]; asFloat(latest.Value) != 2 {
		t.Fatalf("current_sw_version %v", latest.Value)
	}
	// A failing Apply is reported as FAILED with the error text.
	u2 := &tb.OTAUpdater{Kind: tb.Firmware, Apply: func(context.Context, *tb.OTAPackage, []byte) error { return errors.New("flash write failed") }}
	if _, err := d.UpdateOTA(ctx, u2); err == nil {
		t.Fatal("failing apply reported success")
	}
	eventually(t, "fw_error", func() bool {
		e := s.Latest(simDevice)["fw_error"]
		st := s.Latest(simDevice)["fw_state"]
		return st.Value == tb.OTAFailed && e.Value != nil
	})
	// Nothing assigned: nothing to do.
	if err := s.UnassignOTA(simDevice, "fw"); err != nil {
		t.Fatal(err)
	}
	if pkg, err := d.UpdateOTA(ctx, u2); pkg != nil || err != nil {
		t.Fatalf("update without a package: %+v %v", pkg, err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestX509Authentication(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	srv := ca.Server(t, dir, "server")
	devCert := ca.Client(t, dir, "device")
	unknown := ca.Client(t, dir, "unknown")
	pair, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, tbsim.Options{TLS: &tls.Config{Certificates: []tls.Certificate{pair}}})
	if err := s.AddDevice(tbsim.Device{Name: "x509-dev", CertPEM: string(devCert.CertPEM)}); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.TLSAddr())
	n, _ := strconv.Atoi(port)
	ctx := ctxT(t)
	cfg := tb.Config{Host: host, Port: n, Protocol: testProtocol(), TLS: &tb.TLSConfig{CAFile: ca.File, CertFile: devCert.CertFile, KeyFile: devCert.KeyFile}}
	d, err := tb.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("X.509 connect: %v", err)
	}
	if err := d.SendTelemetry(ctx, map[string]any{"x509": true}); err != nil {
		t.Fatal(err)
	}
	d.Close(ctx)
	if v := s.Latest("x509-dev")["x509"]; v.Value != true {
		t.Fatalf("telemetry not stored for the certificate's device: %+v", s.Latest("x509-dev"))
	}
	cfg.TLS.CertFile, cfg.TLS.KeyFile = unknown.CertFile, unknown.KeyFile
	_, err = tb.Connect(ctx, cfg)
	var ce *tb.ConnectError
	if !errors.As(err, &ce) || ce.Code != 5 {
		t.Fatalf("unknown certificate: %v, want CONNACK 5", err)
	}
}

// A server-side RPC the server delivers again after a reconnect runs once.
func TestRPCRedeliveryRunsOnce(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	d := connect(t, &simPeer{s}, nil)
	var calls atomic.Int32
	release := make(chan struct{})
	d.HandleRPC("open", func(ctx context.Context, req tb.RPCRequest) (any, error) {
		calls.Add(1)
		<-release
		return map[string]any{"id": req.ID}, nil
	})
	type result struct {
		r   json.RawMessage
		err error
	}
	res := make(chan result, 1)
	go func() {
		r, err := s.RPC(ctxT(t), simDevice, "open", nil, false)
		res <- result{r, err}
	}()
	eventually(t, "handler running", func() bool { return calls.Load() == 1 })
	s.Kick(simDevice) // the server re-sends the pending request on re-subscription
	eventually(t, "reconnect", func() bool { return s.Connected(simDevice) })
	time.Sleep(200 * time.Millisecond)
	close(release)
	r := <-res
	if r.err != nil {
		t.Fatalf("rpc: %v", r.err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// A slow attribute handler is reported and does not hold up telemetry or RPC.
func TestSlowHandlerContained(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	var slowReports atomic.Int32
	d := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.SlowHandler = 100 * time.Millisecond
		c.OnError = func(error) { slowReports.Add(1) }
	})
	block := make(chan struct{})
	d.SubscribeAttributes([]string{"k"}, func(tb.AttributeUpdate) { <-block })
	d.HandleRPC("ping", func(context.Context, tb.RPCRequest) (any, error) { return "pong", nil })
	if err := s.SetShared(simDevice, map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slow handler reported", func() bool { return slowReports.Load() > 0 })
	if err := d.SendTelemetry(ctxT(t), map[string]any{"still": "working"}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RPC(ctxT(t), simDevice, "ping", nil, false); err != nil || string(r) != `"pong"` {
		t.Fatalf("rpc during a slow attribute handler: %s %v", r, err)
	}
	close(block)
}

// Close with an unreachable server keeps the outbox on disk; the next
// Device on the same file sends it.
func TestOutboxSurvivesRestart(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	path := t.TempDir() + "/outbox.db"
	d := connect(t, &simPeer{s}, func(c *tb.Config) { c.Outbox.Path = path })
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "offline", func() bool { return d.Status().State != tb.StateConnected })
	var acks []*tb.Ack
	for i := 0; i < 50; i++ {
		a, err := d.PublishTelemetry(ctxT(t), map[string]any{"restart": i})
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := acks[0].Wait(ctxT(t)); !errors.Is(err, tb.ErrClosed) {
		t.Fatalf("ack of a message still in the outbox: %v, want ErrClosed", err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	d2 := connect(t, &simPeer{s}, func(c *tb.Config) { c.Outbox.Path = path })
	eventually(t, "outbox replayed", func() bool { return len(s.History(simDevice, "restart")) == 50 })
	for i, v := range s.History(simDevice, "restart") {
		if asFloat(v.Value) != float64(i) {
			t.Fatalf("replayed out of order at %d: %v", i, v.Value)
		}
	}
	eventually(t, "outbox empty", func() bool { return d2.Status().Queued == 0 })
}

func TestQoS0AndFullOutbox(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	d := connect(t, &simPeer{s}, func(c *tb.Config) { c.QoS0 = true })
	ctx := ctxT(t)
	a, err := d.PublishTelemetry(ctx, map[string]any{"q0": 1})
	if err != nil || a.Wait(ctx) != nil {
		t.Fatalf("QoS 0 publish: %v", err)
	}
	eventually(t, "QoS 0 message", func() bool { return len(s.History(simDevice, "q0")) == 1 })
	s.Pause()
	eventually(t, "offline", func() bool { return d.Status().State != tb.StateConnected })
	if _, err := d.PublishTelemetry(ctx, map[string]any{"q0": 2}); !errors.Is(err, tb.ErrNotConnected) {
		t.Fatalf("QoS 0 while offline: %v, want ErrNotConnected", err)
	}
	s.Resume()

	if err := s.AddDevice(tbsim.Device{Name: "dev2", Token: "dev2-token"}); err != nil {
		t.Fatal(err)
	}
	d2 := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.AccessToken = "dev2-token" // its own session, not d's
		c.Outbox.MaxBytes = 2000
		c.Outbox.Full = tb.OutboxReject
	})
	s.Pause()
	eventually(t, "offline", func() bool { return d2.Status().State != tb.StateConnected })
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		_, full = d2.PublishTelemetry(ctx, map[string]any{"fill": i})
	}
	if !errors.Is(full, tb.ErrOutboxFull) {
		t.Fatalf("full outbox: %v, want ErrOutboxFull", full)
	}
	s.Resume()
}

// The other two full-outbox policies: Block waits for the context, then
// fails; DropOldest evicts the oldest message, whose Ack fails with
// ErrDropped, and keeps the newest.
func TestFullOutboxBlockAndDropOldest(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	// Two devices: two clients of one device would take its session from
	// each other, as ThingsBoard does.
	if err := s.AddDevice(tbsim.Device{Name: "dev2", Token: "dev2-token"}); err != nil {
		t.Fatal(err)
	}
	block := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.AccessToken = "dev2-token"
		c.Outbox.MaxBytes = 2000
	})
	drop := connect(t, &simPeer{s}, func(c *tb.Config) {
		c.Outbox.MaxBytes = 2000
		c.Outbox.Full = tb.OutboxDropOldest
	})
	s.Pause()
	eventually(t, "offline", func() bool {
		return block.Status().State != tb.StateConnected && drop.Status().State != tb.StateConnected
	})
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err = block.PublishTelemetry(ctx, map[string]any{"fill": i})
		cancel()
	}
	if !errors.Is(err, tb.ErrOutboxFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked publish: %v, want ErrOutboxFull after the deadline", err)
	}
	ctx := ctxT(t)
	var acks []*tb.Ack
	for i := 0; i < 200; i++ {
		a, err := drop.PublishTelemetry(ctx, map[string]any{"drop": i})
		if err != nil {
			t.Fatalf("publish %d with DropOldest: %v", i, err)
		}
		acks = append(acks, a)
	}
	if err := acks[0].Wait(ctx); !errors.Is(err, tb.ErrDropped) {
		t.Fatalf("oldest message: %v, want ErrDropped", err)
	}
	s.Resume()
	if err := acks[len(acks)-1].Wait(ctx); err != nil {
		t.Fatalf("newest message: %v", err)
	}
}

// Provisioning with an X.509 certificate, then connecting with it.
func TestProvisionX509(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	srv := ca.Server(t, dir, "server")
	devCert := ca.Client(t, dir, "provisioned")
	pair, err := tls.X509KeyPair(srv.CertPEM, srv.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := newSim(t, tbsim.Options{TLS: &tls.Config{Certificates: []tls.Certificate{pair}}})
	s.AddProvisionProfile(tbsim.ProvisionProfile{Key: "pk", Secret: "ps"})
	ctx := ctxT(t)
	res, err := tb.Provision(ctx, simConfig(s, ""), tb.ProvisionRequest{DeviceName: "cert-dev", ProvisionKey: "pk", ProvisionSecret: "ps",
		CredentialsType: tb.CredentialsX509, CertificatePEM: string(devCert.CertPEM)})
	if err != nil || res.CredentialsType != tb.CredentialsX509 || res.Certificate == "" {
		t.Fatalf("X.509 provisioning: %+v %v", res, err)
	}
	host, port, _ := net.SplitHostPort(s.TLSAddr())
	n, _ := strconv.Atoi(port)
	cfg := res.Apply(tb.Config{Host: host, Port: n, Protocol: testProtocol()})
	cfg.TLS = &tb.TLSConfig{CAFile: ca.File, CertFile: devCert.CertFile, KeyFile: devCert.KeyFile}
	d, err := tb.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect with the provisioned certificate: %v", err)
	}
	defer d.Close(ctx)
	if err := d.SendTelemetry(ctx, map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if v := s.Latest("cert-dev")["x"].Value; v != int64(1) {
		t.Fatalf("telemetry of the provisioned device: %v", s.Latest("cert-dev"))
	}
	if _, err := tb.Provision(ctx, simConfig(s, ""), tb.ProvisionRequest{ProvisionKey: "pk", ProvisionSecret: "ps", CredentialsType: tb.CredentialsX509}); err == nil {
		t.Fatal("X.509 provisioning without a certificate accepted")
	}
}

// Close flushes the outbox only while the connection lasts: when it is
// lost, Close returns without waiting for its context, and what is not
// acknowledged stays in the outbox file for the next start.
func TestCloseStopsFlushingWhenConnectionLost(t *testing.T) {
	s := newSim(t, tbsim.Options{})
	path := t.TempDir() + "/outbox.db"
	cfg := simConfig(s, "dev1-token")
	cfg.Outbox.Path = path
	ctx := ctxT(t)
	d, err := tb.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDropPubAcks(true)
	a, err := d.PublishTelemetry(ctx, map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		closed <- d.Close(c)
	}()
	time.Sleep(200 * time.Millisecond) // Close is waiting for the PUBACK
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("Close kept waiting after the connection was lost")
	}
	if err := a.Wait(ctx); !errors.Is(err, tb.ErrClosed) {
		t.Fatalf("Ack of the unacknowledged message: %v, want ErrClosed", err)
	}
	again, err := tb.NewDevice(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	if n := again.Status().Queued; n != 1 {
		t.Fatalf("outbox holds %d messages after Close, want 1", n)
	}
}

// TestServerDisconnectReasons: under MQTT 5 a takeover (0x8E) and an
// administrative close (0x98) are named in the status, and a device whose
// session was taken over waits Config.TakeoverBackoff before it reconnects,
// so that two processes on one token do not evict each other in a loop.
func TestServerDisconnectReasons(t *testing.T) {
	// MQTT 5 in both runs of the suite: 3.1.1 has no DISCONNECT packet
	// from the server.
	s := newSim(t, tbsim.Options{})
	var mu sync.Mutex
	var errs []string
	d := connect(t, &simPeer{s: s}, func(c *tb.Config) {
		c.Protocol = tb.ProtocolMQTT5
		c.TakeoverBackoff = time.Hour
		c.OnStatus = func(st tb.Status) {
			if st.Err != nil {
				mu.Lock()
				errs = append(errs, st.Err.Error())
				mu.Unlock()
			}
		}
	})
	seen := func(text string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range errs {
				if strings.Contains(e, text) {
					return true
				}
			}
			return false
		}
	}
	s.Kick(simDevice)
	eventually(t, "the administrative-action status", seen("disconnected by the server (administrative action)"))
	if err := d.WaitConnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A second process on the same token takes the session over.
	other := connect(t, &simPeer{s: s}, nil)
	eventually(t, "the session-taken-over status", seen("session taken over"))
	time.Sleep(time.Second)
	if st := d.Status(); st.State == tb.StateConnected {
		t.Fatal("the evicted device reconnected at once")
	}
	if other.Status().State != tb.StateConnected {
		t.Fatalf("the new session was evicted back: %+v", other.Status())
	}
}

// TestClientRPCAtMostOnce: a client-side RPC whose connection drops before
// the answer is not sent again after the reconnect (the rule chain would
// run it twice): the call fails with ErrOutcomeUnknown and the server saw
// it once.
func TestClientRPCAtMostOnce(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	s := newSim(t, tbsim.Options{ClientRPC: func(ctx context.Context, _, method string, params json.RawMessage) (json.RawMessage, error) {
		if method == "getSessionLimits" {
			return nil, errors.New("not handled here")
		}
		calls.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return json.RawMessage(`{"ok":true}`), nil
	}})
	defer close(release)
	d := connect(t, &simPeer{s: s}, nil)
	ctx := ctxT(t)
	done := make(chan error, 1)
	go func() {
		_, err := d.Call(ctx, "openValve", map[string]any{"valve": 1})
		done <- err
	}()
	eventually(t, "the call reached the server", func() bool { return calls.Load() == 1 })
	s.Kick(simDevice)
	select {
	case err := <-done:
		if !errors.Is(err, tb.ErrOutcomeUnknown) {
			t.Fatalf("call: %v, want ErrOutcomeUnknown", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the call did not fail when its connection dropped")
	}
	if err := d.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("the server ran the call %d times, want once", n)
	}
}
