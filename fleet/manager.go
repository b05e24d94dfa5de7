package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

// Conn is what the manager reads of a running tb-connection node (found
// with engine.Engine.Node); the tb-connection node type implements it.
type Conn interface {
	Device() (*tb.Device, error)
	Managed() bool
	StatsInterval() time.Duration
	Reconnects() int64
	State() string
}

// Options configure a Manager.
type Options struct {
	// Path is the local flow file: loaded at start, replaced by every
	// package that deployed and started (with its credentials file beside
	// it, as engine.FileStore keeps them).
	Path string
	// Engine runs the flow; the Manager deploys into it.
	Engine *engine.Engine
	// Logger receives the manager's logs (default slog.Default()).
	Logger *slog.Logger
	// Level, when set, is changed by the tbflow.logLevel RPC.
	Level *slog.LevelVar
	// Logs, when set, holds the lines tbflow.logs returns.
	Logs *LogBuffer
	// LookupEnv resolves ${NAME} (default os.LookupEnv).
	LookupEnv engine.LookupEnv
	// Version is the tbflow version reported (default from the build).
	Version string
	// StartCheck is how long a newly deployed flow's nodes have to start
	// without an error before the flow counts as good (default 3s).
	StartCheck time.Duration
}

// Manager runs a box in managed mode. Create it with New, then Start.
type Manager struct {
	opts    Options
	e       *engine.Engine
	reg     *engine.Registry
	log     *slog.Logger
	lookup  engine.LookupEnv
	store   *engine.FileStore
	started time.Time
	red     redactor
	cpu     cpuSampler

	deployMu sync.Mutex // one deploy (package, restart) at a time
	mu       sync.Mutex
	flow     *engine.Flow // the running flow, secrets included
	state    pkgState     // the package it came from
	failed   pkgState     // the last package that failed (not tried again)
	dev      *tb.Device   // the management device attached
	conn     Conn
	unsub    func()
	interval time.Duration
	own      []string // revisions the manager deployed (the newest few)

	kickAttach chan struct{}
	kickOTA    chan struct{}
	kickStats  chan struct{}
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// pkgState identifies a software package; it is kept beside the flow file.
type pkgState struct {
	Title    string `json:"title"`
	Version  string `json:"version"`
	Checksum string `json:"checksum,omitempty"`
}

func (p pkgState) same(o pkgState) bool {
	return p.Title == o.Title && p.Version == o.Version && p.Checksum == o.Checksum
}

// New returns a manager; nothing runs before Start.
func New(opts Options) *Manager {
	m := &Manager{opts: opts, e: opts.Engine, reg: opts.Engine.Registry(), log: opts.Logger,
		lookup: lookupOr(opts.LookupEnv), started: time.Now(),
		kickAttach: make(chan struct{}, 1), kickOTA: make(chan struct{}, 1), kickStats: make(chan struct{}, 1)}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.opts.Version == "" {
		m.opts.Version = Version()
	}
	if m.opts.StartCheck <= 0 {
		m.opts.StartCheck = 3 * time.Second
	}
	m.store = &engine.FileStore{Path: opts.Path, Registry: m.reg}
	return m
}

// Version returns tbflow's version from the build information.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}

func (m *Manager) statePath() string {
	ext := filepath.Ext(m.opts.Path)
	return strings.TrimSuffix(m.opts.Path, ext) + "_package" + ext
}

// Start provisions what must be provisioned, deploys the local flow (the
// bootstrap flow, or the last package that deployed) and starts watching
// the management device. The flow must hold exactly one tb-connection
// with manage on.
func (m *Manager) Start(ctx context.Context) error {
	f, err := m.store.Load()
	if err != nil {
		return err
	}
	if _, err := Provision(ctx, m.store, f, m.lookup, m.log); err != nil {
		return err
	}
	if ps := CheckFlow(f); ps.HasErrors() {
		return ps.Err()
	}
	if len(ManagedConns(f)) == 0 {
		return fmt.Errorf("%s: managed mode needs a tb-connection with manage on (see flows/managed-bootstrap.json)", m.opts.Path)
	}
	if data, err := os.ReadFile(m.statePath()); err == nil {
		if err := json.Unmarshal(data, &m.state); err != nil {
			m.log.Warn("reading the package state", "file", m.statePath(), "err", err)
		}
	}
	if err := m.deploy(ctx, f, engine.DeployFull); err != nil {
		return err
	}
	m.log.Info("managed flow running", "file", m.opts.Path, "title", m.state.Title, "version", m.state.Version, "rev", m.e.Rev())
	lctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	cancelDeploys := m.e.SubscribeFunc(engine.TopicDeploy, func(ev engine.Event) {
		if d, ok := ev.Data.(*engine.DeployData); ok {
			m.adopt(d.Rev)
		}
		kick(m.kickAttach)
	})
	// A debug node switched on or off from the editor changes the
	// deployed flow without a deploy: follow it too, so a rollback or a
	// restart RPC does not bring back the old state.
	cancelSwitches := m.e.SubscribeFunc(engine.TopicSwitchPrefix+"+", func(ev engine.Event) {
		if d, ok := ev.Data.(*engine.SwitchData); ok {
			m.adopt(d.Rev)
		}
	})
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		defer cancelDeploys()
		defer cancelSwitches()
		m.attachLoop(lctx)
	}()
	go func() {
		defer m.wg.Done()
		m.otaLoop(lctx)
	}()
	kick(m.kickAttach)
	return nil
}

