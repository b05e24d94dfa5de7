package hostile

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHostile runs every hostile corpus and fails on any crash, hang or
// leak. `make hostile` shows its tally.
func TestHostile(t *testing.T) {
	tally := NewTally()
	for _, c := range []struct {
		kind string
		run  func(t *testing.T, tl *Tally)
	}{
		{"flows", runFlows},
		{"expressions", runExpressions},
		{"websocket", runWebSocket},
		{"mqtt-to-tbsim", runMQTT},
		{"rpc-bodies", runRPC},
		{"modbus-replies", runModbus},
	} {
		before := runtime.NumGoroutine()
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		heap := m.HeapAlloc
		// The corpus's servers are closed by its cleanups, which have run
		// when t.Run returns.
		t.Run(c.kind, func(t *testing.T) { c.run(t, tally) })
		if n, ok := settle(before, 5*time.Second); !ok {
			tally.Add(c.kind, "(after the corpus)", Leaked, fmt.Sprintf("%d goroutines left, %d before:\n%s", n, before, goroutines()))
		}
		runtime.GC()
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > heap+256<<20 {
			tally.Add(c.kind, "(after the corpus)", Leaked, fmt.Sprintf("heap grew by %d MB", (m.HeapAlloc-heap)>>20))
		}
	}
	t.Log("\n" + tally.Summary())
	if tally.Bad() > 0 {
		t.Errorf("hostile inputs crashed, hung or leaked:\n%s", strings.Join(tally.Notes(), "\n"))
	}
}

// settle waits until at most n goroutines (plus a few the runtime and the
// HTTP client keep) are left.
func settle(n int, d time.Duration) (int, bool) {
	deadline := time.Now().Add(d)
	for {
		cur := runtime.NumGoroutine()
		if cur <= n+3 {
			return cur, true
		}
		if time.Now().After(deadline) {
			return cur, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func goroutines() string {
	buf := make([]byte, 1<<16)
	return string(buf[:runtime.Stack(buf, true)])
}

// within runs fn with a deadline: it reports whether fn returned in time
// and what it panicked with.
func within(d time.Duration, fn func()) (done bool, panicked any) {
	ch := make(chan any, 1)
	go func() {
		defer func() { ch <- recover() }()
		fn()
	}()
	select {
	case p := <-ch:
		return true, p
	case <-time.After(d):
		return false, nil
	}
}

// nestedJSON is depth opening brackets, a value and the closing ones.
func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}
