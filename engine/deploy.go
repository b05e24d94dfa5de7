package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
)

// plan is a deployment being prepared: the new graph, with kept runners
// taken over from the current one and fresh runners constructed but not
// launched.
type plan struct {
	g      *graph
	fresh  map[*runner]bool
	slots  map[string]*slot
	deps   map[*runner][]*runner // config nodes each runner uses
	config []*runner             // config runners in dependency order
}

func isInert(typ string) bool { return typ == "tab" || typ == "group" || typ == "comment" }

// configRefs returns the config node ids n's settings reference.
func configRefs(t *Type, n *NodeDef) []string {
	var out []string
	for _, f := range t.Fields {
		switch f.Kind {
		case KindConfigRef:
			if s, ok := n.Fields[f.Name].(string); ok && s != "" {
				out = append(out, s)
			}
		case KindTable:
			rows, _ := n.Fields[f.Name].([]any)
			for _, row := range rows {
				obj, _ := row.(map[string]any)
				for _, sub := range f.Fields {
					if sub.Kind != KindConfigRef {
						continue
					}
					if s, ok := obj[sub.Name].(string); ok && s != "" {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

// build constructs the runners of f that cannot be kept from the current
// graph. Nothing is started or stopped. Constructor errors come back as a
// *ValidationError.
func (e *Engine) build(f *Flow, mode DeployMode) (*plan, error) {
	cur := e.graph.Load()
	p := &plan{
		g:     &graph{runners: map[string]*runner{}, catchers: map[string][]*runner{}, watchers: map[string][]*runner{}},
		fresh: map[*runner]bool{},
		slots: map[string]*slot{},
		deps:  map[*runner][]*runner{},
	}
	var problems Problems
	fail := func(n *NodeDef, err error) {
		problems = append(problems, Problem{NodeID: n.ID, NodeType: n.Type, Line: n.Line, Severity: SeverityError, Message: err.Error()})
	}
	e.slotsMu.Lock()
	slotOf := func(n *NodeDef, t *Type) *slot {
		if s := p.slots[n.ID]; s != nil {
			return s
		}
		s := e.slots[n.ID]
		size := e.inbox
		if t.ConfigNode {
			size = 0
		}
		if s == nil || cap(s.inbox) != size {
			s = newSlot(size, n.Type)
		}
		p.slots[n.ID] = s
		return s
	}
	defs := map[string]*NodeDef{}
	types := map[string]*Type{}
	for _, n := range f.Nodes {
		if isInert(n.Type) {
			continue
		}
		t, ok := e.reg.Lookup(n.Type)
		if !ok {
			continue
		}
		if n.Disabled && !t.ConfigNode {
			continue
		}
		defs[n.ID], types[n.ID] = n, t
		slotOf(n, t)
	}
	e.slotsMu.Unlock()

	construct := func(n *NodeDef, t *Type, r *runner) error {
		r.nc = &NodeContext{
			e: e, r: r, ref: r.ref, configs: p.g.runners,
			log: e.log.With("node_id", n.ID, "node_type", n.Type),
		}
		var msgs []string
		conf, err := resolveConfig(t, n, resolveCtx{lookup: e.lookup, dataDir: e.dataDir}, nil, func(field string, sev Severity, msg string) {
			if sev == SeverityError {
				msgs = append(msgs, field+": "+msg)
			}
		})
		if err == nil && len(msgs) > 0 {
			err = errors.New(msgs[0])
		}
		if err == nil && conf == nil {
			err = errors.New("config could not be decoded")
		}
		if err != nil {
			return err
		}
		node, err := t.New.New(r.nc, conf)
		if err != nil {
			return errors.New(newRedactor(t, n, guardLookup(e.lookup)).apply(err.Error()))
		}
		if node == nil {
			return fmt.Errorf("constructor of %s returned no node", t.Name)
		}
		r.node = node
		if h, ok := node.(Handler); ok {
			r.handler = h
		}
		_, catches := node.(ErrorCatcher)
		_, watches := node.(StatusWatcher)
		if (t.Inputs > 0 || catches || watches) && r.handler == nil {
			return fmt.Errorf("node type %s has an input but its node does not implement Handle", t.Name)
		}
		return nil
	}

	// Config nodes first, dependencies before their users.
	ids := make([]string, 0, len(defs))
	for id := range defs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	state := map[string]int{} // 1 visiting, 2 done
	var ensure func(id string) *runner
	ensure = func(id string) *runner {
		n, t := defs[id], types[id]
		if n == nil || !t.ConfigNode {
			return nil
		}
		switch state[id] {
		case 1:
			fail(n, errors.New("config nodes reference each other in a loop"))
			return nil
		case 2:
			return p.g.runners[id]
		}
		state[id] = 1
		var deps []*runner
		keepDeps := true
		for _, ref := range configRefs(t, n) {
			d := ensure(ref)
			if d == nil {
				continue
			}
			deps = append(deps, d)
			if p.fresh[d] {
				keepDeps = false
			}
		}
		state[id] = 2
		old := cur.runners[id]
		var r *runner
		if mode == DeployModified && old != nil && !old.spent && old.typ == t && keepDeps && sameDef(old.def, n) {
			r = old
		} else {
			r = &runner{e: e, def: n, typ: t, ref: n.Ref(), slot: p.slots[id], uses: configRefs(t, n)}
			if err := construct(n, t, r); err != nil {
				fail(n, err)
				return nil
			}
			p.fresh[r] = true
		}
		p.g.runners[id] = r
		p.deps[r] = deps
		p.config = append(p.config, r)
		return r
	}
	for _, id := range ids {
		ensure(id)
	}

	// Regular nodes.
	for _, id := range ids {
		n, t := defs[id], types[id]
		if t.ConfigNode {
			continue
		}
		outs := make([][]*slot, outputsOf(t, n))
		for port := range outs {
			if port >= len(n.Wires) {
				continue
			}
			for _, tid := range n.Wires[port] {
				if s := p.slots[tid]; s != nil && !types[tid].ConfigNode {
					outs[port] = append(outs[port], s)
				}
			}
		}
		var deps []*runner
		keepDeps := true
		for _, ref := range configRefs(t, n) {
			if d := p.g.runners[ref]; d != nil {
				deps = append(deps, d)
				if p.fresh[d] {
					keepDeps = false
				}
			}
		}
		old := cur.runners[id]
		var r *runner
		if mode == DeployModified && old != nil && old.typ == t && keepDeps && sameDef(old.def, n) &&
			old.slot == p.slots[id] && sameOuts(old.outs, outs) {
			r = old
		} else {
			r = &runner{e: e, def: n, typ: t, ref: n.Ref(), slot: p.slots[id], outs: outs, uses: configRefs(t, n)}
			if err := construct(n, t, r); err != nil {
				fail(n, err)
				continue
			}
			p.fresh[r] = true
		}
		p.g.runners[id] = r
		p.deps[r] = deps
	}
	if len(problems) > 0 {
		p.discard(context.Background())
		return nil, &ValidationError{Problems: problems}
	}

	// Wire order, catch and status nodes.
	p.g.order = topoOrder(p.g.runners, f)
	for _, r := range p.g.order {
		if _, ok := r.node.(ErrorCatcher); ok {
			p.g.catchers[r.def.Z] = append(p.g.catchers[r.def.Z], r)
		}
		if _, ok := r.node.(StatusWatcher); ok {
			p.g.watchers[r.def.Z] = append(p.g.watchers[r.def.Z], r)
		}
	}
	// Reference counts: a config node runs while a running node uses it.
	for _, r := range p.config {
		r.users = 0
		if s, ok := r.node.(Standalone); ok && s.Standalone() {
			r.users = 1
		}
	}
	for _, r := range p.g.order {
		for _, d := range p.deps[r] {
			d.users++
		}
	}
	for i := len(p.config) - 1; i >= 0; i-- {
		r := p.config[i]
		if r.users > 0 {
			for _, d := range p.deps[r] {
				d.users++
			}
		}
	}
	return p, nil
}

func sameOuts(a, b [][]*slot) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

// topoOrder returns the regular runners sources first (Kahn's algorithm,
// ties broken by file order).
func topoOrder(rs map[string]*runner, f *Flow) []*runner {
	pos := map[string]int{}
	for i, n := range f.Nodes {
		pos[n.ID] = i
	}
	indeg := map[string]int{}
	var ids []string
	for id, r := range rs {
		if r.typ.ConfigNode {
			continue
		}
		ids = append(ids, id)
		if _, ok := indeg[id]; !ok {
			indeg[id] = 0
		}
		for _, port := range r.def.Wires {
			for _, t := range port {
				if tr := rs[t]; tr != nil && !tr.typ.ConfigNode {
					indeg[t]++
				}
			}
		}
	}
	// Kahn's algorithm with the ready nodes in a heap by file position:
	// O(n log n) however the wires run.
	ready := &posHeap{pos: pos}
	for _, id := range ids {
		if indeg[id] == 0 {
			heap.Push(ready, id)
		}
	}
	order := make([]*runner, 0, len(ids))
	done := make(map[string]bool, len(ids))
	for len(order) < len(ids) {
		if ready.Len() == 0 { // a cycle: validation prevents it; keep file order
			sort.Slice(ids, func(i, j int) bool { return pos[ids[i]] < pos[ids[j]] })
			for _, id := range ids {
				if !done[id] {
					done[id] = true
					order = append(order, rs[id])
				}
			}
			break
		}
		id := heap.Pop(ready).(string)
		done[id] = true
		r := rs[id]
		order = append(order, r)
		for _, port := range r.def.Wires {
			for _, t := range port {
				if _, ok := indeg[t]; ok && !done[t] {
					indeg[t]--
					if indeg[t] == 0 {
						heap.Push(ready, t)
					}
				}
			}
		}
	}
	return order
}

// posHeap is a min-heap of node ids by file position.
type posHeap struct {
	ids []string
	pos map[string]int
}

func (h *posHeap) Len() int           { return len(h.ids) }
func (h *posHeap) Less(i, j int) bool { return h.pos[h.ids[i]] < h.pos[h.ids[j]] }
func (h *posHeap) Swap(i, j int)      { h.ids[i], h.ids[j] = h.ids[j], h.ids[i] }
func (h *posHeap) Push(x any)         { h.ids = append(h.ids, x.(string)) }
func (h *posHeap) Pop() any {
	x := h.ids[len(h.ids)-1]
	h.ids = h.ids[:len(h.ids)-1]
	return x
}

// discard stops fresh runners that were constructed but never launched.
func (p *plan) discard(ctx context.Context) {
	for r := range p.fresh {
		if r.node != nil && !r.started {
			r.node.Stop(ctx)
		}
	}
}

// apply stops what the plan replaces, installs the new graph and launches
// the fresh runners.
func (e *Engine) apply(ctx context.Context, p *plan) *DeployData {
	cur := e.graph.Load()
	data := &DeployData{Started: []string{}, Stopped: []string{}, Kept: []string{}}
	ctx, cancel := context.WithTimeout(ctx, e.stopTO)
	defer cancel()

	// Regular nodes, sources first. A replaced node leaves its queue to its
	// successor; a removed node finishes its queue first.
	var stop []*runner
	for _, r := range cur.order {
		if p.g.runners[r.def.ID] != r {
			stop = append(stop, r)
		}
	}
	removed := func(r *runner) bool { return p.slots[r.def.ID] != r.slot }
	for _, err := range stopRunners(ctx, stop, removed) {
		e.log.Warn("deploy", "err", err)
	}
	for _, r := range stop {
		data.Stopped = append(data.Stopped, r.def.ID)
	}
	// Config nodes no longer used or replaced, users before dependencies.
	var cstop []*runner
	for _, r := range configOrder(cur) {
		if !r.started {
			continue
		}
		if p.g.runners[r.def.ID] != r || r.users == 0 {
			cstop = append(cstop, r)
		}
	}
	for i, j := 0, len(cstop)-1; i < j; i, j = i+1, j-1 {
		cstop[i], cstop[j] = cstop[j], cstop[i]
	}
	for _, err := range stopRunners(ctx, cstop, removed) {
		e.log.Warn("deploy", "err", err)
	}
	for _, r := range cstop {
		data.Stopped = append(data.Stopped, r.def.ID)
		r.started, r.spent = false, true
	}

	// Swap.
	e.slotsMu.Lock()
	for id, s := range e.slots {
		if p.slots[id] != s {
			s.discard()
			delete(e.slots, id)
		}
	}
	for id, s := range p.slots {
		typ := p.g.runners[id].typ.Name
		s.typ.Store(&typ)
		e.slots[id] = s
	}
	e.slotsMu.Unlock()
	e.graph.Store(p.g)

	// Launch config nodes (dependencies first), then nodes.
	for _, r := range p.config {
		if r.users > 0 && !r.started {
			r.launch(p.deps[r])
			data.Started = append(data.Started, r.def.ID)
		} else if r.started {
			data.Kept = append(data.Kept, r.def.ID)
		}
	}
	for _, r := range p.g.order {
		if p.fresh[r] {
			r.launch(p.deps[r])
			data.Started = append(data.Started, r.def.ID)
		} else {
			data.Kept = append(data.Kept, r.def.ID)
		}
	}
	return data
}

// configOrder returns a graph's config runners, dependencies first.
func configOrder(g *graph) []*runner {
	var ids []string
	for id, r := range g.runners {
		if r.typ.ConfigNode {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	seen := map[string]bool{}
	var out []*runner
	var visit func(id string)
	visit = func(id string) {
		r := g.runners[id]
		if r == nil || !r.typ.ConfigNode || seen[id] {
			return
		}
		seen[id] = true
		for _, d := range r.uses {
			visit(d)
		}
		out = append(out, r)
	}
	for _, id := range ids {
		visit(id)
	}
	return out
}
