package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
	"github.com/tbflow/tbflow/web"
)

func init() {
	register("serve", "run the flow engine with the browser editor", runServe)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// serveConfig configures serveEngine.
type serveConfig struct {
	// Listen is the address to listen on ("127.0.0.1:1880"); ignored when
	// Listener is set.
	Listen string
	// Listener, when set, is an open listener to serve on (tests pass one
	// bound to port 0). serveEngine closes it.
	Listener net.Listener
	// TLSCert and TLSKey are PEM files; both empty serves plain HTTP.
	TLSCert, TLSKey string
	// Auth is the editor's authentication; required off loopback.
	Auth web.Auth
	// AllowOrigins are further origins allowed to use the API.
	AllowOrigins []string
	// AllowedHosts are further Host names the editor answers (loopback
	// names always work, and so does a specific listen address).
	AllowedHosts []string
	// StaticDir serves the editor from a directory instead of the binary.
	StaticDir string
	// OnListen, when set, is called with the editor URL once the server
	// listens.
	OnListen func(url string)
}

// errNeedsAuth is a listen address off loopback without authentication.
var errNeedsAuth = errors.New("listening beyond loopback needs authentication: " +
	"set --auth-token-file (or TBFLOW_AUTH_TOKEN), or --auth-user with --auth-password-hash (or TBFLOW_AUTH_PASSWORD_HASH)")

// checkServeConfig refuses a configuration that would expose the editor
// without authentication.
func checkServeConfig(cfg serveConfig) error {
	addr := cfg.Listen
	if cfg.Listener != nil {
		addr = cfg.Listener.Addr().String()
	}
	if !cfg.Auth.Enabled() && !isLoopback(addr) {
		return fmt.Errorf("address %q: %w", addr, errNeedsAuth)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("TLS needs both --tls-cert and --tls-key")
	}
	return nil
}

// isLoopback reports whether a listen address only accepts local
// connections: a loopback IP or "localhost". An empty host listens
// everywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// serveEngine serves the editor and its API over e until ctx ends: it
// checks cfg (no auth off loopback is refused with errNeedsAuth), listens
// (or uses cfg.Listener), prints the editor's URL to stdout, and on ctx's
// end closes the WebSocket connections and shuts the HTTP server down. It
// neither starts nor stops the engine: the caller deploys before and stops
// e after. `tbflow serve` and `tbflow demo` both run the editor through it.
func serveEngine(ctx context.Context, e *engine.Engine, cfg serveConfig, log *slog.Logger, stdout io.Writer) (err error) {
	ln := cfg.Listener
	defer func() {
		if err != nil && ln != nil {
			ln.Close() // not served: the listener was passed in or opened here
		}
	}()
	if err := checkServeConfig(cfg); err != nil {
		return err
	}
	hosts := cfg.AllowedHosts
	if ln != nil {
		hosts = append(hosts, listenHosts(ln.Addr().String())...)
	} else {
		hosts = append(hosts, listenHosts(cfg.Listen)...)
	}
	ws, err := web.New(web.Options{
		Engine: e, Logger: log, Auth: cfg.Auth, AllowOrigins: cfg.AllowOrigins, AllowedHosts: hosts, StaticDir: cfg.StaticDir,
	})
	if err != nil {
		return err
	}
	var tlsConf *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listening: %w", err)
		}
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	srv := &http.Server{
		Handler:           ws,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	url := editorURL(ln.Addr(), tlsConf != nil)
	fmt.Fprintf(stdout, "tbflow editor: %s\n", url)
	log.Info("serving the editor", "url", url, "auth", cfg.Auth.Enabled(), "tls", tlsConf != nil)
	if cfg.OnListen != nil {
		cfg.OnListen(url)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		ws.Close()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws.Close()
	err = srv.Shutdown(shutCtx)
	<-done
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// listenHosts returns the Hosts a browser uses to reach a listen address
// by address: its IP, or for an unspecified address every address of this
// machine's interfaces. (An address in Host is no DNS-rebinding risk: only
// names can be re-pointed.)
func listenHosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		return nil // a name: loopback names are allowed anyway
	}
	if ip != nil && !ip.IsUnspecified() {
		return []string{ip.String()}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// editorURL is the URL a browser on this machine opens; an unspecified
// listen address is reached through loopback.
func editorURL(addr net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	flows := fs.String("flows", "flows.json", "flow file: loaded at start, saved by every deploy (secrets go to FILE_cred.json)")
	listen := fs.String("listen", "127.0.0.1:1880", "address to serve the editor on; beyond loopback, authentication is required")
	tokenFile := fs.String("auth-token-file", "", "`file` holding the API token (or set TBFLOW_AUTH_TOKEN)")
	user := fs.String("auth-user", "", "user name for the login form and HTTP basic auth")
	passHash := fs.String("auth-password-hash", "", "bcrypt `hash` of the user's password (make one with tbflow hash-password; or set TBFLOW_AUTH_PASSWORD_HASH)")
	tlsCert := fs.String("tls-cert", "", "TLS certificate (PEM); serves HTTPS with --tls-key")
	tlsKey := fs.String("tls-key", "", "TLS private key (PEM)")
	var origins stringList
	fs.Var(&origins, "allow-origin", "a further origin (scheme://host[:port]) whose pages may use the API; repeatable")
	var hosts stringList
	fs.Var(&hosts, "allowed-host", "a further Host `name` the editor answers (loopback names always work): tbflow.example.com, *.example.com, an address, or * for any; repeatable")
	static := fs.String("static", "", "serve the editor from this directory instead of the built-in copy (editor development)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	stopTimeout := fs.Duration("stop-timeout", 15*time.Second, "how long nodes may take to stop on SIGINT/SIGTERM")
	dataDir := fs.String("data-dir", "", "`directory` files nodes write (outboxPath) must be in; relative paths resolve there (default: the flow file's folder)")
	limits := exprLimitFlags(fs)
	managed := fs.Bool("managed", false, "managed mode: --flows holds a tb-connection with manage on; flows arrive as its ThingsBoard software packages")
	setUsage(fs, stderr,
		"usage: tbflow serve [flags]",
		"",
		"Runs the flow in --flows with the browser editor and its API (docs/editor-api.md).",
		"Deploys from the editor are saved to the flow file; a missing file starts an",
		"empty flow and is created by the first deploy. SIGINT or SIGTERM stop it.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var log *slog.Logger
	var lv *slog.LevelVar
	var logBuf *fleet.LogBuffer
	var err error
	if *managed {
		log, lv, logBuf, err = managedLogger(stderr, *level, *format)
	} else {
		log, err = newLogger(stderr, *level, *format)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tbflow serve: %v\n", err)
		return 2
	}
	auth, err := authFromFlags(*tokenFile, *user, *passHash)
	if err != nil {
		fmt.Fprintf(stderr, "tbflow serve: %v\n", err)
		return 2
	}
	cfg := serveConfig{
		Listen: *listen, TLSCert: *tlsCert, TLSKey: *tlsKey, Auth: auth,
		AllowOrigins: origins, AllowedHosts: hosts, StaticDir: *static,
	}
	if err := checkServeConfig(cfg); err != nil {
		fmt.Fprintf(stderr, "tbflow serve: %v\n", err)
		return 2
	}

	limits.apply()
	if *dataDir == "" {
		*dataDir = filepath.Dir(*flows)
	}
	reg := engine.DefaultRegistry()
	store := &engine.FileStore{Path: *flows, Registry: reg}
	e := engine.New(engine.Options{Registry: reg, Logger: log, Store: store, StopTimeout: *stopTimeout, DataDir: *dataDir})
	var mgr *fleet.Manager
	switch _, err := os.Stat(*flows); {
	case *managed:
		if mgr, err = startManaged(ctx, e, *flows, log, lv, logBuf); err != nil {
			for _, p := range engine.ProblemsFromError(err) {
				fmt.Fprintf(stderr, "%s: %s\n", *flows, p)
			}
			return 1
		}
	case errors.Is(err, os.ErrNotExist):
		log.Info("no flow file yet: starting empty; the first deploy creates it", "file", *flows)
	case err != nil:
		fmt.Fprintf(stderr, "tbflow serve: %v\n", err)
		return 1
	default:
		if err := provisionFile(ctx, *flows, log); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", *flows, err)
			return 1
		}
		if err := e.Start(ctx); err != nil {
			for _, p := range engine.ProblemsFromError(err) {
				fmt.Fprintf(stderr, "%s: %s\n", *flows, p)
			}
			return 1
		}
		log.Info("running flow", "file", *flows, "rev", e.Rev())
	}

	code := 0
	if err := serveEngine(ctx, e, cfg, log, stdout); err != nil {
		fmt.Fprintf(stderr, "tbflow serve: %v\n", err)
		code = 1
	}
	if mgr != nil {
		mgr.Stop()
	}
	log.Info("stopping flow")
	stopCtx, cancel := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancel()
	if err := e.Stop(stopCtx); err != nil {
		log.Error("stopping flow", "err", err)
		code = 1
	}
	return code
}

// authFromFlags builds the auth configuration from flags and environment.
func authFromFlags(tokenFile, user, passHash string) (web.Auth, error) {
	var a web.Auth
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return a, fmt.Errorf("reading the token file: %w", err)
		}
		if a.Token = strings.TrimSpace(string(b)); a.Token == "" {
			return a, fmt.Errorf("token file %q is empty", tokenFile)
		}
	} else if t := strings.TrimSpace(os.Getenv("TBFLOW_AUTH_TOKEN")); t != "" {
		a.Token = t
	}
	if passHash == "" {
		passHash = strings.TrimSpace(os.Getenv("TBFLOW_AUTH_PASSWORD_HASH"))
	}
	switch {
	case user != "" && passHash == "":
		return a, errors.New("--auth-user needs --auth-password-hash (or TBFLOW_AUTH_PASSWORD_HASH)")
	case user == "" && passHash != "":
		return a, errors.New("a password hash needs --auth-user")
	}
	if passHash != "" {
		if _, err := bcrypt.Cost([]byte(passHash)); err != nil {
			return a, fmt.Errorf("password hash: %w (make one with tbflow hash-password)", err)
		}
	}
	a.User, a.PasswordHash = user, passHash
	return a, nil
}
