package engine

import (
	"fmt"
	"sort"
)

// ImportFunc maps the settings of one Node-RED node (its keys other than
// id, type, z, name, x, y, wires, d and info) onto a tbflow node type. It
// returns the tbflow type name, its settings, and notes for the user about
// anything that did not carry over. An error rejects the node, which is
// then reported as unsupported.
type ImportFunc func(fields map[string]any) (typ string, out map[string]any, notes []string, err error)

// ImportReport says what an import kept and what it dropped.
type ImportReport struct {
	// Imported counts nodes, config nodes and tabs kept.
	Imported int `json:"imported"`
	// Unsupported maps each Node-RED type that has no tbflow equivalent to
	// the ids of the nodes dropped.
	Unsupported map[string][]string `json:"unsupported"`
	// Notes are remarks about individual nodes (settings that did not map).
	Notes []string `json:"notes"`
}

// UnsupportedTypes returns the unsupported type names, sorted.
func (r *ImportReport) UnsupportedTypes() []string {
	out := make([]string, 0, len(r.Unsupported))
	for t := range r.Unsupported {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ImportNodeRED converts a Node-RED export. Tabs, groups and comments are
// kept; nodes of a type with an import rule ([Registry.RegisterImport])
// are converted; nodes whose type is already a tbflow type are kept as
// they are; every other node is dropped and named in the report, and wires
// to dropped nodes are removed. Validate the result before deploying it.
func (r *Registry) ImportNodeRED(data []byte) (*Flow, *ImportReport, error) {
	in, err := ParseFlow(data)
	if err != nil {
		return nil, nil, err
	}
	rep := &ImportReport{Unsupported: map[string][]string{}, Notes: []string{}}
	out := &Flow{}
	kept := map[string]*Type{}
	for _, n := range in.Nodes {
		n = n.Clone()
		switch {
		case isInert(n.Type):
			out.Nodes = append(out.Nodes, n)
			rep.Imported++
			continue
		}
		if fn, ok := r.importFunc(n.Type); ok {
			typ, fields, notes, err := fn(n.Fields)
			if err != nil {
				rep.Unsupported[n.Type] = append(rep.Unsupported[n.Type], n.ID)
				rep.Notes = append(rep.Notes, fmt.Sprintf("node %q (%s): %v", n.ID, n.Type, err))
				continue
			}
			t, ok := r.Lookup(typ)
			if !ok {
				rep.Unsupported[n.Type] = append(rep.Unsupported[n.Type], n.ID)
				continue
			}
			for _, note := range notes {
				rep.Notes = append(rep.Notes, fmt.Sprintf("node %q (%s → %s): %s", n.ID, n.Type, typ, note))
			}
			n.Type, n.Fields = typ, fields
			kept[n.ID] = t
			out.Nodes = append(out.Nodes, n)
			rep.Imported++
			continue
		}
		if t, ok := r.Lookup(n.Type); ok {
			kept[n.ID] = t
			out.Nodes = append(out.Nodes, n)
			rep.Imported++
			continue
		}
		rep.Unsupported[n.Type] = append(rep.Unsupported[n.Type], n.ID)
	}
	for _, n := range out.Nodes {
		t := kept[n.ID]
		if t == nil || n.Wires == nil {
			continue
		}
		if t.ConfigNode {
			n.Wires = nil
			continue
		}
		outs := outputsOf(t, n)
		for p, ids := range n.Wires {
			var keep []string
			for _, id := range ids {
				if kept[id] != nil {
					keep = append(keep, id)
				}
			}
			if keep == nil {
				keep = []string{}
			}
			n.Wires[p] = keep
		}
		for len(n.Wires) > outs && len(n.Wires[len(n.Wires)-1]) == 0 {
			n.Wires = n.Wires[:len(n.Wires)-1]
		}
	}
	return out, rep, nil
}
