package tbsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestClientRPC(t *testing.T) {
	handler := func(ctx context.Context, device, method string, params json.RawMessage) (json.RawMessage, error) {
		switch method {
		case "echo":
			return json.RawMessage(`{"device":"` + device + `","params":` + string(params) + `}`), nil
		case "fail":
			return nil, errors.New("boom")
		default:
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	s := newServer(t, Options{ClientRPC: handler, ClientRPCTimeout: time.Millisecond})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	mustAdd(t, s, Device{Name: "gw", Token: "G", Gateway: true})
	s.SetRateLimits("d", RateLimits{Messages: "100:1,3000:60"})
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		c.publish("v1/devices/me/rpc/request/1", 1, `{"method":"getSessionLimits","params":{"timeout":5000}}`)
		c.expect(packets.Puback)
		pub := c.expectPublish("v1/devices/me/rpc/response/1")
		want := `{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"100:1,3000:60","telemetryMessages":null,"telemetryDataPoints":null}}`
		if string(pub.Payload) != want {
			t.Fatalf("limits %s", pub.Payload)
		}
		c.publish("v1/devices/me/rpc/request/2", 1, `{"method":"echo","params":{"a":1}}`)
		c.expect(packets.Puback)
		if pub := c.expectPublish("v1/devices/me/rpc/response/2"); string(pub.Payload) != `{"device":"d","params":{"a":1}}` {
			t.Fatalf("echo %s", pub.Payload)
		}
		c.publish("v2/r/req/3", 1, `{"method":"echo"}`)
		c.expect(packets.Puback)
		if pub := c.expectPublish("v2/r/res/3"); string(pub.Payload) != `{"device":"d","params":null}` {
			t.Fatalf("echo v2 %s", pub.Payload)
		}
		c.publish("v1/devices/me/rpc/request/4", 1, `{"method":"fail"}`)
		c.expect(packets.Puback)
		if pub := c.expectPublish("v1/devices/me/rpc/response/4"); string(pub.Payload) != `{"error":"boom"}` {
			t.Fatalf("fail %s", pub.Payload)
		}
		c.publish("v1/devices/me/rpc/request/5", 1, `{"method":"wait"}`)
		c.expect(packets.Puback)
		if pub := c.expectPublish("v1/devices/me/rpc/response/5"); string(pub.Payload) != `{"error":"timeout"}` {
			t.Fatalf("timeout %s", pub.Payload)
		}
		c.disconnect()
	})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("G")
	c.publish("v1/devices/me/rpc/request/1", 0, `{"method":"getSessionLimits"}`)
	pub := c.expectPublish("v1/devices/me/rpc/response/1")
	if !strings.Contains(string(pub.Payload), `"gatewayRateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}`) {
		t.Fatalf("gateway limits %s", pub.Payload)
	}
}

func TestClientRPCDefaultTimeout(t *testing.T) {
	s := newServer(t, Options{ClientRPCTimeout: time.Millisecond})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	c.publish("v1/devices/me/rpc/request/9", 1, `{"method":"anything","params":[1]}`)
	c.expect(packets.Puback)
	if pub := c.expectPublish("v1/devices/me/rpc/response/9"); string(pub.Payload) != `{"error":"timeout"}` {
		t.Fatalf("got %s", pub.Payload)
	}
}

func TestClaim(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	if code := c.publishAck("v1/devices/me/claim", `{"secretKey":"abc","durationMs":60000}`); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	if code := c.publishAck("v1/devices/me/claim", ``); code != 0 {
		t.Fatalf("puback %#x", code)
	}
	if code := c.publishAck("v1/devices/me/claim", `[1]`); code != 0x99 {
		t.Fatalf("puback %#x", code)
	}
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("claim answered: %+v", got)
	}
	cl := s.Claims("d")
	if len(cl) != 2 || cl[0].SecretKey != "abc" || cl[0].DurationMs != 60000 || cl[1].SecretKey != "" || cl[1].DurationMs != 86400000 {
		t.Fatalf("claims %+v", cl)
	}
}

