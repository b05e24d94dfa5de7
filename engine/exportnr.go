package engine

import (
	"fmt"
	"sort"
	"sync"
)

// ExportFunc maps the settings of one tbflow node onto Node-RED's node
// type of the same purpose: it returns Node-RED's type name, its settings
// (Node-RED's field names and values) and notes about anything that did
// not carry over. It must not change in.
type ExportFunc func(in map[string]any) (nrType string, out map[string]any, notes []string)

var (
	exportsMu sync.RWMutex
	exports   = map[string]ExportFunc{}
)

// RegisterExport declares how tbflow node type typ is written for
// Node-RED by [ExportNodeRED]. It panics on an empty name, a nil function
// or a duplicate.
func RegisterExport(typ string, fn ExportFunc) {
	if typ == "" || fn == nil {
		panic("engine: RegisterExport needs a type name and a function")
	}
	exportsMu.Lock()
	defer exportsMu.Unlock()
	if _, dup := exports[typ]; dup {
		panic(fmt.Sprintf("engine: Node-RED export for %q registered twice", typ))
	}
	exports[typ] = fn
}

// ExportReport says what a Node-RED export could not express.
type ExportReport struct {
	// Exported counts the objects written.
	Exported int `json:"exported"`
	// Missing lists the tbflow types written as they are, which Node-RED
	// will show as missing types (transform, the ThingsBoard and Modbus
	// nodes), with the ids of their nodes.
	Missing map[string][]string `json:"missing"`
	// Notes are remarks about individual nodes.
	Notes []string `json:"notes"`
}

// MissingTypes returns the types Node-RED will not know, sorted.
func (r *ExportReport) MissingTypes() []string {
	out := make([]string, 0, len(r.Missing))
	for t := range r.Missing {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ExportNodeRED writes f for Node-RED: nodes of a type Node-RED also has
// get Node-RED's type name, field names and values; other nodes are kept
// as they are (Node-RED lists them as missing types and keeps them).
// Secrets are removed as by [Export]. Wires, positions, tabs, groups and
// comments carry over unchanged.
func (r *Registry) ExportNodeRED(f *Flow) (*Flow, *ExportReport) {
	f, creds := SplitSecrets(f, r)
	rep := &ExportReport{Missing: map[string][]string{}, Notes: []string{}}
	exportsMu.RLock()
	defer exportsMu.RUnlock()
	for _, n := range f.Nodes {
		rep.Exported++
		if isInert(n.Type) {
			continue
		}
		fn, ok := exports[n.Type]
		rep.Notes = append(rep.Notes, secretNotes(r, n, creds[n.ID])...)
		if !ok {
			rep.Missing[n.Type] = append(rep.Missing[n.Type], n.ID)
			continue
		}
		in := n.Fields
		if in == nil {
			in = map[string]any{}
		}
		if t, ok := r.Lookup(n.Type); ok {
			in = withDefaults(t, in)
		}
		typ, out, notes := fn(in)
		for _, note := range notes {
			rep.Notes = append(rep.Notes, fmt.Sprintf("node %q (%s → %s): %s", n.ID, n.Type, typ, note))
		}
		n.Type, n.Fields = typ, out
		if n.Wires == nil && n.Z != "" {
			n.Wires = [][]string{}
		}
	}
	return f, rep
}

// withDefaults returns in with the spec's defaults for absent fields.
func withDefaults(t *Type, in map[string]any) map[string]any {
	out := make(map[string]any, len(in)+len(t.Fields))
	for _, f := range t.Fields {
		if f.Default != nil {
			out[f.Name] = CloneValue(f.Default)
		}
	}
	for k, v := range in {
		out[k] = v
	}
	return out
}

// UnmappedNotes returns a note for each of the named fields of tbflow type
// typ that in sets to other than the field's default: settings that have
// no counterpart in Node-RED and are dropped by an export. Secret fields
// are named without their value.
func UnmappedNotes(typ string, in map[string]any, names ...string) []string {
	t, ok := defaultRegistry.Lookup(typ)
	if !ok {
		return nil
	}
	var notes []string
	for _, name := range names {
		v, set := in[name]
		if !set || v == nil {
			continue
		}
		for _, f := range t.Fields {
			if f.Name != name {
				continue
			}
			if f.Kind == KindSecret {
				// Literal secrets are gone already (see secretNotes); a
				// reference to an environment variable names no secret.
				if s, _ := v.(string); IsEnvRef(s) {
					notes = append(notes, fmt.Sprintf("%s (%s) = %s is a secret and is not exported: enter it in Node-RED", f.Name, f.Label, s))
				}
				break
			}
			if fmt.Sprint(v) == fmt.Sprint(f.Default) || (f.Default == nil && fmt.Sprint(v) == "") {
				break
			}
			notes = append(notes, fmt.Sprintf("%s (%s) = %v has no Node-RED counterpart and was dropped", f.Name, f.Label, v))
			break
		}
	}
	return notes
}

// secretNotes names the secrets removed from node n (never their values).
func secretNotes(r *Registry, n *NodeDef, removed map[string]string) []string {
	names := make([]string, 0, len(removed))
	for k := range removed {
		names = append(names, k)
	}
	sort.Strings(names)
	var notes []string
	for _, k := range names {
		label := k
		if t, ok := r.Lookup(n.Type); ok {
			for _, f := range t.Fields {
				if f.Name == k && f.Label != "" {
					label = fmt.Sprintf("%s (%s)", k, f.Label)
				}
			}
		}
		notes = append(notes, fmt.Sprintf("node %q (%s): %s is a secret and is not exported: enter it in Node-RED", n.ID, n.Type, label))
	}
	return notes
}
