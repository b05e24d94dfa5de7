package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tbflow/tbflow/engine"
)

// Engine is what the server needs from the flow engine. *engine.Engine
// satisfies it. Every method must be safe for concurrent use.
type Engine interface {
	// Types returns every node type with its spec, for the palette.
	Types() []*engine.Type
	// Flows returns the deployed flow with every secret value replaced by
	// engine.SecretPlaceholder, and its revision.
	Flows() (*engine.Flow, string)
	// Rev returns the deployed revision.
	Rev() string
	// Validate checks a flow without deploying it; placeholders resolve
	// against the deployed secrets.
	Validate(f *engine.Flow) engine.Problems
	// Deploy validates and runs f. A non-empty rev that is not the deployed
	// revision fails with engine.ErrConflict; an invalid flow fails with an
	// *engine.ValidationError. Secret fields holding the placeholder (or
	// left out) keep their deployed values; "" clears them.
	Deploy(ctx context.Context, f *engine.Flow, rev string, mode engine.DeployMode) (string, error)
	// Inject presses node id's inject button; an unknown id fails with
	// engine.ErrUnknownNode.
	Inject(ctx context.Context, id string) error
	// Subscribe returns a buffered subscription to the events whose topic
	// matches an MQTT-style pattern; it never blocks the publisher.
	Subscribe(pattern string, buffer int) *engine.Subscription
	// Statuses returns the last status of every node that has one.
	Statuses() map[string]engine.Status
	// Counters returns node id's message counters.
	Counters(id string) (engine.NodeCounters, bool)
}

var _ Engine = (*engine.Engine)(nil)

// Auth configures authentication. The zero value turns it off; with a Token
// or a User set, every API request needs a credential.
type Auth struct {
	// Token is accepted as "Authorization: Bearer TOKEN" and by /api/login.
	Token string
	// User and PasswordHash (bcrypt) are accepted as HTTP basic
	// credentials and by /api/login.
	User         string
	PasswordHash string
}

// Enabled reports whether any credential is configured.
func (a Auth) Enabled() bool { return a.Token != "" || a.User != "" }

// Options configure a [Server].
type Options struct {
	// Engine is the engine the API drives. Required.
	Engine Engine
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Auth is the authentication configuration; the zero value is off.
	Auth Auth
	// AllowOrigins lists further origins ("https://ops.example.com") whose
	// pages may use the API besides the server's own.
	AllowOrigins []string
	// AllowedHosts lists the Host names (or addresses) the server answers
	// besides loopback ones: "tbflow.example.com", "*.example.com",
	// "192.0.2.10", or "*" for any. A request naming another host is
	// refused with 421, which defeats DNS rebinding.
	AllowedHosts []string
	// MaxFrame bounds a WebSocket frame and a request body (default 8 MiB:
	// about 130,000 nodes, which load and validate in about a second).
	MaxFrame int64
	// BodyTimeout bounds reading a request body (default 20s), so clients
	// that dribble their bodies cannot hold connections and handlers.
	BodyTimeout time.Duration
	// PingInterval is how often the server pings a WebSocket (default 30s);
	// a connection silent for twice as long is closed.
	PingInterval time.Duration
	// WriteTimeout bounds writing one WebSocket frame (default 30s).
	WriteTimeout time.Duration
	// EventQueue is how many events may wait for one slow WebSocket before
	// further events are dropped for it (default 1024).
	EventQueue int
	// SessionTTL is how long a login session lasts (default 12h).
	SessionTTL time.Duration
	// StaticDir, when set, serves the editor from this directory instead of
	// the copy embedded in the binary (for editor development).
	StaticDir string
	// Collectors are further Prometheus collectors for /metrics. The engine
	// is added when it is a prometheus.Collector, as are the Go and process
	// collectors.
	Collectors []prometheus.Collector
}

// Default limits.
const (
	DefaultMaxFrame     = 8 << 20
	DefaultPingInterval = 30 * time.Second
	DefaultBodyTimeout  = 20 * time.Second
	// MaxDebugValue is the largest debug value, as JSON, sent whole to the
	// browser; larger values are truncated.
	MaxDebugValue = 64 << 10
)

// Server is the editor's HTTP handler. Close it to end its WebSocket
// connections.
type Server struct {
	eng     Engine
	log     *slog.Logger
	opts    Options
	auth    *authenticator
	origins map[string]bool
	hosts   *hostAllow
	static  *staticFiles
	mux     *http.ServeMux
	upg     websocket.Upgrader

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*wsConn]bool
	closed bool
	wsWG   sync.WaitGroup
}

