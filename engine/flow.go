package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync/atomic"
)

// NodeDef is one object of a flow document: a tab, a config node or a node.
// Node-specific settings are top-level keys of the object, kept in Fields.
type NodeDef struct {
	ID   string
	Type string
	// Z is the id of the tab the node sits on; empty for global config nodes.
	Z string
	// G is the id of the group the node belongs to, if any.
	G    string
	Name string
	// Label is a tab's title.
	Label string
	// Info is the user's description (Markdown).
	Info string
	// Disabled is Node-RED's "d": a disabled node is validated but not run,
	// and messages wired to it are dropped.
	Disabled bool
	// X and Y place the node in the editor; nil for tabs and config nodes.
	X, Y *float64
	// Wires lists, per output port, the ids of the nodes it feeds. It is nil
	// for tabs and config nodes.
	Wires [][]string
	// Fields holds every other key, decoded from JSON (numbers are float64).
	Fields map[string]any
	// Line is the 1-based line where the object starts in the parsed file,
	// 0 when unknown.
	Line int
}

// Clone returns a deep copy.
func (n *NodeDef) Clone() *NodeDef {
	c := *n
	if n.X != nil {
		x := *n.X
		c.X = &x
	}
	if n.Y != nil {
		y := *n.Y
		c.Y = &y
	}
	if n.Wires != nil {
		c.Wires = make([][]string, len(n.Wires))
		for i, w := range n.Wires {
			c.Wires[i] = append([]string{}, w...)
		}
	}
	if n.Fields != nil {
		c.Fields = make(map[string]any, len(n.Fields))
		for k, v := range n.Fields {
			c.Fields[k] = CloneValue(v)
		}
	}
	return &c
}

// Ref returns the node's identity for events.
func (n *NodeDef) Ref() NodeRef {
	return NodeRef{ID: n.ID, Type: n.Type, Name: n.Name, Tab: n.Z}
}

// MarshalJSON writes the node as a flat object: standard keys first, then
// the node's fields in sorted order.
func (n *NodeDef) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	put := func(k string, v any) error {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSON(&b, k)
		b.WriteByte(':')
		return writeJSON(&b, v)
	}
	put("id", n.ID)
	put("type", n.Type)
	if n.Z != "" {
		put("z", n.Z)
	}
	if n.G != "" {
		put("g", n.G)
	}
	if n.Name != "" || (n.Type != "tab" && n.X != nil) {
		put("name", n.Name)
	}
	if n.Label != "" {
		put("label", n.Label)
	}
	if n.Disabled {
		put("d", true)
	}
	if n.Info != "" {
		put("info", n.Info)
	}
	keys := make([]string, 0, len(n.Fields))
	for k := range n.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := put(k, n.Fields[k]); err != nil {
			return nil, fmt.Errorf("node %q field %q: %w", n.ID, k, err)
		}
	}
	if n.X != nil {
		put("x", *n.X)
	}
	if n.Y != nil {
		put("y", *n.Y)
	}
	if n.Wires != nil {
		put("wires", n.Wires)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Flow is a parsed flow document.
type Flow struct {
	// Nodes holds tabs, config nodes and nodes in file order.
	Nodes []*NodeDef
}

// Node returns the object with the given id, or nil.
func (f *Flow) Node(id string) *NodeDef {
	for _, n := range f.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Clone returns a deep copy.
func (f *Flow) Clone() *Flow {
	c := &Flow{Nodes: make([]*NodeDef, len(f.Nodes))}
	for i, n := range f.Nodes {
		c.Nodes[i] = n.Clone()
	}
	return c
}

// MarshalJSON writes the flat array, one object per line.
func (f *Flow) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("[")
	for i, n := range f.Nodes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		nb, err := n.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b.Write(nb)
	}
	if len(f.Nodes) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString("]")
	return b.Bytes(), nil
}

