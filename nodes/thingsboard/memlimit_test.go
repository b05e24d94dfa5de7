package thingsboard

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/tbflow/tbflow/tb"
)

func TestOutboxBoundsSetSoftMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	base := memLimit.total
	r1 := reserveOutbox(0)
	r2 := reserveOutbox(64 << 20)
	if got, want := debug.SetMemoryLimit(-1), memLimitFor(base+tb.DefaultOutboxMaxBytes+64<<20); got != want {
		t.Fatalf("limit %d, want %d", got, want)
	}
	r2()
	r2() // once only
	if got, want := debug.SetMemoryLimit(-1), memLimitFor(base+tb.DefaultOutboxMaxBytes); got != want || want != memLimitBase+48<<20 && base == 0 {
		t.Fatalf("limit %d, want %d (1.5 × 32 MiB + base)", got, want)
	}
	r1()
	if base == 0 && debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatal("no outbox left, but a limit is still set")
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetMemoryLimit(-1)
	reserveOutbox(1 << 30)()
	if debug.SetMemoryLimit(-1) != before {
		t.Fatal("a user's GOMEMLIMIT was overridden")
	}
}
