package engine

import (
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
//     milliseconds) and env("NAME") (an environment variable, "" if unset).
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
}

var exprOptions = []expr.Option{
	expr.Env(exprEnv{}),
	expr.MaxNodes(MaxExprNodes),
	expr.Function("timestamp", func(...any) (any, error) {
		return time.Now().UnixMilli(), nil
	}, new(func() int64)),
	expr.Function("env", func(params ...any) (any, error) {
		name, _ := params[0].(string)
		return os.Getenv(name), nil
	}, new(func(string) string)),
}

// CompileExpr compiles src. A compile error is an *ExprError.
func CompileExpr(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Line: 1, Column: 1, Msg: "empty expression"}
	}
	prog, err := expr.Compile(src, exprOptions...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &ExprError{Line: max(fe.Line, 1), Column: fe.Column + 1, Msg: fe.Message}
		}
		return nil, &ExprError{Line: 1, Column: 1, Msg: err.Error()}
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

// String returns the source text.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression against msg.
func (e *Expr) Eval(msg *Msg) (any, error) {
	env := envs.Get().(*exprEnv)
	*env = exprEnv{Payload: msg.Payload, Topic: msg.Topic}
	if e.usesMsg {
		env.Msg = msg.Map()
	}
	m := vms.Get().(*vm.VM)
	v, err := m.Run(e.prog, env)
	*env = exprEnv{}
	envs.Put(env)
	vms.Put(m)
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", e.src, err)
	}
	return v, nil
}

// EvalBool evaluates the expression and requires a boolean result.
func (e *Expr) EvalBool(msg *Msg) (bool, error) {
	v, err := e.Eval(msg)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("evaluating %q: result is %s, want boolean", e.src, jsonKind(v))
	}
	return b, nil
}
