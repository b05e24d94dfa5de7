package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
	"github.com/tbflow/tbflow/tb/tbsim"
)

// summary collects the rows of every fault run by this test binary; TestMain
// prints them as one table at the end.
var summary struct {
	sync.Mutex
	rows []Result
}

func TestMain(m *testing.M) {
	code := m.Run()
	removeBinary()
	summary.Lock()
	rows := summary.rows
	summary.Unlock()
	if len(rows) > 0 {
		fmt.Println()
		fmt.Println("fault suite results:")
		fmt.Println(TableHeader())
		for _, r := range rows {
			fmt.Println(r.Row())
		}
	}
	os.Exit(code)
}

// record logs the result as a table row, appends it to results.jsonl and
// adds it to the summary. It runs before the test's final checks, so a
// failing fault still leaves its figures behind.
func record(t *testing.T, r Result) {
	t.Helper()
	r.Test = t.Name()
	r.Time = time.Now().UTC()
	t.Log("result:\n" + TableHeader() + "\n" + r.Row())
	if err := AppendJSONL(ArtifactsDir(), r); err != nil {
		t.Errorf("writing results.jsonl: %v", err)
	}
	summary.Lock()
	summary.rows = append(summary.rows, r)
	summary.Unlock()
}

// eventually polls cond until it holds or the limit passes. The limit
// guards against hangs; it is not a performance assertion.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(limit, cond) {
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}

// waitFor polls cond every 5 ms until it holds (true) or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// testLogger writes the client's logs (Info and above) to the test log,
// until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlog struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*tlog)(nil)

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

// newTBSim starts tbsim with one device and closes it when the test ends.
func newTBSim(t *testing.T, device, token string) *tbsim.Server {
	t.Helper()
	s, err := tbsim.New(tbsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDevice(tbsim.Device{Name: device, Token: token}); err != nil {
		t.Fatal(err)
	}
	return s
}

// --- numbered telemetry through the SDK ------------------------------------

// stream publishes telemetry {"seq": n}, n = 0, 1, 2, ..., through a
// tb.Device at a steady pace and remembers every publish: sent (attempted),
// accepted (PublishTelemetry returned nil: the message is in the durable
// outbox) and the Ack of each accepted one.
type stream struct {
	d     *tb.Device
	every time.Duration
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once

	mu       sync.Mutex
	sent     int
	accepted []int
	acks     map[int]*tb.Ack
	errs     []string
}

func startStream(d *tb.Device, every time.Duration) *stream {
	s := &stream{d: d, every: every, stopc: make(chan struct{}), done: make(chan struct{}), acks: map[int]*tb.Ack{}}
	go s.run()
	return s
}

func (s *stream) run() {
	defer close(s.done)
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-s.stopc:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ack, err := s.d.PublishTelemetry(ctx, map[string]any{"seq": n})
		cancel()
		s.mu.Lock()
		s.sent++
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("seq %d: %v", n, err))
		} else {
			s.accepted = append(s.accepted, n)
			s.acks[n] = ack
		}
		s.mu.Unlock()
	}
}

// stop ends the stream and waits for its goroutine; it may be called more
// than once.
func (s *stream) stop() {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
}

// finish ends a fault: it waits until the backlog accepted during the fault
// is acknowledged (recovery is measured from since, the end of the fault),
// lets 300 more messages through, stops the stream and waits for every
// acknowledgement, returning how many were acknowledged and the errors of
// the others.
func (s *stream) finish(t *testing.T, ctx context.Context, backlog []int, since time.Time, fault string) (recovery time.Duration, ok int, ackErrs []string) {
	t.Helper()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	_, _, err := s.waitAcked(wctx, backlog)
	wcancel()
	if err != nil {
		t.Fatalf("the backlog was not acknowledged after %s: %v", fault, err)
	}
	recovery = time.Since(since)
	_, atRecovered := s.counts()
	eventually(t, 30*time.Second, "300 more messages accepted after "+fault, func() bool {
		_, n := s.counts()
		return n >= atRecovered+300
	})
	s.stop()
	wctx, wcancel = context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	ok, ackErrs, err = s.waitAcked(wctx, s.acceptedSoFar())
	if err != nil {
		t.Fatalf("waiting for every acknowledgement: %v", err)
	}
	return recovery, ok, ackErrs
}

