package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb/tbsim"
)

const fleetSize = 10

// fleetLog is a process's log, written by the process and read by the
// test.
type fleetLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *fleetLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *fleetLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// box is one `tbflow run --managed` process.
type fleetBox struct {
	name string
	dir  string
	cmd  *exec.Cmd
	log  *fleetLog
}

func (b *fleetBox) flowFile() string { return filepath.Join(b.dir, "flow.json") }

func (b *fleetBox) start(t *testing.T, bin string) {
	t.Helper()
	b.log = &fleetLog{}
	cmd := exec.Command(bin, "run", "--managed", "--log-level", "debug", "flow.json")
	cmd.Dir = b.dir
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=50", "TBFLOW_DEVICE="+b.name)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.cmd = cmd
	t.Cleanup(func() { b.kill() })
}

func (b *fleetBox) kill() {
	if b.cmd != nil && b.cmd.Process != nil && b.cmd.ProcessState == nil {
		b.cmd.Process.Kill() // by PID: this process only
		b.cmd.Wait()
	}
}

// buildTbflow builds the tbflow binary once into dir.
func fleetBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tbflow")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitFor polls cond until it holds or the deadline passes.
func fleetWait(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// packageFlow is a flow rolled out as a software package: the management
// connection without credentials (the box keeps its own), a reading every
// 300 ms sent as telemetry and shown in the log.
func fleetPackage(value int) []byte {
	return []byte(fmt.Sprintf(`[
  {"id": "site", "type": "tab", "label": "site"},
  {"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %%d, "manage": true, "statsInterval": "1s"},
  {"id": "tick", "type": "inject", "z": "site", "interval": "300ms", "once": true, "wires": [["reading"]]},
  {"id": "reading", "type": "transform", "z": "site", "expression": "{\"reading\": %d}", "wires": [["telemetry", "show"]]},
  {"id": "telemetry", "type": "tb-telemetry-out", "z": "site", "connection": "mgmt", "wires": []},
  {"id": "show", "type": "debug", "z": "site", "name": "show", "property": "payload", "console": true, "wires": []}
]`, value))
}

// rpc calls a server-side RPC through tbsim's HTTP API.
func fleetRPC(t *testing.T, base, device, method string, params any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"method": method, "params": params, "timeoutMs": 10000})
	resp, err := http.Post(base+"/api/devices/"+device+"/rpc", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s on %s: HTTP %d %s", method, device, resp.StatusCode, b)
	}
	return out
}

func fleetLatest(tbs *tbsim.Server, device, key string) string {
	v, ok := tbs.Latest(device)[key]
	if !ok {
		return ""
	}
	return fmt.Sprint(v.Value)
}

