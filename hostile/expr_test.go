package hostile

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tbflow/tbflow/engine"
)

func exprCorpus() []string {
	return []string{
		`len(repeat(repeat("a", 999999), 1000000))`,
		`repeat("ab", 1 << 40)`,
		`repeat("a", -1)`,
		`let s = repeat("a", 1000000); let a = s + s; let b = a + a; let c = b + b; let d = c + c; let e = d + d; len(e + e)`,
		`toJSON(payload)`,
		`len(toJSON(map(1..5000, payload)))`,
		`len(1..100000000)`,
		`map(1..999999, map(1..999999, #))`,
		`all(1..1000000, {all(1..1000000, {true})})`,
		`all(payload, {all(payload, {all(payload, {true})})})`,
		`join(map(1..100000, "x"), repeat("-", 100000))`,
		`replace(repeat("a", 100000), "", repeat("b", 10000))`,
		`let a = 1..500000; concat(a, a, a, a)`,
		`split(repeat("a", 5000000), "")`,
		`string(map(1..5000, payload))`,
		`fromJSON(repeat("[", 1000000))`,
		`fromJSON("{")`,
		`payload.a.b.c.d`,
		`payload[1000000000]`,
		`1 / 0`,
		`1 % 0`,
		`int("x")`,
		`"abc" matches repeat("(a+)+", 10000)`,
		`"abc" matches "("`,
		`sortBy(payload, #)`,
		`groupBy(1..100000, # % 50000)`,
		`flatten(payload)`,
		`toBase64(repeat("x", 100000000))`,
		`upper(repeat("ß", 50000000))`,
		`duration("9999999999999h")`,
		`date("not a date")`,
		`now().Add(duration("1h")).Format(repeat("2006", 1000000))`,
		`env("TBFLOW_AUTH_TOKEN") + env("TBFLOW_AUTH_PASSWORD_HASH")`,
		`msg.payload + msg.payload`,
		`reduce(1..1000000, #acc + #, 0)`,
		`count(1..1000000, {count(1..1000000, true) > 0})`,
		`payload | map(payload) | map(payload) | len()`,
		`[` + strings.Repeat("1,", 1000) + `1]`,
		strings.Repeat("(", 3000) + "1" + strings.Repeat(")", 3000),
		`let f = 1; ` + strings.Repeat("f + ", 1500) + `1`,
	}
}

func runExpressions(t *testing.T, tl *Tally) {
	old := engine.CurrentExprLimits()
	engine.SetExprLimits(engine.ExprLimits{Memory: 32 << 20, Elements: 1_000_000, Time: 300 * time.Millisecond})
	t.Cleanup(func() { engine.SetExprLimits(old) })
	t.Setenv("TBFLOW_AUTH_TOKEN", apiToken)
	deep := any("x")
	for range 5000 {
		deep = []any{deep}
	}
	wide := make([]any, 3000)
	for i := range wide {
		wide[i] = map[string]any{"k": strings.Repeat("v", 100), "n": float64(i)}
	}
	payloads := map[string]any{"deep": deep, "wide": wide, "string": strings.Repeat("s", 1<<20), "nil": nil}
	for _, src := range exprCorpus() {
		e, err := engine.CompileExpr(src)
		if err != nil {
			tl.Add("expressions", src, Clear, "")
			continue
		}
		for name, p := range payloads {
			var (
				v    any
				eerr error
			)
			start := time.Now()
			done, pan := within(20*time.Second, func() {
				v, eerr = e.EvalContext(context.Background(), engine.NewMsg(p))
			})
			input := src + " on " + name
			switch {
			case pan != nil:
				tl.Add("expressions", input, Crashed, fmt.Sprint(pan))
			case !done || time.Since(start) > 10*time.Second:
				tl.Add("expressions", input, Hung, fmt.Sprintf("ran %s under a 300ms budget", time.Since(start)))
			case eerr != nil && !strings.Contains(eerr.Error(), "evaluating"):
				tl.Add("expressions", input, Crashed, "unclear error: "+eerr.Error())
			case eerr != nil:
				tl.Add("expressions", input, Clear, "")
			default:
				if s, ok := v.(string); ok && (strings.Contains(s, apiToken) || len(s) > 64<<20) {
					tl.Add("expressions", input, Leaked, "result "+truncate(s))
					continue
				}
				tl.Add("expressions", input, Accepted, "")
			}
		}
	}
}
