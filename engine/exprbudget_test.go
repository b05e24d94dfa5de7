package engine

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// withLimits sets expression limits for one test.
func withLimits(t testing.TB, l ExprLimits) {
	old := CurrentExprLimits()
	SetExprLimits(l)
	t.Cleanup(func() { SetExprLimits(old) })
}

func evalSrc(t testing.TB, src string, payload any) (any, error) {
	t.Helper()
	e, err := CompileExpr(src)
	if err != nil {
		t.Fatalf("compiling %s: %v", src, err)
	}
	return e.Eval(NewMsg(payload))
}

func nested(depth int) any {
	var v any = "x"
	for range depth {
		v = []any{v}
	}
	return v
}

// TestExprMemoryBudget: every allocation-heavy construct fails with
// ErrExprMemory before building its result, and the process allocates
// little while refusing.
func TestExprMemoryBudget(t *testing.T) {
	withLimits(t, ExprLimits{Time: time.Minute})
	big := map[string]any{}
	for i := range 2000 {
		big[strings.Repeat("k", 8)+string(rune('a'+i%26))+strings.Repeat("v", i%50)] = strings.Repeat("v", 40)
	}
	for _, tc := range []struct {
		src     string
		payload any
	}{
		{`len(repeat(repeat("a", 999999), 1000000))`, nil},
		{`repeat("ab", 100000000)`, nil},
		{`let s = repeat("a", 1000000); let s1 = s + s; let s2 = s1 + s1; let s3 = s2 + s2; let s4 = s3 + s3; let s5 = s4 + s4; let s6 = s5 + s5; len(s6)`, nil},
		{`let s = payload + payload; let s1 = s + s; let s2 = s1 + s1; let s3 = s2 + s2; let s4 = s3 + s3; let s5 = s4 + s4; len(s5 + s5)`, strings.Repeat("p", 1<<20)},
		{`len(toJSON(map(1..2000, payload)))`, big},
		{`toJSON(payload)`, nested(5000)},
		{`len(1..100000000)`, nil},
		{`len(map(1..999999, 1..999999))`, nil},
		{`len(map(1..100000, repeat("x", 1000)))`, nil},
		{`join(map(1..100000, "x"), repeat("-", 100000))`, nil},
		{`replace(repeat("a", 100000), "", repeat("b", 10000))`, nil},
		{`let a = 1..500000; len(concat(a, a, a, a, a))`, nil},
		{`len(split(repeat("a", 3000000), ""))`, nil},
		{`len(string(map(1..3000, payload)))`, big},
		{`len(fromJSON(repeat("[", 10000000)))`, nil},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		v, err := evalSrc(t, tc.src, tc.payload)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: evaluated to %.40v, want a budget error", tc.src, v)
			continue
		}
		if !errors.Is(err, ErrExprMemory) && !strings.Contains(err.Error(), "nested deeper") {
			t.Errorf("%s: %v, want ErrExprMemory", tc.src, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 400<<20 {
			t.Errorf("%s: allocated %d MB before failing", tc.src, grew>>20)
		}
	}
}

// TestExprTimeBudget: loops without allocation stop at the time budget,
// and a cancelled context stops an evaluation too.
func TestExprTimeBudget(t *testing.T) {
	withLimits(t, ExprLimits{Time: 100 * time.Millisecond})
	arr := make([]any, 3000)
	for i := range arr {
		arr[i] = float64(i)
	}
	src := `all(payload, {all(payload, {all(payload, {# >= 0})})})`
	start := time.Now()
	_, err := evalSrc(t, src, arr)
	if !errors.Is(err, ErrExprTime) {
		t.Fatalf("%v, want ErrExprTime", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopped after %s with a 100ms budget", d)
	}
	withLimits(t, ExprLimits{Time: time.Hour})
	e, _ := CompileExpr(src)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if _, err := e.EvalContext(ctx, NewMsg(arr)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled evaluation: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancelled evaluation stopped after %s", d)
	}
}

// TestExprBudgetKeepsBehaviour: the budgeted rewrites give the same
// results and the same compile errors as plain expr.
func TestExprBudgetKeepsBehaviour(t *testing.T) {
	payload := map[string]any{"t": 215.0, "s": "x<y", "list": []any{1.0, "a", map[string]any{"b": nil}}, "empty": map[string]any{}, "none": []any{}}
	for src, want := range map[string]any{
		`1 + 2`:                          3,
		`payload.t + 1`:                  216.0,
		`"a" + "b"`:                      "ab",
		`topic + "/x"`:                   "/x",
		`repeat("ab", 3)`:                "ababab",
		`join(["a", "b"], "-")`:          "a-b",
		`replace("aaa", "a", "bb")`:      "bbbbbb",
		`replace("ab", "", "-")`:         "-a-b-",
		`len(split("a,b,c", ","))`:       3,
		`upper("abc")`:                   "ABC",
		`"abc" matches "^a"`:             true,
		`payload.s matches "x.y"`:        true,
		`"x" + "y" matches ("^" + "x")`:  true,
		`sum(map(1..4, # + 1))`:          14,
		`len(filter(1..10, # % 2 == 0))`: 5,
		`reduce(1..4, #acc + #, 0)`:      10,
		`len(concat([1], [2, 3]))`:       3,
		`len(flatten([[1], [2, [3]]]))`:  3,
		`string(12)`:                     "12",
		`env("TBFLOW_AUTH_TOKEN")`:       "",
	} {
		got, err := evalSrc(t, src, payload)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if !equalValues(got, want) {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
	v, err := evalSrc(t, `toJSON(payload)`, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(payload, "", "  ")
	if v != string(b) {
		t.Errorf("toJSON = %s, want %s", v, b)
	}
	for _, src := range []string{`"a" + 1`, `1 + true`, `filter([1], "x")`, `repeat("a")`, `upper(1)`} {
		if _, err := CompileExpr(src); err == nil {
			t.Errorf("%s compiled", src)
		}
	}
}

func equalValues(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return string(ab) == string(bb)
}

// FuzzEvalHostile evaluates arbitrary expressions against hostile inputs
// under small budgets: every evaluation ends, with a value or an error,
// within its time budget and without exhausting memory.
func FuzzEvalHostile(f *testing.F) {
	for _, s := range []string{
		`repeat(repeat("a", 999999), 1000000)`, `toJSON(payload)`, `payload + payload`,
		`map(1..999999, map(1..999999, #))`, `all(payload, {all(payload, {true})})`,
		`join(map(1..100000, "x"), repeat("-", 100000))`, `replace(toJSON(payload), "", toJSON(payload))`,
		`fromJSON(repeat("[", 100000))`, `string(payload)`, `let s = toJSON(msg); s + s + s + s`,
		`payload.a.b matches payload.s`, `flatten(payload)`, `sortBy(payload, #)`, `groupBy(payload, #)`,
	} {
		f.Add(s, 3)
	}
	withLimits(f, ExprLimits{Memory: 4 << 20, Elements: 100000, Time: 200 * time.Millisecond})
	f.Fuzz(func(t *testing.T, src string, depth int) {
		e, err := CompileExpr(src)
		if err != nil {
			return
		}
		payloads := []any{nested(depth % 2000), []any{1.0, "a", nil, map[string]any{"s": "(a+)+$"}}, strings.Repeat("z", 1<<16)}
		for _, p := range payloads {
			start := time.Now()
			e.Eval(NewMsg(p))
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("%q ran %s under a 200ms budget", src, d)
			}
		}
	})
}
