package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// This file holds what Node-RED-style nodes need beyond wires: delivering
// a message to a named node (link nodes), context stores that outlive a
// deploy (function and change nodes), and the environment lookup.

// DeliverTo puts msg on the input of node id of the running deployment, as
// if a wire led there (link out → link in, link call returns). It blocks
// while the target's inbox is full, like [NodeContext.Send]. The caller
// must not use msg afterwards.
func (nc *NodeContext) DeliverTo(ctx context.Context, id string, msg *Msg) error {
	r := nc.e.graph.Load().runners[id]
	if r == nil || r.handler == nil {
		return fmt.Errorf("delivering to %q: %w", id, ErrUnknownNode)
	}
	if msg.ID == "" {
		msg.ID = NewMsgID()
	}
	if err := r.slot.put(ctx, msg); err != nil {
		nc.r.slot.dropped.Add(1)
		return err
	}
	nc.r.slot.out.Add(1)
	return nil
}

// DeployedNode returns the definition of node id in the running
// deployment, or nil. Treat it as read-only.
func (nc *NodeContext) DeployedNode(id string) *NodeDef {
	r := nc.e.graph.Load().runners[id]
	if r == nil {
		return nil
	}
	return r.def
}

// LookupEnv resolves an environment variable the way ${NAME} references in
// the flow are resolved.
func (nc *NodeContext) LookupEnv(name string) (string, bool) { return nc.e.lookup(name) }

// ContextStore is one of Node-RED's memory context stores: a node's own,
// its tab's ("flow") or the engine's ("global"). Values stay while the
// engine runs, across deploys. It is safe for concurrent use.
type ContextStore struct {
	mu   sync.Mutex
	vals map[string]any
}

// Get returns the value stored under key.
func (s *ContextStore) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vals[key]
	return v, ok
}

// Set stores v under key; a nil v deletes the key.
func (s *ContextStore) Set(key string, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == nil {
		delete(s.vals, key)
		return
	}
	if s.vals == nil {
		s.vals = map[string]any{}
	}
	s.vals[key] = v
}

// Keys returns the stored keys.
func (s *ContextStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.vals))
	for k := range s.vals {
		out = append(out, k)
	}
	return out
}

// Context scopes.
const (
	ContextNode   = "node"
	ContextFlow   = "flow"
	ContextGlobal = "global"
)

// Context returns the node's context store of the given scope
// ([ContextNode], [ContextFlow] or [ContextGlobal]).
func (nc *NodeContext) Context(scope string) *ContextStore {
	stores := contextsOf(nc.e)
	key := scope
	switch scope {
	case ContextNode:
		key = "node/" + nc.ref.ID
	case ContextFlow:
		key = "flow/" + nc.ref.Tab
	default:
		key = ContextGlobal
	}
	stores.mu.Lock()
	defer stores.mu.Unlock()
	s := stores.m[key]
	if s == nil {
		s = &ContextStore{}
		stores.m[key] = s
	}
	return s
}

type engineContexts struct {
	mu sync.Mutex
	m  map[string]*ContextStore
}

// contexts maps an engine to its context stores; an entry goes when its
// engine is collected.
var contexts sync.Map // weak.Pointer[Engine] → *engineContexts

func contextsOf(e *Engine) *engineContexts {
	wp := weak.Make(e)
	if v, ok := contexts.Load(wp); ok {
		return v.(*engineContexts)
	}
	v, loaded := contexts.LoadOrStore(wp, &engineContexts{m: map[string]*ContextStore{}})
	if !loaded {
		runtime.AddCleanup(e, func(wp weak.Pointer[Engine]) { contexts.Delete(wp) }, wp)
	}
	return v.(*engineContexts)
}

// DeployedByName returns the id of a running node of type typ called
// name, or "" (the lowest id when several share the name).
func (nc *NodeContext) DeployedByName(typ, name string) string {
	best := ""
	for id, r := range nc.e.graph.Load().runners {
		if r.def.Type == typ && r.def.Name == name && (best == "" || id < best) {
			best = id
		}
	}
	return best
}
