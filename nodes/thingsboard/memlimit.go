package thingsboard

import (
	"math"
	"os"
	"runtime/debug"
	"sync"

	"github.com/tbflow/tbflow/tb"
)

// The Go heap grows to about twice what is live before the collector runs
// (GOGC=100), so outboxes holding their bound could make the process hold
// twice that. Unless the user set GOMEMLIMIT, the running connections set
// a soft memory limit of 1.5× the sum of their outbox bounds plus
// memLimitBase: the collector then works harder near the limit, and the
// process stays near what the user allowed.
const memLimitBase = 32 << 20

var memLimit struct {
	mu    sync.Mutex
	total int64
}

// reserveOutbox adds an outbox bound (0: tb's default) to the soft memory
// limit; the returned func takes it back.
func reserveOutbox(bound int64) (release func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	if bound <= 0 {
		bound = tb.DefaultOutboxMaxBytes
	}
	adjustMemLimit(bound)
	var once sync.Once
	return func() { once.Do(func() { adjustMemLimit(-bound) }) }
}

func adjustMemLimit(delta int64) {
	memLimit.mu.Lock()
	defer memLimit.mu.Unlock()
	memLimit.total += delta
	debug.SetMemoryLimit(memLimitFor(memLimit.total))
}

// memLimitFor is the soft limit for outboxes bounded by total bytes.
func memLimitFor(total int64) int64 {
	if total <= 0 {
		return math.MaxInt64
	}
	return memLimitBase + total/2*3
}
