package engine

import (
	"fmt"
	"sort"
	"strings"
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
	// Reasons says, for unsupported types tbflow knows of, why they have
	// no equivalent.
	Reasons map[string]string `json:"reasons,omitempty"`
}

// unsupportedReasons names why well-known Node-RED node types do not
// convert.
var unsupportedReasons = map[string]string{
	"exec":          "runs operating-system commands; tbflow does not run programs",
	"file":          "writes files; tbflow has no file nodes",
	"file in":       "reads files; tbflow has no file nodes",
	"watch":         "watches files; tbflow has no file nodes",
	"http response": "tbflow's http-in answers requests by itself; this node is not needed",
	"websocket in":  "tbflow has no WebSocket nodes",
	"websocket out": "tbflow has no WebSocket nodes",
	"tcp in":        "tbflow has no TCP nodes",
	"tcp out":       "tbflow has no TCP nodes",
	"tcp request":   "tbflow has no TCP nodes",
	"udp in":        "tbflow has no UDP nodes",
	"udp out":       "tbflow has no UDP nodes",
	"split":         "tbflow has no split/join (sequence) nodes",
	"join":          "tbflow has no split/join (sequence) nodes",
	"sort":          "tbflow has no sequence nodes",
	"batch":         "tbflow has no sequence nodes",
	"csv":           "tbflow has no CSV parser node",
	"html":          "tbflow has no HTML parser node",
	"xml":           "tbflow has no XML parser node",
	"yaml":          "tbflow has no YAML parser node",
	"complete":      "tbflow has no complete node",
	"subflow":       "subflows are not supported; expand them in Node-RED first",
	"junction":      "junctions are not supported; wire the nodes directly",
	"unknown":       "Node-RED itself did not know this node",
}

// Text writes the report for people: one line per fact.
func (r *ImportReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "imported %d object(s)\n", r.Imported)
	for _, t := range r.UnsupportedTypes() {
		ids := r.Unsupported[t]
		why := r.Reasons[t]
		if why == "" {
			why = "no tbflow equivalent"
		}
		fmt.Fprintf(&b, "not converted: %d %q node(s) (%s): %s\n", len(ids), t, why, strings.Join(ids, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

// LooksLikeNodeRED reports whether f is a Node-RED export rather than a
// tbflow flow: a node's type is not a tbflow type but has an import rule
// ("link in", "rbe"), or a node of a shared type carries settings its
// tbflow spec does not know (inject's "props", debug's "complete").
func (r *Registry) LooksLikeNodeRED(f *Flow) bool {
	for _, n := range f.Nodes {
		if isInert(n.Type) {
			continue
		}
		_, rule := r.importFunc(n.Type)
		t, known := r.Lookup(n.Type)
		if !known {
			if rule {
				return true
			}
			continue
		}
		if !rule {
			continue
		}
		for k := range n.Fields {
			if _, ok := t.Field(k); !ok && !standardKeys[k] {
				return true
			}
		}
	}
	return false
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
	f, rep := r.ImportNodeREDFlow(in)
	return f, rep, nil
}

// ImportNodeREDFlow converts a parsed Node-RED export; see
// [Registry.ImportNodeRED]. in is not changed.
func (r *Registry) ImportNodeREDFlow(in *Flow) (*Flow, *ImportReport) {
	rep := &ImportReport{Unsupported: map[string][]string{}, Notes: []string{}, Reasons: map[string]string{}}
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
				if rep.Reasons[n.Type] == "" {
					rep.Reasons[n.Type] = err.Error()
				}
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
	for t := range rep.Unsupported {
		if why, ok := unsupportedReasons[t]; ok && rep.Reasons[t] == "" {
			rep.Reasons[t] = why
		}
	}
	dropGroupMembers(out)
	addMissingTabs(out, rep)
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
	return out, rep
}

// dropGroupMembers removes dropped nodes from the member lists of groups,
// so a group keeps exactly the members that were converted.
func dropGroupMembers(f *Flow) {
	ids := map[string]bool{}
	for _, n := range f.Nodes {
		ids[n.ID] = true
	}
	for _, n := range f.Nodes {
		if n.Type != "group" {
			continue
		}
		members, ok := n.Fields["nodes"].([]any)
		if !ok {
			continue
		}
		keep := []any{}
		for _, m := range members {
			if id, _ := m.(string); ids[id] {
				keep = append(keep, m)
			}
		}
		n.Fields["nodes"] = keep
	}
}

// addMissingTabs adds a tab for every tab id nodes refer to that the
// export lacks (Node-RED exports a selection without its tab).
func addMissingTabs(f *Flow, rep *ImportReport) {
	have := map[string]bool{}
	for _, n := range f.Nodes {
		if n.Type == "tab" {
			have[n.ID] = true
		}
	}
	var tabs []*NodeDef
	for _, n := range f.Nodes {
		if n.Z == "" || have[n.Z] {
			continue
		}
		have[n.Z] = true
		tabs = append(tabs, &NodeDef{ID: n.Z, Type: "tab", Label: fmt.Sprintf("Imported %d", len(tabs)+1)})
		rep.Imported++
	}
	f.Nodes = append(tabs, f.Nodes...)
}