// checkAcks fails the test for accepted messages whose Ack did not succeed
// (ok of them did and ackErrs are the others' errors, as finish returns
// them) and for refused publishes. The stream must be stopped.
func (s *stream) checkAcks(t *testing.T, ok int, ackErrs []string) {
	t.Helper()
	all := s.acceptedSoFar()
	if ok != len(all) {
		t.Errorf("%d of %d accepted messages were not acknowledged: %s", len(all)-ok, len(all), strings.Join(ackErrs, "; "))
	}
	if len(s.errs) > 0 {
		t.Errorf("publishes refused: %s", strings.Join(headMore(s.errs, 5), "; "))
	}
}

// headMore is head plus a last element saying how many were left out.
func headMore(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("(%d more)", len(s)-n))
	}
	return s
}

// counts returns how many publishes were attempted and accepted so far.
func (s *stream) counts() (sent, accepted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, len(s.accepted)
}

// acceptedSoFar returns the sequence numbers accepted so far.
func (s *stream) acceptedSoFar() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.accepted...)
}

// waitAcked waits until the Ack of every given accepted message completed;
// it returns how many completed with nil (acknowledged by the server) and
// the distinct errors of the others.
func (s *stream) waitAcked(ctx context.Context, seqs []int) (ok int, errs []string, err error) {
	s.mu.Lock()
	acks := make([]*tb.Ack, 0, len(seqs))
	for _, n := range seqs {
		acks = append(acks, s.acks[n])
	}
	s.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range acks {
		select {
		case <-a.Done():
		case <-ctx.Done():
			return ok, errs, ctx.Err()
		}
		if e := a.Err(); e != nil {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e.Error())
			}
			continue
		}
		ok++
	}
	return ok, errs, nil
}

// ackedNil reports whether the message's Ack completed without error.
func (s *stream) ackedNil(n int) bool {
	s.mu.Lock()
	a := s.acks[n]
	s.mu.Unlock()
	if a == nil {
		return false
	}
	select {
	case <-a.Done():
		return a.Err() == nil
	default:
		return false
	}
}

// wireLedger follows the numbered publishes on the wire through a Proxy: it
// maps each PUBLISH's packet id to its seq per connection, and records the
// seqs whose PUBACK the broker really sent back, with the proxy generation of
// the connection that carried it.
type wireLedger struct {
	topic string

	mu        sync.Mutex
	ids       map[int]map[uint16]int // link → packet id → seq
	pubacked  map[int]map[int]bool   // seq → generations that PUBACKed it
	publishes int                    // numbered PUBLISH packets forwarded to the server
}

func newWireLedger(topic string) *wireLedger {
	return &wireLedger{topic: topic, ids: map[int]map[uint16]int{}, pubacked: map[int]map[int]bool{}}
}

func (w *wireLedger) observe(ev WireEvent) {
	switch {
	case ev.Dir == ToServer && ev.Type == PacketPublish && ev.Topic == w.topic && ev.QoS > 0:
		seq, ok := SeqOf(ev.Payload)
		if !ok {
			return
		}
		w.mu.Lock()
		if w.ids[ev.Link] == nil {
			w.ids[ev.Link] = map[uint16]int{}
		}
		w.ids[ev.Link][ev.PacketID] = seq
		w.publishes++
		w.mu.Unlock()
	case ev.Dir == ToClient && ev.Type == PacketPuback:
		w.mu.Lock()
		if seq, ok := w.ids[ev.Link][ev.PacketID]; ok {
			delete(w.ids[ev.Link], ev.PacketID)
			if w.pubacked[seq] == nil {
				w.pubacked[seq] = map[int]bool{}
			}
			w.pubacked[seq][ev.Gen] = true
		}
		w.mu.Unlock()
	}
}