func TestEvictionAndKick(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	both(t, func(t *testing.T, v byte) {
		old := dialRaw(t, s.MQTTAddr(), v)
		old.connectOK("T")
		newer := dialRaw(t, s.MQTTAddr(), 5)
		newer.connectOK("T")
		code := old.expectClosed()
		if want := map[byte]int{4: -1, 5: 0x8E}[v]; code != want {
			t.Fatalf("evicted with %d, want %d", code, want)
		}
		if err := s.WaitConnected(ctxT(t), "d"); err != nil {
			t.Fatal(err)
		}
		s.Kick("d")
		if code := newer.expectClosed(); code != 0x98 {
			t.Fatalf("kick code %d", code)
		}
	})
	if s.Stats().Evictions != 2 {
		t.Fatalf("stats %+v", s.Stats())
	}
	// two devices may share a client id
	mustAdd(t, s, Device{Name: "e", Token: "E"})
	a, b := dialRaw(t, s.MQTTAddr(), 4), dialRaw(t, s.MQTTAddr(), 4)
	if ack := a.connect(connectOpts{clientID: "same", username: "T"}); ack.ReasonCode != 0 {
		t.Fatal(ack.ReasonCode)
	}
	if ack := b.connect(connectOpts{clientID: "same", username: "E"}); ack.ReasonCode != 0 {
		t.Fatal(ack.ReasonCode)
	}
	if got := a.ping(); len(got) != 0 {
		t.Fatal(got)
	}
}

func TestOversizedPacket(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	big := `{"k":"` + strings.Repeat("x", 65536) + `"}`
	both(t, func(t *testing.T, v byte) {
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		if code := c.publishAck("v1/devices/me/telemetry", `{"k":"`+strings.Repeat("x", 60000)+`"}`); code != 0 {
			t.Fatalf("puback %#x", code)
		}
		c.publish("v1/devices/me/telemetry", 1, big)
		if code := c.expectClosed(); code != map[byte]int{4: -1, 5: 0x81}[v] {
			t.Fatalf("close code %d", code)
		}
	})
}

func TestRateLimits(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	s.SetRateLimits("d", RateLimits{TelemetryDataPoints: "3:3600"})
	both(t, func(t *testing.T, v byte) {
		s.SetRateLimits("d", RateLimits{TelemetryDataPoints: "3:3600"})
		c := dialRaw(t, s.MQTTAddr(), v)
		c.connectOK("T")
		if code := c.publishAck("v1/devices/me/telemetry", `{"a":1,"b":2}`); code != 0 {
			t.Fatal(code)
		}
		c.publish("v1/devices/me/telemetry", 1, `{"a":1,"b":2}`)
		if code := c.expectClosed(); code != map[byte]int{4: -1, 5: 0x83}[v] {
			t.Fatalf("close code %d", code)
		}
	})
	// The session open is a regular message; client attributes carry data
	// points and take the telemetry buckets, as in ThingsBoard.
	s.SetRateLimits("d", RateLimits{Messages: "3:3600"})
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	c.publishAck("v1/devices/me/claim", ``)
	for range 5 {
		if code := c.publishAck("v1/devices/me/attributes", `{"a":1}`); code != 0 {
			t.Fatalf("attributes puback %#x", code)
		}
	}
	if code, pubs := c.publishCollect("v1/devices/me/attributes/request/1", `{}`); code != 0 || len(pubs) != 1 {
		t.Fatalf("attribute request: %#x %v", code, pubs)
	}
	c.publish("v1/devices/me/claim", 1, ``)
	if code := c.expectClosed(); code != 0x83 {
		t.Fatalf("close code %d", code)
	}
}

