package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/gorilla/websocket"

	"github.com/tbflow/tbflow/internal/peers"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// nodeREDDir returns peers/nodered/node_modules, or fails or skips (as
// internal/peers decides) when Node-RED is not installed.
func nodeREDDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "peers", "nodered", "node_modules")
	if _, err := os.Stat(filepath.Join(dir, "node-red", "red.js")); err != nil {
		msg := "Node-RED is not installed in peers/nodered: run scripts/peers.sh (npm ci there)"
		if peers.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	peers.Find(t, "node", "nodejs")
	return dir
}

// nodeRED is a Node-RED process started for a test, on its own port and
// user directory, with its admin API at base.
type nodeRED struct {
	t    testing.TB
	base string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	ws   *websocket.Conn

	logMu sync.Mutex // guards log, written by the process's output copier

	mu    sync.Mutex
	debug []debugMsg
	rest  string // partial websocket text
}

// debugMsg is one message of a debug node as Node-RED's editor receives it.
type debugMsg struct {
	ID     string `json:"id"`
	Msg    string `json:"msg"`
	Format string `json:"format"`
}

const settingsJS = `module.exports = {
  uiHost: "127.0.0.1",
  uiPort: %d,
  flowFile: "flows.json",
  credentialSecret: false,
  httpAdminRoot: "/",
  httpNodeRoot: "/nodes",
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { tours: false, projects: { enabled: false }, palette: { catalogues: [] } },
  externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
  functionExternalModules: false,
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  telemetry: { enabled: false },
  contextStorage: { default: { module: "memory" } },
  debugMaxLength: 100000,
};
`

// startNodeRED starts Node-RED headless on a free loopback port and
// connects to its /comms websocket for debug messages.
func startNodeRED(t testing.TB) *nodeRED {
	t.Helper()
	dir := nodeREDDir(t)
	user := t.TempDir()
	port := peers.FreePort(t)
	settings := filepath.Join(user, "settings.js")
	if err := os.WriteFile(settings, fmt.Appendf(nil, settingsJS, port), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &nodeRED{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &bytes.Buffer{}}
	n.cmd = exec.Command("node", filepath.Join(dir, "node-red", "red.js"), "--userDir", user, "--settings", settings, "--port", strconv.Itoa(port))
	n.cmd.Env = append(os.Environ(), "NODE_RED_ENABLE_PROJECTS=false", "GREETING=hello from env")
	n.cmd.Stdout = writerFunc(func(p []byte) (int, error) { n.logMu.Lock(); defer n.logMu.Unlock(); return n.log.Write(p) })
	n.cmd.Stderr = n.cmd.Stdout
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting Node-RED: %v", err)
	}
	t.Cleanup(func() {
		if n.ws != nil {
			n.ws.Close()
		}
		n.cmd.Process.Kill() // the process this test started, by its PID
		n.cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(n.base + "/settings")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Node-RED did not start:\n%s", n.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(n.base, "http", "ws", 1)+"/comms", nil)
	if err != nil {
		t.Fatalf("connecting to Node-RED's /comms: %v", err)
	}
	n.ws = ws
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"subscribe":"debug"}`)); err != nil {
		t.Fatal(err)
	}
	go n.readComms()
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (n *nodeRED) readComms() {
	for {
		_, data, err := n.ws.ReadMessage()
		if err != nil {
			return
		}
		var batch []struct {
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(data, &batch) != nil {
			var one struct {
				Topic string          `json:"topic"`
				Data  json.RawMessage `json:"data"`
			}
			if json.Unmarshal(data, &one) != nil {
				continue
			}
			batch = append(batch, one)
		}
		for _, m := range batch {
			if m.Topic != "debug" {
				continue
			}
			var d debugMsg
			if json.Unmarshal(m.Data, &d) == nil {
				n.mu.Lock()
				n.debug = append(n.debug, d)
				n.mu.Unlock()
			}
		}
	}
}

// deploy replaces Node-RED's flows (a full deploy) and forgets the debug
// messages seen so far.
func (n *nodeRED) deploy(flow []byte) error {
	req, _ := http.NewRequest(http.MethodPost, n.base+"/flows", bytes.NewReader(flow))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Node-RED-Deployment-Type", "full")
	req.Header.Set("Node-RED-API-Version", "v1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("deploying to Node-RED: %s: %s", resp.Status, body)
	}
	n.mu.Lock()
	n.debug = nil
	n.mu.Unlock()
	return nil
}

// flows returns Node-RED's deployed flows and the runtime's view of them.
func (n *nodeRED) flowsState() (string, error) {
	resp, err := http.Get(n.base + "/flows/state")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

func (n *nodeRED) inject(ctx context.Context, id string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.base+"/inject/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("inject %s: %s", id, resp.Status)
	}
	return nil
}

// debugSeen returns the debug messages since the last deploy.
func (n *nodeRED) debugSeen() []debugMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]debugMsg(nil), n.debug...)
}

// logText returns what Node-RED printed.
func (n *nodeRED) logText() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.String()
}

// decodeDebug turns Node-RED's encoded debug value back into a JSON-like
// value: strings, numbers, booleans, null (also for undefined), objects
// and arrays.
func decodeDebug(d debugMsg) any {
	switch f := d.Format; {
	case strings.HasPrefix(f, "string"):
		return d.Msg
	case f == "number":
		v, err := strconv.ParseFloat(d.Msg, 64)
		if err != nil {
			return d.Msg
		}
		return v
	case f == "boolean":
		return d.Msg == "true"
	case f == "null", f == "undefined":
		return nil
	case f == "Object", strings.HasPrefix(f, "array"):
		var v any
		if json.Unmarshal([]byte(d.Msg), &v) == nil {
			return v
		}
	}
	return d.Format + ":" + d.Msg
}
