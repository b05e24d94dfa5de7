package modbustest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tbflow/tbflow/internal/peers"
)

// TLSFront is a Modbus/TCP Security endpoint: socat terminates TLS (with
// mutual authentication, as the MBAPS spec asks) in front of a plain
// Modbus TCP server.
type TLSFront struct {
	Addr string
	// ClientCert and RootCAs are what a client needs; the same as PEM
	// files: CertFile/KeyFile (the client's pair) and CAFile (the
	// server's certificate, pinned).
	ClientCert                tls.Certificate
	RootCAs                   *x509.CertPool
	CertFile, KeyFile, CAFile string
}

func selfSigned(t testing.TB, dir, name string) (certFile, keyFile string, pair tls.Certificate, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return certFile, keyFile, pair, cert
}

// StartTLSFront starts socat as a TLS front for upstream (host:port).
func StartTLSFront(t testing.TB, upstream string) *TLSFront {
	t.Helper()
	socat := peers.Find(t, "socat", "socat")
	dir := t.TempDir()
	srvCert, srvKey, _, srv := selfSigned(t, dir, "server")
	cliCert, cliKey, pair, _ := selfSigned(t, dir, "client")
	port := peers.FreePort(t)
	cmd := exec.Command(socat, fmt.Sprintf("openssl-listen:%d,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,cafile=%s,verify=1", port, srvCert, srvKey, cliCert),
		"tcp:"+upstream)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socat TLS front did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv)
	return &TLSFront{Addr: addr, ClientCert: pair, RootCAs: pool, CertFile: cliCert, KeyFile: cliKey, CAFile: srvCert}
}

// TLSPair is a self-signed server and client certificate pair for mutual
// TLS, as PEM files and loaded.
type TLSPair struct {
	Server, Client         tls.Certificate
	ServerPool, ClientPool *x509.CertPool
	ServerCert, ServerKey  string
	ClientCert, ClientKey  string
}

// NewTLSPair makes a server and a client certificate, each trusting the
// other (pinned).
func NewTLSPair(t testing.TB) *TLSPair {
	t.Helper()
	dir := t.TempDir()
	sc, sk, sp, s := selfSigned(t, dir, "server")
	cc, ck, cp, c := selfSigned(t, dir, "client")
	p := &TLSPair{Server: sp, Client: cp, ServerPool: x509.NewCertPool(), ClientPool: x509.NewCertPool(),
		ServerCert: sc, ServerKey: sk, ClientCert: cc, ClientKey: ck}
	p.ServerPool.AddCert(s)
	p.ClientPool.AddCert(c)
	return p
}

// StartTLSBack starts socat as a plain TCP endpoint that forwards to the
// TLS server at tlsAddr with the pair's client certificate, so that a
// plain client (mbpoll) can talk to a Modbus/TCP Security server.
func StartTLSBack(t testing.TB, tlsAddr string, p *TLSPair) string {
	t.Helper()
	socat := peers.Find(t, "socat", "socat")
	port := peers.FreePort(t)
	cmd := exec.Command(socat, fmt.Sprintf("tcp-listen:%d,bind=127.0.0.1,reuseaddr,fork", port),
		fmt.Sprintf("openssl-connect:%s,cert=%s,key=%s,cafile=%s,verify=1", tlsAddr, p.ClientCert, p.ClientKey, p.ServerCert))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("socat TLS back end did not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
