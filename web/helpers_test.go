package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tbflow/tbflow/engine"
	_ "github.com/tbflow/tbflow/nodes/all"
	"github.com/tbflow/tbflow/web"
)

// Test node types, added to a clone of the default registry.

// lampConfig configures test-lamp: a node that shows Text as its status
// from Start on and each payload it receives as its status afterwards.
type lampConfig struct {
	Text string `json:"text"`
}

type lampNode struct {
	nc   *engine.NodeContext
	text string
}

func (n *lampNode) Start(context.Context) error {
	n.nc.Status(engine.Status{Fill: "green", Shape: "dot", Text: n.text})
	return nil
}
func (n *lampNode) Stop(context.Context) error { return nil }
func (n *lampNode) Handle(_ context.Context, m *engine.Msg) error {
	n.nc.Status(engine.Status{Fill: "blue", Shape: "ring", Text: fmt.Sprint(m.Payload)})
	return nil
}

// slowGate holds test-slow nodes in Stop until it is closed.
var (
	slowMu   sync.Mutex
	slowGate chan struct{}
)

type slowNode struct{}

func (slowNode) Start(context.Context) error { return nil }
func (slowNode) Stop(ctx context.Context) error {
	slowMu.Lock()
	gate := slowGate
	slowMu.Unlock()
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
	case <-ctx.Done():
	}
	return nil
}

type noConfig struct{}

func testRegistry() *engine.Registry {
	reg := engine.DefaultRegistry().Clone()
	reg.Register(engine.Type{
		Name: "test-lamp", Category: "test", Inputs: 1, Outputs: 0,
		Summary: "Shows its payload as its status.", Help: "Shows **text** as its status, then each payload it receives.",
		Fields: []engine.Field{{Name: "text", Kind: engine.KindString, Default: "on"}},
		New: engine.Construct(func(nc *engine.NodeContext, c *lampConfig) (engine.Node, error) {
			return &lampNode{nc: nc, text: c.Text}, nil
		}),
	})
	reg.Register(engine.Type{
		Name: "test-slow", Category: "test", Inputs: 0, Outputs: 0,
		Summary: "Takes until the test lets it go to stop.", Help: "Its Stop waits for the test.",
		New: engine.Construct(func(*engine.NodeContext, *noConfig) (engine.Node, error) {
			return slowNode{}, nil
		}),
	})
	return reg
}

// apiServer is an engine with a FileStore and the web server on an
// httptest server.
type apiServer struct {
	t     *testing.T
	eng   *engine.Engine
	srv   *web.Server
	hs    *httptest.Server
	url   string
	store *engine.FileStore
	once  sync.Once
}

type serverOpt func(*web.Options)

func withAuth(a web.Auth) serverOpt { return func(o *web.Options) { o.Auth = a } }

// newAPIServer starts a server; pass tls to serve HTTPS.
func newAPIServer(t *testing.T, tls bool, opts ...serverOpt) *apiServer {
	t.Helper()
	reg := testRegistry()
	store := &engine.FileStore{Path: filepath.Join(t.TempDir(), "flows.json"), Registry: reg}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(engine.Options{Registry: reg, Store: store, Logger: log, StopTimeout: 5 * time.Second})
	o := web.Options{Engine: eng, Logger: log}
	for _, fn := range opts {
		fn(&o)
	}
	srv, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	if tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	s := &apiServer{t: t, eng: eng, srv: srv, hs: hs, url: hs.URL, store: store}
	t.Cleanup(s.close)
	return s
}

// close ends the WebSockets, the HTTP server and the engine; it is
// idempotent.
func (s *apiServer) close() {
	s.once.Do(func() {
		s.srv.Close()
		s.hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.eng.Stop(ctx); err != nil {
			s.t.Errorf("stopping engine: %v", err)
		}
	})
}

