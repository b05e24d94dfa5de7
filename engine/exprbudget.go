package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
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

// callBuiltin runs expr's own implementation of a built-in.
func callBuiltin(name string, args []any) (any, error) {
	b := builtin.Builtins[builtin.Index[name]]
	switch {
	case b.Fast != nil:
		if len(args) != 1 {
			return nil, fmt.Errorf("%s takes 1 argument, got %d", name, len(args))
		}
		return b.Fast(args[0]), nil
	case b.Safe != nil:
		v, _, err := b.Safe(args...)
		return v, err
	default:
		return b.Func(args...)
	}
}

func budgetAdd(params ...any) (any, error) {
	s := params[0].(*evalState)
	a, b := params[1], params[2]
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			if err := s.charge(int64(len(x)) + int64(len(y))); err != nil {
				return nil, err
			}
			return x + y, nil
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return runtime.Add(a, b), nil
}

func budgetMatches(params ...any) (any, error) {
	s := params[0].(*evalState)
	str, ok1 := params[1].(string)
	pat, ok2 := params[2].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("matches needs strings, got %T and %T", params[1], params[2])
	}
	// Compiling a pattern takes memory proportional to its length.
	if err := s.charge(16 * int64(len(pat))); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, err
	}
	return re.MatchString(str), nil
}

func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func budgetRepeat(s *evalState, args []any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("repeat takes 2 arguments, got %d", len(args))
	}
	str, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("repeat needs a string, got %T", args[0])
	}
	n := runtime.ToInt(args[1])
	if n < 0 {
		return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
	}
	if err := s.charge(mul(int64(len(str)), int64(n))); err != nil {
		return nil, err
	}
	return strings.Repeat(str, n), nil
}

func budgetJoin(s *evalState, args []any) (any, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("join takes 1 or 2 arguments, got %d", len(args))
	}
	glue := ""
	if len(args) == 2 {
		g, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("join needs a string separator, got %T", args[1])
		}
		glue = g
	}
	var parts []string
	switch v := args[0].(type) {
	case []string:
		parts = v
	case []any:
		parts = make([]string, 0, len(v))
		for _, x := range v {
			str, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("join needs an array of strings, got an element of type %T", x)
			}
			parts = append(parts, str)
		}
	default:
		return nil, fmt.Errorf("join needs an array of strings, got %T", args[0])
	}
	size := mul(int64(len(glue)), int64(max(len(parts)-1, 0)))
	for _, p := range parts {
		size += int64(len(p))
	}
	if err := s.charge(size); err != nil {
		return nil, err
	}
	return strings.Join(parts, glue), nil
}

func budgetReplace(s *evalState, args []any) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("replace takes 3 arguments, got %d", len(args))
	}
	str, ok1 := args[0].(string)
	old, ok2 := args[1].(string)
	repl, ok3 := args[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil, errors.New("replace needs three strings")
	}
	n := int64(utf8.RuneCountInString(str) + 1)
	if old != "" {
		n = int64(strings.Count(str, old))
	}
	if err := s.charge(int64(len(str)) + mul(n, int64(len(repl)))); err != nil {
		return nil, err
	}
	return strings.ReplaceAll(str, old, repl), nil
}

func budgetString(s *evalState, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("string takes 1 argument, got %d", len(args))
	}
	// fmt builds the whole text at once: estimate it first.
	if err := s.charge(2 * sizeOf(args[0], s.left/2+1)); err != nil {
		return nil, err
	}
	return callBuiltin("string", args)
}

func budgetConcat(s *evalState, args []any) (any, error) {
	var n int64
	for _, a := range args {
		v := reflect.ValueOf(a)
		if v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
			n += int64(v.Len())
		}
	}
	if err := s.elements(n); err != nil {
		return nil, err
	}
	return callBuiltin("concat", args)
}

func budgetFlatten(s *evalState, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("flatten takes 1 argument, got %d", len(args))
	}
	n, limit := int64(0), s.left/16+1
	var count func(v reflect.Value, depth int)
	count = func(v reflect.Value, depth int) {
		for v.Kind() == reflect.Interface && !v.IsNil() {
			v = v.Elem()
		}
		if (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || depth > maxJSONDepth {
			n++
			return
		}
		for i := 0; i < v.Len() && n <= limit; i++ {
			count(v.Index(i), depth+1)
		}
	}
	count(reflect.ValueOf(args[0]), 0)
	if err := s.elements(n); err != nil {
		return nil, err
	}
	return callBuiltin("flatten", args)
}

// elements charges n array elements (16 bytes each).
func (s *evalState) elements(n int64) error {
	if n > int64(s.limits.Elements) {
		s.err = fmt.Errorf("%w (%d elements)", ErrExprMemory, s.limits.Elements)
		return s.err
	}
	return s.charge(16 * n)
}

func budgetSplit(name string) func(*evalState, []any) (any, error) {
	return func(s *evalState, args []any) (any, error) {
		if len(args) < 2 {
			return nil, fmt.Errorf("%s takes 2 or 3 arguments, got %d", name, len(args))
		}
		str, ok1 := args[0].(string)
		sep, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s needs strings", name)
		}
		n := int64(utf8.RuneCountInString(str))
		if sep != "" {
			n = int64(strings.Count(str, sep)) + 1
		}
		if err := s.elements(n); err != nil {
			return nil, err
		}
		return callBuiltin(name, args)
	}
}

// budgetLinear charges factor bytes per byte of the string argument.
func budgetLinear(name string, factor int64) func(*evalState, []any) (any, error) {
	return func(s *evalState, args []any) (any, error) {
		if len(args) > 0 {
			if str, ok := args[0].(string); ok {
				if err := s.charge(mul(int64(len(str)), factor)); err != nil {
					return nil, err
				}
			}
		}
		return callBuiltin(name, args)
	}
}

// sizeOf estimates the bytes of a value's text, stopping once it passes
// limit.
func sizeOf(v any, limit int64) int64 {
	var n int64
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		if n > limit || depth > maxJSONDepth {
			n = max(n, limit+1)
			return
		}
		for (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && !v.IsNil() {
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.String:
			n += int64(v.Len()) + 2
		case reflect.Slice, reflect.Array:
			n += 2
			for i := 0; i < v.Len() && n <= limit; i++ {
				n++
				walk(v.Index(i), depth+1)
			}
		case reflect.Map:
			n += 2
			it := v.MapRange()
			for it.Next() && n <= limit {
				n += 2
				walk(it.Key(), depth+1)
				walk(it.Value(), depth+1)
			}
		default:
			n += 24
		}
	}
	walk(reflect.ValueOf(v), 0)
	return n
}
