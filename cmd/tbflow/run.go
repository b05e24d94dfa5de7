package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
	_ "github.com/tbflow/tbflow/nodes/all" // every node type
)

func init() {
	register("run", "run a flow file headless until interrupted", runRun)
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	debug := fs.Bool("debug", false, "log every debug node's output (debug nodes with console on are always logged)")
	stopTimeout := fs.Duration("stop-timeout", 15*time.Second, "how long nodes may take to stop on SIGINT/SIGTERM")
	metrics := fs.String("metrics", "", `serve Prometheus metrics at http://ADDR/metrics (e.g. "127.0.0.1:9464"; empty: off; off loopback it needs --metrics-token-file)`)
	metricsToken := fs.String("metrics-token-file", "", "`file` holding a bearer token /metrics requires (needed when --metrics is not on loopback)")
	dataDir := fs.String("data-dir", "", "`directory` files nodes write (outboxPath) must be in; relative paths resolve there (default: anywhere, as written)")
	limits := exprLimitFlags(fs)
	managed := fs.Bool("managed", false, "managed mode: FILE holds a tb-connection with manage on; flows arrive as its ThingsBoard software packages and replace FILE")
	setUsage(fs, stderr,
		"usage: tbflow run [flags] FILE",
		"",
		"Runs a flow without the editor, logging to stderr, until SIGINT or SIGTERM;",
		"then every node finishes the messages queued for it and stops. Secrets come",
		"from ${ENV} references and FILE's credentials file (FILE_cred.json). An invalid",
		"flow is not started: its problems are printed and the exit code is 1.",
		"With --managed, FILE starts as a bootstrap flow (flows/managed-bootstrap.json)",
		"and is replaced by every flow ThingsBoard rolls out as a software package.",
	)
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file := fs.Arg(0)
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
		fmt.Fprintf(stderr, "tbflow run: %v\n", err)
		return 2
	}
	if err := provisionFile(ctx, file, log); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	ps := validateFile(ctx, file)
	if ctx.Err() != nil {
		return 130
	}
	if ps.HasErrors() {
		for _, p := range ps {
			fmt.Fprintf(stderr, "%s: %s\n", file, p)
		}
		return 1
	}
	for _, p := range ps {
		log.Warn("flow", "file", file, "problem", p.String())
	}
	reg := engine.DefaultRegistry()
	f, _, _, err := loadFlowFile(ctx, file) // a Node-RED export is converted; validateFile said so
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	limits.apply()
	e := engine.New(engine.Options{Registry: reg, Logger: log, StopTimeout: *stopTimeout, DataDir: *dataDir})
	if *debug {
		cancel := e.SubscribeFunc(engine.TopicDebug, func(ev engine.Event) {
			d := ev.Data.(*engine.DebugData)
			v, _ := json.Marshal(d.Value)
			log.Info("debug", "node_id", ev.Node.ID, "property", d.Property, "value", string(v))
		})
		defer cancel()
	}
	var srv *http.Server
	if *metrics != "" {
		handler, err := metricsHandler(e, *metrics, *metricsToken)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow run: %v\n", err)
			return 2
		}
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			fmt.Fprintf(stderr, "tbflow run: metrics: %v\n", err)
			return 1
		}
		srv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
		go srv.Serve(ln)
		log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	var mgr *fleet.Manager
	if *managed {
		mgr, err = startManaged(ctx, e, file, log, lv, logBuf)
	} else {
		var rev string
		rev, err = e.Deploy(ctx, f, "", engine.DeployFull)
		if err == nil {
			log.Info("running flow", "file", file, "rev", rev, "nodes", len(f.Nodes))
		}
	}
	if err != nil {
		for _, p := range engine.ProblemsFromError(err) {
			fmt.Fprintf(stderr, "%s: %s\n", file, p)
		}
		return 1
	}
	<-ctx.Done()
	if mgr != nil {
		mgr.Stop()
	}
	log.Info("stopping flow")
	stopCtx, cancel := context.WithTimeout(context.Background(), *stopTimeout)
	defer cancel()
	code := 0
	if err := e.Stop(stopCtx); err != nil {
		log.Error("stopping flow", "err", err)
		code = 1
	}
	if srv != nil {
		srv.Shutdown(stopCtx)
	}
	return code
}

// metricsHandler serves /metrics. Off loopback it needs a bearer token:
// metrics name every node and tell what the flow does.
func metricsHandler(e *engine.Engine, addr, tokenFile string) (http.Handler, error) {
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("metrics token: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("metrics token file %q is empty", tokenFile)
		}
	}
	if token == "" && !isLoopback(addr) {
		return nil, fmt.Errorf("--metrics %q is not on loopback: set --metrics-token-file, or listen on 127.0.0.1", addr)
	}
	pr := prometheus.NewRegistry()
	pr.MustRegister(e, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(pr, promhttp.HandlerOpts{}))
	if token == "" {
		return mux, nil
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tbflow metrics"`)
			http.Error(w, "metrics need a bearer token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
