package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb/tbsim"
)

// The tbflow binary, built once per test binary from the module this
// package belongs to.
var tbflowBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func tbflowBinary(t *testing.T) string {
	t.Helper()
	tbflowBin.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			tbflowBin.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "tbflow-faults-")
		if err != nil {
			tbflowBin.err = err
			return
		}
		tbflowBin.dir = dir
		tbflowBin.path = filepath.Join(dir, "tbflow")
		cmd := exec.Command("go", "build", "-o", tbflowBin.path, "./cmd/tbflow")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			tbflowBin.err = fmt.Errorf("go build ./cmd/tbflow: %w\n%s", err, b)
		}
	})
	if tbflowBin.err != nil {
		t.Fatal(tbflowBin.err)
	}
	return tbflowBin.path
}

// removeBinary deletes the built binary (TestMain calls it at the end).
func removeBinary() {
	if tbflowBin.dir != "" {
		os.RemoveAll(tbflowBin.dir)
	}
}

// flowRun is one `tbflow run` process. It reads the JSON log on stderr:
// the debug node "emitted" logs every numbered message the flow made, in
// the order made, and the metrics address is logged at start.
type flowRun struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when stderr is drained
	exit chan error    // the process's exit, once

	mu      sync.Mutex
	emitted []string
	metrics string
	tail    []string
}

func startFlow(t *testing.T, bin, flow string, env []string) *flowRun {
	t.Helper()
	cmd := exec.Command(bin, "run", "--log-format", "json", "--metrics", "127.0.0.1:0", flow)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &flowRun{cmd: cmd, done: make(chan struct{}), exit: make(chan error, 1)}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.line(sc.Text())
		}
	}()
	go func() {
		<-r.done
		r.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		// By PID: the process this test started (a no-op once it exited).
		_ = cmd.Process.Kill()
		<-r.done
	})
	return r
}

func (r *flowRun) line(s string) {
	var rec struct {
		Msg    string `json:"msg"`
		NodeID string `json:"node_id"`
		Value  string `json:"value"`
		URL    string `json:"url"`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tail = append(r.tail, s)
	if len(r.tail) > 50 {
		r.tail = r.tail[1:]
	}
	if json.Unmarshal([]byte(s), &rec) != nil {
		return
	}
	switch {
	case rec.Msg == "debug" && rec.NodeID == "emitted":
		var seq string
		if json.Unmarshal([]byte(rec.Value), &seq) == nil {
			r.emitted = append(r.emitted, seq)
		}
	case rec.Msg == "serving metrics":
		r.metrics = rec.URL
	}
}

func (r *flowRun) emittedSoFar() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.emitted...)
}

func (r *flowRun) emittedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.emitted)
}

func (r *flowRun) logTail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.tail, "\n")
}

func (r *flowRun) metricsURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.metrics
}

// nodeCounters are one node's figures from tbflow's /metrics.
type nodeCounters struct{ in, queue, errors, dropped int }

func scrapeNode(url, node string) (nodeCounters, error) {
	var c nodeCounters
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return c, err
	}
	label := `node_id="` + node + `"`
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, label) {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		_, val, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "tbflow_node_messages_in_total":
			c.in, found = int(v), found+1
		case "tbflow_node_queue_depth":
			c.queue, found = int(v), found+1
		case "tbflow_node_errors_total":
			c.errors, found = int(v), found+1
		case "tbflow_node_messages_dropped_total":
			c.dropped, found = int(v), found+1
		}
	}
	if found != 4 {
		return c, fmt.Errorf("metrics of node %q not found at %s", node, url)
	}
	return c, nil
}

// storedSeqs counts tbsim's stored values of the "seq" key (each received
// message is one entry: the flow sends no timestamp).
func storedSeqs(s *tbsim.Server, device string) map[string]int {
	out := map[string]int{}
	for _, v := range s.History(device, "seq") {
		if str, ok := v.Value.(string); ok {
			out[str]++
		}
	}
	return out
}

func countRun(copies map[string]int, run string) int {
	n := 0
	for k := range copies {
		if strings.HasPrefix(k, run+":") {
			n++
		}
	}
	return n
}

