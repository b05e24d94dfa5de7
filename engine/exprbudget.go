package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
)

// ExprLimits bound one evaluation of an expression. A message whose
// expression runs out of either budget fails: the node reports the error
// and catch nodes on its tab receive the message.
type ExprLimits struct {
	// Memory bounds the bytes of strings, JSON text and array elements an
	// evaluation builds. It is checked before each result is allocated.
	Memory int64
	// Elements bounds the elements of ranges, array and map literals and
	// collection results an evaluation builds.
	Elements int
	// Time bounds an evaluation's wall-clock time. It is checked on every
	// iteration of map, filter and the other predicate built-ins and on
	// every call of an allocating built-in, so an evaluation stops soon
	// after its deadline; so it does when the node's context is cancelled
	// (the node is being stopped).
	Time time.Duration
}

// DefaultExprLimits are the limits an evaluation gets unless
// [SetExprLimits] changes them.
var DefaultExprLimits = ExprLimits{Memory: 32 << 20, Elements: 1_000_000, Time: time.Second}

var exprLimits atomic.Pointer[ExprLimits]

func init() { SetExprLimits(DefaultExprLimits) }

// SetExprLimits sets the limits of every evaluation from now on; zero
// fields keep their defaults.
func SetExprLimits(l ExprLimits) {
	if l.Memory <= 0 {
		l.Memory = DefaultExprLimits.Memory
	}
	if l.Elements <= 0 {
		l.Elements = DefaultExprLimits.Elements
	}
	if l.Time <= 0 {
		l.Time = DefaultExprLimits.Time
	}
	exprLimits.Store(&l)
}

// CurrentExprLimits returns the limits evaluations get.
func CurrentExprLimits() ExprLimits { return *exprLimits.Load() }

// Errors of an evaluation that ran out of a budget.
var (
	ErrExprMemory = errors.New("expression ran out of its memory budget")
	ErrExprTime   = errors.New("expression ran out of its time budget")
)

// evalState is one evaluation's budgets. The expression sees it as _st,
// which the patch below passes to every budgeted function.
type evalState struct {
	ctx      context.Context
	deadline time.Time
	left     int64
	limits   ExprLimits
	ticks    uint32
	err      error
}

func newEvalState(ctx context.Context, l ExprLimits) *evalState {
	return &evalState{ctx: ctx, deadline: time.Now().Add(l.Time), left: l.Memory, limits: l}
}

// charge takes n bytes from the memory budget, before they are allocated.
func (s *evalState) charge(n int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if n < 0 || n > s.left {
		s.err = fmt.Errorf("%w (%d bytes)", ErrExprMemory, s.limits.Memory)
		return s.err
	}
	s.left -= n
	return nil
}

// check fails once the deadline passed or the context ended.
func (s *evalState) check() error {
	if s.err != nil {
		return s.err
	}
	if time.Now().After(s.deadline) {
		s.err = fmt.Errorf("%w (%s)", ErrExprTime, s.limits.Time)
		return s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = fmt.Errorf("expression abandoned: %w", err)
		return s.err
	}
	return nil
}

// tick is called on every iteration of a predicate; it looks at the clock
// every 256 calls.
func (s *evalState) tick() error {
	s.ticks++
	if s.ticks&255 == 0 || s.err != nil {
		return s.check()
	}
	return nil
}

const stateName = "_st"

// budgeted lists the built-ins replaced by budgeted versions: the ones
// whose result can be larger than their arguments.
var budgeted = map[string]func(s *evalState, args []any) (any, error){
	"repeat":     budgetRepeat,
	"join":       budgetJoin,
	"replace":    budgetReplace,
	"toJSON":     budgetToJSON,
	"string":     budgetString,
	"concat":     budgetConcat,
	"flatten":    budgetFlatten,
	"split":      budgetSplit("split"),
	"splitAfter": budgetSplit("splitAfter"),
	"upper":      budgetLinear("upper", 1),
	"lower":      budgetLinear("lower", 1),
	"toBase64":   budgetLinear("toBase64", 2),
	"fromJSON":   budgetLinear("fromJSON", 4),
}

// budgetOptions returns the options that replace the allocating built-ins,
// string + and dynamic regular expressions with budgeted functions and
// make every predicate iteration check the time budget.
func budgetOptions() []expr.Option {
	stType := reflect.TypeFor[*evalState]()
	var opts []expr.Option
	for name, fn := range budgeted {
		b := builtin.Builtins[builtin.Index[name]]
		var types []any
		for _, t := range b.Types {
			in := []reflect.Type{stType}
			for i := range t.NumIn() {
				in = append(in, t.In(i))
			}
			out := []reflect.Type{}
			for i := range t.NumOut() {
				out = append(out, t.Out(i))
			}
			types = append(types, reflect.New(reflect.FuncOf(in, out, t.IsVariadic())).Interface())
		}
		if len(types) == 0 {
			types = append(types, new(func(*evalState, ...any) any))
		}
		opts = append(opts, expr.Function("_"+name, func(params ...any) (any, error) {
			return fn(params[0].(*evalState), params[1:])
		}, types...))
	}
	opts = append(opts,
		expr.Function("_add", budgetAdd, new(func(*evalState, any, any) any)),
		expr.Function("_matches", budgetMatches, new(func(*evalState, any, any) bool)),
		expr.Function("_tick", func(params ...any) (any, error) {
			if err := params[0].(*evalState).tick(); err != nil {
				return nil, err
			}
			return params[1], nil
		}, new(func(*evalState, any) any)),
		expr.Patch(budgetPatch{}),
	)
	return opts
}

// budgetPatch rewrites the syntax tree: budgeted built-ins call their
// replacements, + that is not plainly numeric calls _add, matches with a
// pattern computed at run time calls _matches, and every predicate body
// goes through _tick.
type budgetPatch struct{}

func state() ast.Node { return &ast.IdentifierNode{Value: stateName} }

func (budgetPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if _, ok := budgeted[n.Name]; ok {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: "_" + n.Name},
				Arguments: append([]ast.Node{state()}, n.Arguments...),
			})
		}
	case *ast.BinaryNode:
		switch {
		case n.Operator == "+" && !(isNumeric(n.Left.Type()) && isNumeric(n.Right.Type())):
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: "_add"},
				Arguments: []ast.Node{state(), n.Left, n.Right},
			})
		case n.Operator == "matches":
			if _, constant := n.Right.(*ast.StringNode); !constant {
				ast.Patch(node, &ast.CallNode{
					Callee:    &ast.IdentifierNode{Value: "_matches"},
					Arguments: []ast.Node{state(), n.Left, n.Right},
				})
			}
		}
	case *ast.PredicateNode:
		n.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: "_tick"}, Arguments: []ast.Node{state(), n.Node}}
	}
}

func isNumeric(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
