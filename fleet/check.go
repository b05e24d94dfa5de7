package fleet

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// ConnType is the node type of ThingsBoard connections.
const ConnType = "tb-connection"

// credFields are the management connection's fields a package may not
// change: the server and the credentials.
var credFields = []string{"host", "port", "tls", "accessToken", "clientId", "username", "password", "certFile", "keyFile"}

// ManagedConns returns the enabled tb-connection nodes of f with manage: true.
func ManagedConns(f *engine.Flow) []*engine.NodeDef {
	var out []*engine.NodeDef
	for _, n := range f.Nodes {
		if n.Type == ConnType && !n.Disabled && n.Fields["manage"] == true {
			out = append(out, n)
		}
	}
	return out
}

// CheckFlow returns the problems of f only a whole flow shows: more than
// one connection managing the box.
func CheckFlow(f *engine.Flow) engine.Problems {
	var ps engine.Problems
	ms := ManagedConns(f)
	if len(ms) > 1 {
		for _, n := range ms[1:] {
			ps = append(ps, engine.Problem{NodeID: n.ID, NodeType: n.Type, Field: "manage", Severity: engine.SeverityError,
				Message: fmt.Sprintf("tb-connection %q already manages this box: at most one connection of a flow has manage on", ms[0].ID)})
		}
	}
	return ps
}

// secretFields returns the secret fields of node type typ.
func secretFields(reg *engine.Registry, typ string) []string {
	t, ok := reg.Lookup(typ)
	if !ok {
		return nil
	}
	var out []string
	for _, f := range t.Fields {
		if f.Secret || f.Kind == engine.KindSecret {
			out = append(out, f.Name)
		}
	}
	return out
}

// envName returns NAME for a value that is exactly "${NAME}".
func envName(s string) (string, bool) {
	if !engine.IsEnvRef(s) {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "${"), "}"), true
}

// expand resolves a field value: "${NAME}" is looked up, anything else is
// formatted as text ("" for absent).
func expand(v any, lookup engine.LookupEnv) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		if name, ok := envName(x); ok {
			val, _ := lookup(name)
			return val
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// emptyValue reports a field value that says nothing: absent, "", false,
// 0 or the secret placeholder.
func emptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == "" || x == engine.SecretPlaceholder
	case bool:
		return !x
	case float64:
		return x == 0
	}
	return false
}

// lookupOr returns lookup, or os.LookupEnv when nil.
func lookupOr(lookup engine.LookupEnv) engine.LookupEnv {
	if lookup == nil {
		return os.LookupEnv
	}
	return lookup
}