// TestFaultTbflowKill9DuringOutage runs the real binary (`tbflow run`) on a
// flow that sends numbered telemetry to tbsim through a durable outbox,
// takes tbsim away, lets messages queue, kills tbflow with SIGKILL, brings
// tbsim back, starts tbflow again on the same outbox, and checks that every
// message tbflow had accepted before the kill arrives. Exactly-once is not
// promised: duplicates are counted, not failed.
//
// What tbflow accepted: tb-telemetry-out (linger 0) handles messages one at
// a time in the order the flow made them, and has put a message in the
// outbox when it finishes handling it. Right before the kill the test reads
// the node's counters from `tbflow run --metrics`: in − queue depth − 2
// (the message being handled, and one being put into the inbox) is a lower
// bound of the messages it had finished; minus its errors, of those it
// accepted. The debug node beside it logs the numbers in the same order, so
// the first that many numbers logged are messages tbflow had accepted.
func TestFaultTbflowKill9DuringOutage(t *testing.T) {
	bin := tbflowBinary(t)
	const device, token = "fault-device", "fault-token"
	s := newTBSim(t, device, token)
	_, port := hostPort(t, s.MQTTAddr())
	flow, err := filepath.Abs(filepath.Join("testdata", "numbered-telemetry.json"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"TBFLOW_FAULT_TB_PORT=" + strconv.Itoa(port),
		"TBFLOW_FAULT_TB_TOKEN=" + token,
		"TBFLOW_FAULT_OUTBOX=" + newOutboxPath(t),
	}

	run1 := startFlow(t, bin, flow, append(env, "TBFLOW_FAULT_RUN=1"))
	eventually(t, 60*time.Second, "100 messages of the first run stored", func() bool {
		return countRun(storedSeqs(s, device), "1") >= 100
	})
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	deliveredBeforeKill := countRun(storedSeqs(s, device), "1")
	atPause := run1.emittedCount()
	time.Sleep(outage) // the outage lasts this long by design
	eventually(t, 30*time.Second, "150 messages made during the outage", func() bool {
		return run1.emittedCount() >= atPause+150
	})
	url := run1.metricsURL()
	if url == "" {
		t.Fatalf("tbflow run logged no metrics address; log:\n%s", run1.logTail())
	}
	c, err := scrapeNode(url, "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	known := max(c.in-c.queue-2-c.errors, 0)
	eventually(t, 30*time.Second, "the debug log to catch up with the accepted count", func() bool {
		return run1.emittedCount() >= known
	})
	if err := run1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-run1.done
	<-run1.exit
	emitted1 := run1.emittedSoFar()
	accepted1 := emitted1[:known]

	storedAtKill := countRun(storedSeqs(s, device), "1")
	t.Logf("killed: %d made, %d known accepted, %d stored", len(emitted1), known, storedAtKill)
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	run2 := startFlow(t, bin, flow, append(env, "TBFLOW_FAULT_RUN=2"))
	missing := func(seqs []string) []string {
		copies := storedSeqs(s, device)
		var out []string
		for _, q := range seqs {
			if copies[q] == 0 {
				out = append(out, q)
			}
		}
		return out
	}
	recovered := waitFor(60*time.Second, func() bool { return len(missing(accepted1)) == 0 })
	recovery := time.Since(restarted)
	if recovered {
		eventually(t, 30*time.Second, "100 messages made by the restarted tbflow", func() bool { return run2.emittedCount() >= 100 })
	}
	// SIGTERM: the flow stops its sources, finishes what is queued and
	// flushes the outbox before it exits.
	if err := run2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run2.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("tbflow did not exit after SIGTERM; log:\n%s", run2.logTail())
	}
	exitErr := <-run2.exit
	emitted2 := run2.emittedSoFar()
	// Everything run 2 made was handled and acknowledged before it exited;
	// tbsim stores before it acknowledges.
	copies := storedSeqs(s, device)
	inE := map[string]bool{}
	for _, q := range emitted1 {
		inE[q] = true
	}
	for _, q := range emitted2 {
		inE[q] = true
	}
	delivered, dups, unlogged, phantoms := 0, 0, 0, 0
	for q, n := range copies {
		switch {
		case inE[q]:
			delivered++
		case strings.HasPrefix(q, "1:"):
			// accepted by the first run after its last log line
			delivered++
			unlogged++
		default:
			phantoms++
		}
		dups += n - 1
	}
	lost1, lost2 := missing(accepted1), missing(emitted2)
	res := Result{
		Fault: "tbflow kill -9 in outage + restart", Sent: len(emitted1) + len(emitted2),
		Acknowledged: len(accepted1) + len(emitted2), Delivered: delivered, Duplicated: dups,
		Lost: len(lost1) + len(lost2),
		Extra: map[string]int64{
			"accepted_before_kill": int64(len(accepted1)), "stored_before_outage": int64(deliveredBeforeKill),
			"made_by_restart": int64(len(emitted2)), "unlogged_delivered": int64(unlogged),
		},
	}
	if recovered {
		res.Recovery = recovery
	}
	record(t, res)
	if len(lost1) > 0 {
		t.Errorf("%d messages accepted before the kill never arrived, first: %v", len(lost1), head(lost1, 10))
	}
	if len(lost2) > 0 {
		t.Errorf("%d messages of the restarted tbflow never arrived although it exited cleanly, first: %v", len(lost2), head(lost2, 10))
	}
	if phantoms > 0 {
		t.Errorf("%d stored sequence numbers were never made by the flow", phantoms)
	}
	if exitErr != nil {
		t.Errorf("tbflow exited with %v after SIGTERM; log:\n%s", exitErr, run2.logTail())
	}
	if c.errors > 0 || c.dropped > 0 {
		t.Errorf("tb-telemetry-out reported %d errors and dropped %d messages before the kill", c.errors, c.dropped)
	}
	if len(accepted1) <= deliveredBeforeKill {
		t.Errorf("only %d messages accepted before the kill, %d of them stored before the outage: nothing was queued", len(accepted1), deliveredBeforeKill)
	}
}