func TestProvisioning(t *testing.T) {
	s := newServer(t, Options{ProvisionCloseAfter: time.Millisecond})
	s.AddProvisionProfile(ProvisionProfile{Key: "k1", Secret: "s1", Type: "sensor"})
	s.AddProvisionProfile(ProvisionProfile{Key: "k2", Secret: "s2", Type: "meter", Strategy: StrategyCheckPreProvisioned})
	mustAdd(t, s, Device{Name: "pre", Type: "meter", Token: "PRE"})
	mustAdd(t, s, Device{Name: "other", Type: "default", Token: "OTH"})
	caPEM, _, _ := testCA(t)

	provision := func(v byte, req string) string {
		c := dialRaw(t, s.MQTTAddr(), v)
		if ack := c.connect(connectOpts{clientID: "x", username: "provision"}); ack.ReasonCode != 0 {
			t.Fatalf("connack %#x", ack.ReasonCode)
		}
		if codes := c.subscribe(1, "/provision/response", "v1/devices/me/attributes"); codes[0] != 1 || codes[1] < 0x80 {
			t.Fatalf("suback %v", codes)
		}
		c.publish("/provision/request", 1, req)
		c.expect(packets.Puback)
		pub := c.expectPublish("/provision/response")
		return string(pub.Payload)
	}
	cases := []struct{ req, want string }{
		{`{"deviceName":"new1","provisionDeviceKey":"k1","provisionDeviceSecret":"s1","credentialsType":"ACCESS_TOKEN","token":"NEWTOK"}`,
			`{"credentialsValue":"NEWTOK","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}`},
		{`{"deviceName":"new1","provisionDeviceKey":"k1","provisionDeviceSecret":"s1"}`,
			`{"errorMsg":"Failed to provision device!","status":"FAILURE"}`},
		{`{"deviceName":"new2","provisionDeviceKey":"k1","provisionDeviceSecret":"bad"}`,
			`{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}`},
		{`{"deviceName":"new2","provisionDeviceKey":"nokey","provisionDeviceSecret":"s1"}`,
			`{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}`},
		{`{"deviceName":"new2","provisionDeviceKey":"","provisionDeviceSecret":""}`,
			`{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}`},
		{`{"deviceName":" new3 ","provisionDeviceKey":"k1","provisionDeviceSecret":"s1","credentialsType":"MQTT_BASIC","clientId":"cid3","username":"u3","password":"p3","gateway":true}`,
			`{"credentialsValue":{"clientId":"cid3","userName":"u3","password":"p3"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}`},
		{`{"deviceName":"pre","provisionDeviceKey":"k2","provisionDeviceSecret":"s2","token":"IGNORED"}`,
			`{"credentialsValue":"PRE","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}`},
		{`{"deviceName":"pre","provisionDeviceKey":"k2","provisionDeviceSecret":"s2"}`,
			`{"errorMsg":"Failed to provision device!","status":"FAILURE"}`},
		{`{"deviceName":"other","provisionDeviceKey":"k2","provisionDeviceSecret":"s2"}`,
			`{"errorMsg":"Failed to provision device!","status":"FAILURE"}`},
		{`{"deviceName":"missing","provisionDeviceKey":"k2","provisionDeviceSecret":"s2"}`,
			`{"errorMsg":"Failed to provision device!","status":"FAILURE"}`},
	}
	for i, tc := range cases {
		v := byte(4 + i%2)
		if got := provision(v, tc.req); got != tc.want {
			t.Fatalf("case %d: got %s, want %s", i, got, tc.want)
		}
	}
	// generated name and token
	got := provision(5, `{"provisionDeviceKey":"k1","provisionDeviceSecret":"s1"}`)
	var r struct{ CredentialsValue, CredentialsType, Status string }
	if err := json.Unmarshal([]byte(got), &r); err != nil || r.Status != "SUCCESS" || len(r.CredentialsValue) != 20 {
		t.Fatalf("generated: %s", got)
	}
	// X.509
	got = provision(4, `{"deviceName":"x509dev","provisionDeviceKey":"k1","provisionDeviceSecret":"s1","credentialsType":"X509_CERTIFICATE","hash":`+jsonString(caPEM)+`}`)
	if !strings.Contains(got, `"credentialsType":"X509_CERTIFICATE","status":"SUCCESS"`) {
		t.Fatalf("x509: %s", got)
	}
	// the provisioned devices work
	for _, d := range s.Devices() {
		if d.Name == "new3" && (!d.Gateway || d.Type != "sensor") {
			t.Fatalf("new3 %+v", d)
		}
	}
	c := dialRaw(t, s.MQTTAddr(), 4)
	if ack := c.connect(connectOpts{clientID: "cid3", username: "u3", password: "p3"}); ack.ReasonCode != 0 {
		t.Fatalf("provisioned basic credentials rejected: %#x", ack.ReasonCode)
	}
	// the provisioning session is closed after success
	p := dialRaw(t, s.MQTTAddr(), 5)
	p.connect(connectOpts{username: "provision", clean: true})
	p.publish("/provision/request", 1, `{"deviceName":"new9","provisionDeviceKey":"k1","provisionDeviceSecret":"s1"}`)
	p.expect(packets.Puback)
	p.expectPublish("/provision/response")
	p.expectClosed()
	// missing key: PUBACK 0x83 and disconnect; other topics: 0x90 and disconnect
	for _, tc := range []struct {
		topic, payload string
		code           byte
	}{
		{"/provision/request", `{"deviceName":"z"}`, 0x83},
		{"v1/devices/me/telemetry", `{}`, 0x90},
	} {
		p := dialRaw(t, s.MQTTAddr(), 5)
		p.connect(connectOpts{clientID: "provision"})
		if code := p.publishAck(tc.topic, tc.payload); code != tc.code {
			t.Fatalf("%s: puback %#x", tc.topic, code)
		}
		if code := p.expectClosed(); code != int(tc.code) {
			t.Fatalf("%s: disconnect %d", tc.topic, code)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestOTA(t *testing.T) {
	s := newServer(t, Options{})
	mustAdd(t, s, Device{Name: "d", Token: "T"})
	data := []byte(strings.Repeat("0123456789", 10)) // 100 bytes
	c := dialRaw(t, s.MQTTAddr(), 5)
	c.connectOK("T")
	c.subscribe(1, "v1/devices/me/attributes")
	if err := s.AssignOTA("d", "fw", OTAPackage{Title: "fw", Version: "1.1", Data: data, ChecksumAlgorithm: "crc32"}); err != nil {
		t.Fatal(err)
	}
	pub := c.expectPublish("v1/devices/me/attributes")
	sum, _ := checksum("CRC32", data)
	want := `{"fw_checksum":"` + sum + `","fw_checksum_algorithm":"CRC32","fw_size":100,"fw_title":"fw","fw_version":"1.1"}`
	if string(pub.Payload) != want {
		t.Fatalf("attrs %s, want %s", pub.Payload, want)
	}
	if h := s.History("d", "fw_state"); len(h) != 2 || h[0].Value != "QUEUED" || h[1].Value != "INITIATED" {
		t.Fatalf("fw_state %v", h)
	}
	if l := s.Latest("d"); l["target_fw_version"].Value != "1.1" || l["target_fw_title"].Value != "fw" {
		t.Fatalf("latest %v", l)
	}
	// the SDK's rejected subscription does not matter
	c.subscribe(1, "v2/fw/response/+")
	chunk := func(topic, payload string) []byte {
		c.publish(topic, 1, payload)
		c.expect(packets.Puback)
		resp := strings.Replace(topic, "request", "response", 1)
		return c.expectPublish(resp).Payload
	}
	if got := chunk("v2/fw/request/1/chunk/0", "30"); string(got) != string(data[:30]) {
		t.Fatalf("chunk 0 %q", got)
	}
	if got := chunk("v2/fw/request/1/chunk/3", ""); string(got) != string(data[90:]) { // remembered size
		t.Fatalf("chunk 3 %q", got)
	}
	if got := chunk("v2/fw/request/1/chunk/4", ""); len(got) != 0 {
		t.Fatalf("past end %q", got)
	}
	if got := chunk("v2/fw/request/2/chunk/0", ""); string(got) != string(data) { // whole file
		t.Fatalf("whole %q", got)
	}
	// software without a package: NOT_FOUND then disconnect
	c.publish("v2/sw/request/9/chunk/0", 1, "10") // request ids are per connection, shared by fw and sw
	if pub := c.expectPublish("v2/fw/error"); string(pub.Payload) != "NOT_FOUND" {
		t.Fatalf("error %s", pub.Payload)
	}
	if code := c.expectClosed(); code != 0x83 {
		t.Fatalf("close %d", code)
	}
	c = dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	c.publish("v2/fw/request/5/chunk/0", 1, "65537")
	if pub := c.expectPublish("v2/fw/error"); string(pub.Payload) != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("error %s", pub.Payload)
	}
	c.expectClosed()
	// unassign deletes the attributes
	c = dialRaw(t, s.MQTTAddr(), 4)
	c.connectOK("T")
	c.subscribe(1, "v1/devices/me/attributes")
	if err := s.UnassignOTA("d", "fw"); err != nil {
		t.Fatal(err)
	}
	pub = c.expectPublish("v1/devices/me/attributes")
	if string(pub.Payload) != `{"deleted":["fw_title","fw_version","fw_size","fw_checksum_algorithm","fw_checksum"]}` {
		t.Fatalf("deleted %s", pub.Payload)
	}
	if err := s.AssignOTA("d", "hw", OTAPackage{Title: "x", Version: "1", Data: data}); err == nil {
		t.Fatal("bad kind accepted")
	}
	if err := s.AssignOTA("d", "sw", OTAPackage{Title: "x", Version: "1", Data: data, ChecksumAlgorithm: "SHA1"}); err == nil {
		t.Fatal("bad algorithm accepted")
	}
}

// testCA returns a CA certificate (PEM) and key, and a tls.Certificate for a
// 127.0.0.1 server signed by it.
func testCA(t *testing.T) (string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tbsim test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), cert, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool, notAfter time.Time) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemText
}

