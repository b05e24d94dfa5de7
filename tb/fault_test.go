package tb_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tbflow/tbflow/tb"
)

// The fault test's child process: it publishes telemetry {"seq": i} through
// a disk outbox and prints "accepted i" as soon as each publish returns, or
// in drain mode connects and waits until the outbox is empty.
func TestHelperFaultChild(t *testing.T) {
	if os.Getenv("TBFLOW_FAULT_CHILD") != "1" {
		t.Skip("helper process for the fault tests")
	}
	var fc faultConfig
	if err := json.Unmarshal([]byte(os.Getenv("TBFLOW_FAULT_CONFIG")), &fc); err != nil {
		fmt.Println("bad config:", err)
		os.Exit(2)
	}
	cfg := tb.Config{
		Host: fc.Host, Port: fc.Port, AccessToken: fc.Token, SkipSessionLimits: fc.SkipLimits,
		Outbox:       tb.OutboxConfig{Path: fc.Outbox},
		Protocol:     testProtocol(),
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
	}
	ctx := context.Background()
	d, err := tb.NewDevice(cfg)
	if err != nil {
		fmt.Println("new device:", err)
		os.Exit(2)
	}
	if err := d.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}
	if os.Getenv("TBFLOW_FAULT_MODE") == "drain" {
		fmt.Printf("queued %d\n", d.Status().Queued)
		for d.Status().Queued > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		_ = d.Close(ctx)
		fmt.Println("drained")
		os.Exit(0)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if _, err := d.PublishTelemetry(ctx, map[string]any{"seq": i}); err != nil {
			fmt.Fprintf(w, "error %d %v\n", i, err)
			w.Flush()
			continue
		}
		fmt.Fprintf(w, "accepted %d\n", i)
		w.Flush()
	}
}

// faultConfig is what the child process needs of a tb.Config.
type faultConfig struct {
	Host       string
	Port       int
	Token      string
	SkipLimits bool
	Outbox     string
}

type faultChild struct {
	cmd      *exec.Cmd
	mu       sync.Mutex
	accepted []int
	lines    []string
	done     chan struct{}
}

func startFaultChild(t *testing.T, cfg tb.Config, mode string) *faultChild {
	t.Helper()
	b, err := json.Marshal(faultConfig{Host: cfg.Host, Port: cfg.Port, Token: cfg.AccessToken, SkipLimits: cfg.SkipSessionLimits, Outbox: cfg.Outbox.Path})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFaultChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "TBFLOW_FAULT_CHILD=1", "TBFLOW_FAULT_CONFIG="+string(b), "TBFLOW_FAULT_MODE="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &faultChild{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.lines = append(c.lines, line)
			if rest, ok := strings.CutPrefix(line, "accepted "); ok {
				n, _ := strconv.Atoi(rest)
				c.accepted = append(c.accepted, n)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

func (c *faultChild) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accepted)
}

func (c *faultChild) waitAccepted(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d accepted publishes", n), func() bool { return c.count() >= n })
}

// runKillDuringOutage stops the broker mid-stream, kills the publishing
// process with SIGKILL during the outage, restores the broker, restarts the
// process on the same outbox, and checks that every publish that returned
// "accepted" reached the server.
func runKillDuringOutage(t *testing.T, p peer) {
	cfg := p.config(t)
	cfg.Outbox.Path = filepath.Join(t.TempDir(), "outbox.db")

	child := startFaultChild(t, cfg, "publish")
	child.waitAccepted(t, 500)
	p.outage(t)
	before := child.count()
	child.waitAccepted(t, before+500)
	if err := child.cmd.Process.Kill(); err != nil { // SIGKILL, by PID
		t.Fatal(err)
	}
	<-child.done
	_ = child.cmd.Wait()
	accepted := append([]int(nil), child.accepted...)
	p.restore(t)

	drain := startFaultChild(t, cfg, "drain")
	select {
	case <-drain.done:
	case <-time.After(2 * waitFor):
		t.Fatal("restarted process did not drain its outbox")
	}
	_ = drain.cmd.Wait()
	drain.mu.Lock()
	t.Logf("restarted process: %s", strings.Join(drain.lines, "; "))
	drain.mu.Unlock()

	want := map[int]bool{}
	for _, n := range accepted {
		want[n] = true
	}
	var seen map[int]int
	eventually(t, "every accepted message delivered", func() bool {
		seen = map[int]int{}
		for _, v := range p.telemetry("seq") {
			seen[int(asFloat(v))]++
		}
		for n := range want {
			if seen[n] == 0 {
				return false
			}
		}
		return true
	})
	delivered, dups := 0, 0
	for _, c := range seen {
		delivered++
		dups += c - 1
	}
	t.Logf("accepted %d (of which %d during the outage), delivered %d distinct, %d duplicates, lost 0",
		len(accepted), len(accepted)-before, delivered, dups)
}

func TestMosquittoKillDuringOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the mosquitto peer")
	}
	runKillDuringOutage(t, newMosquittoPeer(t))
}
