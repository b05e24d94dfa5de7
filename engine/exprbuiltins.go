package engine

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"
)

// The budgeted replacements of expr's allocating built-ins: each checks
// its arguments, charges the evaluation's budget for the result it is
// about to build, and only then builds it.

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