// acked reports whether seq got a PUBACK on the wire, from generation gen
// (gen < 0: from any).
func (w *wireLedger) acked(seq, gen int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen < 0 {
		return len(w.pubacked[seq]) > 0
	}
	return w.pubacked[seq][gen]
}

// observedProxy starts a proxy to target, closed when the test ends, and a
// ledger of the numbered telemetry crossing it.
func observedProxy(t *testing.T, target string) (*Proxy, *wireLedger) {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	w := newWireLedger(topicTelemetry)
	p.Observe(w.observe)
	return p, w
}

// tally counts a stream's messages against what the server received.
type tally struct {
	sent, acknowledged, delivered, duplicated, lost int
	excused                                         int // undelivered, but lost by the broker after it acknowledged them
	falseAcks                                       int // Ack reported success without a PUBACK on the wire
	phantoms                                        int // delivered seqs that were never sent
	missing                                         []int
}

// account compares the stream with copies (seq → times received). excuse,
// when set, says whether an undelivered message was acknowledged on the
// wire by a broker that lost it (not tbflow's loss). wire, when set, checks
// every successful Ack against the PUBACKs seen.
func account(s *stream, copies map[int]int, excuse func(seq int) bool, wire *wireLedger) tally {
	s.mu.Lock()
	accepted := append([]int(nil), s.accepted...)
	sentN := s.sent
	s.mu.Unlock()
	tl := tally{sent: sentN, acknowledged: len(accepted)}
	known := make(map[int]bool, len(accepted))
	for _, n := range accepted {
		known[n] = true
	}
	for n, c := range copies {
		if !known[n] {
			tl.phantoms++
			continue
		}
		tl.delivered++
		tl.duplicated += c - 1
	}
	for _, n := range accepted {
		if copies[n] > 0 {
			continue
		}
		if excuse != nil && excuse(n) {
			tl.excused++
			continue
		}
		tl.lost++
		tl.missing = append(tl.missing, n)
	}
	if wire != nil {
		for _, n := range accepted {
			if s.ackedNil(n) && !wire.acked(n, -1) {
				tl.falseAcks++
			}
		}
	}
	sort.Ints(tl.missing)
	return tl
}

// check fails the test for every broken promise in tl.
func (tl tally) check(t *testing.T) {
	t.Helper()
	if tl.lost > 0 {
		t.Errorf("%d acknowledged messages never delivered (lost), first: %v", tl.lost, head(tl.missing, 20))
	}
	if tl.falseAcks > 0 {
		t.Errorf("%d publishes reported as acknowledged without a PUBACK from the broker", tl.falseAcks)
	}
	if tl.phantoms > 0 {
		t.Errorf("%d delivered sequence numbers were never sent", tl.phantoms)
	}
}

// head returns the first n elements of s (all of them if fewer).
func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// tbsimCopies reads tbsim's stored history of the numbered key: with no
// timestamp in the message, tbsim gives every received message a server
// timestamp of its own, so each copy is one entry.
func tbsimCopies(s *tbsim.Server, device string) map[int]int {
	out := map[int]int{}
	for _, v := range s.History(device, "seq") {
		switch x := v.Value.(type) {
		case int64:
			out[int(x)]++
		case float64:
			out[int(x)]++
		}
	}
	return out
}

// closeDevice closes d, giving it a bounded time to flush its outbox.
// startDevice connects a device with cfg and starts a stream of numbered
// telemetry through it, one publish every `every`. end stops the stream,
// then closes the device: defer it before the broker goes away.
func startDevice(t *testing.T, ctx context.Context, cfg tb.Config, every time.Duration) (st *stream, end func()) {
	t.Helper()
	d, err := tb.NewDevice(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	st = startStream(d, every)
	return st, func() {
		st.stop()
		closeDevice(d)
	}
}

func closeDevice(d *tb.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = d.Close(ctx)
}

// newOutboxPath is a fresh disk outbox for one test.
func newOutboxPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "outbox.db")
}
