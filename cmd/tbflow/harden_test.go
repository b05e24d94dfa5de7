package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// TestValidateStopsWhenInterrupted: SIGINT or SIGTERM (a cancelled
// context) ends validate promptly with exit code 130.
func TestValidateStopsWhenInterrupted(t *testing.T) {
	var b strings.Builder
	b.WriteString("\xEF\xBB\xBF[")
	for i := range 30000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"n%d","type":"debug","wires":[]}`, i)
	}
	b.WriteString("]")
	file := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(file, []byte(b.String()), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := runMain(ctx, []string{"validate", file}, &out, &errOut); code != 130 || !strings.Contains(errOut.String(), "interrupted") {
		t.Fatalf("interrupted validate: exit %d, %s%s", code, out.String(), errOut.String())
	}
	// Not interrupted, the same file (with its BOM) is fine.
	out.Reset()
	if code := runMain(context.Background(), []string{"validate", file}, &out, &errOut); code != 0 {
		t.Fatalf("validate: exit %d, %s", code, out.String())
	}
}

// TestMetricsOffLoopbackNeedsToken: run refuses to serve metrics beyond
// loopback without a token.
func TestMetricsOffLoopbackNeedsToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.json")
	os.WriteFile(file, []byte(`[]`), 0o644)
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0"} {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), []string{"run", "--metrics", addr, file}, &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--metrics-token-file") {
			t.Errorf("--metrics %s without a token: exit %d, %s", addr, code, errOut.String())
		}
	}
	e := engine.New(engine.Options{})
	if _, err := metricsHandler(e, "127.0.0.1:0", ""); err != nil {
		t.Fatalf("loopback metrics without a token: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("m3trics\n"), 0o600)
	h, err := metricsHandler(e, ":0", tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, "Bearer m3trics": 200} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("metrics with %q: %d, want %d", auth, rec.Code, want)
		}
	}
}

// TestServeAllowedHosts: the editor answers loopback names, its listen
// address and --allowed-host names, and refuses any other Host with 421.
func TestServeAllowedHosts(t *testing.T) {
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
	go func() {
		done <- serveEngine(ctx, e, serveConfig{
			Listener: ln, AllowedHosts: []string{"tbflow.example.com"},
			OnListen: func(u string) { urls <- u },
		}, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("serveEngine: %v", err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	for host, want := range map[string]int{"localhost": 200, "tbflow.example.com": 200, "127.0.0.1": 200, "evil.example": 421} {
		req, _ := http.NewRequest("GET", url+"api/flows", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	cancel()
	<-done
}
