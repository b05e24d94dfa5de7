package core

import (
	"bytes"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// maxJSONataOut bounds the expression a conversion writes.
const maxJSONataOut = 20_000

// jsonataFuncs maps the JSONata functions that have an expr equivalent.
var jsonataFuncs = map[string]string{
	"$string": "string", "$number": "float", "$floor": "floor", "$ceil": "ceil", "$abs": "abs",
	"$uppercase": "upper", "$lowercase": "lower", "$length": "len", "$trim": "trim", "$round": "round",
	"$millis": "timestamp", "$now": `now().UTC().Format("2006-01-02T15:04:05.000Z")`,
}

// JSONataToExpr converts the part of JSONata that maps onto tbflow's
// expressions: message paths (payload.a, topic, other properties become
// msg.x), number and string literals, arithmetic, comparisons (= becomes
// ==), and / or, the ?: conditional, & (string concatenation) and a few
// functions ($string, $number, $round with one argument, $floor, $ceil,
// $abs, $uppercase, $lowercase, $length, $trim, $millis, $now). It returns
// false for anything else, and for a result that does not compile. It is
// linear in the length of src.
func JSONataToExpr(src string) (string, bool) {
	src = strings.TrimSpace(src)
	if src == "" || len(src) > 10_000 {
		return "", false
	}
	parts, ok := splitTop(src, '&')
	if !ok {
		return "", false
	}
	var out []string
	for _, p := range parts {
		e, ok := jsonataTerm(strings.TrimSpace(p))
		if !ok {
			return "", false
		}
		if len(parts) > 1 {
			e = "string(" + e + ")"
		}
		out = append(out, e)
	}
	res := strings.Join(out, " + ")
	if _, err := engine.CompileExpr(res); err != nil {
		return "", false
	}
	return res, true
}

// splitTop splits s at sep outside strings and brackets.
func splitTop(s string, sep byte) ([]string, bool) {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, false
			}
			i += j + 1
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case sep:
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:]), depth == 0
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// jsonataTerm converts one &-free JSONata expression.
func jsonataTerm(s string) (string, bool) {
	var b bytes.Buffer
	prevPath := false // the previous token ends a path (a . continues it)
	atom := -1        // where the last complete operand starts in b
	var parens []int  // where each open parenthesis' operand starts in b
	funcStart := -1   // a function name waiting for its (
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '%':
			// JavaScript's remainder; expr's % takes integers only.
			if atom < 0 {
				return "", false
			}
			j := i + 1
			for j < len(s) && s[j] == ' ' {
				j++
			}
			k := j
			for k < len(s) && (isIdent(s[k]) || s[k] == '.') {
				k++
			}
			rhs := s[j:k]
			if rhs == "" {
				return "", false
			}
			if isIdentStart(rhs[0]) {
				if e, ok := jsonataTerm(rhs); ok {
					rhs = e
				} else {
					return "", false
				}
			}
			lhs := string(b.Bytes()[atom:])
			if b.Len()+2*len(lhs) > maxJSONataOut {
				return "", false // each % doubles its left side: a chain of them would grow exponentially
			}
			b.Truncate(atom)
			b.WriteString("(" + lhs + " - " + rhs + " * int(" + lhs + " / " + rhs + "))")
			i = k
			prevPath = false
			continue
		case c == ' ' || c == '\t' || c == '\n':
			b.WriteByte(c)
			i++
			continue
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return "", false
			}
			atom = b.Len()
			b.WriteString(`"` + strings.ReplaceAll(s[i+1:i+1+j], `"`, `\"`) + `"`)
			i += j + 2
			prevPath = false
			continue
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			atom = b.Len()
			b.WriteString(s[i:j])
			i = j
			prevPath = false
			continue
		case c == '$':
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			name := s[i:j]
			fn, ok := jsonataFuncs[name]
			if !ok || j >= len(s) || s[j] != '(' {
				return "", false
			}
			if name == "$now" || name == "$millis" {
				if !strings.HasPrefix(s[j:], "()") {
					return "", false
				}
				if name == "$millis" {
					fn += "()"
				}
				atom = b.Len()
				b.WriteString(fn)
				i = j + 2
				prevPath = false
				continue
			}
			if name == "$round" {
				if k := strings.IndexByte(s[j:], ')'); k < 0 || strings.Contains(s[j:j+k], ",") {
					return "", false
				}
			}
			funcStart = b.Len()
			b.WriteString(fn)
			i = j
			prevPath = false
			continue
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			if !prevPath {
				atom = b.Len()
			}
			switch {
			case prevPath:
				b.WriteString(word)
			case word == "and" || word == "or":
				b.WriteString(word)
				i = j
				prevPath = false
				continue
			case word == "true" || word == "false":
				b.WriteString(word)
				i = j
				prevPath = false
				continue
			case word == "null":
				b.WriteString("nil")
				i = j
				prevPath = false
				continue
			case word == "payload" || word == "topic":
				b.WriteString(word)
			default:
				b.WriteString("msg." + word)
			}
			i = j
			prevPath = true
			continue
		case c == '.':
			if !prevPath || i+1 >= len(s) || !isIdentStart(s[i+1]) {
				return "", false
			}
			b.WriteByte('.')
			i++
			continue
		case c == '[':
			k := strings.IndexByte(s[i:], ']')
			if !prevPath || k < 0 {
				return "", false
			}
			idx := strings.TrimSpace(s[i+1 : i+k])
			for _, d := range []byte(idx) {
				if d < '0' || d > '9' {
					return "", false
				}
			}
			if idx == "" {
				return "", false
			}
			b.WriteString("[" + idx + "]")
			i += k + 1
			continue
		case c == '=':
			b.WriteString("==")
		case c == '!' && i+1 < len(s) && s[i+1] == '=':
			b.WriteString("!=")
			i += 2
			prevPath = false
			continue
		case c == '<' || c == '>':
			b.WriteByte(c)
			if i+1 < len(s) && s[i+1] == '=' {
				b.WriteByte('=')
				i++
			}
		case c == '(':
			start := b.Len()
			if funcStart >= 0 {
				start, funcStart = funcStart, -1
			}
			parens = append(parens, start)
			b.WriteByte(c)
		case c == ')':
			if len(parens) == 0 {
				return "", false
			}
			atom, parens = parens[len(parens)-1], parens[:len(parens)-1]
			b.WriteByte(c)
		case strings.IndexByte("+-*/?:,", c) >= 0:
			b.WriteByte(c)
		default:
			return "", false
		}
		i++
		prevPath = false
	}
	return b.String(), true
}