func TestX509Auth(t *testing.T) {
	_, ca, caKey := testCA(t)
	serverCert, _ := issue(t, ca, caKey, "server", true, time.Now().Add(time.Hour))
	// The server's chain names the CA, so it is on the CertificateRequest's
	// list and Go clients send certificates it issued.
	serverCert.Certificate = append(serverCert.Certificate, ca.Raw)
	s := newServer(t, Options{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}}})
	devCert, devPEM := issue(t, ca, caKey, "device", false, time.Now().Add(time.Hour))
	strangerCert, _ := issue(t, ca, caKey, "stranger", false, time.Now().Add(time.Hour))
	expiredCert, expiredPEM := issue(t, ca, caKey, "expired", false, time.Now().Add(-time.Hour))
	mustAdd(t, s, Device{Name: "x", CertPEM: devPEM})
	mustAdd(t, s, Device{Name: "old", CertPEM: expiredPEM})
	mustAdd(t, s, Device{Name: "tok", Token: "T"})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	both(t, func(t *testing.T, v byte) {
		check := func(cert *tls.Certificate, o connectOpts, want5, want3 byte) {
			t.Helper()
			cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			c := dialRawTLS(t, s.TLSAddr(), v, cfg)
			ack := c.connect(o)
			want := want5
			if v < 5 {
				want = want3
			}
			if ack.ReasonCode != want {
				t.Fatalf("connack %#x, want %#x", ack.ReasonCode, want)
			}
			c.disconnect()
		}
		check(&devCert, connectOpts{clientID: "any", username: "ignored", password: "x"}, 0, 0)
		check(&strangerCert, connectOpts{clientID: "any", username: "T"}, codeNotAuthorized, 5)
		check(&expiredCert, connectOpts{clientID: "any"}, codeNotAuthorized, 5)
		check(nil, connectOpts{clientID: "any", username: "T"}, 0, 0) // token over TLS
	})
}

