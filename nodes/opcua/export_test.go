package opcua

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// ToJSON is toJSON, for the tests.
var ToJSON = toJSON

// WriteTestKeyPair writes a new self-signed RSA certificate for uri and
// its key as PEM files into dir.
func WriteTestKeyPair(t testing.TB, dir, uri string) (certFile, keyFile string) {
	t.Helper()
	selfSignedCache.Lock()
	selfSignedCache.cert, selfSignedCache.key = nil, nil
	selfSignedCache.Unlock()
	cert, key, err := selfSigned(uri)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "user.pem"), filepath.Join(dir, "user.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	return certFile, keyFile
}
