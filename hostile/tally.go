package hostile

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Outcome is what one hostile input did.
type Outcome int

// Outcomes, from good to bad.
const (
	// Accepted: the input was valid enough to be processed normally.
	Accepted Outcome = iota
	// Clear: the input was refused with an error that says what is wrong.
	Clear
	// Crashed: a panic, a 5xx other than 503, a dropped connection, or a
	// component that stopped answering afterwards.
	Crashed
	// Hung: no answer within the input's deadline.
	Hung
	// Leaked: a secret in an answer, or goroutines or memory not given
	// back.
	Leaked
)

func (o Outcome) String() string {
	return [...]string{"accepted", "clear error", "crashed", "hung", "leaked"}[o]
}

// Tally counts outcomes per kind of input and keeps a note per bad one.
type Tally struct {
	mu     sync.Mutex
	counts map[string]*[5]int
	bad    []string
}

// NewTally returns an empty tally.
func NewTally() *Tally { return &Tally{counts: map[string]*[5]int{}} }

// Add records the outcome of one input of a kind; detail explains a bad
// outcome.
func (t *Tally) Add(kind, input string, o Outcome, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counts[kind]
	if c == nil {
		c = &[5]int{}
		t.counts[kind] = c
	}
	c[o]++
	if o >= Crashed {
		if len(input) > 80 {
			input = input[:80] + "…"
		}
		t.bad = append(t.bad, fmt.Sprintf("%s %q: %s: %s", kind, input, o, detail))
	}
}

// Bad returns the number of crashed, hung and leaked inputs.
func (t *Tally) Bad() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.counts {
		n += c[Crashed] + c[Hung] + c[Leaked]
	}
	return n
}

// Notes describes every bad outcome.
func (t *Tally) Notes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.bad...)
}

// Summary is one line per kind and a total:
//
//	flows         tried  41  accepted 12  clear errors 29  crashed 0  hung 0  leaked 0
func (t *Tally) Summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	kinds := make([]string, 0, len(t.counts))
	for k := range t.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	var total [5]int
	line := func(name string, c [5]int) {
		tried := c[0] + c[1] + c[2] + c[3] + c[4]
		fmt.Fprintf(&b, "%-16s tried %4d  accepted %4d  clear errors %4d  crashed %d  hung %d  leaked %d\n",
			name, tried, c[Accepted], c[Clear], c[Crashed], c[Hung], c[Leaked])
	}
	for _, k := range kinds {
		c := *t.counts[k]
		line(k, c)
		for i := range c {
			total[i] += c[i]
		}
	}
	line("total", total)
	return b.String()
}