// New returns a server over opts.Engine.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("web: no engine")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxFrame
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.EventQueue <= 0 {
		opts.EventQueue = 1024
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	auth, err := newAuthenticator(opts.Auth, opts.SessionTTL)
	if err != nil {
		return nil, err
	}
	s := &Server{
		eng: opts.Engine, log: opts.Logger, opts: opts, auth: auth,
		origins: map[string]bool{}, conns: map[*wsConn]bool{},
	}
	if s.hosts, err = newHostAllow(opts.AllowedHosts); err != nil {
		return nil, err
	}
	for _, o := range opts.AllowOrigins {
		n, ok := normOrigin(o)
		if !ok {
			return nil, fmt.Errorf("web: allowed origin %q: want scheme://host[:port]", o)
		}
		s.origins[n] = true
	}
	if s.static, err = newStaticFiles(opts.StaticDir); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.upg = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// ServeHTTP checked the Origin before the upgrade.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	if c, ok := opts.Engine.(prometheus.Collector); ok {
		cs = append(cs, c)
	}
	for _, c := range append(cs, opts.Collectors...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("web: registering metrics: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /api/ws", s.handleWS)
	mux.HandleFunc("GET /api/flows", s.handleGetFlows)
	mux.HandleFunc("POST /api/flows", s.handlePostFlows)
	mux.HandleFunc("POST /api/validate", s.handleValidate)
	mux.HandleFunc("GET /api/nodes", s.handleNodes)
	mux.HandleFunc("GET /api/status", s.handleStatus)
	mux.HandleFunc("GET /api/counters", s.handleCounters)
	mux.HandleFunc("POST /api/inject/{id}", s.handleInject)
	mux.HandleFunc("POST /api/debug/{id}/{state}", s.handleDebugSwitch) // debugswitch.go
	mux.HandleFunc("GET /api/nodes/{type}/actions", s.handleListActions)
	mux.HandleFunc("POST /api/nodes/{type}/actions/{name}", s.handleNodeAction)
	mux.HandleFunc("POST /api/login", s.handleLogin)
	mux.HandleFunc("POST /api/logout", s.handleLogout)
	mux.HandleFunc("GET /api/session", s.handleSession)
	s.routeNodeRED(mux) // nodered.go
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Code: codeNotFound, Message: "no such API endpoint: " + r.Method + " " + r.URL.Path, status: http.StatusNotFound})
	})
	mux.Handle("/", s.static)
	s.mux = mux
	return s, nil
}

// openPaths need no credential.
var openPaths = map[string]bool{"/healthz": true, "/api/session": true, "/api/login": true, "/api/logout": true}

// needsAuth reports whether path is guarded when auth is on: the API and
// the metrics. The editor's static files are open, so it can show its
// login form.
func needsAuth(path string) bool {
	if openPaths[path] {
		return false
	}
	return path == "/metrics" || path == "/api" || strings.HasPrefix(path, "/api/")
}

// stateChanging reports whether a request must pass the Origin check.
func stateChanging(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		return true
	}
	return r.URL.Path == "/api/ws"
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !s.checkHost(w, r) {
		return
	}
	if r.Body != nil && r.Body != http.NoBody && r.Method != http.MethodGet {
		r.Body = newDeadlineBody(w, r.Body, s.opts.BodyTimeout)
	}
	if stateChanging(r) && !s.originAllowed(r) {
		writeError(w, &apiError{Code: codeForbidden, Message: fmt.Sprintf("cross-origin request refused (Origin %q); allow it with --allow-origin", r.Header.Get("Origin")), status: http.StatusForbidden})
		return
	}
	if s.auth.enabled() {
		id, res := s.auth.identify(r)
		ok := res == authOK
		if res == authLimited && needsAuth(r.URL.Path) {
			tooMany(w, "credentials")
			return
		}
		if !ok && needsAuth(r.URL.Path) {
			h.Set("WWW-Authenticate", `Bearer realm="tbflow"`)
			writeError(w, &apiError{Code: codeUnauthorized, Message: "authentication required", status: http.StatusUnauthorized})
			return
		}
		if ok {
			r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Close ends every WebSocket connection (with a "going away" close frame)
// and waits until their goroutines have finished, including commands still
// running for them. HTTP requests are the http.Server's to end (Shutdown).
// New WebSocket upgrades are refused afterwards.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	s.wsWG.Wait()
	s.cancel()
	if s.static.root != nil {
		s.static.root.Close()
	}
	return nil
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "rev": s.eng.Rev()})
}
