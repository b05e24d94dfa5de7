package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tbflow/tbflow/engine"
	"github.com/tbflow/tbflow/tb"
)

// MaxPackageBytes bounds a flow package.
const MaxPackageBytes = 8 << 20

// otaLoop installs the software package assigned to the management device
// whenever it differs from the running one, one at a time.
func (m *Manager) otaLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kickOTA:
		case <-retry.C:
		}
		if err := m.checkPackage(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("software package", "err", err)
			retry.Reset(30 * time.Second)
		}
	}
}

// checkPackage asks which package is assigned and installs it when new.
func (m *Manager) checkPackage(ctx context.Context) error {
	dev := m.device()
	if dev == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	pkg, err := dev.OTAPackageInfo(qctx, tb.Software)
	cancel()
	if err != nil {
		return fmt.Errorf("asking for the assigned package: %w", err)
	}
	if pkg == nil {
		return nil
	}
	want := pkgState{Title: pkg.Title, Version: pkg.Version, Checksum: pkg.Checksum}
	m.mu.Lock()
	cur, failed := m.state, m.failed
	m.mu.Unlock()
	if (want.Title == cur.Title && want.Version == cur.Version) || want.same(failed) {
		return nil
	}
	m.install(ctx, dev, pkg, want)
	return nil
}

// report sends sw_state (and extra keys) on the management device attached
// now (a deploy may have replaced the one the update started on).
func (m *Manager) report(ctx context.Context, state string, extra map[string]any) {
	dev := m.device()
	for i := 0; dev == nil && i < 100 && ctx.Err() == nil; i++ { // a deploy is replacing it
		time.Sleep(100 * time.Millisecond)
		dev = m.device()
	}
	if dev == nil {
		m.log.Warn("no management device to report the software state to", "state", state)
		return
	}
	v := map[string]any{"sw_state": state}
	for k, x := range extra {
		v[k] = x
	}
	if _, err := dev.PublishTelemetry(ctx, v); err != nil {
		m.log.Warn("reporting software state", "state", state, "err", err)
	}
}

// install downloads, verifies, validates and deploys one package.
func (m *Manager) install(ctx context.Context, dev *tb.Device, pkg *tb.OTAPackage, id pkgState) {
	log := m.log.With("title", pkg.Title, "version", pkg.Version)
	fail := func(msg string) {
		log.Warn("software package refused", "error", msg)
		m.mu.Lock()
		m.failed = id
		m.mu.Unlock()
		m.report(ctx, tb.OTAFailed, map[string]any{"sw_error": msg})
	}
	log.Info("software package assigned: downloading")
	m.report(ctx, tb.OTADownloading, nil)
	if pkg.Size > MaxPackageBytes {
		fail(fmt.Sprintf("the package has %d bytes; a flow package may have at most %d", pkg.Size, MaxPackageBytes))
		return
	}
	dl := *pkg
	dl.Checksum = "" // verified below, after DOWNLOADED
	dctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(10*time.Minute, func() { cancel(errors.New("the download took longer than 10 minutes")) })
	data, err := dev.DownloadOTA(dctx, &dl, 0, func(received, _ int64) {
		if received > MaxPackageBytes {
			cancel(fmt.Errorf("the package is larger than %d bytes", MaxPackageBytes))
		}
	})
	timer.Stop()
	if cause := context.Cause(dctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	cancel(nil)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		fail(err.Error())
		return
	}
	m.report(ctx, tb.OTADownloaded, nil)
	if pkg.Checksum != "" {
		alg := pkg.ChecksumAlgorithm
		if alg == "" {
			alg = "SHA256"
		}
		if err := tb.VerifyChecksum(alg, data, pkg.Checksum); err != nil {
			fail(err.Error())
			return
		}
	}
	m.report(ctx, tb.OTAVerified, nil)
	m.report(ctx, tb.OTAUpdating, nil)
	if err := m.apply(ctx, data, id); err != nil {
		fail(err.Error())
		return
	}
	log.Info("software package deployed")
	m.report(ctx, tb.OTAUpdated, map[string]any{"current_sw_title": id.Title, "current_sw_version": id.Version})
	if dev := m.device(); dev != nil {
		if _, err := dev.PublishAttributes(ctx, map[string]any{"flowTitle": id.Title, "flowVersion": id.Version,
			"current_sw_title": id.Title, "current_sw_version": id.Version}); err != nil {
			log.Warn("sending client attributes", "err", err)
		}
	}
	kick(m.kickStats)
}

