package function

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// Context keys may be paths into a stored object, as in Node-RED:
// flow.get("device.readings[0]") reads below the value stored as "device".

// splitKey splits "a.b[0]" into "a" and the rest as keys and indexes.
func splitKey(key string) (string, []any) {
	i := strings.IndexAny(key, ".[")
	if i <= 0 || len(key) > 1000 {
		return key, nil
	}
	var path []any
	rest := key[i:]
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			j := strings.IndexAny(rest, ".[")
			if j < 0 {
				j = len(rest)
			}
			path = append(path, rest[:j])
			rest = rest[j:]
		case '[':
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return key, nil
			}
			inner := strings.Trim(rest[1:j], `"' `)
			if n, err := strconv.Atoi(inner); err == nil {
				path = append(path, n)
			} else {
				path = append(path, inner)
			}
			rest = rest[j+1:]
		default:
			return key, nil
		}
	}
	return key[:i], path
}

func ctxGet(s *engine.ContextStore, key string) (any, bool) {
	head, path := splitKey(key)
	v, ok := s.Get(head)
	for _, p := range path {
		if !ok {
			return nil, false
		}
		switch c := v.(type) {
		case map[string]any:
			v, ok = c[fmt.Sprint(p)]
		case []any:
			i, isIdx := p.(int)
			if !isIdx || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, ok
}

func ctxSet(s *engine.ContextStore, key string, val any) error {
	head, path := splitKey(key)
	if len(path) == 0 {
		s.Set(head, val)
		return nil
	}
	root, _ := s.Get(head)
	root = engine.CloneValue(root)
	if root == nil {
		root = map[string]any{}
	}
	cur := root
	for i, p := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			k := fmt.Sprint(p)
			if last {
				if val == nil {
					delete(c, k)
				} else {
					c[k] = val
				}
				break
			}
			next, ok := c[k].(map[string]any)
			if !ok {
				if arr, isArr := c[k].([]any); isArr {
					cur = arr
					continue
				}
				next = map[string]any{}
				c[k] = next
			}
			cur = next
		case []any:
			idx, ok := p.(int)
			if !ok || idx < 0 || idx >= len(c) {
				return fmt.Errorf("context key %q: %v is not an index of the array", key, p)
			}
			if last {
				c[idx] = val
				break
			}
			cur = c[idx]
		default:
			return fmt.Errorf("context key %q: cannot set %v below a %T", key, p, cur)
		}
	}
	s.Set(head, root)
	return nil
}
