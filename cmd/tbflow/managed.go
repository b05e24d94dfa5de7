package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/fleet"
)

// managedLogger is a logger whose level the tbflow.logLevel RPC changes and
// whose lines tbflow.logs returns.
func managedLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, *fleet.LogBuffer, error) {
	lv := new(slog.LevelVar)
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	lv.Set(l)
	buf := fleet.NewLogBuffer(0)
	out := io.MultiWriter(w, buf)
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(out, opts)), lv, buf, nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, opts)), lv, buf, nil
	}
	return nil, nil, nil, fmt.Errorf("log format %q: want text or json", format)
}

// startManaged runs file in managed mode on e: it provisions what must be
// provisioned, deploys the file and follows the management device. The
// caller stops the returned manager, then the engine.
func startManaged(ctx context.Context, e *engine.Engine, file string, log *slog.Logger, lv *slog.LevelVar, buf *fleet.LogBuffer) (*fleet.Manager, error) {
	m := fleet.New(fleet.Options{Path: file, Engine: e, Logger: log, Level: lv, Logs: buf})
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// provisionFile provisions the tb-connections of a flow file that have a
// provision key and no credentials yet, keeping the credentials in the
// file's credentials file.
func provisionFile(ctx context.Context, file string, log *slog.Logger) error {
	store := &engine.FileStore{Path: file, Registry: engine.DefaultRegistry()}
	f, err := store.Load()
	if err != nil {
		return err
	}
	_, err = fleet.Provision(ctx, store, f, nil, log)
	return err
}
