package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tbflow/tbflow/internal/peers"
)

// broker is a private mosquitto whose process the benchmark may freeze
// (SIGSTOP) and thaw.
type broker struct {
	cmd  *exec.Cmd
	Addr string
	Port int
}

func startBroker(b *testing.B) *broker {
	b.Helper()
	bin := peers.Find(b, "mosquitto", "mosquitto", "/usr/sbin")
	dir := b.TempDir()
	port := peers.FreePort(b)
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 0\n", port)
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	br := &broker{cmd: cmd, Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", br.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			return br
		}
	}
	b.Fatal("mosquitto did not listen")
	return nil
}

func (br *broker) freeze(on bool) {
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	_ = br.cmd.Process.Signal(sig)
}

// recordSink subscribes to v1/devices/me/telemetry and counts the
// workload's records by their distinct "seq", with their latencies when
// they carry "sent".
type recordSink struct {
	c  mqtt.Client
	mu sync.Mutex
	n  int
	// seen marks the seqs received; dups counts repeats.
	seen        []bool
	got, dups   int
	first, last time.Time
	lat         []time.Duration
	done        chan struct{}
	onFirst     func()
}

func newRecordSink(b *testing.B, addr string, n int, onFirst func()) *recordSink {
	s := &recordSink{n: n, seen: make([]bool, n), done: make(chan struct{}), onFirst: onFirst}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("sink-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetOrderMatters(true).SetAutoReconnect(true)
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("sink connect: %v", tok.Error())
	}
	if tok := s.c.Subscribe("v1/devices/me/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) { s.take(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("sink subscribe: %v", tok.Error())
	}
	b.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

var (
	seqKey  = []byte(`"seq":`)
	sentKey = []byte(`"sent":`)
)

// take counts the records of one payload: an object or an array of
// objects, each with "seq" (and "sent" in µs for latency).
func (s *recordSink) take(p []byte) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == 0 && s.dups == 0 && s.onFirst != nil {
		s.onFirst()
	}
	// Records are flat objects (or {"ts", "values": {...}}): each value
	// object ends at the next '}'.
	for len(p) > 0 {
		rec := p
		if i := bytes.IndexByte(p, '}'); i >= 0 {
			rec, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		i := bytes.Index(rec, seqKey)
		if i < 0 {
			continue
		}
		seq, _ := leadingInt(rec[i+len(seqKey):])
		if j := bytes.Index(rec, sentKey); j >= 0 {
			if sent, _ := leadingInt(rec[j+len(sentKey):]); sent > 0 {
				s.lat = append(s.lat, now.Sub(time.UnixMicro(sent)))
			}
		}
		if seq < 0 || seq >= int64(s.n) {
			continue
		}
		if s.seen[seq] {
			s.dups++
			continue
		}
		s.seen[seq] = true
		if s.got == 0 {
			s.first = now
		}
		s.got++
		s.last = now
		if s.got == s.n {
			close(s.done)
		}
	}
}

func leadingInt(p []byte) (int64, []byte) {
	i := 0
	for i < len(p) && (p[i] == ' ' || p[i] == '"') {
		i++
	}
	j := i
	for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(p[i:j]), 10, 64)
	if err != nil {
		return -1, p[j:]
	}
	return v, p[j:]
}

func (s *recordSink) wait(d time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (s *recordSink) counts() (got, dups int, first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got, s.dups, s.first, s.last
}

func (s *recordSink) percentile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// answerSessionLimits answers getSessionLimits as ThingsBoard would with
// tb's defaults (64 KiB payloads, 100 in flight, no rate limits), so that
// a tbflow connection does not wait 10 s for an answer mosquitto never
// gives. It returns a channel closed at the first answer.
func answerSessionLimits(b *testing.B, addr string) <-chan struct{} {
	answered := make(chan struct{})
	var once sync.Once
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("limits-%d", time.Now().UnixNano())).SetCleanSession(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("limits responder: %v", tok.Error())
	}
	tok := c.Subscribe("v1/devices/me/rpc/request/+", 1, func(c mqtt.Client, m mqtt.Message) {
		if !bytes.Contains(m.Payload(), []byte("getSessionLimits")) {
			return
		}
		id := m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:]
		c.Publish("v1/devices/me/rpc/response/"+id, 1, false, []byte(`{"maxPayloadSize":65536,"maxInflightMessages":100}`)).Wait()
		once.Do(func() { close(answered) })
	})
	tok.Wait()
	b.Cleanup(func() { c.Disconnect(100) })
	return answered
}

// proc is a measured child process: CPU time (utime+stime) and peak RSS
// from /proc.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startProc(b *testing.B, cmd *exec.Cmd) *proc {
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: in, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is listening any more
			}
		}
		close(p.lines)
	}()
	b.Cleanup(p.stop)
	return p
}

// waitLine waits for a line containing s.
func (p *proc) waitLine(b *testing.B, s string, d time.Duration) {
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				b.Fatalf("child ended before printing %q", s)
			}
			if strings.Contains(l, s) {
				return
			}
			if strings.HasPrefix(l, "error") {
				b.Fatalf("child: %s", l)
			}
		case <-timeout:
			b.Fatalf("child did not print %q within %v", s, d)
		}
	}
}

// cpu is the process's CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// peakRSS is the process's peak resident set (VmHWM) in MB.
func (p *proc) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.AfterFunc(5*time.Second, func() { _ = p.cmd.Process.Kill() })
	_ = p.cmd.Wait()
	t.Stop()
}