// do sends a request and returns the status and body.
func (s *apiServer) do(method, path string, body string, hdr ...string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.hs.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// deploy deploys a flow through the engine and returns the revision.
func (s *apiServer) deploy(flow string) string {
	s.t.Helper()
	f, err := engine.ParseFlow([]byte(flow))
	if err != nil {
		s.t.Fatal(err)
	}
	rev, err := s.eng.Deploy(context.Background(), f, "", engine.DeployFull)
	if err != nil {
		s.t.Fatal(err)
	}
	return rev
}

// apiErr is the error body of an answer.
type apiErr struct {
	Code     string           `json:"code"`
	Message  string           `json:"message"`
	Problems []engine.Problem `json:"problems"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// frame is any frame the server sends.
type frame struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *apiErr         `json:"error"`
	Event  *struct {
		Topic string          `json:"topic"`
		Time  time.Time       `json:"time"`
		Node  *engine.NodeRef `json:"node"`
		Data  json.RawMessage `json:"data"`
	} `json:"event"`
	raw []byte
}

// wsClient is a WebSocket client whose reader sorts replies by id and
// collects events.
type wsClient struct {
	t      *testing.T
	c      *websocket.Conn
	mu     sync.Mutex
	nextID int
	frames chan frame // every frame, in order
	done   chan struct{}
	err    error // why reading ended, once done is closed
	// backlog holds frames passed over while waiting for a reply, so an
	// event that overtook the reply to the command causing it is not lost.
	backlog []frame
}

// dialWS connects to the server's /api/ws with optional headers.
func (s *apiServer) dialWS(hdr http.Header) (*wsClient, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if s.hs.TLS != nil {
		d.TLSClientConfig = s.hs.Client().Transport.(*http.Transport).TLSClientConfig
	}
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/api/ws"
	c, resp, err := d.Dial(u, hdr)
	if err != nil {
		return nil, resp, err
	}
	wc := &wsClient{t: s.t, c: c, frames: make(chan frame, 100000), done: make(chan struct{})}
	go wc.readLoop()
	s.t.Cleanup(wc.close)
	return wc, resp, nil
}

func (s *apiServer) mustDialWS() *wsClient {
	s.t.Helper()
	wc, _, err := s.dialWS(nil)
	if err != nil {
		s.t.Fatalf("dialing: %v", err)
	}
	return wc
}

func (wc *wsClient) readLoop() {
	defer close(wc.done)
	defer close(wc.frames)
	for {
		_, b, err := wc.c.ReadMessage()
		if err != nil {
			wc.err = err
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			wc.t.Errorf("server sent a frame that is not JSON: %q", b)
			return
		}
		f.raw = b
		wc.frames <- f
	}
}

func (wc *wsClient) close() {
	wc.c.Close()
	<-wc.done
}

// sendRaw writes one text frame.
func (wc *wsClient) sendRaw(b []byte) {
	wc.t.Helper()
	if err := wc.c.WriteMessage(websocket.TextMessage, b); err != nil {
		wc.t.Fatalf("writing: %v", err)
	}
}

// start sends a command and returns its id without waiting.
func (wc *wsClient) start(cmd string, args any) string {
	wc.t.Helper()
	wc.mu.Lock()
	wc.nextID++
	id := wc.nextID
	wc.mu.Unlock()
	m := map[string]any{"id": id, "cmd": cmd}
	if args != nil {
		m["args"] = args
	}
	b, _ := json.Marshal(m)
	wc.sendRaw(b)
	return fmt.Sprint(id)
}

// next returns the next frame, failing after a generous timeout.
func (wc *wsClient) next() frame {
	wc.t.Helper()
	if len(wc.backlog) > 0 {
		f := wc.backlog[0]
		wc.backlog = wc.backlog[1:]
		return f
	}
	return wc.recv()
}

// until returns the first frame satisfying pred; frames before it are
// passed to skipped (which may be nil).
func (wc *wsClient) until(pred func(frame) bool, skipped func(frame)) frame {
	wc.t.Helper()
	for {
		f := wc.next()
		if pred(f) {
			return f
		}
		if skipped != nil {
			skipped(f)
		}
	}
}

// reply waits for the reply with the given id (a JSON number or "null");
// the frames before it stay for next and until.
func (wc *wsClient) reply(id string) frame {
	wc.t.Helper()
	for i, f := range wc.backlog {
		if f.Event == nil && string(f.ID) == id {
			wc.backlog = append(wc.backlog[:i:i], wc.backlog[i+1:]...)
			return f
		}
	}
	var passed []frame
	for {
		f := wc.recv()
		if f.Event == nil && string(f.ID) == id {
			wc.backlog = append(wc.backlog, passed...)
			return f
		}
		passed = append(passed, f)
	}
}

// recv reads the next frame from the connection, skipping the backlog.
func (wc *wsClient) recv() frame {
	wc.t.Helper()
	select {
	case f, ok := <-wc.frames:
		if !ok {
			wc.t.Fatal("connection closed")
		}
		return f
	case <-time.After(10 * time.Second):
		wc.t.Fatal("no frame from the server")
	}
	return frame{}
}

// call sends a command and waits for its reply.
func (wc *wsClient) call(cmd string, args any) frame {
	wc.t.Helper()
	return wc.reply(wc.start(cmd, args))
}

// ok calls a command that must succeed and decodes its result into out.
func (wc *wsClient) ok(cmd string, args any, out any) {
	wc.t.Helper()
	f := wc.call(cmd, args)
	if f.Error != nil {
		wc.t.Fatalf("%s: error %+v", cmd, *f.Error)
	}
	if out != nil {
		if err := json.Unmarshal(f.Result, out); err != nil {
			wc.t.Fatalf("%s result %s: %v", cmd, f.Result, err)
		}
	}
}

// event waits for an event on topic.
func (wc *wsClient) event(topic string) frame {
	wc.t.Helper()
	return wc.until(func(f frame) bool { return f.Event != nil && f.Event.Topic == topic }, nil)
}

// rawFlow marshals a flow document for use as an args value.
func rawFlow(s string) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// basicFlow: inject → debug and test-lamp; a string payload "hello".
const basicFlow = `[
 {"id":"tab1","type":"tab","label":"one"},
 {"id":"inj","type":"inject","z":"tab1","name":"press","payloadType":"string","payload":"hello","x":100,"y":100,"wires":[["dbg","lamp"]]},
 {"id":"dbg","type":"debug","z":"tab1","name":"out","x":300,"y":100,"wires":[]},
 {"id":"lamp","type":"test-lamp","z":"tab1","name":"lamp","text":"on","x":300,"y":200,"wires":[]}
]`

// invalidFlow has three problems: an unknown type, a bad duration and a
// dangling wire.
const invalidFlow = `[
 {"id":"tab1","type":"tab","label":"one"},
 {"id":"a","type":"inject","z":"tab1","interval":"soon","x":1,"y":1,"wires":[["ghost"]]},
 {"id":"c","type":"nope","z":"tab1","x":1,"y":1,"wires":[]}
]`
