package engine

import (
	"errors"
	"fmt"
)

// Switchable is implemented by nodes whose output can be switched on and
// off while they run, without a deploy: the debug node's button. The
// switch is the node's boolean field named [SwitchField]; [Engine.SetActive]
// flips the running node and keeps that field of the deployed flow in step.
// SetActive is called on a goroutine other than the node's.
type Switchable interface {
	SetActive(on bool)
}

// SwitchField is the field a [Switchable] node keeps its switch in.
const SwitchField = "active"

// TopicSwitchPrefix prefixes the topic of the event published when a
// node is switched on or off: "switch/<node id>", data *SwitchData.
const TopicSwitchPrefix = "switch/"

// ErrNotSwitchable is SetActive on a node that has no on/off switch.
var ErrNotSwitchable = errors.New("node has no on/off switch")

// SwitchData is the body of a "switch/<id>" event.
type SwitchData struct {
	// Active is the node's new state.
	Active bool `json:"active"`
	// Rev is the deployed revision with the new state; Prev the one it
	// replaced. An editor holding Prev can take Rev as its own.
	Rev  string `json:"rev"`
	Prev string `json:"prev"`
}

// SetActive switches the running node id on or off at once, without a
// deploy and without restarting any node. The node's [SwitchField] in the
// deployed flow follows (and is saved to the store when there is one), so
// the flow read back, a restart and the next modified-nodes deploy see the
// same state; the revision changes as it does for any change of the flow.
// An event "switch/<id>" tells subscribers. A node that is not running
// (unknown, disabled, or on a disabled tab) fails with [ErrUnknownNode];
// one without a switch with [ErrNotSwitchable]. Setting the state the node
// already has changes nothing and publishes nothing.
func (e *Engine) SetActive(id string, on bool) (SwitchData, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return SwitchData{}, ErrStopped
	}
	r := e.graph.Load().runners[id]
	def := e.flow.Node(id)
	if r == nil || def == nil {
		return SwitchData{}, fmt.Errorf("switching %q: %w", id, ErrUnknownNode)
	}
	sw, ok := r.node.(Switchable)
	if !ok {
		return SwitchData{}, fmt.Errorf("switching %q: node type %s: %w", id, r.typ.Name, ErrNotSwitchable)
	}
	data := SwitchData{Active: on, Rev: e.rev, Prev: e.rev}
	if switchState(r.typ, def) == on {
		return data, nil
	}
	f := e.flow.Clone()
	n := f.Node(id)
	if n.Fields == nil {
		n.Fields = map[string]any{}
	}
	n.Fields[SwitchField] = on
	if e.store != nil {
		if err := e.store.Save(f); err != nil {
			return SwitchData{}, fmt.Errorf("saving flow: %w", err)
		}
	}
	sw.SetActive(on)
	// The runner's settings follow, so a modified-nodes deploy of the same
	// state keeps the node running. They are read only under e.mu.
	if r.def.Fields == nil {
		r.def.Fields = map[string]any{}
	}
	r.def.Fields[SwitchField] = on
	e.flow = f
	e.rev = f.Revision()
	e.publishShown()
	data.Rev = e.rev
	e.log.Info("node switched", "node_id", id, "active", on, "rev", e.rev)
	ref := r.ref
	e.bus.publish(Event{Topic: TopicSwitchPrefix + id, Node: &ref, Data: &data})
	return data, nil
}

// switchState is a node's switch as its settings hold it: the field, or
// the type's default when the field is absent.
func switchState(t *Type, n *NodeDef) bool {
	if v, ok := n.Fields[SwitchField].(bool); ok {
		return v
	}
	for _, f := range t.Fields {
		if f.Name == SwitchField {
			v, _ := f.Default.(bool)
			return v
		}
	}
	return false
}