// selfSigned returns a self-signed client certificate and its PEM.
func selfSigned(t *testing.T, cn string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestX509CertificateRequestListsCAs: the server lists its own CAs, so a Go
// client that offers a self-signed certificate through Certificates sends
// nothing and is refused, as against ThingsBoard; one that supplies it
// through GetClientCertificate is accepted.
func TestX509CertificateRequestListsCAs(t *testing.T) {
	_, ca, caKey := testCA(t)
	serverCert, _ := issue(t, ca, caKey, "server", true, time.Now().Add(time.Hour))
	s := newServer(t, Options{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}}})
	devCert, devPEM := selfSigned(t, "device")
	mustAdd(t, s, Device{Name: "x", CertPEM: devPEM})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	both(t, func(t *testing.T, v byte) {
		var listed [][]byte
		cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{devCert}}
		c := dialRawTLS(t, s.TLSAddr(), v, cfg)
		// No certificate arrived: the client id is all there is.
		if ack := c.connect(connectOpts{clientID: "any"}); ack.ReasonCode != map[byte]byte{4: 2, 5: codeClientIDInvalid}[v] {
			t.Fatalf("certificate via Certificates: connack %#x", ack.ReasonCode)
		}
		c.disconnect()
		cfg = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				listed = cri.AcceptableCAs
				return &devCert, nil
			}}
		c = dialRawTLS(t, s.TLSAddr(), v, cfg)
		if ack := c.connect(connectOpts{clientID: "any"}); ack.ReasonCode != 0 {
			t.Fatalf("certificate via GetClientCertificate: connack %#x", ack.ReasonCode)
		}
		c.disconnect()
		leaf, _ := x509.ParseCertificate(serverCert.Certificate[0])
		if len(listed) != 1 || !bytes.Equal(listed[0], leaf.RawSubject) {
			t.Fatalf("acceptable CAs %q", listed)
		}
	})
}
