package web_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tbflow/tbflow/web"
)

// TestStaticDoesNotFollowSymlinks: --static serves what its directory
// holds, never what a link inside it points to.
func TestStaticDoesNotFollowSymlinks(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html></html>"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("outside secret"), 0o644)
	os.MkdirAll(filepath.Join(outside, "d"), 0o755)
	os.WriteFile(filepath.Join(outside, "d", "x.js"), []byte("outside js"), 0o644)
	os.WriteFile(filepath.Join(dir, "real.txt"), []byte("inside"), 0o644)
	for link, target := range map[string]string{
		"link.txt":    filepath.Join(outside, "secret.txt"),
		"dirlink":     filepath.Join(outside, "d"),
		"inner.txt":   filepath.Join(dir, "real.txt"),
		"relative.js": "../" + filepath.Base(outside) + "/secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Skipf("symlinks not supported here: %v", err)
		}
	}
	s := newAPIServer(t, false, func(o *web.Options) { o.StaticDir = dir })
	if code, _, b := s.do("GET", "/real.txt", ""); code != 200 || string(b) != "inside" {
		t.Fatalf("regular file: %d %q", code, b)
	}
	for _, p := range []string{"/link.txt", "/dirlink/x.js", "/inner.txt", "/relative.js"} {
		if code, _, b := s.do("GET", p, ""); code != 404 || strings.Contains(string(b), "outside") {
			t.Errorf("GET %s through a symlink: %d %q", p, code, b)
		}
	}
}

// TestWSInvalidUTF8TextFrame: a text frame that is not UTF-8 fails the
// connection with close code 1007.
func TestWSInvalidUTF8TextFrame(t *testing.T) {
	s := newAPIServer(t, false)
	c := s.mustDialWS()
	c.ok("ping", nil, nil)
	c.sendRaw([]byte("{\"id\":1,\"cmd\":\"ping\",\"x\":\"\xff\xfe\"}"))
	select {
	case <-c.done:
		var ce *websocket.CloseError
		if !errors.As(c.err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("connection ended with %v, want close 1007", c.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("invalid UTF-8 accepted")
	}
}

// TestDribbledBodyTimesOut: a client that sends its body a byte at a time
// is cut off at the body timeout.
func TestDribbledBodyTimesOut(t *testing.T) {
	s := newAPIServer(t, false, func(o *web.Options) { o.BodyTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for range 100 {
			if _, err := conn.Write([]byte(" ")); err != nil {
				done <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		done <- nil
	}()
	conn.SetReadDeadline(time.Now().Add(8 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a dribbled body held the request for %s (answer %v, %v)", d, resp, err)
	}
}

// TestAbandonedValidateStops: a validation whose client went away ends
// without doing the work.
func TestAbandonedValidateStops(t *testing.T) {
	s := newAPIServer(t, false)
	var b strings.Builder
	b.WriteString(`[{"id":"tab","type":"tab","label":"t"}`)
	for i := range 20000 {
		fmt.Fprintf(&b, `,{"id":"n%d","type":"debug","z":"tab","wires":[]}`, i)
	}
	b.WriteString("]")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/api/validate", strings.NewReader(b.String()))
	req.Host = "127.0.0.1"
	rec := httptest.NewRecorder()
	s.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "abandoned") {
		t.Fatalf("abandoned validate: %d %s", rec.Code, rec.Body)
	}
	// The same body from a client that waits is validated whole.
	code, _, body := s.do("POST", "/api/validate", b.String())
	if code != 200 || !strings.Contains(string(body), `"problems":[]`) {
		t.Fatalf("validate of 20000 nodes: %d %.200s", code, body)
	}
}
