package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// MaxExprNodes bounds the size of an expression's syntax tree, so a flow
// file cannot make the compiler or the VM recurse without bound.
const MaxExprNodes = 2000

// Expr is a compiled expression (expr-lang, https://expr-lang.org). It sees:
//
//   - msg: the whole message as a map (msg.payload, msg.topic, msg._msgid,
//     msg.device, ...)
//   - payload and topic: shortcuts for msg.payload and msg.topic
//   - helpers: expr's built-ins (now(), duration(), len(), upper(),
//     toJSON(), fromJSON(), round(), ...) plus timestamp() (Unix
//     milliseconds) and env("NAME") (an environment variable, "" if unset;
//     tbflow's own TBFLOW_AUTH_* variables read as "").
//
// Every evaluation runs under [ExprLimits]: built-ins whose result can
// outgrow their arguments (repeat, join, replace, toJSON, string +, ...)
// charge a memory budget before they allocate, ranges and collections
// count against an element budget, and a time budget is checked on every
// predicate iteration. An evaluation over budget fails with an error
// wrapping [ErrExprMemory] or [ErrExprTime].
//
// An Expr is safe for concurrent use.
type Expr struct {
	src  string
	prog *vm.Program
	// usesMsg: the expression names msg (or $env), so it needs the whole
	// message as a map; otherwise Eval skips building it.
	usesMsg bool
}

// vms recycles expression machines: expr.Run makes a new one per run.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// envs recycles the environments handed to the machine (a struct passed
// as any would be copied to the heap on every run).
var envs = sync.Pool{New: func() any { return new(exprEnv) }}

// ExprError is an expression that does not compile, with the 1-based line
// and column of the problem within the expression.
type ExprError struct {
	Line, Column int
	Msg          string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// exprEnv is what an expression sees.
type exprEnv struct {
	Msg     map[string]any `expr:"msg"`
	Payload any            `expr:"payload"`
	Topic   string         `expr:"topic"`
	State   *evalState     `expr:"_st"`
}

var exprOptions = []expr.Option{
	expr.Env(exprEnv{}),
	expr.MaxNodes(MaxExprNodes),
	expr.Function("timestamp", func(...any) (any, error) {
		return time.Now().UnixMilli(), nil
	}, new(func() int64)),
	expr.Function("env", func(params ...any) (any, error) {
		name, _ := params[0].(string)
		if strings.HasPrefix(strings.ToUpper(name), "TBFLOW_AUTH_") {
			return "", nil // the editor's own credentials
		}
		return os.Getenv(name), nil
	}, new(func(string) string)),
}

// CompileExpr compiles src. A compile error is an *ExprError.
func CompileExpr(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	// The plain compile reports type errors as written; the budgeted one
	// is what runs (its rewrites are typed loosely).
	if _, err := expr.Compile(src, exprOptions...); err != nil {
		return nil, compileError(err)
	}
	prog, err := expr.Compile(src, budgetedOptions...)
	if err != nil {
		return nil, compileError(err)
	}
	return &Expr{src: src, prog: prog, usesMsg: namesMsg(prog.Node())}, nil
}

// namesMsg reports whether the tree refers to msg or to the whole
// environment.
func namesMsg(n ast.Node) bool {
	v := &identFinder{}
	ast.Walk(&n, v)
	return v.found
}

type identFinder struct{ found bool }

func (v *identFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && (id.Value == "msg" || id.Value == "$env") {
		v.found = true
	}
}

var budgetedOptions = append(append([]expr.Option{}, exprOptions...), budgetOptions()...)

func compileError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &ExprError{Line: max(fe.Line, 1), Column: fe.Column + 1, Msg: fe.Message}
	}
	return &ExprError{Line: 1, Column: 1, Msg: err.Error()}
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression against msg under the current
// [ExprLimits].
func (e *Expr) Eval(msg *Msg) (any, error) {
	return e.EvalContext(context.Background(), msg)
}

// EvalContext is Eval that also stops soon after ctx ends (a node being
// stopped passes its context).
func (e *Expr) EvalContext(ctx context.Context, msg *Msg) (any, error) {
	lim := CurrentExprLimits()
	st := newEvalState(ctx, lim)
	env := envs.Get().(*exprEnv)
	*env = exprEnv{Payload: msg.Payload, Topic: msg.Topic, State: st}
	if e.usesMsg {
		env.Msg = msg.Map()
	}
	machine := vms.Get().(*vm.VM)
	machine.MemoryBudget = uint(lim.Elements)
	v, err := machine.Run(e.prog, env)
	*env = exprEnv{}
	envs.Put(env)
	vms.Put(machine)
	if err != nil {
		if st.err != nil {
			return nil, fmt.Errorf("evaluating %s: %w", e.short(), st.err)
		}
		if strings.Contains(err.Error(), "memory budget exceeded") {
			return nil, fmt.Errorf("evaluating %s: %w (%d elements)", e.short(), ErrExprMemory, lim.Elements)
		}
		return nil, fmt.Errorf("evaluating %s: %w", e.short(), err)
	}
	return v, nil
}

// short quotes the source, cut to a readable length.
func (e *Expr) short() string {
	const max = 200
	if len(e.src) <= max {
		return fmt.Sprintf("%q", e.src)
	}
	return fmt.Sprintf("%q…", e.src[:max])
}

// EvalBool evaluates the expression and requires a boolean result.
func (e *Expr) EvalBool(msg *Msg) (bool, error) {
	return e.EvalBoolContext(context.Background(), msg)
}

// EvalBoolContext is EvalBool with a context, as EvalContext.
func (e *Expr) EvalBoolContext(ctx context.Context, msg *Msg) (bool, error) {
	v, err := e.EvalContext(ctx, msg)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("evaluating %s: result is %s, want boolean", e.short(), jsonKind(v))
	}
	return b, nil
}
