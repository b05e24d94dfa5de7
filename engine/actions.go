package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Action is a named operation a node type offers the editor, such as
// "browse" on an OPC UA node: it runs with the settings being edited (not
// necessarily deployed) and returns JSON-able data for the form. It must
// return promptly when ctx is done.
type Action func(ctx context.Context, req *ActionRequest) (any, error)

// ActionRequest is what an [Action] works with.
type ActionRequest struct {
	// Node is the node being edited, constructed from its settings but
	// not started.
	Node Node
	// Args are the action's arguments as the editor sent them (JSON; may
	// be empty).
	Args json.RawMessage

	nodes map[string]Node
}

// ConfigNode returns the config node id (one the edited node refers to),
// constructed from the settings sent with the request and not started:
// an action that needs it running starts and stops it itself.
func (r *ActionRequest) ConfigNode(id string) (Node, error) {
	n, ok := r.nodes[id]
	if !ok || n == nil {
		return nil, fmt.Errorf("config node %q: %w", id, ErrUnknownNode)
	}
	return n, nil
}

// ErrUnknownAction is returned for an action a node type does not offer.
var ErrUnknownAction = errors.New("no such action")

// ActionSpec declares an action of a node type.
type ActionSpec struct {
	// Name names the action in the API ("browse").
	Name string `json:"name"`
	// Field is the field whose value the action picks, or
	// "table.column" for a column of a table field ("items.nodeId"); the
	// editor shows a button beside it.
	Field string `json:"field,omitempty"`
	// Label is the button's text ("Browse…").
	Label string `json:"label"`
	// Help says what the action does.
	Help string `json:"help,omitempty"`
	// Run runs it.
	Run Action `json:"-"`
}

var actionReg = struct {
	sync.RWMutex
	m map[string][]ActionSpec
}{m: map[string][]ActionSpec{}}

// RegisterAction adds an action to the node type typ; call it from the
// node package's init function. It panics when the action exists.
func RegisterAction(typ string, a ActionSpec) {
	actionReg.Lock()
	defer actionReg.Unlock()
	for _, x := range actionReg.m[typ] {
		if x.Name == a.Name {
			panic(fmt.Sprintf("engine: action %q of %q registered twice", a.Name, typ))
		}
	}
	if a.Run == nil || a.Name == "" {
		panic(fmt.Sprintf("engine: action %q of %q has no name or no Run", a.Name, typ))
	}
	actionReg.m[typ] = append(actionReg.m[typ], a)
	sort.Slice(actionReg.m[typ], func(i, j int) bool { return actionReg.m[typ][i].Name < actionReg.m[typ][j].Name })
}

// Actions lists the actions of node type typ, by name.
func Actions(typ string) []ActionSpec {
	actionReg.RLock()
	defer actionReg.RUnlock()
	return append([]ActionSpec{}, actionReg.m[typ]...)
}

func lookupAction(typ, name string) (Action, bool) {
	actionReg.RLock()
	defer actionReg.RUnlock()
	for _, a := range actionReg.m[typ] {
		if a.Name == name {
			return a.Run, true
		}
	}
	return nil, false
}

// RunAction runs the action name of node nodeID of f, the flow as the
// editor holds it. Only that node and the config nodes it refers to are
// taken from f; they are validated (an invalid setting fails with an
// *ValidationError), constructed afresh (never the deployed instances)
// and stopped when the action returns. Secret fields holding the
// placeholder or left out take their deployed values, as in Deploy.
func (e *Engine) RunAction(ctx context.Context, f *Flow, nodeID, name string, args json.RawMessage) (any, error) {
	n := f.Node(nodeID)
	if n == nil {
		return nil, fmt.Errorf("node %q: %w", nodeID, ErrUnknownNode)
	}
	fn, ok := lookupAction(n.Type, name)
	if !ok {
		return nil, fmt.Errorf("%s has no action %q: %w", n.Type, name, ErrUnknownAction)
	}
	sub := &Flow{}
	seen := map[string]bool{}
	var add func(def *NodeDef)
	add = func(def *NodeDef) {
		if def == nil || seen[def.ID] {
			return
		}
		seen[def.ID] = true
		c := def.Clone()
		c.Wires, c.Disabled = nil, false
		sub.Nodes = append(sub.Nodes, c)
		if t, ok := e.reg.Lookup(def.Type); ok {
			for _, id := range configRefs(t, def) {
				add(f.Node(id))
			}
		}
	}
	if n.Z != "" {
		if tab := f.Node(n.Z); tab != nil {
			add(tab)
		} else {
			add(&NodeDef{ID: n.Z, Type: "tab"})
		}
	}
	add(n)
	e.mu.Lock()
	keepSecrets(sub, secretsOf(e.flow, e.reg))
	e.mu.Unlock()
	nodes, err := e.Construct(sub)
	if err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.stopTO)
		defer cancel()
		for _, nd := range nodes {
			_ = nd.Stop(sctx)
		}
	}()
	return fn(ctx, &ActionRequest{Node: nodes[nodeID], Args: args, nodes: nodes})
}
