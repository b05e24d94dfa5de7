package engine

// Standalone is implemented by config nodes that may run without any node
// using them: a deploy starts such a config node when Standalone reports
// true, as if a running node referenced it (a box's management connection
// is one).
type Standalone interface {
	Standalone() bool
}

// Node returns the running instance of node id, or false when no node of
// that id is deployed. Callers may type-assert it to interfaces the node's
// package documents; they must not Start or Stop it.
func (e *Engine) Node(id string) (Node, bool) {
	r := e.graph.Load().runners[id]
	if r == nil {
		return nil, false
	}
	return r.node, true
}
