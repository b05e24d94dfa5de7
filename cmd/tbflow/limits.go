package main

import (
	"flag"
	"time"

	"github.com/tbflow/tbflow/engine"
)

// exprLimits are the expression budget flags of serve and run.
type exprLimits struct {
	timeout  *time.Duration
	memory   *int64
	elements *int
}

func exprLimitFlags(fs *flag.FlagSet) *exprLimits {
	d := engine.DefaultExprLimits
	return &exprLimits{
		timeout:  fs.Duration("expr-timeout", d.Time, "how long one expression evaluation may run before its message fails (to catch)"),
		memory:   fs.Int64("expr-memory", d.Memory, "bytes of strings and JSON one expression evaluation may build"),
		elements: fs.Int("expr-elements", d.Elements, "array elements one expression evaluation may build"),
	}
}

// apply sets the engine's expression limits from the flags.
func (l *exprLimits) apply() {
	engine.SetExprLimits(engine.ExprLimits{Memory: *l.memory, Elements: *l.elements, Time: *l.timeout})
}