// TestManagedFleet runs ten `tbflow run --managed` processes that provision
// themselves against tbsim; a flow rolled out as a software package of
// their device profile reaches all ten, a broken one is refused by all ten
// (FAILED, the problems in sw_error, the previous flow still running); the
// service RPCs answer through tbsim's HTTP API; a box killed and started
// again without the server runs its last good flow.
func TestManagedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten processes")
	}
	tmp := t.TempDir()
	bin := fleetBuild(t, tmp)

	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			tbs.Close()
		}
	})
	tbs.AddProvisionProfile(tbsim.ProvisionProfile{Key: "box-key", Secret: "box-secret", Type: "box"})
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	base := tbs.HTTPURL()

	bootstrap := fmt.Sprintf(`[
  {"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %d, "manage": true, "statsInterval": "1s",
   "provisionKey": "box-key", "provisionSecret": "box-secret", "deviceName": "${TBFLOW_DEVICE}"}
]`, port)
	boxes := make([]*fleetBox, fleetSize)
	for i := range boxes {
		b := &fleetBox{name: fmt.Sprintf("box-%02d", i+1), dir: filepath.Join(tmp, fmt.Sprintf("box%d", i+1))}
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b.flowFile(), []byte(bootstrap), 0o644); err != nil {
			t.Fatal(err)
		}
		b.start(t, bin)
		boxes[i] = b
	}
	dump := func() {
		for _, b := range boxes {
			t.Logf("--- %s log:\n%s", b.name, fleetTail(b.log.String(), 3000))
		}
	}
	defer func() {
		if t.Failed() {
			dump()
		}
	}()

	// Provisioned, connected, reporting health, client attributes set.
	for _, b := range boxes {
		fleetWait(t, 60*time.Second, b.name+" health telemetry", func() (bool, string) {
			l := tbs.Latest(b.name)
			_, up := l["uptimeS"]
			_, rss := l["rssBytes"]
			return up && rss, fmt.Sprint(l)
		})
		ca := tbs.ClientAttributes(b.name)
		if ca["tbflowVersion"] == nil || ca["os"] != runtime.GOOS || ca["arch"] != runtime.GOARCH || ca["hostname"] == nil {
			t.Fatalf("%s client attributes: %v", b.name, ca)
		}
		info, err := os.Stat(filepath.Join(b.dir, "flow_cred.json"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s credentials file: %v %v", b.name, info, err)
		}
	}

	// A flow as a software package of the profile reaches all ten.
	if err := tbs.AssignProfileOTA("box", "sw", tbsim.OTAPackage{Title: "site", Version: "1", Data: []byte(fmt.Sprintf(string(fleetPackage(42)), port))}); err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		fleetWait(t, 90*time.Second, b.name+" sw_state UPDATED and the package's telemetry", func() (bool, string) {
			st := fleetLatest(tbs, b.name, "sw_state")
			return st == "UPDATED" && fleetLatest(tbs, b.name, "reading") == "42", st + " " + fleetLatest(tbs, b.name, "sw_error")
		})
		var states []string
		for _, v := range tbs.History(b.name, "sw_state") {
			states = append(states, fmt.Sprint(v.Value))
		}
		if got := strings.Join(states, ","); !strings.Contains(got, "DOWNLOADING,DOWNLOADED,VERIFIED,UPDATING,UPDATED") {
			t.Fatalf("%s sw_state history: %s", b.name, got)
		}
		fleetWait(t, 30*time.Second, b.name+" health telemetry of the new flow", func() (bool, string) {
			v := fleetLatest(tbs, b.name, "flowVersion")
			return v == "1", v
		})
		data, err := os.ReadFile(b.flowFile())
		if err != nil || !bytes.Contains(data, []byte(`"reading"`)) {
			t.Fatalf("%s flow file after the package: %s %v", b.name, data, err)
		}
	}

	// A broken package: refused by all ten, the previous flow keeps running.
	broken := `[
  {"id": "site", "type": "tab", "label": "site"},
  {"id": "tick", "type": "inject", "z": "site", "interval": "1s", "wires": [["nowhere"]]},
  {"id": "pump", "type": "no-such-node", "z": "site", "wires": []}
]`
	if err := tbs.AssignProfileOTA("box", "sw", tbsim.OTAPackage{Title: "site", Version: "2", Data: []byte(broken)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		fleetWait(t, 60*time.Second, b.name+" sw_state FAILED", func() (bool, string) {
			st := fleetLatest(tbs, b.name, "sw_state")
			return st == "FAILED", st
		})
		e := fleetLatest(tbs, b.name, "sw_error")
		for _, want := range []string{"no tb-connection with manage on", `unknown node type "no-such-node"`} {
			if !strings.Contains(e, want) {
				t.Fatalf("%s sw_error %q lacks %q", b.name, e, want)
			}
		}
	}
	for _, b := range boxes {
		n := len(tbs.History(b.name, "reading"))
		fleetWait(t, 30*time.Second, b.name+" still running the previous flow", func() (bool, string) {
			m := len(tbs.History(b.name, "reading"))
			return m > n, fmt.Sprint(m)
		})
		if v := fleetLatest(tbs, b.name, "flowVersion"); v != "1" {
			t.Fatalf("%s runs flow version %q after the broken package", b.name, v)
		}
	}

	// Service RPCs through tbsim's HTTP API.
	for _, b := range boxes[:3] {
		if r := fleetRPC(t, base, b.name, "tbflow.ping", nil); r["pong"] != true || r["flowVersion"] != "1" {
			t.Fatalf("%s tbflow.ping: %v", b.name, r)
		}
	}
	logs := fleetRPC(t, base, "box-01", "tbflow.logs", map[string]any{"lines": 50})
	lines, _ := logs["lines"].([]any)
	if len(lines) == 0 || len(lines) > 50 {
		t.Fatalf("tbflow.logs: %d lines: %v", len(lines), logs)
	}
	var creds map[string]map[string]string
	data, _ := os.ReadFile(filepath.Join(boxes[0].dir, "flow_cred.json"))
	if err := json.Unmarshal(data, &creds); err != nil {
		t.Fatal(err)
	}
	token := creds["mgmt"]["accessToken"]
	if token == "" {
		t.Fatalf("no provisioned token in %s", data)
	}
	fleetRPC(t, base, "box-01", "tbflow.logLevel", map[string]any{"level": "debug"})
	joined := fmt.Sprint(fleetRPC(t, base, "box-01", "tbflow.logs", map[string]any{"lines": 500})["lines"])
	if strings.Contains(joined, token) {
		t.Fatal("tbflow.logs shows the access token")
	}
	if r := fleetRPC(t, base, "box-01", "tbflow.nope", nil); r["error"] == nil {
		t.Fatalf("unknown service method: %v", r)
	}
	if r := fleetRPC(t, base, "box-01", "tbflow.flow", nil); strings.Contains(fmt.Sprint(r), token) || r["version"] != "1" {
		t.Fatalf("tbflow.flow: %v", r)
	}

	// Kill a box by its PID, stop the server, start the box again: it runs
	// the last good flow without provisioning again.
	b := boxes[2]
	b.kill()
	tbs.Close()
	closed = true
	b.start(t, bin)
	fleetWait(t, 30*time.Second, b.name+" running its last good flow offline", func() (bool, string) {
		l := b.log.String()
		return strings.Contains(l, "managed flow running") && strings.Contains(l, "version=1") &&
			strings.Contains(l, "node_id=show"), fleetTail(l, 2000)
	})
	if l := b.log.String(); strings.Contains(l, "provisioning the device") {
		t.Fatalf("%s provisioned again:\n%s", b.name, l)
	}
}

func fleetTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestServeManaged: `tbflow serve --managed` runs the bootstrap flow, takes
// a package assigned to its device and shows the deployed flow in the
// editor's API.
func TestServeManaged(t *testing.T) {
	tbs, err := tbsim.New(tbsim.Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tbs.Close()
	if err := tbs.AddDevice(tbsim.Device{Name: "edge", Token: "edge-token"}); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(tbs.MQTTAddr())
	port, _ := strconv.Atoi(p)
	dir := t.TempDir()
	flows := filepath.Join(dir, "site.json")
	boot := fmt.Sprintf(`[{"id": "mgmt", "type": "tb-connection", "host": "127.0.0.1", "port": %d, "manage": true, "statsInterval": "1s"}]`, port)
	if err := os.WriteFile(flows, []byte(boot), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site_cred.json"), []byte(`{"mgmt": {"accessToken": "edge-token"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut logBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"serve", "--managed", "--flows", flows, "--listen", "127.0.0.1:0", "--stop-timeout", "5s"}, &out, &errOut)
	}()
	url := waitURL(t, &out, done)
	fleetWait(t, 30*time.Second, "health telemetry", func() (bool, string) {
		return fleetLatest(tbs, "edge", "uptimeS") != "", errOut.String()
	})
	if err := tbs.AssignOTA("edge", "sw", tbsim.OTAPackage{Title: "site", Version: "5", Data: []byte(fmt.Sprintf(string(fleetPackage(5)), port))}); err != nil {
		t.Fatal(err)
	}
	fleetWait(t, 30*time.Second, "UPDATED", func() (bool, string) {
		return fleetLatest(tbs, "edge", "sw_state") == "UPDATED" && fleetLatest(tbs, "edge", "reading") == "5",
			fleetLatest(tbs, "edge", "sw_error")
	})
	c := &http.Client{Timeout: 10 * time.Second}
	code, _, b := get(t, c, url+"api/flows")
	if code != 200 || !strings.Contains(string(b), `"reading"`) || strings.Contains(string(b), "edge-token") {
		t.Fatalf("api/flows: %d %s", code, b)
	}
	// A deploy from the editor is followed: the management channel stays
	// up and tbflow.flow shows the flow deployed.
	edited := strings.Replace(string(b), `\"reading\": 5`, `\"reading\": 6`, 1)
	if edited == string(b) {
		t.Fatalf("cannot edit %s", b)
	}
	resp, err := c.Post(url+"api/flows", "application/json", strings.NewReader(edited))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("deploy from the editor: %d", resp.StatusCode)
	}
	fleetWait(t, 30*time.Second, "telemetry of the edited flow", func() (bool, string) {
		return fleetLatest(tbs, "edge", "reading") == "6", fleetLatest(tbs, "edge", "reading")
	})
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	raw, err := tbs.RPC(rctx, "edge", "tbflow.flow", nil, false)
	rcancel()
	if err != nil || !strings.Contains(string(raw), `\"reading\": 6`) || strings.Contains(string(raw), "edge-token") {
		t.Fatalf("tbflow.flow after the editor's deploy: %s %v", raw, err)
	}
	// A debug node switched off from the editor (no deploy) is followed too.
	resp, err = c.Post(url+"api/debug/show/disable", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("switching the debug node off: %d", resp.StatusCode)
	}
	// tbflow.restart redeploys the manager's copy of the flow: the switch
	// must have reached it.
	rctx, rcancel = context.WithTimeout(context.Background(), 10*time.Second)
	raw, err = tbs.RPC(rctx, "edge", "tbflow.restart", nil, false)
	rcancel()
	if err != nil || strings.Contains(string(raw), "error") {
		t.Fatalf("tbflow.restart: %s %v", raw, err)
	}
	fleetWait(t, 10*time.Second, "the restart", func() (bool, string) {
		return strings.Contains(errOut.String(), "flow restarted"), errOut.String()
	})
	fleetWait(t, 10*time.Second, "the switch in tbflow.flow after a restart", func() (bool, string) {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer rcancel()
		raw, err := tbs.RPC(rctx, "edge", "tbflow.flow", nil, false)
		return err == nil && strings.Contains(string(raw), `"id":"show","type":"debug","z":"site","name":"show","active":false`), string(raw)
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestValidateManagedConnections: tbflow validate refuses a flow in which
// two connections manage the box.
func TestValidateManagedConnections(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.json")
	flow := `[{"id": "a", "type": "tb-connection", "host": "127.0.0.1", "manage": true, "accessToken": "${A}"},
  {"id": "b", "type": "tb-connection", "host": "127.0.0.1", "manage": true, "accessToken": "${B}"}]`
	if err := os.WriteFile(file, []byte(flow), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"validate", file}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), `node "b" (tb-connection) manage: tb-connection "a" already manages this box`) {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
}
