package engine

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// resolveCtx is what resolving a node's settings needs besides the spec.
type resolveCtx struct {
	lookup  LookupEnv
	dataDir string // "" leaves data paths as written
}

// ReservedEnvPrefix starts the environment variables that hold the
// editor's own credentials; flows cannot read them.
const ReservedEnvPrefix = "TBFLOW_AUTH_"

func reservedEnv(name string) bool {
	return strings.HasPrefix(strings.ToUpper(name), ReservedEnvPrefix)
}

// guardLookup hides the reserved variables from ${NAME} references.
func guardLookup(lookup LookupEnv) LookupEnv {
	return func(name string) (string, bool) {
		if reservedEnv(name) {
			return "", false
		}
		return lookup(name)
	}
}

// redactor replaces secret values in messages by what names them: the
// value of ${NAME} by "${NAME}", a secret field's value by "<secret>".
type redactor struct {
	pairs [][2]string
}

// minRedact is the shortest value replaced; shorter ones would garble
// messages and are no secrets worth the name.
const minRedact = 3

func newRedactor(t *Type, n *NodeDef, lookup LookupEnv) *redactor {
	rd := &redactor{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			for _, m := range envRefRE.FindAllStringSubmatch(x, -1) {
				if val, ok := lookup(m[1]); ok {
					rd.add(val, m[0])
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, v := range n.Fields {
		walk(v)
	}
	for _, f := range t.Fields {
		if s, ok := n.Fields[f.Name].(string); ok && f.isSecret() && s != SecretPlaceholder && !strings.Contains(s, "${") {
			rd.add(s, "<secret>")
		}
	}
	// Longest first, so a value containing another is replaced whole.
	sort.SliceStable(rd.pairs, func(i, j int) bool { return len(rd.pairs[i][0]) > len(rd.pairs[j][0]) })
	return rd
}

func (rd *redactor) add(val, name string) {
	if len(val) < minRedact {
		return
	}
	rd.pairs = append(rd.pairs, [2]string{val, name})
	// A message may quote the value as JSON (escaped) too.
	if q, err := json.Marshal(val); err == nil {
		if inner := string(q[1 : len(q)-1]); inner != val {
			rd.pairs = append(rd.pairs, [2]string{inner, name})
		}
	}
}

func (rd *redactor) apply(msg string) string {
	for _, p := range rd.pairs {
		msg = strings.ReplaceAll(msg, p[0], p[1])
	}
	return msg
}

// dataPath checks a data-path value and resolves it against dataDir.
func dataPath(raw any, dataDir string) (any, string) {
	s, ok := raw.(string)
	if !ok || s == "" {
		return raw, ""
	}
	if strings.ContainsRune(s, 0) {
		return nil, "must be a file path"
	}
	for _, part := range strings.FieldsFunc(filepath.ToSlash(s), func(r rune) bool { return r == '/' }) {
		if part == ".." {
			return nil, fmt.Sprintf("path %q must not climb out with \"..\"", s)
		}
	}
	if dataDir == "" {
		return s, ""
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Sprintf("data directory: %v", err)
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	if rel, err := filepath.Rel(dir, p); err != nil || rel == "." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || rel == ".." {
		return nil, fmt.Sprintf("path %q must be inside the data directory %s (a relative path resolves there; change it with --data-dir)", s, dir)
	}
	return p, ""
}

// retargetProblems refuses to carry stored secrets over to a config node
// whose server changed: for every node of f that exists in deployed with
// different Identity fields, each secret field that would keep its stored
// value (placeholder or absent) must be entered again.
func retargetProblems(reg *Registry, f, deployed *Flow, stored Credentials) Problems {
	var out Problems
	if deployed == nil {
		return nil
	}
	old := make(map[string]*NodeDef, len(deployed.Nodes))
	for _, n := range deployed.Nodes {
		old[n.ID] = n
	}
	for _, n := range f.Nodes {
		d := old[n.ID]
		if d == nil || d.Type != n.Type || len(stored[n.ID]) == 0 {
			continue
		}
		t, ok := reg.Lookup(n.Type)
		if !ok {
			continue
		}
		var changed []string
		for _, fs := range t.Fields {
			if fs.Identity && !sameSetting(fs, n.Fields, d.Fields) {
				changed = append(changed, fs.Name)
			}
		}
		if len(changed) == 0 {
			continue
		}
		for _, fs := range t.Fields {
			if !fs.isSecret() || stored[n.ID][fs.Name] == "" {
				continue
			}
			if cur, present := n.Fields[fs.Name]; present && cur != nil && cur != SecretPlaceholder {
				continue // entered again (or cleared)
			}
			out = append(out, Problem{
				NodeID: n.ID, NodeType: n.Type, Field: fs.Name, Line: n.Line, Severity: SeverityError,
				Message: fmt.Sprintf("re-enter the %s: the server changed (%s), and a stored secret only goes to the server it was entered for",
					secretNoun(fs), strings.Join(changed, ", ")),
			})
		}
	}
	return out
}

func secretNoun(f Field) string {
	name := strings.ToLower(f.Name)
	switch {
	case strings.Contains(name, "token"):
		return "token"
	case strings.Contains(name, "password"):
		return "password"
	}
	return f.label()
}

// sameSetting compares a field in two nodes, an absent value counting as
// its default.
func sameSetting(f Field, a, b map[string]any) bool {
	get := func(m map[string]any) any {
		if v, ok := m[f.Name]; ok && v != nil {
			return v
		}
		return f.Default
	}
	ab, _ := json.Marshal(get(a))
	bb, _ := json.Marshal(get(b))
	return slices.Equal(ab, bb)
}
