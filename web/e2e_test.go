package web_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/internal/peers"
	_ "github.com/tbflow/tbflow/nodes/all"
	"github.com/tbflow/tbflow/web"
)

// chromium is Debian's browser; the scripts launch it by this path.
const chromium = "/usr/bin/chromium"

// TestE2E runs the editor's end-to-end scripts (web/e2e/*.test.js, Node's
// test runner driving Debian's chromium through playwright-core) against
// an in-process server: the engine with every node type, a flow file in a
// temporary directory, and the web handler on a loopback port (and a second
// handler over the same engine that wants a login). Each script
// is a subtest; they run one after the other because they share the
// server. Screenshots and the browser's console logs go to
// web/e2e/artifacts/ (or $TBFLOW_ARTIFACTS).
func TestE2E(t *testing.T) {
	node := e2ePeers(t)

	scripts, err := filepath.Glob(filepath.Join("e2e", "*.test.js"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no e2e/*.test.js scripts (%v)", err)
	}
	sort.Strings(scripts)

	artifacts := os.Getenv("TBFLOW_ARTIFACTS")
	if artifacts == "" {
		// Each test empties its own directory in there before writing.
		artifacts = filepath.Join("e2e", "artifacts")
	}
	if artifacts, err = filepath.Abs(artifacts); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts (screenshots, browser console logs, server log): %s", artifacts)

	srv := startServer(t, artifacts)
	tmp := t.TempDir()
	env := append(os.Environ(),
		"TBFLOW_URL="+srv.url,
		"TBFLOW_ARTIFACTS="+artifacts,
		"TBFLOW_E2E_TMP="+tmp,
		"TBFLOW_FLOWS_FILE="+srv.store.Path,
		"TBFLOW_CRED_FILE="+srv.store.CredentialsPath(),
		"TBFLOW_AUTH_URL="+srv.authURL,
		"TBFLOW_AUTH_TOKEN="+srv.authToken,
		"NO_COLOR=1",
		"FORCE_COLOR=0",
	)
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".test.js")
		t.Run(name, func(t *testing.T) {
			runScript(t, node, script, env)
		})
	}
}

// e2ePeers checks for node, chromium and playwright-core and returns the
// path of node. A missing peer fails the test when peers are required and
// skips it otherwise.
func e2ePeers(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + "; install the editor test peers with: make peers (as root for the Debian packages)"
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("peer node (Node.js >= 18) not found")
	}
	out, err := exec.Command(node, "-p", "process.versions.node").Output()
	if err != nil {
		missing(fmt.Sprintf("peer %s does not run: %v", node, err))
	}
	v := strings.TrimSpace(string(out))
	if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major < 18 {
		missing(fmt.Sprintf("peer node is %s, playwright-core needs Node.js >= 18", v))
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("peer " + chromium + " not found (Debian package chromium)")
	}
	if _, err := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("peer playwright-core not found in web/e2e/node_modules (npm ci in web/e2e)")
	}
	return node
}

type e2eServer struct {
	url   string
	store *engine.FileStore
	// authURL is a second server over the same engine that wants a login
	// with authToken.
	authURL, authToken string
}

// startServer runs the engine and the editor on 127.0.0.1:0 until the test
// ends. The engine and server log to server.log in the artifacts.
func startServer(t *testing.T, artifacts string) *e2eServer {
	t.Helper()
	logf, err := os.Create(filepath.Join(artifacts, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))

	reg := engine.DefaultRegistry()
	store := &engine.FileStore{Path: filepath.Join(t.TempDir(), "flows.json"), Registry: reg}
	eng := engine.New(engine.Options{Registry: reg, Store: store, Logger: log})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Start(ctx); err != nil {
		t.Fatalf("starting engine: %v", err)
	}
	srv, err := web.New(web.Options{Engine: eng, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(&wsDropper{h: srv}) // listens on 127.0.0.1:0
	token := rand.Text()
	asrv, err := web.New(web.Options{Engine: eng, Logger: log, Auth: web.Auth{Token: token}})
	if err != nil {
		t.Fatal(err)
	}
	ahs := httptest.NewServer(asrv)
	t.Cleanup(func() {
		srv.Close()
		asrv.Close()
		hs.Close()
		ahs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			t.Errorf("stopping engine: %v", err)
		}
	})
	t.Logf("editor at %s, flow file %s", hs.URL, store.Path)
	return &e2eServer{url: hs.URL, store: store, authURL: ahs.URL, authToken: token}
}

// runScript runs one script with Node's test runner, streaming its report
// into the test log, and fails the test when the script fails.
func runScript(t *testing.T, node, script string, env []string) {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "--test-concurrency=1",
		"--test-timeout=120000", filepath.Base(script))
	cmd.Dir = filepath.Dir(script)
	cmd.Env = env
	// node and the chromium it starts share a process group, so a timeout
	// ends both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%s ran out of time: %v", script, ctx.Err())
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// wsDropper passes requests to h and keeps the connections of its
// WebSocket upgrades; POST /e2e/drop-websockets closes them all at once, as
// a network failure would, so a script can watch the editor reconnect.
type wsDropper struct {
	h     http.Handler
	mu    sync.Mutex
	conns []net.Conn
}

func (d *wsDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/e2e/drop-websockets" && r.Method == http.MethodPost:
		d.mu.Lock()
		conns := d.conns
		d.conns = nil
		d.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		fmt.Fprintf(w, "%d\n", len(conns))
	case r.URL.Path == "/api/ws":
		d.h.ServeHTTP(&hijackRecorder{ResponseWriter: w, d: d}, r)
	default:
		d.h.ServeHTTP(w, r)
	}
}

type hijackRecorder struct {
	http.ResponseWriter
	d *wsDropper
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.d.mu.Lock()
		h.d.conns = append(h.d.conns, c)
		h.d.mu.Unlock()
	}
	return c, rw, err
}