// Revision returns the flow's revision: a hash of its canonical JSON,
// secrets included, so any change gives a new revision.
func (f *Flow) Revision() string {
	b, err := f.MarshalJSON()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// SyntaxError is a flow file that is not valid JSON or not a flow.
type SyntaxError struct {
	Line, Column int
	Msg          string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	return e.Msg
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (int, int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col := 1, 1
	lineScan.Add(off)
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// lineCounter converts increasing byte offsets into lines and columns in
// one pass over the document.
type lineCounter struct {
	data      []byte
	off       int
	line, col int
}

func newLineCounter(data []byte) *lineCounter { return &lineCounter{data: data, line: 1, col: 1} }

// at returns the line and column of off, which must not be below the
// previous call's.
func (lc *lineCounter) at(off int64) (int, int) {
	if off > int64(len(lc.data)) {
		off = int64(len(lc.data))
	}
	if int(off) < lc.off {
		return lineCol(lc.data, off)
	}
	lineScan.Add(off - int64(lc.off))
	for _, c := range lc.data[lc.off:off] {
		if c == '\n' {
			lc.line++
			lc.col = 1
		} else {
			lc.col++
		}
	}
	lc.off = int(off)
	return lc.line, lc.col
}

// lineScan counts the bytes scanned for line numbers (tests check that
// loading a flow scans each byte once).
var lineScan atomic.Int64

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ParseFlow parses a flow document: Node-RED's flat array, or the
// {"flows":[...],"rev":"..."} object of Node-RED's API. JSON syntax errors
// come back as a *SyntaxError with line and column. A UTF-8 byte order
// mark is skipped. Parsing takes time linear in the document's size.
func ParseFlow(data []byte) (*Flow, error) {
	return ParseFlowContext(context.Background(), data)
}

// ParseFlowContext is ParseFlow that gives up with ctx's error once ctx
// ends (a client that went away, an interrupted command).
func ParseFlowContext(ctx context.Context, data []byte) (*Flow, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	var probe any
	if err := json.Unmarshal(data, &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The offset points just past the offending byte.
			l, c := lineCol(data, se.Offset-1)
			return nil, &SyntaxError{Line: l, Column: c, Msg: se.Error()}
		}
		return nil, &SyntaxError{Msg: err.Error()}
	}
	orig, base := data, int64(0)
	if obj, ok := probe.(map[string]any); ok {
		if _, ok := obj["flows"]; !ok {
			return nil, &SyntaxError{Line: 1, Column: 1, Msg: "a flow is a JSON array of nodes (or an object with \"flows\")"}
		}
		var wrap struct {
			Flows json.RawMessage `json:"flows"`
		}
		if err := json.Unmarshal(data, &wrap); err != nil {
			return nil, &SyntaxError{Msg: err.Error()}
		}
		if _, ok := obj["flows"].([]any); !ok {
			return nil, &SyntaxError{Msg: "\"flows\" must be a JSON array of nodes"}
		}
		base = max(int64(bytes.Index(data, wrap.Flows)), 0)
		data = wrap.Flows
	} else if _, ok := probe.([]any); !ok {
		l, c := lineCol(data, int64(len(data)-len(bytes.TrimLeft(data, " \t\r\n"))))
		return nil, &SyntaxError{Line: l, Column: c, Msg: "a flow is a JSON array of nodes"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, &SyntaxError{Msg: err.Error()}
	}
	f := &Flow{}
	lc := newLineCounter(orig)
	for i := 0; dec.More(); i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		off := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &SyntaxError{Msg: err.Error()}
		}
		start := off + max(int64(bytes.IndexAny(data[off:], "{[\"0123456789tfn-")), 0)
		line, col := lc.at(base + start)
		n, err := parseNodeDef(raw)
		if err != nil {
			return nil, &SyntaxError{Line: line, Column: col, Msg: err.Error()}
		}
		n.Line = line
		f.Nodes = append(f.Nodes, n)
	}
	return f, nil
}

func parseNodeDef(raw []byte) (*NodeDef, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("each element of a flow must be a JSON object")
	}
	n := &NodeDef{}
	var bad []string
	str := func(k string) string {
		v, ok := m[k]
		if !ok {
			return ""
		}
		delete(m, k)
		s, ok := v.(string)
		if !ok {
			bad = append(bad, fmt.Sprintf("%q must be a string, got %s", k, jsonKind(v)))
		}
		return s
	}
	num := func(k string) *float64 {
		v, ok := m[k]
		if !ok {
			return nil
		}
		delete(m, k)
		f, ok := v.(float64)
		if !ok {
			bad = append(bad, fmt.Sprintf("%q must be a number, got %s", k, jsonKind(v)))
			return nil
		}
		return &f
	}
	n.ID = str("id")
	n.Type = str("type")
	n.Z = str("z")
	n.G = str("g")
	n.Name = str("name")
	n.Label = str("label")
	n.Info = str("info")
	n.X = num("x")
	n.Y = num("y")
	if v, ok := m["d"]; ok {
		delete(m, "d")
		b, ok := v.(bool)
		if !ok {
			bad = append(bad, fmt.Sprintf("\"d\" must be a boolean, got %s", jsonKind(v)))
		}
		n.Disabled = b
	}
	if v, ok := m["wires"]; ok {
		delete(m, "wires")
		ports, ok := v.([]any)
		if !ok {
			bad = append(bad, "\"wires\" must be an array of arrays of node ids")
		}
		n.Wires = make([][]string, 0, len(ports))
		for _, p := range ports {
			ids, ok := p.([]any)
			if !ok {
				bad = append(bad, "\"wires\" must be an array of arrays of node ids")
				n.Wires = append(n.Wires, []string{})
				continue
			}
			port := make([]string, 0, len(ids))
			seen := make(map[string]bool, len(ids))
			for _, id := range ids {
				s, ok := id.(string)
				if !ok {
					bad = append(bad, "\"wires\" must be an array of arrays of node ids")
					continue
				}
				if seen[s] {
					continue // a second wire to the same node would deliver twice
				}
				seen[s] = true
				port = append(port, s)
			}
			n.Wires = append(n.Wires, port)
		}
	}
	if len(m) > 0 {
		n.Fields = m
	}
	if len(bad) > 0 {
		id := ""
		if n.ID != "" {
			id = fmt.Sprintf("node %q: ", n.ID)
		}
		return nil, errors.New(id + strings.Join(bad, "; "))
	}
	return n, nil
}

// sameDef reports whether two definitions configure the same node: every
// key except the editor position and the info text is equal.
func sameDef(a, b *NodeDef) bool {
	if a.ID != b.ID || a.Type != b.Type || a.Z != b.Z || a.Name != b.Name || a.Disabled != b.Disabled {
		return false
	}
	if len(a.Wires) != len(b.Wires) {
		return false
	}
	for i := range a.Wires {
		if !slicesEqual(a.Wires[i], b.Wires[i]) {
			return false
		}
	}
	af := maps.Clone(a.Fields)
	bf := maps.Clone(b.Fields)
	ab, _ := json.Marshal(af)
	bb, _ := json.Marshal(bf)
	return bytes.Equal(ab, bb)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