// Stop ends the manager's work (the engine is the caller's to stop).
func (m *Manager) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.mu.Lock()
	if m.unsub != nil {
		m.unsub()
		m.unsub = nil
	}
	m.mu.Unlock()
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// deploy runs f and makes it the manager's flow.
func (m *Manager) deploy(ctx context.Context, f *engine.Flow, mode engine.DeployMode) error {
	rev := f.Revision()
	m.mu.Lock()
	m.own = append(m.own, rev)
	if len(m.own) > 8 {
		m.own = m.own[len(m.own)-8:]
	}
	m.mu.Unlock()
	if _, err := m.e.Deploy(ctx, f, "", mode); err != nil {
		return err
	}
	m.setFlow(f)
	return nil
}

// adopt follows a deploy the manager did not make (the editor's, with
// tbflow serve --managed): that flow is the one running, and the one a
// failed package rolls back to.
func (m *Manager) adopt(rev string) {
	m.mu.Lock()
	for _, r := range m.own {
		if r == rev {
			m.mu.Unlock()
			return
		}
	}
	m.mu.Unlock()
	f, err := m.store.Load() // the engine's store saved it
	if err != nil || f.Revision() != rev {
		f, _ = m.e.Flows() // secrets as placeholders: a redeploy keeps them
	}
	if len(ManagedConns(f)) == 0 {
		m.log.Warn("the deployed flow has no tb-connection with manage on: this box is no longer managed until it has one again")
	}
	m.setFlow(f)
	m.log.Info("following a flow deployed outside the management channel", "rev", rev)
}

func (m *Manager) setFlow(f *engine.Flow) {
	m.mu.Lock()
	m.flow = f
	m.mu.Unlock()
	m.red.add(secretValues(f, m.reg, m.lookup)...)
}

func (m *Manager) current() (*engine.Flow, pkgState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.flow, m.state
}

// device returns the attached management device, or nil.
func (m *Manager) device() *tb.Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dev
}

// managedConn finds the running management connection node.
func (m *Manager) managedConn() Conn {
	f, _ := m.current()
	if f == nil {
		return nil
	}
	for _, n := range ManagedConns(f) {
		if node, ok := m.e.Node(n.ID); ok {
			if c, ok := node.(Conn); ok && c.Managed() {
				return c
			}
		}
	}
	return nil
}

// attachLoop follows the management device across deploys and sends the
// health telemetry.
func (m *Manager) attachLoop(ctx context.Context) {
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	var stats *time.Ticker
	var statsC <-chan time.Time
	defer func() {
		if stats != nil {
			stats.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kickAttach:
		case <-retry.C:
		case <-statsC:
			m.sendStats(ctx)
			continue
		case <-m.kickStats:
			m.sendStats(ctx)
			continue
		}
		c := m.managedConn()
		var dev *tb.Device
		if c != nil {
			dev, _ = c.Device()
		}
		if dev == nil {
			m.detach()
			continue
		}
		m.mu.Lock()
		same := dev == m.dev
		m.mu.Unlock()
		if iv := c.StatsInterval(); stats == nil || iv != m.interval {
			if stats != nil {
				stats.Stop()
			}
			stats = time.NewTicker(iv)
			statsC = stats.C
			m.mu.Lock()
			m.interval = iv
			m.mu.Unlock()
		}
		if !same {
			m.attach(ctx, c, dev)
		}
	}
}

// attach makes dev the management device: service RPCs, the software
// package watch, client attributes, a first health report.
func (m *Manager) attach(ctx context.Context, c Conn, dev *tb.Device) {
	m.registerRPCs(dev)
	unsub := dev.SubscribeAttributes(swKeys, func(tb.AttributeUpdate) { kick(m.kickOTA) })
	m.mu.Lock()
	if m.unsub != nil {
		m.unsub()
	}
	m.dev, m.conn, m.unsub = dev, c, unsub
	_, st := m.flow, m.state
	m.mu.Unlock()
	host, _ := os.Hostname()
	attrs := map[string]any{
		"tbflowVersion": m.opts.Version, "os": runtime.GOOS, "arch": runtime.GOARCH, "hostname": host,
		"goVersion": runtime.Version(), "flowTitle": st.Title, "flowVersion": st.Version,
		"current_sw_title": st.Title, "current_sw_version": st.Version,
	}
	if _, err := dev.PublishAttributes(ctx, attrs); err != nil {
		m.log.Warn("sending client attributes", "err", err)
	}
	m.log.Info("management device attached")
	kick(m.kickOTA)
	kick(m.kickStats)
}

// detach forgets a management device that is no longer running.
func (m *Manager) detach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dev == nil || m.dev.Status().State != tb.StateClosed {
		return
	}
	if m.unsub != nil {
		m.unsub()
		m.unsub = nil
	}
	m.dev, m.conn = nil, nil
}

// swKeys are the shared attributes describing the assigned software.
var swKeys = []string{"sw_title", "sw_version", "sw_tag", "sw_size", "sw_checksum", "sw_checksum_algorithm", "sw_url"}

// errNoDevice is a request before the management device is attached.
var errNoDevice = errors.New("the management connection is not started")