// newChecker returns a checker against the running flow and the local
// credentials file.
func (m *Manager) newChecker() (*checker, error) {
	creds, err := loadCreds(m.store.CredentialsPath())
	if err != nil {
		return nil, err
	}
	f, _ := m.current()
	c := &checker{reg: m.reg, lookup: m.lookup, validate: m.e.Validate, creds: creds,
		credFile: filepath.Base(m.store.CredentialsPath())}
	if f != nil {
		if ms := ManagedConns(f); len(ms) > 0 {
			c.running = ms[0]
		}
	}
	return c, nil
}

// Validate checks a flow as a package would be checked on this box.
func (m *Manager) Validate(data []byte) engine.Problems {
	c, err := m.newChecker()
	if err != nil {
		return engine.Problems{problem(nil, "", "%v", err)}
	}
	_, ps := c.prepare(data)
	return ps
}

// apply validates a package and deploys it; a flow whose nodes fail to
// start is rolled back. The flow that runs is kept as the local flow file.
func (m *Manager) apply(ctx context.Context, data []byte, id pkgState) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	c, err := m.newChecker()
	if err != nil {
		return err
	}
	f, ps := c.prepare(data)
	if len(ps) > 0 {
		return errors.New(problemsText(ps))
	}
	prev, _ := m.current()
	if err := m.deployChecked(ctx, f, prev); err != nil {
		return err
	}
	if err := m.save(f, id); err != nil {
		m.log.Error("keeping the deployed flow", "err", err)
		m.rollback(ctx, prev)
		return fmt.Errorf("keeping the flow on the box: %w", err)
	}
	return nil
}

// deployChecked deploys f and watches its new nodes start for StartCheck;
// when one fails, prev runs again and the error names the nodes.
func (m *Manager) deployChecked(ctx context.Context, f, prev *engine.Flow) error {
	changed := map[string]bool{}
	for _, n := range f.Nodes {
		if p := prev.Node(n.ID); p == nil || !sameNode(p, n) {
			changed[n.ID] = true
		}
	}
	var mu sync.Mutex
	var bad []string
	seen := map[string]bool{}
	cancel := m.e.SubscribeFunc(engine.TopicError, func(ev engine.Event) {
		d, ok := ev.Data.(*engine.ErrorData)
		if !ok || ev.Node == nil || !changed[ev.Node.ID] || !strings.HasPrefix(d.Message, "starting:") {
			return
		}
		mu.Lock()
		if !seen[ev.Node.ID] {
			seen[ev.Node.ID] = true
			bad = append(bad, fmt.Sprintf("node %q (%s): %s", ev.Node.ID, ev.Node.Type, d.Message))
		}
		mu.Unlock()
	})
	defer cancel()
	if err := m.deploy(ctx, f, engine.DeployModified); err != nil {
		return errors.New(problemsText(engine.ProblemsFromError(err)))
	}
	select {
	case <-time.After(m.opts.StartCheck):
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	failed := append([]string(nil), bad...)
	mu.Unlock()
	if len(failed) == 0 {
		return nil
	}
	m.rollback(ctx, prev)
	return fmt.Errorf("the flow did not start, the previous flow runs again:\n%s", strings.Join(failed, "\n"))
}

func (m *Manager) rollback(ctx context.Context, prev *engine.Flow) {
	if err := m.deploy(ctx, prev, engine.DeployModified); err != nil {
		m.log.Error("rolling back to the previous flow", "err", err)
		return
	}
	m.log.Warn("rolled back to the previous flow")
}

// save keeps f as the local flow file (secrets in the credentials file)
// and the package it came from beside it.
func (m *Manager) save(f *engine.Flow, id pkgState) error {
	if err := m.store.Save(f); err != nil {
		return err
	}
	data, _ := json.Marshal(id)
	if err := engine.WriteFileAtomic(m.statePath(), append(data, '\n'), 0o644); err != nil {
		return err
	}
	m.mu.Lock()
	m.state = id
	m.mu.Unlock()
	return nil
}

func sameNode(a, b *engine.NodeDef) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// restart deploys the running flow again, every node restarted.
func (m *Manager) restart(ctx context.Context) error {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	f, _ := m.current()
	if err := m.deploy(ctx, f, engine.DeployFull); err != nil {
		return err
	}
	m.log.Info("flow restarted")
	return nil
}
