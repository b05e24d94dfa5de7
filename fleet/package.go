package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tbflow/tbflow/engine"
)

// maxPackageProblems bounds the problems put into sw_error.
const maxPackageProblems = 20

// maxErrorText bounds sw_error.
const maxErrorText = 4096

// problem makes an error-severity problem about node n (nil: the package).
func problem(n *engine.NodeDef, field, format string, args ...any) engine.Problem {
	p := engine.Problem{Field: field, Severity: engine.SeverityError, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.NodeID, p.NodeType = n.ID, n.Type
	}
	return p
}

// loadCreds reads a credentials file; a missing one is empty.
func loadCreds(path string) (engine.Credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return engine.Credentials{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	var c engine.Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("reading credentials %q: %w", path, err)
	}
	return c, nil
}

// checker validates flows arriving as packages (or through tbflow.validate)
// against what runs on this box.
type checker struct {
	reg      *engine.Registry
	lookup   engine.LookupEnv
	validate func(*engine.Flow) engine.Problems // the engine's validation
	creds    engine.Credentials                 // the local credentials file
	credFile string                             // its name, for messages
	running  *engine.NodeDef                    // the running management connection, secrets included
}

// prepare parses a package and turns it into the flow to deploy: local
// secrets merged in, the management connection's credentials carried
// over. It returns every problem that stops the deploy.
func (c *checker) prepare(data []byte) (*engine.Flow, engine.Problems) {
	f, err := engine.ParseFlow(data)
	if err != nil {
		return nil, engine.ProblemsFromError(err)
	}
	var ps engine.Problems
	// Secrets never travel in a package.
	for _, n := range f.Nodes {
		for _, field := range secretFields(c.reg, n.Type) {
			s, _ := n.Fields[field].(string)
			if s == "" || s == engine.SecretPlaceholder || engine.IsEnvRef(s) {
				continue
			}
			ps = append(ps, problem(n, field, "a package must not carry secrets: write ${ENV_VAR} or leave it empty to use the box's credentials file"))
		}
	}
	ms := ManagedConns(f)
	switch {
	case len(ms) == 0:
		ps = append(ps, problem(nil, "", "the package has no tb-connection with manage on: deploying it would cut the box off from ThingsBoard"))
	case c.running != nil:
		ps = append(ps, c.carryOver(ms[0])...)
	}
	ps = append(ps, CheckFlow(f)...)
	engine.MergeSecrets(f, c.creds)
	ps = append(ps, c.secretRefs(f)...)
	for _, p := range c.validate(f) {
		if p.Severity == engine.SeverityError {
			ps = append(ps, p)
		}
	}
	return f, ps
}

// carryOver fills the package's management connection's server and
// credentials from the running one where the package leaves them empty,
// and refuses a package that changes them.
func (c *checker) carryOver(m *engine.NodeDef) engine.Problems {
	var ps engine.Problems
	if m.Fields == nil {
		m.Fields = map[string]any{}
	}
	for _, field := range credFields {
		pv, rv := m.Fields[field], c.running.Fields[field]
		if emptyValue(pv) {
			if !emptyValue(rv) {
				m.Fields[field] = rv
			}
			continue
		}
		if expand(pv, c.lookup) != expand(rv, c.lookup) {
			ps = append(ps, problem(m, field, "the package changes the management connection's %s: refused, the box would lose its management channel (change it on the box)", field))
		}
	}
	// The box's identity for self-provisioning and its outbox file go with it.
	for _, field := range []string{"provisionKey", "provisionSecret", "deviceName", "outboxPath"} {
		if emptyValue(m.Fields[field]) && !emptyValue(c.running.Fields[field]) {
			m.Fields[field] = c.running.Fields[field]
		}
	}
	return ps
}

// secretRefs reports secrets that cannot be resolved on this box: a
// ${NAME} that is not set, a placeholder the credentials file lacks.
func (c *checker) secretRefs(f *engine.Flow) engine.Problems {
	var ps engine.Problems
	for _, n := range f.Nodes {
		if n.Disabled {
			continue
		}
		for _, field := range secretFields(c.reg, n.Type) {
			s, _ := n.Fields[field].(string)
			if s == engine.SecretPlaceholder {
				ps = append(ps, problem(n, field, "secret not in the box's credentials file %s", c.credFile))
				continue
			}
			if name, ok := envName(s); ok {
				if _, set := c.lookup(name); !set {
					ps = append(ps, problem(n, field, "environment variable %s is not set on the box", name))
				}
			}
		}
	}
	return ps
}

// problemsText formats problems for sw_error (at most 20, one per line).
func problemsText(ps engine.Problems) string {
	var b strings.Builder
	for i, p := range ps {
		if i == maxPackageProblems {
			fmt.Fprintf(&b, "\n… and %d more", len(ps)-i)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
		if b.Len() > maxErrorText {
			break
		}
	}
	if b.Len() > maxErrorText {
		return strings.ToValidUTF8(b.String()[:maxErrorText], "") + "…"
	}
	return b.String()
}

// secretValues returns the resolved values of f's secret fields, for
// redacting logs.
func secretValues(f *engine.Flow, reg *engine.Registry, lookup engine.LookupEnv) []string {
	var out []string
	for _, n := range f.Nodes {
		for _, field := range secretFields(reg, n.Type) {
			if v := expand(n.Fields[field], lookup); v != "" && v != engine.SecretPlaceholder {
				out = append(out, v)
			}
		}
	}
	return out
}
