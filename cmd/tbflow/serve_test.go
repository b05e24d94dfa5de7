package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/internal/testcerts"
	"github.com/tbflow/tbflow/web"
)

// waitURL waits for serve to print the editor URL.
func waitURL(t *testing.T, out *logBuffer, done <-chan int) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if i := strings.Index(out.String(), "tbflow editor: "); i >= 0 {
			if line, _, ok := strings.Cut(out.String()[i+len("tbflow editor: "):], "\n"); ok {
				return line
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve ended with %d before listening:\n%s", code, out.String())
		case <-deadline:
			t.Fatalf("serve printed no URL:\n%s", out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func get(t *testing.T, c *http.Client, url string) (int, string, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestServeCommand(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "site.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut logBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"serve", "--flows", flows, "--listen", "127.0.0.1:0", "--stop-timeout", "5s"}, &out, &errOut)
	}()
	url := waitURL(t, &out, done)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("editor URL %q", url)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	code, _, b := get(t, c, url+"healthz")
	if code != 200 || !strings.Contains(string(b), `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", code, b)
	}
	code, ctype, b := get(t, c, url)
	if code != 200 || ctype != "text/html; charset=utf-8" || !strings.Contains(strings.ToLower(string(b)), "<html") {
		t.Fatalf("editor page: %d %s", code, ctype)
	}
	if _, err := os.Stat(flows); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the flow file exists before any deploy: %v", err)
	}

	// A deploy through the API creates the flow file, secrets apart.
	flow := `[{"id":"c","type":"tb-connection","host":"127.0.0.1","accessToken":"tok-123"}]`
	resp, err := c.Post(url+"api/flows", "application/json", strings.NewReader(flow))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("deploy: %d", resp.StatusCode)
	}
	saved, err := os.ReadFile(flows)
	if err != nil || !strings.Contains(string(saved), `"tb-connection"`) || strings.Contains(string(saved), "tok-123") {
		t.Fatalf("saved flow: %s %v", saved, err)
	}
	if cred, err := os.ReadFile(filepath.Join(dir, "site_cred.json")); err != nil || !strings.Contains(string(cred), "tok-123") {
		t.Fatalf("credentials file: %s %v", cred, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}

	// A restart loads the saved flow with its secret.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done2 := make(chan int, 1)
	var out2 logBuffer
	go func() {
		done2 <- runMain(ctx2, []string{"serve", "--flows", flows, "--listen", "127.0.0.1:0"}, &out2, &errOut)
	}()
	url = waitURL(t, &out2, done2)
	_, _, b = get(t, c, url+"api/flows")
	if !strings.Contains(string(b), `"accessToken":"`+engine.SecretPlaceholder+`"`) {
		t.Fatalf("flows after restart: %s", b)
	}
	cancel2()
	if code := <-done2; code != 0 {
		t.Fatalf("second run exit code %d:\n%s", code, errOut.String())
	}
}

func TestServeRefusesInvalidFlowFile(t *testing.T) {
	flows := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(flows, []byte(`[{"id":"x","type":"nope"}]`), 0o644)
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--flows", flows, "--listen", "127.0.0.1:0"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), `unknown node type "nope"`) {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}
}

func TestServeNeedsAuthBeyondLoopback(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"serve", "--flows", filepath.Join(t.TempDir(), "f.json"), "--listen", "0.0.0.0:0"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "needs authentication") {
		t.Fatalf("exit %d:\n%s", code, errOut.String())
	}

	for _, tc := range []struct {
		addr string
		auth web.Auth
		ok   bool
	}{
		{"127.0.0.1:1880", web.Auth{}, true},
		{"127.1.2.3:1880", web.Auth{}, true},
		{"[::1]:1880", web.Auth{}, true},
		{"localhost:1880", web.Auth{}, true},
		{":1880", web.Auth{}, false},
		{"0.0.0.0:1880", web.Auth{}, false},
		{"[::]:1880", web.Auth{}, false},
		{"192.168.1.5:1880", web.Auth{}, false},
		{"edge.local:1880", web.Auth{}, false},
		{"0.0.0.0:1880", web.Auth{Token: "t"}, true},
		{"192.168.1.5:1880", web.Auth{User: "u", PasswordHash: "h"}, true},
	} {
		err := checkServeConfig(serveConfig{Listen: tc.addr, Auth: tc.auth})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errNeedsAuth)) {
			t.Errorf("%s with auth %v: %v", tc.addr, tc.auth.Enabled(), err)
		}
	}
	if err := checkServeConfig(serveConfig{Listen: "127.0.0.1:0", TLSCert: "c.pem"}); err == nil {
		t.Error("a certificate without a key was accepted")
	}
}

func TestServeAuthFlags(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("s3cret\n"), 0o600)
	a, err := authFromFlags(tokFile, "", "")
	if err != nil || a.Token != "s3cret" {
		t.Fatalf("token file: %+v %v", a, err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := authFromFlags(empty, "", ""); err == nil {
		t.Error("an empty token file was accepted")
	}
	t.Setenv("TBFLOW_AUTH_TOKEN", "from-env")
	if a, _ := authFromFlags("", "", ""); a.Token != "from-env" {
		t.Errorf("TBFLOW_AUTH_TOKEN: %+v", a)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	t.Setenv("TBFLOW_AUTH_PASSWORD_HASH", string(hash))
	if a, err := authFromFlags("", "admin", ""); err != nil || a.User != "admin" || a.PasswordHash != string(hash) {
		t.Errorf("TBFLOW_AUTH_PASSWORD_HASH: %+v %v", a, err)
	}
	if _, err := authFromFlags("", "", ""); err == nil {
		t.Error("a password hash without a user was accepted")
	}
	t.Setenv("TBFLOW_AUTH_PASSWORD_HASH", "")
	if _, err := authFromFlags("", "admin", ""); err == nil {
		t.Error("a user without a password hash was accepted")
	}
	if _, err := authFromFlags("", "admin", "not-a-hash"); err == nil {
		t.Error("an invalid hash was accepted")
	}
}

// TestServeEngineTLS runs the editor over TLS with auth on an address the
// test opened, as `tbflow demo` and embedders do.
func TestServeEngineTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	leaf := ca.Server(t, dir, "server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(engine.Options{})
	defer e.Stop(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	var out logBuffer
	go func() {
		done <- serveEngine(ctx, e, serveConfig{
			Listener: ln, TLSCert: leaf.CertFile, TLSKey: leaf.KeyFile,
			Auth:     web.Auth{Token: "t0ken"},
			OnListen: func(u string) { urls <- u },
		}, slog.New(slog.NewTextHandler(io.Discard, nil)), &out)
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("serveEngine: %v", err)
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") || !strings.Contains(out.String(), url) {
		t.Fatalf("URL %q, printed %q", url, out.String())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	if code, _, b := get(t, c, url+"healthz"); code != 200 {
		t.Fatalf("healthz over TLS: %d %s", code, b)
	}
	if code, _, _ := get(t, c, url+"api/flows"); code != 401 {
		t.Fatalf("flows without a token: %d", code)
	}
	req, _ := http.NewRequest("GET", url+"api/nodes", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var types struct{ Types []json.RawMessage }
	json.NewDecoder(resp.Body).Decode(&types)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(types.Types) == 0 {
		t.Fatalf("nodes with the token: %d", resp.StatusCode)
	}
	// Plain HTTP to the TLS port gets nowhere.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http" + strings.TrimPrefix(url, "https") + "healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was served on the TLS port")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveEngine: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serveEngine did not return after cancel")
	}
}

func TestHashPassword(t *testing.T) {
	defer func(r io.Reader) { passwordInput = r }(passwordInput)
	passwordInput = strings.NewReader("correct horse\n")
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"hash-password", "--cost", "4"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q does not match: %v", hash, err)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 4 {
		t.Fatalf("cost %d", cost)
	}
	passwordInput = strings.NewReader("\n")
	errOut.Reset()
	if code := runMain(context.Background(), []string{"hash-password"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "empty password") {
		t.Fatalf("empty password: exit %d %s", code, errOut.String())
	}
	if code := runMain(context.Background(), []string{"hash-password", "--cost", "99"}, &out, &errOut); code != 2 {
		t.Fatalf("bad cost: exit %d", code)
	}
}
